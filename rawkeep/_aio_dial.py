"""Opening a TCP connection on the event loop: the race of ``_tcp``, carried out.

The asyncio twin of ``_dial``: the same look-up rule (an IP literal is not
looked up), the same order and schedule (``_tcp.Race``), the same errors.
Each attempt is a task connecting a non-blocking socket with
``loop.sock_connect``; the race waits for the first of them to finish, for
the time the next attempt is due, or for the deadline. The winner is a
plain connected socket, which ``_aio_socket.connect`` hands to
``loop.create_connection(sock=...)``.

An attempt's task owns its socket: cancelled or failed, it closes it
before it ends (asyncio removes the socket from the selector first). The
race cancels every attempt left when it ends, however it ends, and waits
for them, so no socket outlives it but the winner.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import TYPE_CHECKING

from ._io_errors import attempts_failed, connect_failed
from ._tcp import Race, interleave, literal_hosts, socket_options

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._tcp import AddrInfo

__all__ = ["open_tcp"]


async def open_tcp(
    host: str,
    port: int,
    *,
    timeout: float | None,
    tcp_keepalive: float | None = None,
    addresses: Sequence[str] | None = None,
) -> socket.socket:
    """A non-blocking TCP socket connected to ``host:port``, its options
    set (``_tcp.socket_options``); arguments as ``_dial.open_tcp``'s.

    Raises:
        ConnectTimeout: no attempt connected within ``timeout``.
        ConnectError: the name did not resolve, or every attempt failed.
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    infos = await _resolve(loop, host, port, addresses, timeout)
    dialer = _Dialer(loop, infos, deadline)
    sock = await dialer.run()
    if sock is None:
        raise attempts_failed(host, port, dialer.failures, timeout, timed_out=dialer.timed_out)
    for level, option, value in socket_options(tcp_keepalive):
        with contextlib.suppress(OSError):  # best effort, as each platform allows
            sock.setsockopt(level, option, value)
    return sock


async def _resolve(
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    addresses: Sequence[str] | None,
    timeout: float | None,
) -> list[AddrInfo]:
    literals = literal_hosts(host, addresses)
    try:
        if literals is None:
            look_up = loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            infos = await asyncio.wait_for(look_up, timeout)
        else:  # numbers only: no look-up, no executor thread
            infos = [
                info
                for literal in literals
                for info in socket.getaddrinfo(
                    literal, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
                )
            ]
    except asyncio.TimeoutError as exc:  # TimeoutError's alias from 3.11 on
        raise connect_failed(TimeoutError(), host, port, timeout) from exc
    except OSError as exc:
        raise connect_failed(exc, host, port, timeout) from exc
    return interleave(infos)


async def _attempt(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, sockaddr: tuple[object, ...]
) -> socket.socket:
    try:
        await loop.sock_connect(sock, sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


class _Dialer:
    """One race: its attempts' tasks, and what each failed attempt said."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, infos: list[AddrInfo], deadline: float | None
    ) -> None:
        self._loop = loop
        self._infos = infos
        self._race = Race(len(infos), deadline)
        self._tasks: dict[asyncio.Task[socket.socket], int] = {}
        #: Each address tried and failed, with its error, in order.
        self.failures: list[tuple[str, OSError]] = []
        #: Whether the deadline ended the race.
        self.timed_out = False

    async def run(self) -> socket.socket | None:
        """The winner; None when every attempt failed or the deadline
        passed (``failures`` says how). Every other attempt has ended, its
        socket closed, on return, whatever happens."""
        race = self._race
        try:
            while True:
                self._start_due()
                now = self._loop.time()
                if race.is_lost():
                    return None
                if race.is_timed_out(now):
                    self.timed_out = True
                    self.failures.extend(
                        (self._address(index), TimeoutError()) for index in race.running
                    )
                    return None
                done, _ = await asyncio.wait(
                    self._tasks, timeout=race.wait_time(now), return_when=asyncio.FIRST_COMPLETED
                )
                winner = self._settle(done)
                if winner is not None:
                    return winner
        finally:
            await self._end_attempts()

    def _start_due(self) -> None:
        while (index := self._race.start_next(self._loop.time())) is not None:
            family, kind, proto, _, sockaddr = self._infos[index]
            try:
                sock = socket.socket(family, kind, proto)
            except OSError as exc:
                self._fail(index, exc)
                continue
            sock.setblocking(False)
            self._tasks[self._loop.create_task(_attempt(self._loop, sock, sockaddr))] = index

    def _settle(self, done: set[asyncio.Task[socket.socket]]) -> socket.socket | None:
        """Take the finished attempts, in the order they started: the
        winner, or None."""
        winner = None
        for task in sorted(done, key=self._tasks.__getitem__):
            index = self._tasks.pop(task)
            exc = task.exception()
            if exc is None and winner is None:
                winner = task.result()
                self._race.won(index)  # the attempts left are ended on return
            elif exc is None:
                task.result().close()  # connected as well, a moment too late
            elif isinstance(exc, OSError):
                self._fail(index, exc)
            else:
                raise exc
        return winner

    async def _end_attempts(self) -> None:
        tasks = list(self._tasks)
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            # Each ends at its next step, its socket closed: no real wait.
            await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled() and task.exception() is None:
                task.result().close()  # connected before it could be cancelled

    def _fail(self, index: int, exc: OSError) -> None:
        self.failures.append((self._address(index), exc))
        self._race.failed(index)

    def _address(self, index: int) -> str:
        return str(self._infos[index][4][0])
