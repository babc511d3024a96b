"""Keep-alive behaviour seen from both ends: reuse, expiry, close, staleness.

Each test asserts on what crossed the wire (the server's ledger) and on the
connection story the client tells (its events and PoolStats).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest
from servers import faults
from servers.h11server import fixed_body
from servers.scripted import render_response

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.recorder import EventRecorder
    from servers.scripted import ScriptedServer, ServerConnection

pytestmark = pytest.mark.both_clients

OPENED = ("ConnectionOpened", None)
REUSED = ("ConnectionReused", None)
STALE = ("StaleConnectionDiscarded", None)


def fixed_body_bytes(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))  # what fixed_body() sends


def expired(reason: str) -> tuple[str, str]:
    return ("ConnectionExpired", reason)


def closed(reason: str) -> tuple[str, str]:
    return ("ConnectionClosed", reason)


def test_sequential_requests_share_one_connection(
    server: ScriptedServer, client: rawkeep.Client, events: EventRecorder
) -> None:
    responses = [client.get(f"{server.url}/token-{i}") for i in range(20)]

    assert [r.content for r in responses] == [f"/token-{i}".encode() for i in range(20)]
    assert server.accepted == 1
    assert server.requests_per_connection() == [20]
    assert [r.reused for r in responses] == [False] + [True] * 19
    assert len({r.connection_id for r in responses}) == 1
    assert events.summary() == [OPENED] + [REUSED] * 19
    assert [e.responses for e in events.of_type("ConnectionReused")] == list(range(1, 20))
    assert all(e.origin == server.origin for e in events.snapshot())
    stats = client.pool_stats()
    assert (stats.opened, stats.reused, stats.closed) == (1, 19, 0)
    assert (stats.idle, stats.active) == (1, 0)


def test_reused_event_reports_idle_time(
    server: ScriptedServer, client: rawkeep.Client, events: EventRecorder
) -> None:
    client.get(server.url)
    time.sleep(0.2)
    client.get(server.url)

    (reused,) = events.of_type("ConnectionReused")
    assert 0.15 <= reused.idle_for < 5.0
    assert reused.responses == 1


def test_client_idle_timeout_expires_connection(
    server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
) -> None:
    client = make_client(idle_timeout=0.2)
    first = client.get(f"{server.url}/a")
    time.sleep(0.4)
    second = client.get(f"{server.url}/b")

    assert (first.reused, second.reused) == (False, False)
    assert first.connection_id != second.connection_id
    assert events.summary() == [OPENED, expired("idle_timeout"), OPENED]
    assert server.requests_per_connection() == [1, 1]
    # The client, not the server, ended the first connection.
    assert server.wait_for_peer_closed(0)
    stats = client.pool_stats()
    assert (stats.opened, stats.closed, stats.idle, stats.active) == (2, 1, 1, 0)


def test_connection_within_idle_timeout_is_reused(
    server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
) -> None:
    client = make_client(idle_timeout=2.0)
    client.get(server.url)
    time.sleep(0.3)
    assert client.get(server.url).reused
    assert events.summary() == [OPENED, REUSED]


@pytest.mark.parametrize(
    ("server_timeout", "client_idle_timeout", "reason"),
    [
        # Server says 1 s: not reused after 1 - min(1, 1/4) = 0.75 s idle.
        (1, 30.0, "server_keep_alive"),
        # The client's own limit is the shorter one.
        (5, 0.3, "idle_timeout"),
    ],
)
def test_keep_alive_timeout_expiry_reason(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
    server_timeout: int,
    client_idle_timeout: float,
    reason: str,
) -> None:
    server = start_keepalive_server(keep_alive_timeout=server_timeout)
    client = make_client(idle_timeout=client_idle_timeout)
    client.get(server.url)
    time.sleep(0.9)
    response = client.get(server.url)

    assert not response.reused
    assert events.summary() == [OPENED, expired(reason), OPENED]
    assert server.requests_per_connection() == [1, 1]


def test_server_keep_alive_timeout_allows_reuse_before_margin(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    server = start_keepalive_server(keep_alive_timeout=1)
    client.get(server.url)
    time.sleep(0.3)  # well under 0.75 s
    assert client.get(server.url).reused
    assert events.summary() == [OPENED, REUSED]


def test_server_keep_alive_max_counts_further_requests(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    # Responses on a connection carry max=2, max=1, max=0: the connection
    # takes the first request plus two further ones.
    server = start_keepalive_server(keep_alive_timeout=30, keep_alive_max=2)
    bodies = [client.get(f"{server.url}/{i}").content for i in range(5)]

    assert bodies == [f"/{i}".encode() for i in range(5)]
    assert server.requests_per_connection() == [3, 2]
    assert events.summary() == [
        OPENED,
        REUSED,
        REUSED,
        expired("server_keep_alive"),
        OPENED,
        REUSED,
    ]


def test_server_keep_alive_max_zero_means_no_reuse(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    server = start_keepalive_server(keep_alive_max=0)
    responses = [client.get(server.url) for _ in range(3)]

    assert [r.reused for r in responses] == [False, False, False]
    assert server.requests_per_connection() == [1, 1, 1]
    # max=0 is known when the response ends: retired at release, not idle.
    assert events.summary() == [OPENED, expired("server_keep_alive")] * 3
    assert client.pool_stats().idle == 0


def test_max_requests_per_connection(
    server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
) -> None:
    client = make_client(max_requests_per_connection=2)
    for i in range(5):
        client.get(f"{server.url}/{i}")

    assert server.requests_per_connection() == [2, 2, 1]
    assert events.summary() == [
        OPENED,
        REUSED,
        expired("max_requests"),
        OPENED,
        REUSED,
        expired("max_requests"),
        OPENED,
    ]
    # Retired when released, so it is not left idle.
    stats = client.pool_stats()
    assert (stats.opened, stats.closed, stats.idle) == (3, 2, 1)


def test_max_connection_age(
    server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
) -> None:
    client = make_client(max_connection_age=0.5)
    client.get(server.url)
    assert client.get(server.url).reused  # young enough
    time.sleep(0.7)
    assert not client.get(server.url).reused

    assert events.summary() == [OPENED, REUSED, expired("max_age"), OPENED]
    assert server.requests_per_connection() == [2, 1]


def test_connection_close_from_server_is_not_reused(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    server = start_keepalive_server(connection_close=True)
    responses = [client.get(f"{server.url}/{i}") for i in range(3)]

    assert [r.content for r in responses] == [b"/0", b"/1", b"/2"]
    assert [r.reused for r in responses] == [False, False, False]
    assert len({r.connection_id for r in responses}) == 3
    assert server.requests_per_connection() == [1, 1, 1]
    assert events.summary() == [OPENED, closed("connection_close")] * 3
    stats = client.pool_stats()
    assert (stats.opened, stats.closed, stats.idle, stats.active) == (3, 3, 0, 0)


def test_connection_close_from_request_is_not_reused(
    server: ScriptedServer, client: rawkeep.Client, events: EventRecorder
) -> None:
    client.get(f"{server.url}/a", headers={"Connection": "close"})
    client.get(f"{server.url}/b")

    assert server.requests_per_connection() == [1, 1]
    assert server.requests[0].header("connection") == b"close"
    assert events.summary() == [OPENED, closed("connection_close"), OPENED]


@pytest.mark.parametrize("value", ["close", "Close", "keep-alive, close"])
@pytest.mark.parametrize("chunked", [False, True], ids=["counted", "chunked"])
def test_request_connection_close_ends_it_even_if_the_server_would_keep_it(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
    value: str,
    chunked: bool,
) -> None:
    # The verdict for a bodiless request comes from its own headers (its end
    # is never told to h11 when the body is counted): a server that ignores
    # the client's "close" must not make the connection reusable.
    def deaf(conn: ServerConnection) -> None:
        while conn.read_request() is not None:
            conn.respond(render_response(200, b"ok", chunked=chunked))

    server = start_server(deaf)
    assert client.get(server.url, headers={"Connection": value}).content == b"ok"
    assert client.get(server.url).content == b"ok"
    assert server.requests_per_connection() == [1, 1]
    assert events.summary() == [OPENED, closed("connection_close"), OPENED]


@pytest.mark.parametrize("chunked", [False, True], ids=["counted", "chunked"])
@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE", "POST"])
def test_bodiless_requests_keep_the_connection_whatever_the_framing(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
    chunked: bool,
    method: str,
) -> None:
    server = start_keepalive_server(respond=fixed_body(100, chunked=chunked))
    for _ in range(3):
        response = client.request(method, server.url)
        assert response.content == (b"" if method == "HEAD" else fixed_body_bytes(100))
    assert server.accepted == 1
    assert events.summary() == [OPENED, REUSED, REUSED]


def test_bodiless_request_with_chunked_framing_sends_its_last_chunk(
    server: ScriptedServer, client: rawkeep.Client, events: EventRecorder
) -> None:
    # Transfer-Encoding: chunked and no content: the head is not the whole
    # request, the empty last chunk must follow (the server waits for it).
    for _ in range(2):
        response = client.get(server.url, headers={"Transfer-Encoding": "chunked"})
        assert response.status == 200
    assert [r.raw.endswith(b"\r\n\r\n0\r\n\r\n") for r in server.requests] == [True, True]
    assert events.summary() == [OPENED, REUSED]


def test_server_max_requests_answers_connection_close(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    server = start_keepalive_server(max_requests_per_connection=2)
    for i in range(4):
        client.get(f"{server.url}/{i}")

    assert server.requests_per_connection() == [2, 2]
    assert events.summary() == [OPENED, REUSED, closed("connection_close")] * 2


@pytest.mark.parametrize("keep_alive", [False, True], ids=["plain", "keep-alive"])
def test_http10_response_is_never_reused(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
    keep_alive: bool,
) -> None:
    server = start_keepalive_server(http10=True, http10_keep_alive=keep_alive)
    first = client.get(f"{server.url}/a")
    second = client.get(f"{server.url}/b")

    assert (first.http_version, first.content) == ("HTTP/1.0", b"/a")
    assert (second.reused, second.content) == (False, b"/b")
    assert server.requests_per_connection() == [1, 1]
    assert events.summary() == [OPENED, closed("http_1_0")] * 2
    if keep_alive:
        # The server kept the socket open; the client closed it.
        assert server.wait_for_peer_closed(0)


def test_http10_body_delimited_by_close(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    def script(conn: ServerConnection) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil eof")
        conn.close()

    server = start_server(script)
    response = client.get(server.url)
    assert (response.http_version, response.content) == ("HTTP/1.0", b"until eof")
    assert events.summary() == [OPENED, closed("http_1_0")]


@pytest.mark.parametrize("release_order", ["first-then-second", "second-then-first"])
def test_most_recently_used_idle_connection_is_reused_first(
    server: ScriptedServer,
    client: rawkeep.Client,
    release_order: str,
) -> None:
    with (
        client.stream("GET", f"{server.url}/one") as one,
        client.stream("GET", f"{server.url}/two") as two,
    ):
        assert one.connection_id != two.connection_id
        order = [one, two] if release_order == "first-then-second" else [two, one]
        for response in order:
            response.read()
            response.close()
    last_released = order[-1]

    again = client.get(f"{server.url}/three")
    assert again.reused
    assert again.connection_id == last_released.connection_id
    # Server side: the third request went down the same TCP connection as
    # the last released response.
    by_target = {r.target: r.connection for r in server.requests}
    last_target = "/one" if last_released is one else "/two"
    assert by_target["/three"] == by_target[last_target]
    assert client.pool_stats().idle == 2


def test_connection_ids_are_unique_per_client(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    server = start_keepalive_server(connection_close=True)
    client = make_client()
    ids = [client.get(server.url).connection_id for _ in range(4)]
    assert len(set(ids)) == 4


def test_stale_connection_is_discarded_without_error(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    server = start_keepalive_server(idle_close_after=0.1)
    client.get(f"{server.url}/a")
    assert server.wait_for_closed(0)  # the server closed the idle connection
    time.sleep(0.05)  # let the FIN land in the client's socket

    response = client.get(f"{server.url}/b")

    assert (response.content, response.reused) == (b"/b", False)
    assert events.summary() == [OPENED, STALE, OPENED]
    assert events.count("RequestRetried") == 0
    assert server.requests_per_connection() == [1, 1]
    stats = client.pool_stats()
    assert (stats.opened, stats.closed, stats.idle, stats.active) == (2, 1, 1, 0)


def test_idle_connection_with_unexpected_bytes_is_discarded(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    junk_sent = threading.Event()

    def answer_then_junk(conn: ServerConnection) -> None:
        faults.ok(conn)
        conn.sleep(0.05)  # the client has read the response and gone idle
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        junk_sent.set()
        conn.wait_for_peer_close()

    server = start_server(faults.per_connection(answer_then_junk, faults.keep_serving))
    client.get(server.url)
    assert junk_sent.wait(5.0)
    time.sleep(0.05)  # let the bytes land in the client's socket

    response = client.get(server.url)
    assert (response.content, response.reused) == (b"ok", False)
    assert events.summary() == [OPENED, STALE, OPENED]
    assert server.requests_per_connection() == [1, 1]
    assert server.wait_for_peer_closed(0)


def test_close_closes_idle_connections(
    server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
) -> None:
    client = make_client()
    with (
        client.stream("GET", f"{server.url}/one") as one,
        client.stream("GET", f"{server.url}/two") as two,
    ):
        one.read()
        two.read()
    assert client.pool_stats().idle == 2

    client.close()

    assert events.summary()[-2:] == [closed("client_closed")] * 2
    stats = client.pool_stats()
    assert (stats.idle, stats.active, stats.closed) == (0, 0, 2)
    assert server.wait_for_peer_closed(0)
    assert server.wait_for_peer_closed(1)
    with pytest.raises(rawkeep.ClientClosed):
        client.get(server.url)
    with pytest.raises(rawkeep.ClientClosed), client.stream("GET", server.url):
        pass
    assert server.accepted == 2


def test_context_manager_closes_client(
    server: ScriptedServer, make_client: Callable[..., rawkeep.Client], events: EventRecorder
) -> None:
    with make_client(on_event=events, timeout=5.0) as client:
        client.get(server.url)
    assert events.summary() == [OPENED, closed("client_closed")]
    assert server.wait_for_peer_closed(0)
    with pytest.raises(rawkeep.ClientClosed):
        client.get(server.url)


def test_each_connection_ends_exactly_once(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
) -> None:
    server = start_keepalive_server(keep_alive_max=1)
    client = make_client(max_requests_per_connection=3)
    for _ in range(5):
        client.get(server.url)
    client.close()

    endings = {"ConnectionExpired", "StaleConnectionDiscarded", "ConnectionClosed"}
    for story in events.by_connection().values():
        assert story[0] == OPENED
        assert [name for name, _ in story].count("ConnectionOpened") == 1
        assert sum(name in endings for name, _ in story) == 1
        assert story[-1][0] in endings
    stats = client.pool_stats()
    assert stats.opened == stats.closed == server.accepted == 3


def test_close_delimited_body_is_not_put_back_in_the_pool(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client, events: EventRecorder
) -> None:
    # No Content-Length, not chunked: the body ends when the server closes.
    def handler(conn: ServerConnection) -> None:
        if conn.read_request() is not None:
            conn.send(b"HTTP/1.1 200 OK\r\n\r\nuntil close")

    server = start_server(handler)
    assert client.get(server.url).content == b"until close"
    assert events.summary() == [OPENED, closed("connection_close")]
    assert client.pool_stats().idle == 0


def test_bytes_after_the_response_make_the_connection_unusable(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client, events: EventRecorder
) -> None:
    def handler(conn: ServerConnection) -> None:
        if conn.read_request() is not None:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
            conn.wait_for_peer_close()

    server = start_server(handler)
    assert client.get(server.url).content == b"ok"
    assert events.summary() == [OPENED, closed("error")]
