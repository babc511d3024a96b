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

TCP keepalive
-------------
A pooled connection may sit idle for a long time, and a NAT gateway or
firewall on the way may forget it meanwhile (AWS's NAT gateway forgets an
idle flow after 350 s) without telling either end: the next request is
then sent into a black hole and waits for the read timeout. With
``SO_KEEPALIVE`` the kernel sends an empty probe after ``idle`` seconds
without traffic (which also keeps such a mapping alive), repeats it every
``interval`` seconds, and after ``probes`` unanswered ones errors the
socket; the pool's idle probe then sees the error and discards the
connection before it is used (``StaleConnectionDiscarded``). The user
chooses ``idle`` (``tcp_keepalive=``); the rest follows (``keepalive``):
``interval = ceil(idle / 6)`` and ``probes = 3``, so a dead peer is found
within ``idle * 1.5`` seconds of silence (60 s: probes at 60, 70 and 80 s,
gone at 90 s, well inside 350 s), and one or two lost probes are forgiven.
The kernel counts whole seconds, so each value is rounded up, at least 1.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "ATTEMPT_DELAY",
    "DEFAULT_TCP_KEEPALIVE",
    "AddrInfo",
    "KeepAlive",
    "Race",
    "check_keepalive",
    "interleave",
    "keepalive",
    "literal_hosts",
    "socket_options",
]

#: Seconds an attempt may take before the next one starts beside it: RFC
#: 8305 section 5's recommended "Connection Attempt Delay" (its bounds are
#: 100 ms and 2 s). Loopback and LAN connects take well under 1 ms, and a
#: transatlantic handshake about 100 ms: a healthy first address wins alone.
ATTEMPT_DELAY: Final = 0.25

#: ``tcp_keepalive=``'s default: seconds of silence before the first probe.
DEFAULT_TCP_KEEPALIVE: Final = 60.0

#: Unanswered probes after which the kernel gives up (Linux's default is 9,
#: at 75 s intervals: 11 minutes, longer than most NATs remember a flow).
KEEPALIVE_PROBES: Final = 3

#: The interval between probes is ``idle`` divided by this (rounded up).
KEEPALIVE_INTERVAL_DIVISOR: Final = 6

#: Largest TCP_KEEPIDLE / TCP_KEEPINTVL Linux accepts (MAX_TCP_KEEPIDLE).
_MAX_KEEPALIVE_SECONDS: Final = 32767

#: One entry of ``socket.getaddrinfo``: family, type, proto, canonname, sockaddr.
AddrInfo: TypeAlias = "tuple[int, int, int, str, tuple[Any, ...]]"


def literal_hosts(host: str, addresses: Sequence[str] | None) -> Sequence[str] | None:
    """The IP literals to connect to without a look-up: ``addresses`` when
    given (a host table: ``resolve=``), ``host`` itself when
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


# -- TCP keepalive -------------------------------------------------------------


class KeepAlive(NamedTuple):
    """The kernel's keepalive settings, in whole seconds (see the module
    docstring)."""

    #: Seconds of silence before the first probe (TCP_KEEPIDLE).
    idle: int
    #: Seconds between probes (TCP_KEEPINTVL).
    interval: int
    #: Unanswered probes before the connection is dropped (TCP_KEEPCNT).
    probes: int


def check_keepalive(value: object) -> float | None:
    """``tcp_keepalive=``, checked: seconds (> 0) or None (off).

    Raises:
        TypeError: not a number (bool is not a number here).
        ValueError: zero, negative, infinite or NaN.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"tcp_keepalive must be a number of seconds or None, not {value!r}")
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float
        seconds = math.inf
    if not 0 < seconds < math.inf:
        raise ValueError(f"tcp_keepalive must be finite and > 0, got {value!r}")
    return seconds


def keepalive(seconds: float) -> KeepAlive:
    """The settings for ``tcp_keepalive=seconds`` (checked, > 0)."""
    idle = min(max(math.ceil(seconds), 1), _MAX_KEEPALIVE_SECONDS)
    interval = max(math.ceil(idle / KEEPALIVE_INTERVAL_DIVISOR), 1)
    return KeepAlive(idle, interval, KEEPALIVE_PROBES)


@functools.lru_cache(maxsize=8)
def socket_options(tcp_keepalive: float | None) -> tuple[tuple[int, int, int], ...]:
    """The ``setsockopt(level, option, value)`` calls for a new TCP
    connection, in order; each shell makes them on the socket that won.

    - ``TCP_NODELAY``: requests are written in one write; without it, a
      request whose body goes out in a second write waits for the delayed ACK.
    - ``SO_KEEPALIVE`` and its timings when ``tcp_keepalive`` is a number,
      each only where the platform has it (macOS names the idle time
      ``TCP_KEEPALIVE``); None leaves keepalive off, the system default.
    """
    import socket  # the shells have loaded it: this is their first connect

    options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    if tcp_keepalive is None:
        return tuple(options)
    settings = keepalive(tcp_keepalive)
    options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
    idle_option = getattr(socket, "TCP_KEEPIDLE", getattr(socket, "TCP_KEEPALIVE", None))
    for option, value in (
        (idle_option, settings.idle),
        (getattr(socket, "TCP_KEEPINTVL", None), settings.interval),
        (getattr(socket, "TCP_KEEPCNT", None), settings.probes),
    ):
        if option is not None:
            options.append((socket.IPPROTO_TCP, option, value))
    return tuple(options)
