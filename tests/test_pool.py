"""The pool: limits (checked from the server side), eviction, waiting, stats."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest
from servers.concurrency import run_in_threads
from servers.scripted import ConcurrencyGauge

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.recorder import EventRecorder
    from servers.scripted import ScriptedServer

pytestmark = pytest.mark.both_clients


def test_per_host_limit_holds_under_threads(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    # A short delay per response makes the 8 threads' requests overlap, so
    # they really compete for the 3 allowed connections.
    server = start_keepalive_server(response_delay=0.01)
    client = make_client(max_connections_per_host=3)
    samples: list[tuple[int, int]] = []

    def worker(index: int) -> None:
        for j in range(15):
            token = f"/t{index}-{j}"
            assert client.get(server.url + token).content == token.encode()
            stats = client.pool_stats()
            samples.append((stats.active, stats.active + stats.idle))

    assert run_in_threads(8, worker) == []
    assert server.max_in_flight <= 3
    # With a patient server nothing is ever closed, so the client must not
    # have needed more than 3 connections in total.
    assert server.accepted <= 3
    assert max(total for _, total in samples) <= 3
    stats = client.pool_stats()
    assert stats.opened == server.accepted
    assert (stats.active, stats.closed) == (0, 0)
    assert stats.reused == 8 * 15 - stats.opened


def test_global_limit_holds_across_origins(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    in_flight = ConcurrencyGauge()
    servers = [start_keepalive_server(response_delay=0.01, in_flight=in_flight) for _ in range(2)]
    client = make_client(max_connections=2, max_connections_per_host=10)
    totals: list[int] = []

    def worker(index: int) -> None:
        for j in range(10):
            server = servers[(index + j) % 2]
            token = f"/t{index}-{j}"
            assert client.get(server.url + token).content == token.encode()
            stats = client.pool_stats()
            totals.append(stats.active + stats.idle)

    assert run_in_threads(6, worker) == []
    assert in_flight.maximum <= 2
    assert max(totals) <= 2
    stats = client.pool_stats()
    assert stats.active == 0
    assert stats.opened - stats.closed == stats.idle <= 2
    assert sum(len(s.requests) for s in servers) == 60


def test_pool_full_evicts_idle_connection_of_another_origin(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
) -> None:
    first, second = start_keepalive_server(), start_keepalive_server()
    client = make_client(max_connections=1)
    client.get(first.url)
    client.get(second.url)

    assert events.summary() == [
        ("ConnectionOpened", None),
        ("ConnectionClosed", "pool_full"),
        ("ConnectionOpened", None),
    ]
    assert [e.origin for e in events.snapshot()] == [
        first.origin,
        first.origin,
        second.origin,
    ]
    assert first.wait_for_peer_closed(0)
    stats = client.pool_stats()
    assert (stats.opened, stats.closed, stats.idle) == (2, 1, 1)
    assert stats.per_host[first.origin].idle == 0
    assert stats.per_host[second.origin].idle == 1


def test_waiting_request_gets_the_released_connection(
    server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
) -> None:
    client = make_client(max_connections_per_host=1, timeout=rawkeep.Timeout(5.0))
    holding = threading.Event()
    results: list[rawkeep.Response] = []

    def holder(index: int) -> None:
        if index == 0:
            with client.stream("GET", f"{server.url}/held") as response:
                holding.set()
                time.sleep(0.3)
                response.read()
        else:
            assert holding.wait(5.0)
            results.append(client.get(f"{server.url}/waiter"))

    assert run_in_threads(2, holder) == []
    (waiter,) = results
    assert (waiter.content, waiter.reused) == (b"/waiter", True)
    assert server.accepted == 1
    assert server.requests_per_connection() == [2]


def test_stream_counts_as_active_until_closed(
    server: ScriptedServer, client: rawkeep.Client
) -> None:
    with client.stream("GET", server.url) as response:
        stats = client.pool_stats()
        assert (stats.active, stats.idle) == (1, 0)
        assert stats.per_host[server.origin].active == 1
        response.read()
    stats = client.pool_stats()
    assert (stats.active, stats.idle) == (0, 1)


def test_per_host_stats(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
) -> None:
    first, second = start_keepalive_server(), start_keepalive_server()
    for _ in range(3):
        client.get(first.url)
    client.get(second.url)

    stats = client.pool_stats()
    assert set(stats.per_host) == {first.origin, second.origin}
    one, two = stats.per_host[first.origin], stats.per_host[second.origin]
    assert (one.opened, one.reused, one.idle, one.active) == (1, 2, 1, 0)
    assert (two.opened, two.reused, two.idle, two.active) == (1, 0, 1, 0)
    assert (stats.opened, stats.reused, stats.idle) == (2, 2, 2)


def test_stats_balance_after_mixed_endings(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
) -> None:
    closing = start_keepalive_server(connection_close=True)
    patient = start_keepalive_server()
    client = make_client(max_requests_per_connection=2)
    for _ in range(3):
        client.get(closing.url)
        client.get(patient.url)

    stats = client.pool_stats()
    assert stats.opened == closing.accepted + patient.accepted == 3 + 2
    assert stats.opened - stats.closed == stats.idle + stats.active
    assert stats.closed == len(
        events.of_type("ConnectionClosed") + events.of_type("ConnectionExpired")
    )
    assert stats.reused == events.count("ConnectionReused") == 1


def test_two_clients_share_nothing(
    server: ScriptedServer, make_client: Callable[..., rawkeep.Client]
) -> None:
    one, two = make_client(), make_client()
    one.get(server.url)
    two.get(server.url)
    assert two.get(server.url).reused
    assert server.accepted == 2
    assert server.requests_per_connection() == [1, 2]
    assert one.pool_stats().opened == two.pool_stats().opened == 1
