"""Basic auth (client, request, URL userinfo) and cookie jars."""

from __future__ import annotations

import http.cookiejar
import logging
from typing import TYPE_CHECKING

import pytest
from servers.h11server import Reply

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.recorder import EventRecorder
    from servers.scripted import ReceivedRequest, ScriptedServer

pytestmark = pytest.mark.both_clients

ALICE = b"Basic YWxpY2U6czNjcmV0"  # alice:s3cret


def test_client_auth(server: ScriptedServer, make_client: Callable[..., rawkeep.Client]) -> None:
    client = make_client(auth=("alice", "s3cret"))
    client.get(server.url)
    assert server.requests[0].header("authorization") == ALICE


def test_request_auth_overrides_client_auth(
    server: ScriptedServer, make_client: Callable[..., rawkeep.Client]
) -> None:
    client = make_client(auth=("bob", "x"))
    client.get(server.url, auth=("alice", "s3cret"))
    assert server.requests[0].header("authorization") == ALICE


def test_explicit_header_wins(server: ScriptedServer, client: rawkeep.Client) -> None:
    client.get(server.url, auth=("alice", "s3cret"), headers={"Authorization": "Bearer t"})
    assert server.requests[0].header("authorization") == b"Bearer t"


def test_userinfo_becomes_basic_auth_and_never_shows(
    server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client()
    url = server.url.replace("http://", "http://alice:s3cret@") + "/p"
    with caplog.at_level(logging.DEBUG, logger="rawkeep"):
        response = client.get(url)
    assert server.requests[0].header("authorization") == ALICE
    assert "s3cret" not in response.url
    assert "s3cret" not in repr(response.headers)
    assert all("s3cret" not in repr(event) for event in events.snapshot())
    assert "s3cret" not in caplog.text


def test_userinfo_is_percent_decoded(server: ScriptedServer, client: rawkeep.Client) -> None:
    client.get(server.url.replace("http://", "http://al%40ice:p%3Aw@"))
    assert server.requests[0].header("authorization") == b"Basic YWxAaWNlOnA6dw=="


@pytest.mark.parametrize("bad", [("a",), ("a", 1), "user:pw", ("a:b", "c")])
def test_bad_auth_is_refused_before_io(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        rawkeep.Client(auth=bad)  # type: ignore[arg-type]


def cookie_server(request: ReceivedRequest) -> Reply:
    if request.path == "/login":
        return Reply(
            headers=[
                ("Set-Cookie", "session=abc; Path=/"),
                ("Set-Cookie", "theme=dark; Path=/"),
            ]
        )
    if request.path == "/hop":
        return Reply(status=302, headers=[("Location", "/end"), ("Set-Cookie", "hop=1")])
    return Reply(body=request.header("cookie") or b"")


def test_cookie_jar_stores_and_sends(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    server = start_keepalive_server(respond=cookie_server)
    jar = http.cookiejar.CookieJar()
    client = make_client(cookies=jar)
    client.get(server.url + "/login")
    assert {cookie.name for cookie in jar} == {"session", "theme"}
    sent = client.get(server.url + "/page").content
    assert sorted(sent.split(b"; ")) == [b"session=abc", b"theme=dark"]


def test_cookies_follow_redirects(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    server = start_keepalive_server(respond=cookie_server)
    jar = http.cookiejar.CookieJar()
    client = make_client(cookies=jar, follow_redirects=True)
    response = client.get(server.url + "/hop")
    # The cookie set by the redirect response is sent on the next hop.
    assert response.content == b"hop=1"
    assert [r.status for r in response.history] == [302]


def test_no_jar_no_cookie_handling(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_keepalive_server(respond=cookie_server)
    client.get(server.url + "/login")
    assert client.get(server.url + "/page").content == b""
