"""Streamed responses: reading, releasing, and closing with body left unread.

The rule under test: a streamed response closed early has the rest of its
body drained when that rest is at most 64 KiB (the connection is then
reused), and otherwise the connection is closed with reason "unread_body",
never reused half-read.
"""

from __future__ import annotations

import gzip
import hashlib
from typing import TYPE_CHECKING

import pytest
from servers.h11server import Reply, fixed_body

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.recorder import EventRecorder
    from servers.scripted import ReceivedRequest, ScriptedServer

    import rawkeep

pytestmark = pytest.mark.both_clients

KIB = 1024
OPENED = ("ConnectionOpened", None)
REUSED = ("ConnectionReused", None)
UNREAD = ("ConnectionClosed", "unread_body")


def expected_body(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))  # what fixed_body() sends


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_small_unread_body_is_drained_and_connection_reused(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
    chunked: bool,
) -> None:
    server = start_keepalive_server(respond=fixed_body(10 * KIB, chunked=chunked))
    with client.stream("GET", server.url) as response:
        assert response.status == 200  # body left unread

    again = client.get(server.url)
    assert again.reused
    assert again.content == expected_body(10 * KIB)
    assert events.summary() == [OPENED, REUSED]
    assert server.requests_per_connection() == [2]


def test_large_unread_body_closes_connection(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    server = start_keepalive_server(respond=fixed_body(1024 * KIB))
    with client.stream("GET", server.url) as response:
        assert response.status == 200

    assert client.pool_stats().idle == 0
    again = client.get(server.url)
    assert not again.reused
    assert len(again.content) == 1024 * KIB
    assert events.summary() == [OPENED, UNREAD, OPENED]
    assert server.requests_per_connection() == [1, 1]


@pytest.mark.parametrize(
    ("size", "reused"),
    [(64 * KIB, True), (64 * KIB + 1, False)],
    ids=["exactly-64KiB", "64KiB-plus-one"],
)
def test_drain_limit_is_64_kib(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
    size: int,
    reused: bool,
) -> None:
    server = start_keepalive_server(respond=fixed_body(size))
    with client.stream("GET", server.url):
        pass
    assert client.get(server.url).reused is reused
    expected = [OPENED, REUSED] if reused else [OPENED, UNREAD, OPENED]
    assert events.summary() == expected


def test_partly_read_body_with_small_rest_is_drained(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    server = start_keepalive_server(respond=fixed_body(200 * KIB))
    received = 0
    with client.stream("GET", server.url) as response:
        for chunk in response.iter_raw(16 * KIB):
            received += len(chunk)
            if received >= 150 * KIB:
                break
    assert 150 * KIB <= received <= 200 * KIB
    assert client.get(server.url).reused
    assert events.summary() == [OPENED, REUSED]


def test_fully_read_stream_releases_connection_before_exit(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
) -> None:
    server = start_keepalive_server(respond=fixed_body(100 * KIB))
    with client.stream("GET", server.url) as response:
        assert client.pool_stats().active == 1
        body = response.read()
        # The body is complete: the connection is back in the pool already.
        stats = client.pool_stats()
        assert (stats.active, stats.idle) == (0, 1)
        assert response.content == body == expected_body(100 * KIB)


@pytest.mark.parametrize("chunk_size", [None, 1, 1000, 65536])
def test_iter_bytes_yields_whole_body(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    chunk_size: int | None,
) -> None:
    size = 3000 if chunk_size == 1 else 300 * KIB
    server = start_keepalive_server(respond=fixed_body(size, chunked=True))
    with client.stream("GET", server.url) as response:
        chunks = list(response.iter_bytes(chunk_size))
    assert b"".join(chunks) == expected_body(size)
    assert all(chunks)
    if chunk_size is not None:
        assert all(len(chunk) <= chunk_size for chunk in chunks)
        assert all(len(chunk) == chunk_size for chunk in chunks[:-1])
    assert client.pool_stats().idle == 1


def test_large_body_read_in_full_and_connection_reused(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
) -> None:
    server = start_keepalive_server(respond=fixed_body(4 * 1024 * KIB))
    digest = hashlib.sha256(expected_body(4 * 1024 * KIB)).hexdigest()
    for _ in range(2):
        response = client.get(server.url)
        assert hashlib.sha256(response.content).hexdigest() == digest
    assert response.reused
    assert server.accepted == 1


def test_gzip_body_decoded_by_iter_bytes_raw_by_iter_raw(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
) -> None:
    plain = b"keep-alive " * 1000
    packed = gzip.compress(plain)

    def respond(request: ReceivedRequest) -> Reply:
        return Reply(body=packed, headers=[("Content-Encoding", "gzip")])

    server = start_keepalive_server(respond=respond)
    assert client.get(server.url).content == plain
    with client.stream("GET", server.url) as response:
        assert b"".join(response.iter_raw()) == packed
    assert server.accepted == 1


def test_closing_stream_twice_is_harmless(
    server: ScriptedServer, client: rawkeep.Client, events: EventRecorder
) -> None:
    with client.stream("GET", server.url) as response:
        response.read()
        response.close()
        response.close()
    assert client.get(server.url).reused
    assert events.summary() == [OPENED, REUSED]
