"""The pool's books, without I/O: what it needs of a connection, and its counts per route.

``_pool_core.PoolCore`` keeps one ``RouteBooks`` per route (origin and
proxy): its idle connections, the callers waiting for one, its counters and
what was learned of its server's idle limit; ``PoolStats`` is the snapshot
of those counters that ``pool_stats()`` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, final

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._events import CloseReason
    from ._keepalive import Lifetime
    from ._learned import IdleLimit
    from ._url import Route

__all__ = ["Doomed", "PoolStats", "Pooled", "RouteBooks"]


class Pooled(Protocol):
    """What the core needs of a connection: its identity, its keep-alive
    facts, and the verdict of its last exchange."""

    id: int
    route: Route
    life: Lifetime
    #: The current request runs on a connection that served before.
    reused: bool
    #: Why the finished exchange forbids another (None: it allows one).
    close_reason: CloseReason | None

    @property
    def response_started(self) -> bool:
        """Some byte of the current response arrived."""

    @property
    def is_reusable(self) -> bool: ...

    def carries_unretryable(self) -> bool: ...


#: The shell's connection type: the core hands back what it was given.
C = TypeVar("C", bound=Pooled)


@dataclass(frozen=True, slots=True)
class Doomed(Generic[C]):
    """A connection taken out of the books, for the shell to close."""

    conn: C
    #: An expiry reason when ``expired``, else a close reason.
    reason: str
    expired: bool


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
        learned_idle_limit: in a per-origin entry, the idle limit learned
            from the server's closes (seconds; see ``_learned``), or None.
    """

    opened: int
    reused: int
    closed: int
    idle: int
    active: int
    per_host: Mapping[str, PoolStats] = field(default_factory=dict)
    learned_idle_limit: float | None = None


class RouteBooks(Generic[C]):
    """Bookkeeping for one route."""

    __slots__ = (
        "active",
        "candidate",
        "closed",
        "idle",
        "learned",
        "open",
        "opened",
        "reused",
        "waiters",
    )

    def __init__(self) -> None:
        # Lists, not deques: an empty deque costs 760 bytes, a list 56, and
        # a route has at most max_connections_per_host idle connections.
        self.idle: list[C] = []  # oldest first, freshest last
        #: Callers waiting for a connection, in arrival order (see ``enqueue``).
        self.waiters: list[object] = []
        self.open = 0  # open or connecting: what counts against the limits
        self.active = 0
        self.opened = 0
        self.closed = 0
        self.reused = 0
        #: The idle limit learned from the server's closes (see ``_learned``).
        self.learned: IdleLimit | None = None
        #: Before that: the idle time of the one close seen so far.
        self.candidate: float | None = None

    def stats(self) -> PoolStats:
        return PoolStats(
            opened=self.opened,
            reused=self.reused,
            closed=self.closed,
            idle=len(self.idle),
            active=self.active,
            learned_idle_limit=None if self.learned is None else self.learned.limit,
        )

    def learned_limit(self, now: float) -> float | None:
        """Idle seconds past which the learned limit retires a connection
        (None: nothing learned, or no longer trusted)."""
        learned = self.learned
        if learned is None or not learned.trusted(now):
            return None
        return learned.retryable_limit
