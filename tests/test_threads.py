"""One client shared by many threads: no cross-talk, limits hold, no leaks.

Every request carries its own token and the server echoes it, so a response
delivered to the wrong thread, or read off a desynchronised connection,
shows up as a wrong body.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from servers.concurrency import run_in_threads

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.recorder import EventRecorder
    from servers.scripted import ScriptedServer

    import rawkeep

ENDINGS = ("ConnectionExpired", "StaleConnectionDiscarded", "ConnectionClosed")


def assert_stories_well_formed(events: EventRecorder) -> None:
    """Each connection opened once, first; at most one ending, last."""
    for story in events.by_connection().values():
        names = [name for name, _ in story]
        assert names[0] == "ConnectionOpened"
        assert names.count("ConnectionOpened") == 1
        endings = [i for i, name in enumerate(names) if name in ENDINGS]
        assert endings in ([], [len(names) - 1])


def test_eight_threads_three_hundred_requests_each(
    server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
) -> None:
    client = make_client(max_connections_per_host=4)
    threads, per_thread = 8, 300

    def worker(index: int) -> None:
        for j in range(per_thread):
            token = f"t{index}-{j}"
            # The token travels twice (path and header) and must come back.
            response = client.get(f"{server.url}/{token}", headers={"X-Token": token})
            assert response.content == token.encode()
            assert response.status == 200

    assert run_in_threads(threads, worker, timeout=50.0) == []

    total = threads * per_thread
    targets = Counter(r.target for r in server.requests)
    assert len(targets) == total
    assert set(targets.values()) == {1}
    assert server.accepted <= 4
    assert server.max_in_flight <= 4
    stats = client.pool_stats()
    assert stats.opened == server.accepted
    assert (stats.active, stats.closed) == (0, 0)
    assert stats.idle == stats.opened
    assert stats.reused == total - stats.opened
    assert events.count("ConnectionOpened") == stats.opened
    assert events.count("ConnectionReused") == stats.reused
    assert_stories_well_formed(events)


def test_threads_against_server_closing_idle_connections(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
) -> None:
    # The server drops connections idle for 0.1 s; the pauses below straddle
    # that, so threads keep meeting connections that are fresh, dead
    # (stale) or dying (the race, retried for GET).
    server = start_keepalive_server(idle_close_after=0.1)
    client = make_client(max_connections_per_host=4)
    pauses = [0.0, 0.0, 0.03, 0.12]

    def worker(index: int) -> None:
        for j in range(16):
            token = f"t{index}-{j}"
            assert client.get(f"{server.url}/{token}").content == f"/{token}".encode()
            time.sleep(pauses[(index + j) % len(pauses)])

    assert run_in_threads(8, worker, timeout=50.0) == []

    # Every request reached the server exactly once: a request lost in the
    # race is never parsed by the server (it had closed), and its retry is.
    targets = Counter(r.target for r in server.requests)
    assert len(targets) == 8 * 16
    assert set(targets.values()) == {1}
    stats = client.pool_stats()
    assert stats.active == 0
    assert stats.opened - stats.closed == stats.idle
    assert server.max_in_flight <= 4
    assert_stories_well_formed(events)
    assert events.count("ConnectionOpened") == stats.opened == server.accepted


def test_threads_closing_streams_early(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
) -> None:
    from servers.h11server import fixed_body

    server = start_keepalive_server(respond=fixed_body(128 * 1024))
    client = make_client(max_connections_per_host=3)

    def worker(index: int) -> None:
        for j in range(5):
            with client.stream("GET", server.url) as response:
                if (index + j) % 2:
                    assert len(response.read()) == 128 * 1024
                # else: closed with 128 KiB unread, more than the drain limit

    assert run_in_threads(6, worker, timeout=30.0) == []
    stats = client.pool_stats()
    assert stats.active == 0
    assert stats.opened - stats.closed == stats.idle
    assert server.max_in_flight <= 3
    unread = [reason for _, reason in events.summary() if reason == "unread_body"]
    assert len(unread) == 15
    assert_stories_well_formed(events)


def test_threads_waiting_for_a_connection_are_served_in_arrival_order(
    server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
) -> None:
    """One connection allowed; it is busy while five threads arrive, 50 ms
    apart. Each then gets it in the order it arrived, not in whatever order
    the scheduler wakes them."""
    import threading

    client = make_client(max_connections_per_host=1)
    order: list[int] = []
    lock = threading.Lock()

    def fetch(index: int) -> None:
        response = client.get(f"{server.url}/{index}")
        with lock:
            order.append(int(response.content.decode().lstrip("/")))

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(5)]
    with client.stream("GET", server.url + "/busy") as busy:
        for thread in threads:
            thread.start()
            time.sleep(0.05)  # it is queued by now
        busy.read()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    assert order == [0, 1, 2, 3, 4]
    assert [r.target for r in server.requests][1:] == ["/0", "/1", "/2", "/3", "/4"]
