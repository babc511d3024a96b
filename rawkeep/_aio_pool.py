"""The pool's asyncio shell: the core's decisions on the event loop, awaited I/O.

``_pool_core.PoolCore`` decides; ``_pool_shell.PoolShell`` probes, gives
back, closes and emits, the same way as for threads. This shell adds what
one event loop needs: nothing to lock (the core is only touched between
awaits, by one task at a time), a future per task waiting for a free
connection, and an awaited connect. Waiters are served in arrival order:
the core keeps the queue; a release wakes them all to look again, and only
the one the core lets through takes the connection.

Cancellation. A task cancelled while it waits leaves the queue and never
sends its request later; cancelled while its connection opens, the slot is
freed (the connect layer closes the half-open socket); once it holds a
connection, the client discards it on any exception.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, TypeAlias

from ._pool_shell import PoolShell

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._aio_connection import AsyncConnection
    from ._events import Emitter, Event
    from ._pool_core import PoolLimits
    from ._url import Route

__all__ = ["AsyncOpener", "AsyncPool"]

#: ``await opener(route, connection_id, connect_timeout)`` opens a connection.
AsyncOpener: TypeAlias = "Callable[[Route, int, float | None], Awaitable[AsyncConnection]]"


class _Unlocked:
    """The core's lock on one event loop: none is needed (no await runs
    while the core is asked), so entering it costs nothing but the call."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


_UNLOCKED = _Unlocked()


class AsyncPool(PoolShell["AsyncConnection"]):
    """Idle connections by route, under connection limits, for one loop.

    Args:
        opener: opens a new connection (awaited).
        emitter: where lifecycle events go.
        limits: the connection limits and expiry rules.
    """

    def __init__(self, *, opener: AsyncOpener, emitter: Emitter, limits: PoolLimits) -> None:
        super().__init__(emitter, limits)
        self._opener = opener
        self._lock = _UNLOCKED
        #: One future per waiting task; a change in the books wakes them all.
        self._waiters: set[asyncio.Future[None]] = set()

    def _wake(self) -> None:
        for future in self._waiters:
            if not future.done():
                future.set_result(None)

    # -- acquire --------------------------------------------------------------

    async def acquire(
        self,
        route: Route,
        *,
        pool_timeout: float | None,
        connect_timeout: float | None,
        fresh: bool = False,
        retryable: bool = True,
    ) -> AsyncConnection:
        """As ``Pool.acquire``, awaited.

        Raises:
            PoolTimeout: the limits stayed reached for ``pool_timeout`` s.
            ClientClosed: the pool was closed.
            ConnectError, ConnectTimeout, TLSError: opening failed.
            CancelledError: the task was cancelled; nothing is held.
        """
        events: list[Event] | None = [] if self._emitter.enabled else None
        try:
            conn = None
            if not fresh:
                conn = self._core.take_freshest(route, time.monotonic(), retryable)
            if conn is None or not self._reuse(conn, events):
                conn = await self._checkout(
                    route, pool_timeout, connect_timeout, fresh, retryable, events
                )
        except BaseException:
            if events:
                self._emit_all(events)  # what happened before the failure
            raise
        if events:
            self._deliver(conn, events)
        return conn

    async def _checkout(
        self,
        route: Route,
        pool_timeout: float | None,
        connect_timeout: float | None,
        fresh: bool,
        retryable: bool,
        events: list[Event] | None,
    ) -> AsyncConnection:
        """The general path (``PoolShell._checkout_steps``), awaiting a
        change in the books whenever it says so."""
        steps = self._checkout_steps(route, pool_timeout, fresh, retryable, events)
        try:
            wait = next(steps)
            while True:
                await self._wait(wait)
                wait = steps.send(None)
        except StopIteration as done:
            conn: AsyncConnection | None = done.value
        finally:
            steps.close()
        if conn is not None:
            return conn
        return await self._open_reserved(route, connect_timeout, events)

    async def _wait(self, timeout: float | None) -> None:
        """Wait for a change in the books, at most ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _settle, future)
        self._waiters.add(future)
        try:
            await future
        finally:
            self._waiters.discard(future)
            if timer is not None:
                timer.cancel()

    async def _open_reserved(
        self, route: Route, connect_timeout: float | None, events: list[Event] | None
    ) -> AsyncConnection:
        started = time.monotonic()
        try:
            conn = await self._opener(route, next(self._ids), connect_timeout)
        except BaseException:
            self._open_failed(route)
            raise
        self._opened(route, conn, started, events)
        return conn


def _settle(future: asyncio.Future[None]) -> None:
    """The wait's time is up: look again (and find the deadline passed)."""
    if not future.done():
        future.set_result(None)
