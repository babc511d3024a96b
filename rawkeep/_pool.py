"""The pool's thread shell: the core's decisions under a lock, I/O outside it.

``_pool_core.PoolCore`` decides (which connection, open or wait, what to
close); this shell gives it a lock, the clock and a way to wait, and does
what it can't: open connections, probe idle ones before reuse, close
sockets, emit events. One ``threading.Condition`` guards the core; no
connect, probe, close or callback ever runs under it, so a slow TLS
handshake in one thread never holds up another.

Before reuse, three checks, cheapest first:
  1. The expiry rules, in memory, by the core (see ``_keepalive``).
  2. The stale probe, here: one zero-timeout ``poll()`` (on Linux TCP, one
     ``getsockopt(TCP_INFO)``, the same verdict; see ``_socket``). An idle
     HTTP/1.1 connection must never be readable; if it is, the server
     closed it (or sent bytes nobody asked for). It is closed unused
     (``StaleConnectionDiscarded``) and the next candidate is tried.
  3. Nothing else: a close still in flight on the network can't be seen.
     That is the keep-alive race, which the client's retry rule covers
     (RFC 9112 section 9.3.1).

Events are delivered at the end of each operation, when the books and the
sockets are final: a callback that raises (even ``KeyboardInterrupt``)
can't leave a slot taken or a socket open.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import TYPE_CHECKING, TypeAlias, cast

from ._events import (
    ConnectionClosed,
    ConnectionExpired,
    ConnectionOpened,
    ConnectionReused,
    Emitter,
    StaleConnectionDiscarded,
    now,
)
from ._keepalive import ExpiryRules
from ._pool_core import PoolCore, PoolStats

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._connection import Connection
    from ._events import CloseReason, Event, ExpiryReason
    from ._pool_core import Doomed
    from ._url import Route

__all__ = ["Opener", "Pool", "PoolStats"]

#: ``opener(route, connection_id, connect_timeout)`` opens a connection.
Opener: TypeAlias = "Callable[[Route, int, float | None], Connection]"


class Pool:
    """Idle connections by route (origin and proxy), under connection limits.

    Args:
        opener: opens a new connection (called outside the lock).
        emitter: where lifecycle events go.
        max_connections: open connections across all origins (None: no limit).
        max_connections_per_host: open connections per route (None: no limit).
        idle_timeout: seconds an idle connection may be kept (None: forever).
        max_requests: responses after which a connection is retired.
        max_age: seconds after connecting after which it is retired.
    """

    def __init__(
        self,
        *,
        opener: Opener,
        emitter: Emitter,
        max_connections: int | None,
        max_connections_per_host: int | None,
        idle_timeout: float | None,
        max_requests: int | None,
        max_age: float | None,
    ) -> None:
        self._opener = opener
        self._emitter = emitter
        self._core: PoolCore[Connection] = PoolCore(
            max_connections=max_connections,
            max_connections_per_host=max_connections_per_host,
            rules=ExpiryRules(idle_timeout, max_requests, max_age),
            now=time.monotonic(),
        )
        # Threads take the plain lock for bookkeeping (cheaper than entering
        # the Condition, which wraps the same lock) and use the Condition
        # only to wait for a slot and to wake waiters.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._ids = itertools.count()
        self._waiters = 0

    # -- acquire --------------------------------------------------------------

    def acquire(
        self,
        route: Route,
        *,
        pool_timeout: float | None,
        connect_timeout: float | None,
        fresh: bool = False,
        retryable: bool = True,
    ) -> Connection:
        """A connection to ``route``: an idle one that passes its checks,
        else a new one once the limits allow.

        ``fresh=True`` skips idle connections and opens a new one (a retry
        after the keep-alive race must not meet another connection the
        server may be closing); at the limit, the route's own longest-idle
        connection is closed to make room.

        ``retryable=False`` says the request can't be sent again if the
        connection turns out dead or out of step: it skips idle connections
        that are riskier than a fresh one (``Connection.carries_unretryable``)
        and leaves them to requests that can be retried.

        Raises:
            PoolTimeout: the limits stayed reached for ``pool_timeout`` s.
            ClientClosed: the pool was closed.
            ConnectError, ConnectTimeout, TLSError: opening failed.
        """
        events: list[Event] | None = [] if self._emitter.enabled else None
        try:
            conn = None
            if not fresh:
                with self._lock:
                    conn = self._core.take_freshest(route, time.monotonic(), retryable)
            if conn is None or not self._reuse(conn, events):
                conn = self._checkout(
                    route, pool_timeout, connect_timeout, fresh, retryable, events
                )
        except BaseException:
            if events:
                self._emit_all(events)  # what happened before the failure
            raise
        if events:
            self._deliver(conn, events)
        return conn

    def _deliver(self, conn: Connection, events: list[Event]) -> None:
        """The callback runs last, when every socket that had to close is
        closed and the connection is counted as ours: whatever it raises (a
        KeyboardInterrupt included), the connection is closed and its slot
        freed before the exception goes on."""
        try:
            self._emit_all(events)
        except BaseException:
            self.discard(conn)
            raise

    def _checkout(
        self,
        route: Route,
        pool_timeout: float | None,
        connect_timeout: float | None,
        fresh: bool,
        retryable: bool,
        events: list[Event] | None,
    ) -> Connection:
        """The general path: ask the core until it hands out a connection or
        a slot, closing what it dooms and waiting when it says so."""
        deadline = None if pool_timeout is None else time.monotonic() + pool_timeout
        waiter: object = None  # this caller's place in the queue, once it waits
        try:
            while True:
                with self._lock:
                    while True:
                        mono = time.monotonic()
                        conn, doomed, reserved = self._core.checkout(
                            route, mono, fresh=fresh, retryable=retryable, waiter=waiter
                        )
                        if conn is not None or reserved:
                            if waiter is not None:
                                waiter = None  # served, and out of the queue
                                if self._core.has_waiters(route):
                                    self._cond.notify_all()  # the next in line may go
                            break
                        if doomed:
                            break
                        if waiter is None:
                            waiter = object()
                            self._core.enqueue(route, waiter)
                        self._wait(route, deadline, pool_timeout, mono)
                if doomed:
                    self._close_doomed(doomed, events)
                if conn is not None:
                    if self._reuse(conn, events):
                        return conn
                elif reserved:
                    return self._open_reserved(route, connect_timeout, events)
        finally:
            if waiter is not None:  # left the queue unserved
                with self._lock:
                    self._core.dequeue(route, waiter)
                    if self._core.has_waiters(route):
                        self._cond.notify_all()  # the next in line may go

    def _wait(
        self, route: Route, deadline: float | None, pool_timeout: float | None, mono: float
    ) -> None:
        """Under the lock: wait for a release, until ``deadline``."""
        remaining = None if deadline is None else deadline - mono
        if remaining is not None and remaining <= 0:
            raise self._core.timed_out(route, pool_timeout)
        self._waiters += 1
        try:
            self._cond.wait(remaining)
        finally:
            self._waiters -= 1

    def _reuse(self, conn: Connection, events: list[Event] | None) -> bool:
        """Outside the lock, for an idle connection just taken: probe it;
        a stale one is discarded (False), a live one is handed out."""
        if conn.is_stale():
            event = self._retire(conn, "stale", stale=True)
            if events is not None and event is not None:
                events.append(event)
            return False
        conn.start_reuse()
        if events is not None:
            events.append(
                ConnectionReused(
                    connection_id=conn.id,
                    origin=conn.origin_str,
                    time=now(),
                    idle_for=time.monotonic() - conn.life.idle_since,
                    responses=conn.life.responses,
                )
            )
        return True

    def _open_reserved(
        self, route: Route, connect_timeout: float | None, events: list[Event] | None
    ) -> Connection:
        connection_id = next(self._ids)
        started = time.monotonic()
        try:
            conn = self._opener(route, connection_id, connect_timeout)
        except BaseException:
            with self._lock:
                self._core.open_failed(route)
                if self._waiters:
                    self._cond.notify_all()
            raise
        with self._lock:
            self._core.opened(route)
        if events is not None:
            events.append(
                ConnectionOpened(
                    connection_id=connection_id,
                    origin=conn.origin_str,
                    time=now(),
                    tls_version=conn.tls_version,
                    connect_time=time.monotonic() - started,
                )
            )
        return conn

    # -- release ----------------------------------------------------------------

    def release(self, conn: Connection) -> None:
        """Take back a connection whose cycle finished: keep it idle if it
        is reusable and no rule retires it, else close it."""
        with self._lock:
            doomed = self._core.checkin(conn, time.monotonic())
            if self._waiters:
                self._cond.notify_all()
        if doomed is not None:
            self._close_and_emit([doomed])

    def discard(self, conn: Connection, reason: CloseReason = "error") -> None:
        """Close a connection that can't be reused (a failure, an unread
        body) and free its slot. Idempotent for an already closed one."""
        event = self._retire(conn, reason, stale=False)
        if event is not None:
            self._emit_all([event])

    def _retire(self, conn: Connection, reason: str, *, stale: bool) -> Event | None:
        """Free the slot of an active connection and close it; the event
        that says so, when someone listens (the caller emits it)."""
        with self._lock:
            retired = self._core.retire(conn, stale=stale)
            if retired and self._waiters:
                self._cond.notify_all()
        if not retired:
            return None  # already given back: never count a connection twice
        conn.close()
        if not self._emitter.enabled:
            return None
        if stale:
            return StaleConnectionDiscarded(
                connection_id=conn.id, origin=conn.origin_str, time=now()
            )
        return _closed_event(conn, reason, expired=False)

    def _close_doomed(self, doomed: list[Doomed[Connection]], events: list[Event] | None) -> None:
        """Close connections the core took out of its books; their events go
        to ``events`` (None: nobody listens)."""
        for gone in doomed:
            gone.conn.close()
        if events is not None:
            events.extend(_closed_event(gone.conn, gone.reason, gone.expired) for gone in doomed)

    def _close_and_emit(self, doomed: list[Doomed[Connection]]) -> None:
        events: list[Event] | None = [] if self._emitter.enabled else None
        self._close_doomed(doomed, events)
        if events:
            self._emit_all(events)

    def _emit_all(self, events: list[Event]) -> None:
        """Deliver events in order, each one whatever the callback raised for
        the one before; the first exception that escaped the emitter (a
        ``BaseException``: it logs the others) is raised after the last.

        Called only when the books and sockets are final, so a
        KeyboardInterrupt in a callback can't leave a slot taken or a
        socket open, and every connection still gets its closing event.
        """
        first: BaseException | None = None
        for event in events:
            try:
                self._emitter.emit(event)
            except BaseException as exc:  # noqa: PERF203 - each event is delivered
                if first is None:
                    first = exc
        if first is not None:
            raise first

    # -- the whole pool ---------------------------------------------------------

    def close(self) -> None:
        """Close every idle connection; active ones close when released.
        Threads waiting for a connection get ``ClientClosed``. Idempotent."""
        with self._lock:
            doomed = self._core.close()
            self._cond.notify_all()
        self._close_and_emit(doomed)

    @property
    def is_closed(self) -> bool:
        return self._core.is_closed

    def stats(self) -> PoolStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return self._core.stats()


def _closed_event(conn: Connection, reason: str, expired: bool) -> Event:
    """The event that ends ``conn``'s life: expired by a rule, or closed."""
    origin = str(conn.route.origin)
    if expired:
        return ConnectionExpired(
            connection_id=conn.id, origin=origin, time=now(), reason=cast("ExpiryReason", reason)
        )
    return ConnectionClosed(
        connection_id=conn.id, origin=origin, time=now(), reason=cast("CloseReason", reason)
    )
