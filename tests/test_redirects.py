"""Redirects: methods, bodies, Location forms, credentials across origins, reuse."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pytest
from servers.h11server import Reply

import rawkeep
from rawkeep._redirects import _next_url
from rawkeep._url import URL

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.scripted import ReceivedRequest, ScriptedServer

pytestmark = pytest.mark.both_clients


def redirecting(routes: dict[str, tuple[int, str]]) -> Callable[[ReceivedRequest], Reply]:
    """Answer paths in `routes` with (status, Location); others echo the
    method, path and body so the test sees what the final request was."""

    def respond(request: ReceivedRequest) -> Reply:
        if request.path in routes:
            status, location = routes[request.path]
            return Reply(status=status, body=b"moved", headers=[("Location", location)])
        return Reply(body=f"{request.method} {request.target} ".encode() + request.body)

    return respond


def test_not_followed_by_default(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_keepalive_server(respond=redirecting({"/a": (302, "/b")}))
    response = client.get(server.url + "/a")
    assert response.status == 302
    assert response.headers["location"] == "/b"
    assert response.history == []
    assert [r.target for r in server.requests] == ["/a"]


def test_chain_on_one_origin_reuses_the_connection(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_keepalive_server(
        respond=redirecting({"/a": (301, "/b"), "/b": (302, "c?x=1"), "/c": (307, "/end")})
    )
    response = client.get(server.url + "/a", follow_redirects=True)
    assert response.content == b"GET /end "
    assert [r.status for r in response.history] == [301, 302, 307]
    assert [r.content for r in response.history] == [b"moved"] * 3
    assert response.url == server.url + "/end"
    assert [r.target for r in server.requests] == ["/a", "/b", "/c?x=1", "/end"]
    assert server.accepted == 1
    assert client.pool_stats().reused == 3


def test_chain_across_two_origins(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    # first /start -> second /hop -> first /again -> first /done
    first_routes: dict[str, tuple[int, str]] = {}
    second_routes: dict[str, tuple[int, str]] = {}
    first = start_keepalive_server(respond=redirecting(first_routes))
    second = start_keepalive_server(respond=redirecting(second_routes))
    first_routes.update({"/start": (302, second.url + "/hop"), "/again": (302, "/done")})
    second_routes["/hop"] = (303, first.url + "/again")
    client = make_client(follow_redirects=True)
    response = client.get(first.url + "/start")
    assert response.content == b"GET /done "
    assert [r.url for r in response.history] == [
        first.url + "/start",
        second.url + "/hop",
        first.url + "/again",
    ]
    # Each origin's connection was opened once and reused on the way back.
    assert (first.accepted, second.accepted) == (1, 1)
    assert [r.connection for r in first.requests] == [0, 0, 0]
    stats = client.pool_stats()
    assert (stats.opened, stats.reused) == (2, 2)


def test_cross_origin_redirect_drops_credentials(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    other = start_keepalive_server()
    first = start_keepalive_server(
        respond=redirecting({"/a": (302, "/b"), "/b": (302, other.url + "/c")})
    )
    client = make_client(follow_redirects=True)
    response = client.get(
        first.url + "/a",
        auth=("alice", "secret"),
        headers={"Cookie": "session=1", "X-Keep": "yes"},
    )
    assert response.status == 200
    same_origin_hop = first.requests[1]
    assert same_origin_hop.header("authorization") is not None
    assert same_origin_hop.header("cookie") == b"session=1"
    (crossed,) = other.requests
    assert crossed.header("authorization") is None
    assert crossed.header("cookie") is None
    assert crossed.header("x-keep") == b"yes"
    assert crossed.header("host") == other.origin.split("//")[1].encode()


@pytest.mark.parametrize(
    ("status", "method", "expected_method", "body_kept"),
    [
        (301, "POST", "GET", False),
        (302, "POST", "GET", False),
        (303, "POST", "GET", False),
        (303, "PUT", "GET", False),
        (302, "PUT", "GET", False),
        (307, "POST", "POST", True),
        (308, "PUT", "PUT", True),
        (301, "GET", "GET", False),
    ],
)
def test_method_and_body_per_status(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    status: int,
    method: str,
    expected_method: str,
    body_kept: bool,
) -> None:
    server = start_keepalive_server(respond=redirecting({"/a": (status, "/b")}))
    body = b"" if method == "GET" else b"payload"
    response = client.request(method, server.url + "/a", content=body, follow_redirects=True)
    final = server.requests[-1]
    assert final.method == expected_method
    assert final.body == (body if body_kept else b"")
    if not body_kept:
        assert final.header("content-length") in (None, b"0")
        assert final.header("content-type") is None
    assert response.content.startswith(expected_method.encode())


def test_308_replays_a_file_body(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_keepalive_server(respond=redirecting({"/upload": (308, "/stored")}))
    payload = bytes(range(256)) * 1000
    with io.BytesIO(payload) as file:
        response = client.put(server.url + "/upload", content=file, follow_redirects=True)
    assert response.status == 200
    first, second = server.requests
    assert first.body == payload
    assert second.body == payload
    assert second.target == "/stored"


def test_307_with_an_iterator_body_raises_clearly(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_keepalive_server(respond=redirecting({"/a": (307, "/b")}))
    with pytest.raises(rawkeep.LocalProtocolError, match="can't be sent again"):
        client.post(server.url + "/a", content=iter([b"one", b"two"]), follow_redirects=True)
    assert [r.target for r in server.requests] == ["/a"]
    assert client.pool_stats().active == 0


def test_too_many_redirects(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    server = start_keepalive_server(respond=redirecting({"/loop": (302, "/loop")}))
    client = make_client(follow_redirects=True, max_redirects=3)
    with pytest.raises(rawkeep.TooManyRedirects):
        client.get(server.url + "/loop")
    assert len(server.requests) == 4
    assert client.pool_stats().active == 0
    assert client.pool_stats().opened == 1


def test_scheme_relative_location(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_keepalive_server(respond=redirecting({"/b": (302, "/c")}))
    authority = server.origin.removeprefix("http://")
    other = start_keepalive_server(respond=redirecting({"/x": (302, f"//{authority}/b")}))
    response = client.get(other.url + "/x", follow_redirects=True)
    assert response.content == b"GET /c "
    assert [r.target for r in server.requests] == ["/b", "/c"]


def test_unusable_location_is_a_remote_error(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_keepalive_server(respond=redirecting({"/a": (302, "ftp://example/")}))
    with pytest.raises(rawkeep.RemoteProtocolError, match="Location"):
        client.get(server.url + "/a", follow_redirects=True)
    assert client.pool_stats().active == 0


def test_userinfo_in_location_becomes_basic_auth(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    other = start_keepalive_server()
    target = other.url.replace("http://", "http://bob:pw%21@") + "/private"
    server = start_keepalive_server(respond=redirecting({"/a": (302, target)}))
    response = client.get(server.url + "/a", follow_redirects=True)
    assert response.status == 200
    assert "bob" not in response.url
    (request,) = other.requests
    assert request.header("authorization") == b"Basic Ym9iOnB3IQ=="


def test_tab_in_location_is_fatal_not_deleted(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    # urljoin deletes TAB, CR and LF: "/a\tb" would be followed as "/ab".
    server = start_keepalive_server(
        respond=redirecting({"/start": (302, "/a\tb"), "/ab": (302, "/never")})
    )
    with pytest.raises(rawkeep.RemoteProtocolError, match="control character") as info:
        client.get(server.url + "/start", follow_redirects=True)
    assert "'\\t'" in str(info.value)
    assert [r.target for r in server.requests] == ["/start"]
    assert client.pool_stats().active == 0


def test_control_characters_in_location_are_refused() -> None:
    # h11 lets only TAB through inside a header value; the others are
    # checked on the function that plans the next URL.
    current = URL("http://127.0.0.1:8080/x")
    for location in ["/a\tb", "/a\nb", "/a\rb", "\t/a", "/a\x00", "/a\x1c", "\x1f/a", "/a\x7f"]:
        with pytest.raises(rawkeep.RemoteProtocolError, match="control character"):
            _next_url(current, location)
    # Spaces are still encoded, and non-ASCII text is kept, not stripped.
    assert _next_url(current, "/a b").target == "/a%20b"
    assert _next_url(current, "/a\xa0").target == "/a%C2%A0"


@pytest.mark.parametrize(
    "location", ["http://[::1", "//[::1/x", "http://[abc]/", "http://[127.0.0.1]/"]
)
def test_location_urljoin_refuses_is_a_remote_error(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    location: str,
) -> None:
    server = start_keepalive_server(respond=redirecting({"/a": (302, location)}))
    with pytest.raises(rawkeep.RemoteProtocolError, match="Location") as info:
        client.get(server.url + "/a", follow_redirects=True)
    assert isinstance(info.value.__cause__, (ValueError, rawkeep.InvalidURL))
    assert client.pool_stats().active == 0


def test_escaped_colon_in_location_user_name_is_a_remote_error(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    other = start_keepalive_server()
    target = other.url.replace("http://", "http://a%3Ab:s3cret@") + "/private"
    server = start_keepalive_server(respond=redirecting({"/a": (302, target)}))
    with pytest.raises(rawkeep.RemoteProtocolError, match="%3A") as info:
        client.get(server.url + "/a", follow_redirects=True)
    assert isinstance(info.value.__cause__, rawkeep.InvalidURL)
    assert "s3cret" not in str(info.value)
    assert other.requests == []


def test_location_credentials_stay_out_of_the_message(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_keepalive_server(
        respond=redirecting({"/a": (302, "//bob:s3cret@[::1/x"), "/b": (302, "//bob:s3cret@h\t/")})
    )
    for path in ("/a", "/b"):
        with pytest.raises(rawkeep.RemoteProtocolError) as info:
            client.get(server.url + path, follow_redirects=True)
        assert "s3cret" not in str(info.value)
        assert "***@" in str(info.value)
