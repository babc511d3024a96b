"""Large Content-Length bodies, which are read past h11 straight from the socket.

Whatever path a body takes, the keep-alive rules must come out the same:
reused after a complete body when both sides allow it, closed with the right
reason otherwise, an error for a body cut short, and never a byte read past
the body's end.
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
