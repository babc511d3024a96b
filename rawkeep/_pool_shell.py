"""What the pool's two shells share: the books' keeper, events, giving back.

``_pool.Pool`` (threads) and ``_aio_pool.AsyncPool`` (asyncio) differ only
in how they wait: for a free connection (a ``threading.Condition``, or a
future per waiting task) and for a new connection to open (a blocking
connect, or an awaited one). Everything else is done the same way, here,
around the one ``PoolCore`` that decides:

- probing an idle connection before reuse (``_reuse``): one question to the
  connection, which answers without blocking in both shells;
- taking a connection back (``release``) or closing it (``discard``);
- closing what the core dooms, then delivering the events.

Events are delivered at the end of each operation, when the books and the
sockets are final: a callback that raises (even ``KeyboardInterrupt``)
can't leave a slot taken or a socket open.

Before reuse, three checks, cheapest first:
  1. The expiry rules, in memory, by the core (see ``_keepalive``).
  2. The stale probe (``Connection.is_stale``): an idle HTTP/1.1
     connection must never be readable; if it is, the server closed it (or
     sent bytes nobody asked for). It is closed unused
     (``StaleConnectionDiscarded``) and the next candidate is tried.
  3. Nothing else: a close still in flight on the network can't be seen.
     That is the keep-alive race, which the client's retry rule covers
     (RFC 9112 section 9.3.1).
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, cast

from ._events import (
    ConnectionClosed,
    ConnectionExpired,
    ConnectionOpened,
    ConnectionReused,
    Emitter,
    IdleLimitLearned,
    StaleConnectionDiscarded,
    now,
)
from ._pool_core import PoolCore, Pooled, PoolStats

if TYPE_CHECKING:
    from collections.abc import Generator
    from contextlib import AbstractContextManager

    from ._events import CloseReason, Event, ExpiryReason
    from ._pool_core import Doomed, PoolLimits
    from ._tls_details import TLSDetails
    from ._url import Route

__all__ = ["PoolShell", "ShellConnection"]


class ShellConnection(Pooled, Protocol):
    """What the shells need of a connection beyond the core's ``Pooled``:
    both connection shells (blocking and asyncio) have these, and each
    answers without waiting."""

    origin_str: str
    tls: TLSDetails | None

    def is_stale(self) -> bool:
        """Whether the idle connection was closed by the peer (or holds
        bytes nobody asked for)."""

    def fin_ago(self) -> float | None:
        """Seconds since the server's FIN arrived, for a connection it
        closed (None: not known)."""

    def start_reuse(self) -> None:
        """Note that the next request goes over this already-used connection."""

    def close(self) -> None:
        """Close the socket. Idempotent."""


C = TypeVar("C", bound=ShellConnection)


class PoolShell(Generic[C]):
    """The shared half of a pool shell (see the module docstring).

    Subclasses provide ``_lock`` (held around every call into the core) and
    ``_wake`` (called under it when a slot or a connection may have freed
    up, or the queue moved), and acquire connections their own way.
    """

    _lock: AbstractContextManager[object]
    #: Callers waiting for a free connection, kept by the subclass (a count
    #: of threads, the set of tasks' futures): true when someone waits; when
    #: nobody does, giving a connection back wakes nobody.
    _waiters: object

    def __init__(self, emitter: Emitter, limits: PoolLimits) -> None:
        self._emitter = emitter
        self._core: PoolCore[C] = PoolCore(
            max_connections=limits.max_connections,
            max_connections_per_host=limits.max_connections_per_host,
            rules=limits.rules,
            now=time.monotonic(),
        )
        self._ids = itertools.count()

    def _wake(self) -> None:
        """Under the lock: let waiters look again."""
        raise NotImplementedError

    # -- handing out ------------------------------------------------------------

    def _checkout_steps(
        self,
        route: Route,
        pool_timeout: float | None,
        fresh: bool,
        retryable: bool,
        events: list[Event] | None,
    ) -> Generator[float | None, None, C | None]:
        """Both shells' general path: ask the core until it hands out a
        connection (returned) or a slot (None: the caller opens one), closing
        what it dooms. To wait, it yields, under the lock, how long the caller
        may wait for the books to change (None: no limit): a thread waits on
        the condition, a task on a future. PoolTimeout, ClientClosed."""
        deadline = None if pool_timeout is None else time.monotonic() + pool_timeout
        waiter: object = None  # this caller's place in the queue, once it waits
        core = self._core
        try:
            while True:
                with self._lock:
                    while True:
                        mono = time.monotonic()
                        conn, doomed, reserved = core.checkout(
                            route, mono, fresh=fresh, retryable=retryable, waiter=waiter
                        )
                        if conn is not None or reserved or doomed:
                            break
                        if waiter is None:
                            waiter = object()
                            core.enqueue(route, waiter)
                        yield self._time_left(route, deadline, pool_timeout, mono)
                    if waiter is not None and (conn is not None or reserved):
                        waiter = None  # served, and out of the queue
                        self._next_in_line(route)
                if doomed:
                    self._close_doomed(doomed, events)
                if conn is not None:
                    if self._reuse(conn, events):
                        return conn
                elif reserved:
                    return None
        finally:
            if waiter is not None:  # left the queue unserved
                with self._lock:
                    core.dequeue(route, waiter)
                    self._next_in_line(route)

    def _time_left(
        self, route: Route, deadline: float | None, pool_timeout: float | None, now: float
    ) -> float | None:
        """How long a waiter may still wait (None: no limit).

        Raises:
            PoolTimeout: no time is left.
        """
        if deadline is None:
            return None
        if deadline - now <= 0:
            raise self._core.timed_out(route, pool_timeout)
        return deadline - now

    def _next_in_line(self, route: Route) -> None:
        """Under the lock, when the head of ``route``'s queue moved: the next
        waiter may go."""
        if self._core.has_waiters(route):
            self._wake()

    def _reuse(self, conn: C, events: list[Event] | None) -> bool:
        """Outside the lock, for an idle connection just taken: probe it;
        a stale one is discarded (False), a live one is handed out."""
        if conn.is_stale():
            mono, ago = time.monotonic(), conn.fin_ago()
            event = self._retire(conn, "stale", stale=True)
            if events is not None and event is not None:
                events.append(event)
            self._learn_stale(conn, mono, ago, events)
            return False
        life = conn.life
        conn.start_reuse()
        if events is not None:
            events.append(
                ConnectionReused(
                    connection_id=conn.id,
                    origin=conn.origin_str,
                    time=now(),
                    idle_for=life.last_idle,
                    responses=life.responses,
                )
            )
        return True

    # -- what the connections show of the server's idle limit (``_learned``) ----

    def _learn_stale(
        self, conn: C, mono: float, ago: float | None, events: list[Event] | None
    ) -> None:
        """An idle connection found closed at ``mono``: when, exactly if the
        kernel said when the FIN came (``ago`` seconds before), else at most
        then."""
        idle = mono - conn.life.idle_since
        with self._lock:
            if ago is None:
                self._core.learn_close(conn, idle, "probe", mono)
            else:
                self._core.learn_close(conn, idle - ago, "fin", mono)
            self._take_lessons(events)

    def learn_race(self, conn: C) -> None:
        """A request sent on reused ``conn`` met the server's close on the
        way: the server closes connections idle about as long as this one
        had been."""
        events: list[Event] | None = [] if self._emitter.enabled else None
        with self._lock:
            self._core.learn_close(conn, conn.life.last_idle, "race", time.monotonic())
            self._take_lessons(events)
        if events:
            self._emit_all(events)

    def _take_lessons(self, events: list[Event] | None) -> None:
        """Under the lock: what the core learned, as events."""
        lessons = self._core.lessons
        if events is not None:
            events.extend(
                IdleLimitLearned(
                    connection_id=lesson.conn_id,
                    origin=str(lesson.route.origin),
                    time=now(),
                    idle_limit=lesson.limit,
                    evidence=lesson.evidence,
                    idle_for=lesson.idle,
                )
                for lesson in lessons
            )
        lessons.clear()

    def _opened(self, route: Route, conn: C, started: float, events: list[Event] | None) -> None:
        """A connection opened in a reserved slot: the core counts it."""
        with self._lock:
            self._core.opened(route)
        if events is not None:
            events.append(
                ConnectionOpened(
                    connection_id=conn.id,
                    origin=conn.origin_str,
                    time=now(),
                    tls_version=None if conn.tls is None else conn.tls.version,
                    connect_time=time.monotonic() - started,
                    tls=conn.tls,
                )
            )

    def _open_failed(self, route: Route) -> None:
        with self._lock:
            self._core.open_failed(route)
            self._wake()

    def _deliver(self, conn: C, events: list[Event]) -> None:
        """The callback runs last, when every socket that had to close is
        closed and the connection is counted as ours: whatever it raises (a
        KeyboardInterrupt, a CancelledError included), the connection is
        closed and its slot freed before the exception goes on."""
        try:
            self._emit_all(events)
        except BaseException:
            self.discard(conn)
            raise

    # -- giving back --------------------------------------------------------------

    def release(self, conn: C) -> None:
        """Take back a connection whose cycle finished: keep it idle if it
        is reusable and no rule retires it, else close it."""
        events: list[Event] | None = None
        with self._lock:
            doomed = self._core.checkin(conn, time.monotonic())
            if self._waiters:
                self._wake()
            if self._core.lessons:
                events = [] if self._emitter.enabled else None
                self._take_lessons(events)
        if doomed is not None:
            self._close_and_emit([doomed])
        if events:
            self._emit_all(events)

    def discard(self, conn: C, reason: CloseReason = "error") -> None:
        """Close a connection that can't be reused (a failure, an unread
        body) and free its slot. Idempotent for an already closed one."""
        event = self._retire(conn, reason, stale=False)
        if event is not None:
            self._emit_all([event])

    def _retire(self, conn: C, reason: str, *, stale: bool) -> Event | None:
        """Free the slot of an active connection and close it; the event
        that says so, when someone listens (the caller emits it)."""
        with self._lock:
            retired = self._core.retire(conn, stale=stale)
            if retired and self._waiters:
                self._wake()
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

    def _close_doomed(self, doomed: list[Doomed[C]], events: list[Event] | None) -> None:
        """Close connections the core took out of its books; their events go
        to ``events`` (None: nobody listens)."""
        for gone in doomed:
            gone.conn.close()
        if events is not None:
            events.extend(_closed_event(gone.conn, gone.reason, gone.expired) for gone in doomed)

    def _close_and_emit(self, doomed: list[Doomed[C]]) -> None:
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

    # -- the whole pool -------------------------------------------------------------

    def close(self) -> None:
        """Close every idle connection; active ones close when released.
        Waiting callers get ``ClientClosed``. Idempotent."""
        with self._lock:
            doomed = self._core.close()
            self._wake()
        self._close_and_emit(doomed)

    @property
    def is_closed(self) -> bool:
        return self._core.is_closed

    def stats(self) -> PoolStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return self._core.stats()


def _closed_event(conn: ShellConnection, reason: str, expired: bool) -> Event:
    """The event that ends ``conn``'s life: expired by a rule, or closed."""
    origin = str(conn.route.origin)
    if expired:
        return ConnectionExpired(
            connection_id=conn.id, origin=origin, time=now(), reason=cast("ExpiryReason", reason)
        )
    return ConnectionClosed(
        connection_id=conn.id, origin=origin, time=now(), reason=cast("CloseReason", reason)
    )
