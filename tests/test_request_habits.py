"""Habits from requests and httpx: ``base_url``, list values in ``params``
and ``data``, TLS files checked when the client is made, a dead proxy.

Asserted on what the server received, and on bad input raising before a
connection was even opened (``server.accepted == 0``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import pytest

import rawkeep

if TYPE_CHECKING:
    import ssl
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


# -- TLS files, read when the client is made -------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"verify": "nonexistent.pem"},
        {"cert": "nope.pem"},
        {"verify": False, "cert": "nope.pem"},
    ],
    ids=["verify", "cert", "cert-no-verify"],
)
def test_missing_tls_files_fail_at_construction(
    make_client: Callable[..., rawkeep.Client], options: dict[str, Any]
) -> None:
    with pytest.raises(rawkeep.TLSError, match=r"nonexistent\.pem|nope\.pem") as caught:
        make_client(**options)
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_missing_key_file_fails_at_construction(
    make_client: Callable[..., rawkeep.Client], tls_ca: Any, tmp_path: Path
) -> None:
    certificate = tmp_path / "client.crt"
    tls_ca.issue_cert("client.test").cert_chain_pems[0].write_to_path(str(certificate))
    with pytest.raises(rawkeep.TLSError, match="client certificate"):
        make_client(cert=(str(certificate), str(tmp_path / "missing.key")))


def test_a_file_that_is_not_pem_fails_at_construction(
    make_client: Callable[..., rawkeep.Client], tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate\n")
    with pytest.raises(rawkeep.TLSError, match="CA bundle"):
        make_client(verify=str(bundle))


def test_verify_directory_of_hashed_certificates_still_works(
    make_client: Callable[..., rawkeep.Client],
    start_keepalive_server: Callable[..., ScriptedServer],
    server_ssl_context: ssl.SSLContext,
    ca_pem_path: str,
    tmp_path: Path,
) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to name a CA directory's files by hash")
    subject_hash = subprocess.run(
        [openssl, "x509", "-hash", "-noout", "-in", ca_pem_path],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()  # fmt: skip
    shutil.copy(ca_pem_path, tmp_path / f"{subject_hash}.0")
    server = start_keepalive_server(ssl_context=server_ssl_context)
    client = make_client(verify=str(tmp_path))
    assert client.get(f"{server.url}/capath").content == b"/capath"


# -- a dead proxy says it was the proxy ----------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_refused_proxy_is_a_proxy_error(
    make_client: Callable[..., rawkeep.Client], refused_url: str, scheme: str
) -> None:
    client = make_client(proxy=refused_url)
    proxy_address = refused_url.removeprefix("http://")
    with pytest.raises(rawkeep.ProxyError) as caught:
        client.get(f"{scheme}://127.0.0.1:9/x")
    error = caught.value
    assert not isinstance(error, rawkeep.ConnectError)
    assert error.message.startswith(f"could not connect to proxy {proxy_address}: ")
    assert error.status is None
    assert error.origin == f"{scheme}://127.0.0.1:9"
    assert isinstance(error.__cause__, rawkeep.ConnectError)
    assert client.pool_stats().active == 0


def test_a_proxy_connect_timeout_stays_a_timeout(
    make_client: Callable[..., rawkeep.Client], never_accepting_listener: str
) -> None:
    client = make_client(proxy=never_accepting_listener, timeout=0.3)
    with pytest.raises(rawkeep.ConnectTimeout, match=r"^connect to proxy 127\.0\.0\.1:\d+ "):
        client.get("http://127.0.0.1:9/x")


def test_the_command_line_reports_a_dead_proxy_as_a_proxy_error(refused_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rawkeep", "--proxy", refused_url, "http://127.0.0.1:9/"],
        capture_output=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )  # fmt: skip
    assert result.returncode == 12, result.stderr
    assert b"proxy error: could not connect to proxy" in result.stderr
