"""The connection pool: origin -> idle connections, limits, expiry, stats.

Theory of operation
-------------------
The pool owns every connection that is not carrying a request. ``acquire``
hands one out (reused or new), ``release`` takes it back after a finished
cycle, ``discard`` takes back one that failed. Every open connection is
counted against two limits: ``max_connections`` in all, and
``max_connections_per_host`` per origin. A slot is taken when a connect
*starts* (so concurrent connects can't overshoot the limits) and given back
when the connection closes.

Which idle connection is reused?
  The most recently used one (LIFO). Servers close connections that stay
  idle too long, so the freshest is the least likely to have been closed,
  and under a light load the older ones age out instead of being kept warm.

Before reuse, three checks, cheapest first:
  1. Expiry rules, in memory: the client's ``idle_timeout``, the server's
     ``Keep-Alive: timeout`` less a margin and its ``max``, the client's
     ``max_requests_per_connection`` and ``max_connection_age``. An expired
     connection is closed with that reason (``ConnectionExpired``). The
     count rules are final when a connection comes back, so they are
     applied then; the time rules come down to one moment, worked out on
     release (``expires_at``), and taking a connection compares the clock
     with it.
  2. The stale probe: one zero-timeout ``poll()`` (on Linux TCP, one
     ``getsockopt(TCP_INFO)``, the same verdict; see ``_socket``). An idle
     HTTP/1.1 connection must never be readable; if it is, the server
     closed it (or sent bytes nobody asked for). It is closed unused
     (``StaleConnectionDiscarded``) and the next candidate is tried.
  3. Nothing else: a close still in flight on the network can't be seen.
     That is the keep-alive race, which the client's retry rule covers
     (RFC 9112 section 9.3.1).

Expiry is lazy: connections of the origin being requested are checked when
they are taken, and every origin's idle connections are swept at most once a
second, so expired idle sockets do not linger while the client talks to
other hosts.

Locking: one ``threading.Condition`` guards the bookkeeping only. Decisions
are made under it; connecting, probing, closing sockets and emitting events
happen outside it, so a slow TLS handshake never blocks other threads.
Counters change only on state transitions; ``pool_stats`` reads them.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, TypeAlias, cast, final

from ._connection import ConnectionState
from ._events import (
    ConnectionClosed,
    ConnectionExpired,
    ConnectionOpened,
    ConnectionReused,
    Emitter,
    Event,
    StaleConnectionDiscarded,
    now,
)
from ._exceptions import ClientClosed, PoolTimeout, RawkeepError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._connection import Connection
    from ._events import CloseReason, ExpiryReason
    from ._url import Route

__all__ = ["Opener", "Pool", "PoolStats"]

#: Seconds between sweeps of other origins' idle connections for expiry.
SWEEP_INTERVAL: Final = 1.0

#: ``opener(route, connection_id, connect_timeout)`` opens a connection.
Opener: TypeAlias = "Callable[[Route, int, float | None], Connection]"

# A connection to close outside the lock, and the event that says why:
# an expiry reason, a close reason, or "stale".
_Doomed: TypeAlias = "tuple[Connection, str, bool]"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PoolStats:
    """A snapshot of the pool's counters.

    Attributes:
        opened: connections ever opened.
        reused: responses served over a reused connection.
        closed: connections ever closed, whatever the reason.
        idle: connections now idle in the pool.
        active: connections now carrying a request.
        per_host: the same counts per origin (``"http://host:port"``);
            empty in the per-origin entries themselves.
    """

    opened: int
    reused: int
    closed: int
    idle: int
    active: int
    per_host: Mapping[str, PoolStats] = field(default_factory=dict)


class _Host:
    """Bookkeeping for one origin."""

    __slots__ = ("active", "closed", "idle", "open", "opened", "reused")

    def __init__(self) -> None:
        self.idle: deque[Connection] = deque()  # oldest left, freshest right
        self.open = 0  # open or connecting: what counts against the limits
        self.active = 0
        self.opened = 0
        self.closed = 0
        self.reused = 0

    def stats(self) -> PoolStats:
        return PoolStats(
            opened=self.opened,
            reused=self.reused,
            closed=self.closed,
            idle=len(self.idle),
            active=self.active,
        )


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
        self._max_total = max_connections
        self._max_per_host = max_connections_per_host
        self._idle_timeout = idle_timeout
        self._max_requests = max_requests
        self._max_age = max_age
        # Threads take the plain lock for bookkeeping (cheaper than entering
        # the Condition, which wraps the same lock) and use the Condition
        # only to wait for a slot and to wake waiters.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._hosts: dict[Route, _Host] = {}
        self._ids = itertools.count()
        self._open = 0
        self._waiters = 0
        self._closed = False
        self._last_sweep = time.monotonic()

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
            conn = None if fresh else self._take_freshest(route, retryable)
            if conn is None or not self._reuse(conn, events):
                conn = self._checkout(
                    route, pool_timeout, connect_timeout, fresh, retryable, events
                )
        except BaseException:
            if events:
                self._emit_all(events)  # what happened before the failure
            raise
        if events:
            # The callback runs last, when every socket that had to close is
            # closed and the connection is counted as ours: whatever it
            # raises (a KeyboardInterrupt included), the connection is
            # closed and its slot freed before the exception goes on.
            try:
                self._emit_all(events)
            except BaseException:
                self.discard(conn)
                raise
        return conn

    def _checkout(
        self,
        route: Route,
        pool_timeout: float | None,
        connect_timeout: float | None,
        fresh: bool,
        retryable: bool,
        events: list[Event] | None,
    ) -> Connection:
        """The general path: expiry, the sweep, limits, waiting, opening."""
        deadline = None if pool_timeout is None else time.monotonic() + pool_timeout
        while True:
            conn, doomed, reserved = self._take_or_reserve(
                route, deadline, pool_timeout, fresh, retryable
            )
            if doomed:
                self._close_doomed(doomed, events)
            if conn is not None:
                if self._reuse(conn, events):
                    return conn
                continue
            if reserved:
                return self._open_reserved(route, connect_timeout, events)

    def _take_freshest(self, route: Route, retryable: bool) -> Connection | None:
        """The common case, in few steps: the route's most recently used idle
        connection, unexpired, with no sweep due. None sends the caller down
        the general path, which handles every other case."""
        with self._lock:
            host = self._hosts.get(route)
            if host is None or not host.idle or self._closed:
                return None
            conn = host.idle[-1]
            mono = time.monotonic()
            if mono >= conn.expires_at or mono - self._last_sweep >= SWEEP_INTERVAL:
                return None
            if not (retryable or conn.carries_unretryable()):
                return None
            host.idle.pop()
            conn.state = ConnectionState.ACTIVE
            host.active += 1
        return conn

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
                    idle_for=time.monotonic() - conn.idle_since,
                    responses=conn.responses,
                )
            )
        return True

    def _take_or_reserve(
        self,
        route: Route,
        deadline: float | None,
        pool_timeout: float | None,
        fresh: bool,
        retryable: bool,
    ) -> tuple[Connection | None, list[_Doomed], bool]:
        """Under the lock: pop a live idle connection, or reserve a slot for a
        new one, or wait. Returns early with connections to close, if any,
        so that closing happens outside the lock."""
        doomed: list[_Doomed] = []
        with self._lock:
            while True:
                if self._closed:
                    raise ClientClosed("the client has been closed")
                host = self._hosts.get(route)
                if host is None:
                    host = self._hosts[route] = _Host()
                mono = time.monotonic()
                if mono - self._last_sweep >= SWEEP_INTERVAL:
                    self._sweep(mono, doomed)
                if not fresh:
                    conn = self._pop_idle(host, mono, doomed, retryable)
                    if conn is not None:
                        return conn, doomed, False
                if self._has_room(host):
                    host.open += 1
                    self._open += 1
                    return None, doomed, True
                # Idle connections of this route left now are of no use to
                # this request (fresh, or riskier than it may take).
                if self._evict_for(route, host, doomed, fresh or not retryable) or doomed:
                    return None, doomed, False
                remaining = None if deadline is None else deadline - mono
                if remaining is not None and remaining <= 0:
                    raise PoolTimeout(
                        f"no connection to {route} became free within {pool_timeout} s",
                        origin=str(route.origin),
                    )
                self._waiters += 1
                try:
                    self._cond.wait(remaining)
                finally:
                    self._waiters -= 1

    def _pop_idle(
        self, host: _Host, mono: float, doomed: list[_Doomed], retryable: bool
    ) -> Connection | None:
        """Under the lock: the route's freshest idle connection that no rule
        retires and that may carry this request. Expired ones on the way are
        added to ``doomed``; ones passed over stay idle, in their order."""
        passed_over: list[Connection] = []
        found = None
        while host.idle:
            conn = host.idle.pop()
            reason = None
            if mono >= conn.expires_at:
                reason = conn.expiry_reason(
                    mono, self._idle_timeout, self._max_requests, self._max_age
                )
            if reason is not None:
                self._forget(host, conn)
                doomed.append((conn, reason, True))
            elif retryable or conn.carries_unretryable():
                found = conn
                break
            else:
                passed_over.append(conn)
        host.idle.extend(reversed(passed_over))
        if found is not None:
            found.state = ConnectionState.ACTIVE
            host.active += 1
        return found

    def _has_room(self, host: _Host) -> bool:
        if self._max_per_host is not None and host.open >= self._max_per_host:
            return False
        return self._max_total is None or self._open < self._max_total

    def _evict_for(self, route: Route, host: _Host, doomed: list[_Doomed], fresh: bool) -> bool:
        """At a limit: close the longest-idle connection that frees a slot
        for this route: another route's when the overall limit is the
        obstacle, and this route's own only when a fresh one is wanted."""
        if self._max_per_host is not None and host.open >= self._max_per_host:
            candidates = [route] if fresh and host.idle else []
        else:
            candidates = [
                other
                for other, other_host in self._hosts.items()
                if other_host.idle and (fresh or other != route)
            ]
        if not candidates:
            return False
        oldest = min(candidates, key=lambda other: self._hosts[other].idle[0].idle_since)
        victim_host = self._hosts[oldest]
        victim = victim_host.idle.popleft()
        self._forget(victim_host, victim)
        doomed.append((victim, "pool_full", False))
        return True

    def _sweep(self, mono: float, doomed: list[_Doomed]) -> None:
        """Expire idle connections of every route, oldest first."""
        self._last_sweep = mono
        for host in self._hosts.values():
            while host.idle and mono >= host.idle[0].expires_at:
                reason = host.idle[0].expiry_reason(
                    mono, self._idle_timeout, self._max_requests, self._max_age
                )
                if reason is None:
                    break
                conn = host.idle.popleft()
                self._forget(host, conn)
                doomed.append((conn, reason, True))

    def _forget(self, host: _Host, conn: Connection) -> None:
        """Bookkeeping for an idle connection that will be closed."""
        host.open -= 1
        host.closed += 1
        self._open -= 1
        conn.state = ConnectionState.CLOSED

    def _open_reserved(
        self, route: Route, connect_timeout: float | None, events: list[Event] | None
    ) -> Connection:
        connection_id = next(self._ids)
        started = time.monotonic()
        try:
            conn = self._opener(route, connection_id, connect_timeout)
        except BaseException as exc:
            if isinstance(exc, RawkeepError) and exc.origin is None:
                exc.origin = str(route.origin)
            with self._lock:
                self._hosts[route].open -= 1
                self._open -= 1
                if self._waiters:
                    self._cond.notify_all()
            raise
        with self._lock:
            host = self._hosts[route]
            host.active += 1
            host.opened += 1
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
        mono = time.monotonic()
        conn.idle_since = mono
        close_reason: str | None = conn.close_reason
        expired = False
        if close_reason is None and not conn.is_reusable:
            close_reason = "error"
        if close_reason is None:
            close_reason = conn.expiry_reason(
                mono, self._idle_timeout, self._max_requests, self._max_age
            )
            expired = close_reason is not None
        with self._lock:
            host = self._hosts[conn.route]
            host.active -= 1
            if conn.reused:
                host.reused += 1
            if self._closed and close_reason is None:
                close_reason = "client_closed"
            if close_reason is None:
                conn.state = ConnectionState.IDLE
                host.idle.append(conn)
            else:
                host.open -= 1
                host.closed += 1
                self._open -= 1
            if self._waiters:
                self._cond.notify_all()
        if close_reason is not None:
            self._close_and_emit([(conn, close_reason, expired)])

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
            if conn.state is not ConnectionState.ACTIVE:
                return None  # already given back: never count a connection twice
            host = self._hosts[conn.route]
            host.active -= 1
            host.open -= 1
            host.closed += 1
            if conn.reused and conn.response_started and not stale:
                host.reused += 1  # a response did come over it, if not whole
            self._open -= 1
            conn.state = ConnectionState.CLOSED
            if self._waiters:
                self._cond.notify_all()
        conn.close()
        if not self._emitter.enabled:
            return None
        if stale:
            return StaleConnectionDiscarded(
                connection_id=conn.id, origin=conn.origin_str, time=now()
            )
        return _closed_event(conn, reason, expired=False)

    def _close_doomed(self, doomed: list[_Doomed], events: list[Event] | None) -> None:
        """Close connections already taken out of the books; their events go
        to ``events`` (None: nobody listens)."""
        for conn, _, _ in doomed:
            conn.close()
        if events is not None:
            events.extend(
                _closed_event(conn, why, expired=expired) for conn, why, expired in doomed
            )

    def _close_and_emit(self, doomed: list[_Doomed]) -> None:
        events: list[Event] | None = [] if self._emitter.enabled else None
        self._close_doomed(doomed, events)
        if events:
            self._emit_all(events)

    def _emit_all(self, events: list[Event]) -> None:
        """Deliver events in order, each one whatever the callback raised for
        the one before; the first exception that escaped the emitter (a
        ``BaseException``: it logs the others) is raised after the last.

        Called only when the pool's books and sockets are final, so a
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
        doomed: list[_Doomed] = []
        with self._lock:
            self._closed = True
            for host in self._hosts.values():
                while host.idle:
                    conn = host.idle.popleft()
                    self._forget(host, conn)
                    doomed.append((conn, "client_closed", False))
            self._cond.notify_all()
        self._close_and_emit(doomed)

    @property
    def is_closed(self) -> bool:
        return self._closed

    def stats(self) -> PoolStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            per_host = {str(route): host.stats() for route, host in self._hosts.items()}
        return PoolStats(
            opened=sum(s.opened for s in per_host.values()),
            reused=sum(s.reused for s in per_host.values()),
            closed=sum(s.closed for s in per_host.values()),
            idle=sum(s.idle for s in per_host.values()),
            active=sum(s.active for s in per_host.values()),
            per_host=per_host,
        )


def _closed_event(conn: Connection, reason: str, *, expired: bool) -> Event:
    """The event that ends ``conn``'s life: expired by a rule, or closed."""
    if expired:
        return ConnectionExpired(
            connection_id=conn.id, origin=conn.origin_str, time=now(), reason=_as_expiry(reason)
        )
    return ConnectionClosed(
        connection_id=conn.id, origin=conn.origin_str, time=now(), reason=_as_close(reason)
    )


def _as_expiry(reason: str) -> ExpiryReason:
    # _Doomed carries reasons as str; the flag next to it says which kind.
    return cast("ExpiryReason", reason)


def _as_close(reason: str) -> CloseReason:
    return cast("CloseReason", reason)
