"""Content-Length bodies, which are read past h11: small and large.

h11 parses the head; the body of known length is taken by counting (first
what came with the head, then from the socket). Whatever path a body takes,
the keep-alive rules must come out the same as h11's: reused after a
complete body when both sides allow it, closed with the right reason
otherwise, an error for a body cut short, and never a byte read past the
body's end.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest
from servers.h11server import fixed_body
from servers.scripted import render_response

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.recorder import EventRecorder
    from servers.scripted import ScriptedServer, ServerConnection

pytestmark = pytest.mark.both_clients

MIB = 1024 * 1024
OPENED = ("ConnectionOpened", None)
REUSED = ("ConnectionReused", None)


def body_of(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))  # what fixed_body() sends


@pytest.mark.parametrize("size", [64 * 1024 + 1, MIB, 8 * MIB + 3])
def test_large_body_arrives_whole_and_the_connection_is_reused(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
    size: int,
) -> None:
    server = start_keepalive_server(respond=fixed_body(size))
    for _ in range(3):
        response = client.get(server.url)
        assert hashlib.sha256(response.content).digest() == hashlib.sha256(body_of(size)).digest()
    assert server.accepted == 1
    assert events.summary() == [OPENED, REUSED, REUSED]


def test_streamed_large_body_in_exact_pieces(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_keepalive_server(respond=fixed_body(3 * MIB))
    with client.stream("GET", server.url) as response:
        pieces = list(response.iter_bytes(chunk_size=100_000))
    assert b"".join(pieces) == body_of(3 * MIB)
    assert {len(piece) for piece in pieces[:-1]} == {100_000}
    assert client.get(server.url).reused


def big_response(headers: list[tuple[str, str]], *, version: str = "1.1") -> Callable[..., None]:
    def handler(conn: ServerConnection) -> None:
        while conn.read_request() is not None:
            conn.send(render_response(200, body_of(MIB), headers, http_version=version))

    return handler


@pytest.mark.parametrize(
    ("headers", "version", "reason"),
    [
        ([("Connection", "close")], "1.1", "connection_close"),
        ([("Connection", "keep-alive")], "1.0", "http_1_0"),
    ],
)
def test_large_body_that_ends_the_connection_is_not_reused(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
    headers: list[tuple[str, str]],
    version: str,
    reason: str,
) -> None:
    server = start_server(big_response(headers, version=version))
    assert client.get(server.url).content == body_of(MIB)
    assert events.summary() == [OPENED, ("ConnectionClosed", reason)]
    assert client.pool_stats().idle == 0


def test_request_connection_close_with_large_body(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    server = start_keepalive_server(respond=fixed_body(MIB))
    response = client.get(server.url, headers={"Connection": "close"})
    assert response.content == body_of(MIB)
    assert events.summary() == [OPENED, ("ConnectionClosed", "connection_close")]


def test_large_body_cut_short_is_a_remote_protocol_error(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    def handler(conn: ServerConnection) -> None:
        if conn.read_request() is not None:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % MIB + b"x" * 300_000)

    server = start_server(handler)
    with pytest.raises(rawkeep.RemoteProtocolError, match="still to come"):
        client.get(server.url)
    stats = client.pool_stats()
    assert (stats.active, stats.idle, stats.closed) == (0, 0, 1)


def test_bytes_after_a_large_body_are_never_read_as_the_next_response(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client, events: EventRecorder
) -> None:
    # A server that sends more than it announced: the extra bytes stay in the
    # socket, so the idle probe finds the connection readable and drops it.
    def handler(conn: ServerConnection) -> None:
        while conn.read_request() is not None:
            conn.send(render_response(200, body_of(MIB)) + b"HTTP/1.1 200 OK\r\n\r\nforged")

    server = start_server(handler)
    assert client.get(server.url).content == body_of(MIB)
    assert client.get(server.url).content == body_of(MIB)
    names = events.names()
    assert names.count("StaleConnectionDiscarded") == 1
    assert names.count("ConnectionOpened") == 2


def test_large_body_partly_read_then_closed(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    server = start_keepalive_server(respond=fixed_body(MIB))
    with client.stream("GET", server.url) as response:
        received = 0
        for piece in response.iter_raw():
            received += len(piece)
            if received > MIB - 200 * 1024:
                break
    # More than 64 KiB may be left, or the rest may be drained: both are
    # allowed outcomes; what matters is the connection is never reused
    # half-read.
    stats = client.pool_stats()
    assert stats.active == 0
    follow_up = client.get(server.url)
    assert follow_up.content == body_of(MIB)
    if follow_up.reused:
        assert ("ConnectionClosed", "unread_body") not in events.summary()
    else:
        assert ("ConnectionClosed", "unread_body") in events.summary()


# -- small bodies, however the bytes arrive -------------------------------------

SMALL = b"0123456789abcdef"


def split_response(*cuts: int, pause: float = 0.02, headers: list[tuple[str, str]] | None = None):
    """A handler sending each response in pieces cut at the given offsets of
    its body (negative: inside the head), with a pause between pieces."""
    wire_head = render_response(200, SMALL, headers)[: -len(SMALL)]

    def handler(conn: ServerConnection) -> None:
        while conn.read_request() is not None:
            wire = wire_head + SMALL
            points = sorted(len(wire_head) + cut for cut in cuts)
            start = 0
            for point in [*points, len(wire)]:
                conn.send(wire[start:point])
                start = point
                conn.sleep(pause)

    return handler


@pytest.mark.parametrize(
    "cuts",
    [(), (0,), (5,), (-3,), (-3, 5), (1, 2, 15)],
    ids=["whole", "head-then-body", "body-split", "head-split", "both-split", "bytewise"],
)
@pytest.mark.parametrize("streamed", [False, True])
def test_small_body_in_pieces_is_read_exactly_and_reused(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
    cuts: tuple[int, ...],
    streamed: bool,
) -> None:
    server = start_server(split_response(*cuts))
    for _ in range(2):
        if streamed:
            with client.stream("GET", server.url) as response:
                assert b"".join(response.iter_raw()) == SMALL
        else:
            assert client.get(server.url).content == SMALL
    assert server.accepted == 1
    assert events.summary() == [OPENED, REUSED]


@pytest.mark.parametrize(
    ("headers", "http_version", "reason"),
    [
        ([("Connection", "close")], "1.1", "connection_close"),
        ([], "1.0", "http_1_0"),
        ([("Connection", "keep-alive")], "1.0", "http_1_0"),
    ],
)
def test_small_body_closes_with_the_response_s_reason(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
    headers: list[tuple[str, str]],
    http_version: str,
    reason: str,
) -> None:
    def handler(conn: ServerConnection) -> None:
        if conn.read_request() is not None:
            conn.send(render_response(200, SMALL, headers, http_version=http_version))
            conn.wait_for_peer_close()

    server = start_server(handler)
    assert client.get(server.url).content == SMALL
    assert events.summary() == [OPENED, ("ConnectionClosed", reason)]
    stats = client.pool_stats()
    assert (stats.active, stats.idle, stats.closed) == (0, 0, 1)


def test_small_body_cut_short_is_a_remote_protocol_error(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    def handler(conn: ServerConnection) -> None:
        if conn.read_request() is not None:
            conn.send(render_response(200, SMALL)[:-4])
            conn.close()

    server = start_server(handler)
    with pytest.raises(rawkeep.RemoteProtocolError, match="4 bytes of the body still to come"):
        client.get(server.url)
    stats = client.pool_stats()
    assert (stats.active, stats.idle, stats.closed) == (0, 0, 1)


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_status_with_a_content_length_reads_nothing(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
    status: int,
) -> None:
    # RFC 9112 section 6.3: 204 and 304 have no body, whatever Content-Length
    # says (a 304's Content-Length describes the cached representation).
    def handler(conn: ServerConnection) -> None:
        while conn.read_request() is not None:
            conn.send(f"HTTP/1.1 {status} X\r\nContent-Length: 1000\r\n\r\n".encode())

    server = start_server(handler)
    for _ in range(2):
        response = client.get(server.url)
        assert (response.status, response.content) == (status, b"")
    assert events.summary() == [OPENED, REUSED]
