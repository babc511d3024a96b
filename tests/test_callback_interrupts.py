"""A callback that raises a BaseException never costs a slot or a socket.

``on_event`` runs inside the pool's operations. An ``Exception`` from it is
logged and swallowed, but a ``BaseException`` (Ctrl-C's KeyboardInterrupt,
SystemExit, a task's cancellation) must reach the caller, and the pool must
be whole afterwards: every slot free, every socket it closed really closed
(the server sees the close), and ``close()`` closing everything even when
the callback interrupts it.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import pytest
from servers.recorder import EventRecorder
from servers.scripted import wait_for

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.scripted import ScriptedServer

pytestmark = pytest.mark.both_clients


class Interrupting(EventRecorder):
    """Records every event; raises KeyboardInterrupt on the first `times`
    events of the type named, after recording it."""

    def __init__(self, name: str, times: int = 1) -> None:
        super().__init__()
        self.name = name
        self.left = times
        self._guard = threading.Lock()

    def __call__(self, event: rawkeep.Event) -> None:
        super().__call__(event)
        with self._guard:
            if type(event).__name__ != self.name or self.left <= 0:
                return
            self.left -= 1
        raise KeyboardInterrupt(f"in the callback for {self.name}")


def _every_connection_ended(callback: EventRecorder, client: rawkeep.Client) -> None:
    """Each connection ever opened had exactly one closing event, and the
    pool counts none of them as open."""
    stats = client.pool_stats()
    assert stats.active == 0
    assert stats.idle == 0
    assert stats.opened == stats.closed
    ends = (
        callback.count("ConnectionClosed")
        + callback.count("ConnectionExpired")
        + callback.count("StaleConnectionDiscarded")
    )
    assert ends == callback.count("ConnectionOpened") == stats.opened


def test_interrupt_on_opened_frees_the_slot_and_closes_the_socket(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    server = start_keepalive_server()
    callback = Interrupting("ConnectionOpened")
    with make_client(on_event=callback, timeout=5.0) as client:
        with pytest.raises(KeyboardInterrupt):
            client.get(server.url + "/a")
        assert client.pool_stats().active == 0
        assert server.wait_for_peer_closed(0), "the interrupted connection stayed open"
        # The pool is whole: the next request goes through.
        assert client.get(server.url + "/b").content == b"/b"
    _every_connection_ended(callback, client)


def test_interrupt_on_reused_frees_the_slot_and_closes_the_socket(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    server = start_keepalive_server()
    callback = Interrupting("ConnectionReused")
    with make_client(on_event=callback, timeout=5.0) as client:
        assert client.get(server.url + "/a").content == b"/a"
        with pytest.raises(KeyboardInterrupt):
            client.get(server.url + "/b")
        assert client.pool_stats().active == 0
        assert server.wait_for_peer_closed(0)
        assert client.get(server.url + "/c").content == b"/c"
    assert server.requests_per_connection() == [1, 1]  # /b was never sent
    _every_connection_ended(callback, client)


class Armed(EventRecorder):
    """Records every event; while `armed`, raises KeyboardInterrupt on the
    event that hands a connection out (opened or reused)."""

    armed = False

    def __call__(self, event: rawkeep.Event) -> None:
        super().__call__(event)
        if self.armed and isinstance(event, rawkeep.ConnectionOpened | rawkeep.ConnectionReused):
            raise KeyboardInterrupt


#: A pool wait that fails fast if a slot leaked.
FAST_POOL = rawkeep.Timeout(connect=5.0, read=5.0, write=5.0, pool=0.5)


def test_a_hundred_interrupts_leak_nothing(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    """Ten interrupts used to exhaust max_connections_per_host=10 for good.
    Every second request is interrupted, on a new or a reused connection."""
    server = start_keepalive_server()
    callback = Armed()
    interrupts = 0
    with make_client(on_event=callback, timeout=FAST_POOL) as client:
        for i in range(200):
            callback.armed = i % 2 == 1
            try:
                assert client.get(f"{server.url}/{i}").content == f"/{i}".encode()
            except KeyboardInterrupt:
                interrupts += 1
        callback.armed = False
        assert interrupts == 100
        assert callback.count("ConnectionReused") > 0  # both kinds were hit
        assert client.pool_stats().active == 0
        assert client.get(server.url + "/after").content == b"/after"
    _every_connection_ended(callback, client)
    for index in range(server.accepted):
        assert server.wait_for_peer_closed(index)


def test_interrupt_in_close_still_closes_every_idle_connection(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    server = start_keepalive_server()
    callback = Interrupting("ConnectionClosed")
    client = make_client(on_event=callback, timeout=5.0)
    url = server.url
    # Three connections at once, then all three idle.
    with (
        client.stream("GET", url + "/1") as one,
        client.stream("GET", url + "/2") as two,
        client.stream("GET", url + "/3") as three,
    ):
        for response in (one, two, three):
            response.read()
    assert client.pool_stats().idle == 3
    with pytest.raises(KeyboardInterrupt):
        client.close()
    for index in range(3):
        assert server.wait_for_peer_closed(index), f"connection {index} left open"
    assert callback.count("ConnectionClosed") == 3  # every one still reported
    _every_connection_ended(callback, client)
    with pytest.raises(rawkeep.ClientClosed):
        client.get(url)


def test_interrupt_on_expiry_in_acquire_leaks_nothing(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    """An idle connection expires as a request takes the pool: the event
    interrupts the request; the expired one and the new one both close."""
    server = start_keepalive_server()
    callback = Interrupting("ConnectionExpired")
    with make_client(
        on_event=callback, timeout=FAST_POOL, idle_timeout=0.05, max_connections_per_host=1
    ) as client:
        client.get(server.url + "/a")
        assert server.wait_for_requests(1)
        threading.Event().wait(0.1)  # past idle_timeout
        with pytest.raises(KeyboardInterrupt):
            client.get(server.url + "/b")
        assert client.pool_stats().active == 0
        assert server.wait_for_peer_closed(0)
        assert client.get(server.url + "/c").content == b"/c"
    _every_connection_ended(callback, client)


def test_interrupt_on_release_close_leaks_nothing(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    """The server answers with Connection: close and closes its side first,
    so the client's socket is seen closed in this process's descriptors."""
    server = start_keepalive_server(connection_close=True)
    callback = Interrupting("ConnectionClosed")
    before = _open_descriptors()
    with make_client(on_event=callback, timeout=5.0) as client:
        with pytest.raises(KeyboardInterrupt):
            client.get(server.url + "/a")
        assert client.pool_stats().active == 0
        assert server.wait_for_closed(0)
        assert wait_for(lambda: _open_descriptors() <= before, timeout=5.0)
    _every_connection_ended(callback, client)


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))
