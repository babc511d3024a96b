"""What a server's connections show about its idle limit, when it says nothing.

No I/O here: the pool core feeds in what its connections showed (with the
times, from the shells) and asks these questions before each reuse.

Most servers never send ``Keep-Alive: timeout=N`` (Go's net/http, gunicorn,
haproxy, most load balancers) yet close idle connections after some fixed
time of their own. Each connection shows a little of that time:

``fin``
    The stale probe found a connection closed, and the kernel said when
    the server's FIN arrived (Linux ``TCP_INFO``): the server closed it
    exactly that long after it went idle. The best evidence there is.
``probe``
    The same without the kernel's help (other systems, or a reset instead
    of a FIN): the server closed it at some moment before it was probed,
    so the limit is at most that long. An upper bound.
``race``
    A request sent on a reused connection met the close on its way (no
    byte of a response came back): the server closed it just about as
    long after it went idle as the request was sent.
``kept_longer``
    A reused connection carried a whole exchange after sitting idle
    clearly longer than the learned limit: the server keeps connections
    longer now, and what was learned is forgotten.

A close less than ``SHORTEST`` seconds after the connection went idle is
no idle timer at all: the server closed it after its response (a limit on
requests per connection it did not announce, an error, a restart), and it
is left to the stale probe and the retry rule.

One close teaches nothing yet: a restart, a crash or a limit on requests
per connection closes connections after any idle time. A second close
after the same idle time (within ``matches``), on another connection,
shows a timer: that idle time is the limit (``adopt``). From then on the
estimate is the shortest close seen (a timer fires at its limit; a
connection seen closed later was merely probed late), and it retires idle
connections the way an announced ``Keep-Alive: timeout`` does, with the
same margin (``_keepalive.server_timeout_margin``).

Requests that can't be sent again (a POST, a streamed body) get a wider
margin (``_keepalive.unretryable_margin``), whether the limit was announced or
learned: a retry covers a GET that meets the close, nothing covers a POST.

A learned limit guides every request for ``TRUSTED_FOR`` seconds after
it was last seen to hold; after that, requests that can be retried may
use connections idle longer than it again (the stale probe and the retry
rule make that safe), and what they meet confirms it, lowers it or
forgets it. Requests that can't be retried keep to it until it is
forgotten. So a server that shortens its limit is followed at once, one
that lengthens it within ``TRUSTED_FOR``.

Memory: at most ``MAX_LEARNED`` routes keep an estimate (the least
recently changed is dropped first); a route whose connections never close
idle keeps none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, NamedTuple

from ._keepalive import server_timeout_margin, unretryable_margin

if TYPE_CHECKING:
    from ._events import Evidence
    from ._url import Route

__all__ = [
    "MAX_LEARNED",
    "SHORTEST",
    "TRUSTED_FOR",
    "IdleLimit",
    "Lesson",
    "adopt",
    "matches",
]

#: Seconds a learned limit guides retryable requests after it was last seen
#: to hold (see the module docstring).
TRUSTED_FOR: Final = 300.0

#: Closes sooner than this after going idle are not an idle timer's (see
#: the module docstring); no server's idle limit is this short.
SHORTEST: Final = 0.1

#: Routes whose learned limits one client keeps.
MAX_LEARNED: Final = 1024


class Lesson(NamedTuple):
    """A change in what is known of a route's idle limit, for the event
    that tells it."""

    route: Route
    #: The connection that showed it.
    conn_id: int
    #: The new limit in seconds; None: forgotten.
    limit: float | None
    evidence: Evidence
    #: How long the connection had been idle when it showed it.
    idle: float


def matches(seconds: float, limit: float) -> bool:
    """Whether an idle time seen is the limit itself, give or take the
    noise of timers and scheduling: 20 ms, or 2 % of longer limits."""
    return abs(seconds - limit) <= max(0.02, limit * 0.02)


class IdleLimit:
    """One route's learned idle limit.

    Args:
        limit: seconds idle after which the server closes.
        now: when it was learned (monotonic seconds).
    """

    __slots__ = ("confirmed_at", "limit", "retryable_limit", "unretryable_limit")

    def __init__(self, limit: float, now: float) -> None:
        self.limit = self.retryable_limit = self.unretryable_limit = self.confirmed_at = 0.0
        self._set(limit, now)

    def _set(self, limit: float, now: float) -> None:
        self.limit = limit
        #: Idle seconds past which a connection is not reused: by any
        #: request while the limit is trusted, and by requests that can't
        #: be sent again.
        self.retryable_limit = limit - server_timeout_margin(limit)
        self.unretryable_limit = limit - unretryable_margin(limit)
        self.confirmed_at = now

    def __repr__(self) -> str:
        return f"IdleLimit({self.limit:.3f})"

    def trusted(self, now: float) -> bool:
        """Whether requests that can be retried keep to it (see the module
        docstring)."""
        return now - self.confirmed_at < TRUSTED_FOR

    def allows(self, idle: float, retryable: bool, now: float) -> bool:
        """Whether a connection idle for ``idle`` seconds may carry a request."""
        if not retryable:
            return idle < self.unretryable_limit
        return idle < self.retryable_limit or not self.trusted(now)

    def closed(self, idle: float, evidence: Evidence, now: float) -> bool:
        """A connection was seen closed ``idle`` seconds after it went idle
        (exactly, or at most, by ``evidence``). True when the limit changed."""
        if matches(idle, self.limit):
            self.confirmed_at = now
            return False
        if idle < self.limit or evidence != "probe":
            # Shorter: the server closes sooner (now). Longer and exact: it
            # keeps connections longer now. A probe that came late says only
            # that the close came before it, nothing new.
            self._set(idle, now)
            return True
        return False


def adopt(
    candidate: float | None, idle: float, now: float
) -> tuple[IdleLimit | None, float | None]:
    """A close seen ``idle`` seconds after going idle, on a route with no
    limit learned: the limit, when an earlier close (``candidate``) came
    after the same idle time; else None, and the candidate to keep."""
    if candidate is not None and matches(idle, candidate):
        return IdleLimit(min(idle, candidate), now), None
    return None, idle
