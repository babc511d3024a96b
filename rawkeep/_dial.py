"""Opening a TCP connection with blocking calls: the race of ``_tcp``, carried out.

``open_tcp`` resolves the host (an IP literal is not looked up), orders the
addresses and races connect attempts as ``_tcp.Race`` says (RFC 8305: the
next attempt starts after ``ATTEMPT_DELAY``, or at once when one fails;
the first to connect wins, the others are closed). Its asyncio twin is
``_aio_dial``: the same decisions, from the same place.

No threads: every attempt is a non-blocking socket whose connect is under
way, and one selector waits for the first of them to finish (writable: the
connect succeeded or failed, ``SO_ERROR`` tells which), for the time the
next attempt is due, or for the deadline, whichever comes first. The
system resolver (``getaddrinfo``) can't be interrupted: a look-up counts
against the deadline, but one slower than the deadline fails only when it
returns.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import time
from typing import TYPE_CHECKING, Final

from ._io_errors import attempts_failed, connect_failed
from ._tcp import Race, interleave, literal_hosts, socket_options

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._tcp import AddrInfo

__all__ = ["open_tcp"]

#: What ``connect_ex`` says of a non-blocking connect that is under way
#: (EINTR included: connect(2) goes on in the background then).
_UNDER_WAY: Final = frozenset({errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EINTR})


def open_tcp(
    host: str,
    port: int,
    *,
    timeout: float | None,
    tcp_keepalive: float | None = None,
    addresses: Sequence[str] | None = None,
) -> socket.socket:
    """A blocking TCP socket connected to ``host:port``, its options set
    (``_tcp.socket_options``).

    Args:
        timeout: seconds for the look-up and the whole race; None: no limit.
        tcp_keepalive: seconds of silence before keepalive probes; None: off.
        addresses: IP literals to use instead of looking ``host`` up.

    Raises:
        ConnectTimeout: no attempt connected within ``timeout``.
        ConnectError: the name did not resolve, or every attempt failed.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    infos = _resolve(host, port, addresses, timeout)
    dialer = _Dialer(infos, deadline)
    sock = dialer.run()
    if sock is None:
        raise attempts_failed(host, port, dialer.failures, timeout, timed_out=dialer.timed_out)
    for level, option, value in socket_options(tcp_keepalive):
        with contextlib.suppress(OSError):  # best effort, as each platform allows
            sock.setsockopt(level, option, value)
    return sock


def _resolve(
    host: str, port: int, addresses: Sequence[str] | None, timeout: float | None
) -> list[AddrInfo]:
    literals = literal_hosts(host, addresses)
    try:
        if literals is None:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        else:
            infos = [
                info
                for literal in literals
                for info in socket.getaddrinfo(
                    literal, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
                )
            ]
    except OSError as exc:
        raise connect_failed(exc, host, port, timeout) from exc
    return interleave(infos)


class _Dialer:
    """One race: its attempts' sockets, the selector that watches them, and
    what each failed attempt said."""

    def __init__(self, infos: list[AddrInfo], deadline: float | None) -> None:
        self._infos = infos
        self._race = Race(len(infos), deadline)
        self._attempts: dict[int, socket.socket] = {}
        #: Each address tried and failed, with its error, in order.
        self.failures: list[tuple[str, OSError]] = []
        #: Whether the deadline ended the race.
        self.timed_out = False

    def run(self) -> socket.socket | None:
        """The winner, blocking again; None when every attempt failed or
        the deadline passed (``failures`` says how). Every other socket is
        closed on return, whatever happens."""
        race = self._race
        with selectors.DefaultSelector() as selector:
            try:
                while True:
                    winner = self._start_due(selector)
                    now = time.monotonic()
                    if winner is not None or race.is_lost():
                        return winner
                    if race.is_timed_out(now):
                        self.timed_out = True
                        self.failures.extend(
                            (self._address(index), TimeoutError()) for index in race.running
                        )
                        return None
                    for key, _ in selector.select(race.wait_time(now)):
                        winner = self._finish(key.data, selector)
                        if winner is not None:
                            return winner
            finally:
                for sock in self._attempts.values():
                    sock.close()  # the losers, or all of them on an error
                self._attempts.clear()

    def _start_due(self, selector: selectors.BaseSelector) -> socket.socket | None:
        """Start every attempt that is due; one that connected at once wins."""
        while (index := self._race.start_next(time.monotonic())) is not None:
            family, kind, proto, _, sockaddr = self._infos[index]
            try:
                sock = socket.socket(family, kind, proto)
            except OSError as exc:
                self._fail(index, exc)
                continue
            self._attempts[index] = sock
            sock.setblocking(False)
            code = sock.connect_ex(sockaddr)
            if code == 0:
                return self._win(index)
            if code in _UNDER_WAY:
                selector.register(sock, selectors.EVENT_WRITE, index)
            else:
                self._fail(index, OSError(code, os.strerror(code)))
        return None

    def _finish(self, index: int, selector: selectors.BaseSelector) -> socket.socket | None:
        """Attempt ``index``'s connect has finished: the winner, or None."""
        sock = self._attempts[index]
        selector.unregister(sock)
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code == 0:
            return self._win(index)
        self._fail(index, OSError(code, os.strerror(code)))
        return None

    def _win(self, index: int) -> socket.socket:
        sock = self._attempts.pop(index)
        for loser in self._race.won(index):
            self._attempts.pop(loser).close()
        sock.setblocking(True)
        return sock

    def _fail(self, index: int, exc: OSError) -> None:
        sock = self._attempts.pop(index, None)
        if sock is not None:
            sock.close()
        self.failures.append((self._address(index), exc))
        self._race.failed(index)

    def _address(self, index: int) -> str:
        return str(self._infos[index][4][0])
