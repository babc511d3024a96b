"""TCP connect decisions, without I/O: Happy Eyeballs and socket options.

Both shells open TCP connections the same way; everything about *how* that
is a decision lives here, once, and the shells (``_dial`` with non-blocking
sockets and a selector, ``_aio_dial`` with the event loop) only carry it out.

Happy Eyeballs (RFC 8305)
-------------------------
A name often resolves to several addresses, IPv6 and IPv4. Trying them one
after another is correct but can be slow: an address whose packets vanish
(a broken IPv6 route, a firewall that drops instead of refusing) holds the
connect until the connect timeout, while the next address would have
answered in a millisecond. So the addresses race, with a head start each:

1. Order (section 4): the resolver's order (RFC 6724 already prefers what
   the system can reach), then the families interleaved: the family of the
   first address, then the other, and so on (``interleave``). A broken
   family then costs one delay, not one per address of it.
2. Schedule (section 5): start an attempt; if it has not connected after
   ``ATTEMPT_DELAY``, start the next one while the first goes on. An
   attempt that fails (refused, unreachable) starts the next one at once.
   The first attempt to connect wins; every other one is closed.
3. Limits: the connect timeout bounds the whole race (and the TLS handshake
   after it), not each attempt. When every attempt has failed, or the
   deadline ends those left, the error names every address tried.

``Race`` is that schedule as a plain object: attempt numbers and times in,
"start attempt i now", "wait this long", "attempt i won, close those" out.
It reads no clock and touches no socket, so it is tested with plain values.
A host that is an IP literal is not looked up at all (``literal_hosts``).
"""

from __future__ import annotations

import functools
import ipaddress
import math
from typing import TYPE_CHECKING, Any, Final, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "ATTEMPT_DELAY",
    "AddrInfo",
    "Race",
    "interleave",
    "literal_hosts",
    "socket_options",
]

#: Seconds an attempt may take before the next one starts beside it: RFC
#: 8305 section 5's recommended "Connection Attempt Delay" (its bounds are
#: 100 ms and 2 s). Loopback and LAN connects take well under 1 ms, and a
#: transatlantic handshake about 100 ms: a healthy first address wins alone.
ATTEMPT_DELAY: Final = 0.25

#: One entry of ``socket.getaddrinfo``: family, type, proto, canonname, sockaddr.
AddrInfo: TypeAlias = "tuple[int, int, int, str, tuple[Any, ...]]"


def literal_hosts(host: str, addresses: Sequence[str] | None) -> Sequence[str] | None:
    """The IP literals to connect to without a look-up: ``addresses`` when
    given (a host table: the connector's ``hosts``), ``host`` itself when
    it is an IP literal; None when ``host`` is a name to resolve."""
    if addresses is not None:
        return addresses
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return (host,)


def interleave(infos: Sequence[AddrInfo]) -> list[AddrInfo]:
    """``infos`` in Happy Eyeballs order (RFC 8305 section 4): the
    resolver's order within each family, the families alternating, the
    first address's family first; duplicates dropped."""
    unique = list(dict.fromkeys(infos))
    if not unique:
        return []
    first = unique[0][0]
    primary = [info for info in unique if info[0] == first]
    secondary = [info for info in unique if info[0] != first]
    ordered: list[AddrInfo] = []
    for index in range(max(len(primary), len(secondary))):
        ordered.extend(family[index] for family in (primary, secondary) if index < len(family))
    return ordered


class Race:
    """The schedule of one Happy Eyeballs race over ``count`` attempts
    (see the module docstring): which attempt to start when, who won, and
    when it is over. Times are seconds on the shell's own clock, passed in.

    The shell's loop: start every attempt ``start_next`` names; stop when
    ``is_lost`` (all failed) or ``is_timed_out``; wait at most
    ``wait_time`` for an attempt to finish; report ``failed`` or ``won``.
    """

    __slots__ = ("_count", "_deadline", "_delay", "_next", "_next_at", "_running", "_winner")

    def __init__(
        self, count: int, deadline: float | None, *, delay: float = ATTEMPT_DELAY
    ) -> None:
        self._count = count
        self._deadline = deadline
        self._delay = delay
        #: The next attempt to start, and the earliest time it may.
        self._next = 0
        self._next_at = -math.inf
        #: Attempts started, neither failed nor won.
        self._running: set[int] = set()
        self._winner: int | None = None

    @property
    def running(self) -> list[int]:
        """The attempts under way, in the order they started."""
        return sorted(self._running)

    def start_next(self, now: float) -> int | None:
        """The attempt to start at ``now``, or None: none is due."""
        if self._next >= self._count or self.is_timed_out(now):
            return None
        if now < self._next_at and self._running:
            return None  # the one under way keeps its head start
        index = self._next
        self._next += 1
        self._next_at = now + self._delay
        self._running.add(index)
        return index

    def failed(self, index: int) -> None:
        """Attempt ``index`` failed: the next one is due at once."""
        self._running.discard(index)
        self._next_at = -math.inf

    def won(self, index: int) -> list[int]:
        """Attempt ``index`` connected: the race is over. The attempts still
        under way, which the shell closes."""
        self._running.discard(index)
        self._winner = index
        self._next = self._count
        losers = self.running
        self._running.clear()
        return losers

    def is_lost(self) -> bool:
        """Every attempt was started and failed."""
        return self._winner is None and self._next >= self._count and not self._running

    def is_timed_out(self, now: float) -> bool:
        return self._deadline is not None and now >= self._deadline

    def wait_time(self, now: float) -> float | None:
        """How long the shell may wait for an attempt to finish before it
        must call ``start_next`` again (the next start, or the deadline);
        None: no limit."""
        ends = [] if self._deadline is None else [self._deadline]
        if self._next < self._count:
            ends.append(self._next_at)
        return max(min(ends) - now, 0.0) if ends else None


@functools.lru_cache(maxsize=1)
def socket_options() -> tuple[tuple[int, int, int], ...]:
    """The ``setsockopt(level, option, value)`` calls for a new TCP
    connection, in order; each shell makes them on the socket that won.

    - ``TCP_NODELAY``: requests are written in one write; without it, a
      request whose body goes out in a second write waits for the delayed ACK.
    """
    import socket  # the shells have loaded it: this is their first connect

    return ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
