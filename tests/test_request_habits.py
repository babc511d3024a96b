"""Habits from requests and httpx: ``base_url``, list values in ``params``
and ``data``, TLS files checked when the client is made, a dead proxy.

Asserted on what the server received, and on bad input raising before a
connection was even opened (``server.accepted == 0``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import pytest

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.scripted import ScriptedServer

pytestmark = pytest.mark.both_clients


# -- base_url ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url", "target"),
    [
        ("/api", "items", "/api/items"),
        ("/api", "/items", "/api/items"),
        ("/api/", "items?x=1", "/api/items?x=1"),
        ("/api/", "//items", "/api/items"),
        ("", "items", "/items"),
        ("/api", "", "/api/"),
    ],
)
def test_base_url_keeps_its_path(
    server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
    base: str,
    url: str,
    target: str,
) -> None:
    client = make_client(base_url=server.url + base)
    response = client.get(url)
    assert server.requests[0].target == target
    assert response.url == server.url + target


def test_base_url_leaves_absolute_urls_alone(
    server: ScriptedServer,
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    other = start_keepalive_server()
    client = make_client(base_url=server.url + "/api")
    client.get(other.url + "/elsewhere", params={"q": "1"})
    assert other.requests[0].target == "/elsewhere?q=1"
    assert server.accepted == 0


def test_base_url_joins_params_and_verbs(
    server: ScriptedServer, make_client: Callable[..., rawkeep.Client]
) -> None:
    client = make_client(base_url=server.url + "/v1/")
    client.post("users", json={"a": 1}, params={"page": 2})
    with client.stream("GET", "/users/7") as response:
        response.read()
    first, second = server.requests
    assert (first.method, first.target) == ("POST", "/v1/users?page=2")
    assert (second.method, second.target) == ("GET", "/v1/users/7")


def test_redirects_resolve_against_the_request_url(
    start_server: Callable[..., ScriptedServer], make_client: Callable[..., rawkeep.Client]
) -> None:
    targets: list[str] = []

    def handler(conn: Any) -> None:
        while (request := conn.read_request()) is not None:
            targets.append(request.target)
            if request.target == "/api/a/b":
                conn.respond(b"HTTP/1.1 302 Found\r\nLocation: c\r\nContent-Length: 0\r\n\r\n")
            else:
                conn.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    server = start_server(handler)
    client = make_client(base_url=server.url + "/api", follow_redirects=True)
    assert client.get("a/b").content == b"ok"
    assert targets == ["/api/a/b", "/api/a/c"]


@pytest.mark.parametrize(
    ("base", "error"),
    [
        ("ftp://h/", rawkeep.InvalidURL),
        ("h/api", rawkeep.InvalidURL),
        ("http://h:99999/", rawkeep.InvalidURL),
        ("http://h/api?x=1", rawkeep.InvalidURL),
        ("http://h/api#top", rawkeep.InvalidURL),
        (b"http://h/", TypeError),
    ],
)
def test_bad_base_url_is_refused_at_construction(
    make_client: Callable[..., rawkeep.Client], base: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match="base_url"):
        make_client(base_url=base)


def test_relative_url_without_base_url_is_invalid(
    server: ScriptedServer, client: rawkeep.Client
) -> None:
    with pytest.raises(rawkeep.InvalidURL):
        client.get("/items")
    assert server.accepted == 0


# -- params and data ----------------------------------------------------------------


def query(server: ScriptedServer, index: int = 0) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(server.requests[index].target).query, keep_blank_values=True)


def test_list_and_tuple_values_repeat_the_key(
    server: ScriptedServer, client: rawkeep.Client
) -> None:
    client.get(server.url, params={"tags": ["a", "b"], "n": (1, 2.5), "empty": []})
    client.get(server.url, params=[("tags", ["x"]), ("tags", "y")])
    assert query(server, 0) == [("tags", "a"), ("tags", "b"), ("n", "1"), ("n", "2.5")]
    assert query(server, 1) == [("tags", "x"), ("tags", "y")]


def test_scalars_are_encoded_as_httpx_encodes_them(
    server: ScriptedServer, client: rawkeep.Client
) -> None:
    client.get(server.url, params={"t": True, "f": False, "none": None, "i": 0, "l": [None]})
    assert server.requests[0].target == "/?t=true&f=false&none=&i=0&l="


def test_form_data_expands_lists_too(server: ScriptedServer, client: rawkeep.Client) -> None:
    client.post(server.url, data={"tags": ["a", "b"], "ok": True, "none": None})
    assert server.requests[0].body == b"tags=a&tags=b&ok=true&none="


@pytest.mark.parametrize("what", ["params", "data"])
@pytest.mark.parametrize(
    "value", [{"k": "v"}, {"a"}, object(), b"bytes", [["nested"]], [{"k": 1}]]
)
def test_other_values_are_a_type_error_naming_the_key(
    server: ScriptedServer, client: rawkeep.Client, what: str, value: object
) -> None:
    with pytest.raises(TypeError, match=rf"{what}= value for 'tags'"):
        client.post(server.url, **{what: {"ok": "1", "tags": value}})
    assert server.accepted == 0


@pytest.mark.parametrize("what", ["params", "data"])
@pytest.mark.parametrize("fields", [[("a",)], [("a", "b", "c")], [1], {1: "x"}, 5])
def test_malformed_fields_are_a_type_error(
    server: ScriptedServer, client: rawkeep.Client, what: str, fields: object
) -> None:
    with pytest.raises(TypeError, match=rf"{what}="):
        client.post(server.url, **{what: fields})
    assert server.accepted == 0
