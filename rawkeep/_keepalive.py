"""Keep-alive policy: when an idle connection may no longer be reused.

No I/O here: these are the rules, applied to plain facts (times, counts,
what the server's ``Keep-Alive`` header said). The pool core asks them; the
connection records the facts as they happen.

The rules, in the order they are applied:

1. ``max_requests_per_connection`` (the client's): after that many
   responses, retire. Final once reached.
2. The server's ``Keep-Alive: max=M``: M more requests may be sent after
   the response that carried it (Apache's count); at 0, retire. Final.
3. ``max_connection_age`` (the client's): that long after connecting.
4. Idle limits: the server's ``Keep-Alive: timeout=N`` less a margin (see
   ``server_timeout_margin``), the limit learned from the server's own
   closes when it announces none or closes sooner (``_learned``), and the
   client's ``idle_timeout``; the shortest one applies and names the reason.

The time rules come down to one moment, worked out when a connection goes
idle (``Lifetime.expires_at``): taking it from the pool is then one
comparison with the clock, and the reason is asked for only past it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ._events import ExpiryReason

__all__ = [
    "NEVER",
    "ConnectionState",
    "ExpiryRules",
    "Lifetime",
    "server_timeout_margin",
    "unretryable_margin",
]

#: ``expires_at`` of a connection no time-based rule will retire.
NEVER: Final = float("inf")


def server_timeout_margin(timeout: float) -> float:
    """Seconds before a server's ``Keep-Alive: timeout`` we stop reusing.

    One second, or a quarter of the timeout for timeouts under 4 s. A guess
    at how far the server's clock may run ahead of ours on a busy host; on
    loopback the true gap is well under a millisecond.
    """
    return min(1.0, timeout / 4)


def unretryable_margin(limit: float) -> float:
    """Seconds before a server's idle limit (announced or learned) that a
    request which can't be sent again stops reusing a connection.

    Twice the margin for the others: two seconds, or half the limit under
    four seconds. The margin has to cover the time a request takes to
    reach the server plus how late or early the server's timer fires; on
    loopback both are well under a millisecond, across the world a round
    trip is a few hundred.
    """
    return 2 * server_timeout_margin(limit)


@dataclass(frozen=True, slots=True)
class ExpiryRules:
    """The client's own limits (None: no such limit). Slots, not a tuple:
    they are read at every check-in, and a slot reads faster."""

    idle_timeout: float | None
    max_requests: int | None
    max_age: float | None


class ConnectionState(enum.Enum):
    #: Carrying a request/response cycle, owned by exactly one thread or task.
    ACTIVE = "active"
    #: In the pool between cycles; owned by the pool.
    IDLE = "idle"
    #: Closed; never used again.
    CLOSED = "closed"


class Lifetime:
    """One connection's keep-alive facts and its place in the pool's life
    cycle (``ACTIVE -> IDLE -> ACTIVE ... -> CLOSED``).

    The connection it belongs to records facts in it as they happen
    (``responses`` after each cycle); the pool moves it through its states
    with the ``become_*`` methods, and never assigns (taking it from the
    pool also counts ``server_requests_left`` down).

    Args:
        now: when the connection was opened (monotonic seconds).
    """

    __slots__ = (
        "created_at",
        "expires_at",
        "idle_since",
        "last_idle",
        "responses",
        "server_idle_limit",
        "server_requests_left",
        "server_unretryable_limit",
        "state",
    )

    def __init__(self, now: float) -> None:
        self.state = ConnectionState.ACTIVE
        self.created_at = self.idle_since = now
        #: While idle: when the first time-based rule applies (monotonic).
        self.expires_at = NEVER
        #: Completed request/response cycles.
        self.responses = 0
        #: From the server's ``Keep-Alive``: seconds idle after which we
        #: stop reusing (its timeout less the margin), and how many more
        #: requests it accepts.
        self.server_idle_limit: float | None = None
        self.server_requests_left: int | None = None
        #: The same timeout less the wider margin of requests that can't be
        #: sent again (``unretryable_margin``).
        self.server_unretryable_limit: float | None = None
        #: Seconds it had been idle when last taken for reuse.
        self.last_idle = 0.0

    # -- facts, as they happen ------------------------------------------------

    def note_keep_alive(self, timeout: float | None, max_: int | None) -> None:
        """What a response's ``Keep-Alive`` header said (None: not said)."""
        if timeout is not None:
            self.server_idle_limit = timeout - server_timeout_margin(timeout)
            self.server_unretryable_limit = timeout - unretryable_margin(timeout)
        if max_ is not None:
            self.server_requests_left = max_

    # -- the pool's moves -----------------------------------------------------

    def become_idle(
        self, now: float, rules: ExpiryRules, learned: float | None = None
    ) -> ExpiryReason | None:
        """Enter the pool at ``now``, unless a rule already retires it: then
        that rule, and the state is left for the caller to close.
        ``learned``: the idle limit learned for the route (see ``_learned``)."""
        self.idle_since = now
        reason, expires_at = self._judge(now, rules, learned)
        if reason is None:
            self.state = ConnectionState.IDLE
            self.expires_at = expires_at
        return reason

    def become_active(self, now: float) -> None:
        """Taken from the pool at ``now`` to carry another request (a new
        connection starts active): notes how long it was idle, and counts
        the server's ``Keep-Alive: max`` down."""
        self.state = ConnectionState.ACTIVE
        self.last_idle = now - self.idle_since
        if self.server_requests_left is not None:
            self.server_requests_left -= 1

    def become_closed(self) -> None:
        self.state = ConnectionState.CLOSED

    # -- questions ------------------------------------------------------------

    def expiry_reason(
        self, now: float, rules: ExpiryRules, learned: float | None = None
    ) -> ExpiryReason | None:
        """Which rule, if any, forbids reusing this idle connection at ``now``;
        if none, notes when the first time-based rule will (a learned limit
        may have moved or lapsed since it went idle)."""
        reason, expires_at = self._judge(now, rules, learned)
        if reason is None:
            self.expires_at = expires_at
        return reason

    def may_carry_unretryable(self, now: float) -> bool:
        """Whether the server's announced timeout leaves room, at ``now``, for
        a request that can't be sent again."""
        limit = self.server_unretryable_limit
        return limit is None or now - self.idle_since < limit

    def _judge(
        self, now: float, rules: ExpiryRules, learned: float | None = None
    ) -> tuple[ExpiryReason | None, float]:
        """The rule that retires the connection at ``now``, else None and the
        moment the first time-based rule will."""
        if rules.max_requests is not None and self.responses >= rules.max_requests:
            return "max_requests", now
        if self.server_requests_left is not None and self.server_requests_left <= 0:
            return "server_keep_alive", now
        expires_at = NEVER
        if rules.max_age is not None:
            expires_at = self.created_at + rules.max_age
            if now >= expires_at:
                return "max_age", now
        limit = rules.idle_timeout
        reason: ExpiryReason = "idle_timeout"
        server_limit = self.server_idle_limit
        if server_limit is not None and (limit is None or server_limit <= limit):
            limit = server_limit
            reason = "server_keep_alive"
        if learned is not None and (limit is None or learned < limit):
            limit = learned
            reason = "server_keep_alive"
        if limit is not None:
            if now - self.idle_since >= limit:
                return reason, now
            expires_at = min(expires_at, self.idle_since + limit)
        return None, expires_at
