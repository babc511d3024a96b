"""The pool's decisions, without I/O: which connection, open or wait, what to close.

Theory of operation
-------------------
The core keeps the books of every connection that is open or being opened,
per route (origin and proxy), and makes every choice the pool makes. It
takes facts (a route, the time, a connection coming back) and returns
verdicts (this idle connection, a reserved slot, these connections to
close). It never touches a socket, a lock, a clock or an event loop: the
shells (``_pool.Pool`` for threads) hold it under their lock or on their
loop, pass ``now`` in, and carry out what it returns (probe, connect,
close, emit events) outside the lock. Its unit tests drive it with plain
values and a fake clock.

Limits. Every open connection counts against ``max_connections`` in all and
``max_connections_per_host`` per route. A slot is taken when a connect
*starts* (``checkout`` answers "reserved"), so concurrent connects can't
overshoot the limits; it is given back when the connection closes, or by
``open_failed``.

Which idle connection? The most recently used one (LIFO). Servers close
connections that stay idle too long, so the freshest is the least likely
to have been closed, and under a light load the older ones age out instead
of being kept warm by turns. A request that can't be retried passes over a
connection it should not risk (``carries_unretryable``), leaving it idle.

Expiry (see ``_keepalive``) is checked when a connection is taken, against
the one moment worked out when it went idle; every route's idle
connections are swept, oldest first, at most once per ``SWEEP_INTERVAL``,
so expired sockets don't linger while the client talks to other hosts.

At a limit: a fresh connection wanted (a retry after the keep-alive race)
closes the route's own longest-idle connection; the overall limit closes
the longest-idle connection of another route; otherwise the caller waits.
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from ._exceptions import ClientClosed, PoolTimeout
from ._keepalive import NEVER, ConnectionState
from ._learned import MAX_LEARNED, SHORTEST, Lesson, adopt, matches
from ._pool_books import Doomed, Pooled, PoolStats, RouteBooks

if TYPE_CHECKING:
    from ._events import Evidence
    from ._keepalive import ExpiryRules
    from ._url import Route

__all__ = ["SWEEP_INTERVAL", "Doomed", "PoolCore", "PoolLimits", "PoolStats", "Pooled"]

#: Seconds between sweeps of every route's idle connections for expiry.
SWEEP_INTERVAL: Final = 1.0

#: The shell's connection type: the core hands back what it was given.
C = TypeVar("C", bound=Pooled)


class PoolLimits:
    """A client's pool options, checked: the core (in either shell) is made
    from these."""

    __slots__ = ("max_connections", "max_connections_per_host", "rules")

    def __init__(
        self,
        *,
        max_connections: int | None,
        max_connections_per_host: int | None,
        rules: ExpiryRules,
    ) -> None:
        self.max_connections = max_connections
        self.max_connections_per_host = max_connections_per_host
        self.rules = rules


class PoolCore(Generic[C]):
    """The books and choices of a pool (see the module docstring).

    Args:
        max_connections: open connections across all routes (None: no limit).
        max_connections_per_host: open connections per route (None: no limit).
        rules: the client's expiry rules.
        now: the time the pool starts (monotonic seconds), for the sweep.
    """

    def __init__(
        self,
        *,
        max_connections: int | None,
        max_connections_per_host: int | None,
        rules: ExpiryRules,
        now: float,
    ) -> None:
        self._max_total = max_connections
        self._max_per_host = max_connections_per_host
        self.rules = rules
        self._hosts: dict[Route, RouteBooks[C]] = {}
        #: Every idle connection, longest idle first (a dict keeps its keys
        #: in insertion order, and connections go idle in time order): what
        #: eviction looks at, however many routes the pool has seen.
        self._idle_order: dict[C, None] = {}
        # Idle connections by the moment their time rules retire them: a
        # heap of (moment, tie-breaker, connection), and the one moment that
        # counts for each connection (others in the heap are left over from
        # before and skipped). Sweeping costs the connections due, not the
        # number of routes.
        self._due: list[tuple[float, int, C]] = []
        self._scheduled: dict[C, float] = {}
        self._tie = itertools.count()
        self._open = 0
        self._last_sweep = now
        self.is_closed = False
        #: Routes with a learned idle limit, least recently changed first.
        self._learned: dict[Route, None] = {}
        #: What was learned and not told yet: the shell turns these into
        #: events and clears the list.
        self.lessons: list[Lesson] = []

    # -- handing connections out ----------------------------------------------

    def take_freshest(self, route: Route, now: float, retryable: bool) -> C | None:
        """The common case in few steps: the route's most recently used idle
        connection, unexpired, with no sweep due. None sends the caller to
        ``checkout``, which handles every other case."""
        host = self._hosts.get(route)
        if host is None or not host.idle or host.waiters or self.is_closed:
            return None
        conn = host.idle[-1]
        if now >= conn.life.expires_at or now - self._last_sweep >= SWEEP_INTERVAL:
            return None
        if (not retryable or host.learned is not None) and not self._fits(
            host, conn, now, retryable
        ):
            return None
        host.idle.pop()
        del self._idle_order[conn]
        conn.life.become_active(now)
        host.active += 1
        return conn

    def checkout(
        self,
        route: Route,
        now: float,
        *,
        fresh: bool,
        retryable: bool,
        waiter: object = None,
    ) -> tuple[C | None, list[Doomed[C]], bool]:
        """An idle connection, a reserved slot, or connections to close first
        (then ask again); neither of the three: wait for a release.

        Callers that wait are served in arrival order per route: while any
        are queued (``enqueue``), only the first of them gets an answer
        other than "wait"; a newcomer queues behind them.

        Raises:
            ClientClosed: the pool was closed.
        """
        if self.is_closed:
            raise ClientClosed("the client has been closed")
        doomed: list[Doomed[C]] = []
        host = self._hosts.get(route)
        if host is None:
            host = self._hosts[route] = RouteBooks[C]()
        if host.waiters and host.waiters[0] is not waiter:
            return None, doomed, False  # not this caller's turn
        if now - self._last_sweep >= SWEEP_INTERVAL:
            self._sweep(now, doomed)
        if not fresh:
            conn = self._pop_idle(host, now, doomed, retryable)
            if conn is not None:
                if waiter is not None:
                    del host.waiters[0]  # served: the next in line is first now
                return conn, doomed, False
        if self._has_room(host):
            host.open += 1
            self._open += 1
            if waiter is not None:
                del host.waiters[0]
            return None, doomed, True
        # Idle connections of this route left now are of no use to this
        # request (a fresh one is wanted, or they are riskier than it may take).
        self._evict_for(route, host, doomed, own=fresh or not retryable)
        return None, doomed, False

    def enqueue(self, route: Route, waiter: object) -> None:
        """``waiter`` (any object, one per caller) waits for ``route``; pass
        it to ``checkout`` from now on, and to ``dequeue`` when done."""
        self._hosts[route].waiters.append(waiter)

    def dequeue(self, route: Route, waiter: object) -> None:
        """``waiter`` stops waiting unserved (timed out, interrupted); a
        waiter that ``checkout`` served has left the queue already."""
        waiters = self._hosts[route].waiters
        if waiter in waiters:
            waiters.remove(waiter)

    def has_waiters(self, route: Route) -> bool:
        """Whether callers wait for ``route`` (after one is served or leaves,
        the next in line may go: the shell wakes it)."""
        host = self._hosts.get(route)
        return host is not None and bool(host.waiters)

    def timed_out(self, route: Route, pool_timeout: float | None) -> PoolTimeout:
        """The error for a caller whose wait for ``route`` ran out."""
        return PoolTimeout(
            f"no connection to {route} became free within {pool_timeout} s",
            origin=str(route.origin),
        )

    def opened(self, route: Route) -> None:
        """A reserved slot now holds an open, active connection."""
        host = self._hosts[route]
        host.active += 1
        host.opened += 1

    def open_failed(self, route: Route) -> None:
        """Opening failed: give the reserved slot back."""
        self._hosts[route].open -= 1
        self._open -= 1

    def _pop_idle(
        self, host: RouteBooks[C], now: float, doomed: list[Doomed[C]], retryable: bool
    ) -> C | None:
        """The route's freshest idle connection that no rule retires and that
        may carry this request. Expired ones on the way are doomed; ones
        passed over stay idle, in their order."""
        found = None
        expired: list[Doomed[C]] = []
        learned = host.learned_limit(now)
        for conn in reversed(host.idle):  # freshest first
            reason = None
            if now >= conn.life.expires_at:
                reason = conn.life.expiry_reason(now, self.rules, learned)
            elif learned is not None and now - conn.life.idle_since >= learned:
                reason = "server_keep_alive"  # learned since it went idle
            if reason is not None:
                expired.append(Doomed(conn, reason, expired=True))
            elif self._fits(host, conn, now, retryable):
                found = conn
                break
        for gone in expired:
            self._forget(host, gone.conn)
        doomed.extend(expired)
        if found is None:
            return None
        conn = found
        host.idle.remove(conn)
        del self._idle_order[conn]
        conn.life.become_active(now)
        host.active += 1
        return conn

    @staticmethod
    def _fits(host: RouteBooks[C], conn: C, now: float, retryable: bool) -> bool:
        """Whether an idle connection may carry this request: one that can't
        be sent again keeps well inside the server's limit, announced or
        learned (see ``_learned``), and away from connections that carry a
        risk of their own (``carries_unretryable``)."""
        learned = host.learned
        if learned is not None and not learned.allows(now - conn.life.idle_since, retryable, now):
            return False
        return retryable or (conn.carries_unretryable() and conn.life.may_carry_unretryable(now))

    def _has_room(self, host: RouteBooks[C]) -> bool:
        if self._max_per_host is not None and host.open >= self._max_per_host:
            return False
        return self._max_total is None or self._open < self._max_total

    def _evict_for(
        self, route: Route, host: RouteBooks[C], doomed: list[Doomed[C]], *, own: bool
    ) -> None:
        """At a limit: close the longest-idle connection that frees a slot
        for this route: another route's when the overall limit is the
        obstacle, this route's own only when ``own`` (its idle ones are of
        no use to the request)."""
        victim = None
        if self._max_per_host is not None and host.open >= self._max_per_host:
            if own and host.idle:
                victim = host.idle[0]
        else:
            # The longest-idle connection of another route (or of any, when
            # this route's own are of no use): a walk from the oldest that
            # skips at most this route's few idle connections.
            for conn in self._idle_order:
                if own or conn.route != route:
                    victim = conn
                    break
        if victim is None:
            return
        victim_host = self._hosts[victim.route]
        self._forget(victim_host, victim)
        doomed.append(Doomed(victim, "pool_full", expired=False))

    def _sweep(self, now: float, doomed: list[Doomed[C]]) -> None:
        """Expire every idle connection that is due, in the order due."""
        self._last_sweep = now
        due = self._due
        while due and due[0][0] <= now:
            moment, _, conn = heapq.heappop(due)
            if self._scheduled.get(conn) != moment:
                continue  # left over: a later or earlier moment counts
            del self._scheduled[conn]
            life = conn.life
            if life.state is not ConnectionState.IDLE:
                continue  # taken since: scheduled again when it comes back
            host = self._hosts[conn.route]
            reason = life.expiry_reason(now, self.rules, host.learned_limit(now))
            if reason is None:
                self._schedule(conn)  # in use since, and idle again
                continue
            self._forget(host, conn)
            doomed.append(Doomed(conn, reason, expired=True))

    def _schedule(self, conn: C) -> None:
        """Note when an idle connection's time rules will retire it, if that
        is earlier than the moment noted (the sweep looks at it then and
        notes the next): one moment per connection counts, the earliest."""
        moment = conn.life.expires_at
        if moment >= self._scheduled.get(conn, NEVER):
            return
        self._scheduled[conn] = moment
        heapq.heappush(self._due, (moment, next(self._tie), conn))

    def _forget(self, host: RouteBooks[C], conn: C) -> None:
        """The books for an idle connection that will be closed."""
        host.idle.remove(conn)  # usually the first or the last
        del self._idle_order[conn]
        host.open -= 1
        host.closed += 1
        self._open -= 1
        self._unschedule(conn)
        conn.life.become_closed()

    def _unschedule(self, conn: C) -> None:
        """A closed connection leaves the schedule; its entries in the heap
        are dropped in bulk once they outnumber the live ones."""
        if (
            self._scheduled.pop(conn, None) is not None
            and len(self._due) > 2 * len(self._scheduled) + 64
        ):
            scheduled = self._scheduled
            self._due = [entry for entry in self._due if scheduled.get(entry[2]) == entry[0]]
            heapq.heapify(self._due)

    # -- taking connections back ------------------------------------------------

    def checkin(self, conn: C, now: float) -> Doomed[C] | None:
        """A connection whose exchange finished: idle again if its verdict
        allows and no rule retires it; else what to close, and why."""
        host = self._hosts[conn.route]
        host.active -= 1
        if conn.reused:
            host.reused += 1
            if host.learned is not None:
                self._kept(host, conn)
        reason: str | None = conn.close_reason
        if reason is None and not conn.is_reusable:
            reason = "error"
        expired = False
        if reason is None and self.is_closed:
            reason = "client_closed"
        if reason is None:
            learned = None if host.learned is None else host.learned_limit(now)
            reason = conn.life.become_idle(now, self.rules, learned)
            expired = reason is not None
        if reason is None:
            host.idle.append(conn)
            self._idle_order[conn] = None
            if conn.life.expires_at < self._scheduled.get(conn, NEVER):
                self._schedule(conn)
            return None
        host.open -= 1
        host.closed += 1
        self._open -= 1
        conn.life.become_closed()
        return Doomed(conn, reason, expired)

    # -- learning the server's idle limit (see ``_learned``) ---------------------

    def learn_close(self, conn: C, idle: float, evidence: Evidence, now: float) -> None:
        """``conn`` was seen closed by the server ``idle`` seconds after it
        went idle (exactly, or at most: see ``Evidence``)."""
        host = self._hosts.get(conn.route)
        if host is None:
            return
        if idle < SHORTEST:
            return  # closed after its response: no idle timer's doing
        if host.learned is None:
            host.learned, host.candidate = adopt(host.candidate, idle, now)
            if host.learned is None:
                return
        elif not host.learned.closed(idle, evidence, now):
            return
        self._remember(conn.route)
        self.lessons.append(Lesson(conn.route, conn.id, host.learned.limit, evidence, idle))

    def _kept(self, host: RouteBooks[C], conn: C) -> None:
        """A reused connection carried a whole exchange: if it had been idle
        clearly longer than the learned limit, the server keeps connections
        longer now, and the limit is forgotten."""
        learned = host.learned
        idle = conn.life.last_idle
        if learned is None or idle <= learned.limit or matches(idle, learned.limit):
            return
        host.learned = None
        self._learned.pop(conn.route, None)
        self.lessons.append(Lesson(conn.route, conn.id, None, "kept_longer", idle))

    def _remember(self, route: Route) -> None:
        """Note that ``route``'s learned limit changed; past ``MAX_LEARNED``
        routes, the one changed longest ago forgets its own."""
        self._learned.pop(route, None)
        self._learned[route] = None
        if len(self._learned) > MAX_LEARNED:
            oldest = next(iter(self._learned))
            del self._learned[oldest]
            self._hosts[oldest].learned = None

    def retire(self, conn: C, *, stale: bool = False) -> bool:
        """An active connection that will be closed unused or after a failure:
        free its slot. False if it was already given back (never count a
        connection twice)."""
        if conn.life.state is not ConnectionState.ACTIVE:
            return False
        host = self._hosts[conn.route]
        host.active -= 1
        host.open -= 1
        host.closed += 1
        if conn.reused and conn.response_started and not stale:
            host.reused += 1  # a response did come over it, if not whole
        self._open -= 1
        conn.life.become_closed()
        return True

    def close(self) -> list[Doomed[C]]:
        """Refuse new checkouts; every idle connection, to close. Active ones
        close when checked in. Idempotent."""
        self.is_closed = True
        doomed = []
        for conn in list(self._idle_order):
            self._forget(self._hosts[conn.route], conn)
            doomed.append(Doomed(conn, "client_closed", expired=False))
        return doomed

    def stats(self) -> PoolStats:
        """A consistent snapshot of the counters."""
        per_host = {str(route): host.stats() for route, host in self._hosts.items()}
        return PoolStats(
            opened=sum(s.opened for s in per_host.values()),
            reused=sum(s.reused for s in per_host.values()),
            closed=sum(s.closed for s in per_host.values()),
            idle=sum(s.idle for s in per_host.values()),
            active=sum(s.active for s in per_host.values()),
            per_host=per_host,
        )
