"""The pool's thread shell: the core's decisions under a lock, I/O outside it.

``_pool_core.PoolCore`` decides (which connection, open or wait, what to
close); ``_pool_shell.PoolShell`` probes, gives back, closes and emits the
same way for both shells. This one adds what threads need: a lock around
the core, a ``threading.Condition`` to wait on for a free connection, and a
blocking connect. No connect, probe, close or callback ever runs under the
lock, so a slow TLS handshake in one thread never holds up another.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, TypeAlias

from ._pool_core import PoolStats
from ._pool_shell import PoolShell

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._connection import Connection
    from ._events import Emitter, Event
    from ._pool_core import PoolLimits
    from ._url import Route

__all__ = ["Opener", "Pool", "PoolStats"]

#: ``opener(route, connection_id, connect_timeout)`` opens a connection.
Opener: TypeAlias = "Callable[[Route, int, float | None], Connection]"


class Pool(PoolShell["Connection"]):
    """Idle connections by route (origin and proxy), under connection limits.

    Args:
        opener: opens a new connection (called outside the lock).
        emitter: where lifecycle events go.
        limits: the connection limits and expiry rules.
    """

    _waiters: int  # threads waiting on the condition

    def __init__(self, *, opener: Opener, emitter: Emitter, limits: PoolLimits) -> None:
        super().__init__(emitter, limits)
        self._opener = opener
        # Threads take the plain lock for bookkeeping (cheaper than entering
        # the Condition, which wraps the same lock) and use the Condition
        # only to wait for a slot and to wake waiters.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiters = 0

    def _wake(self) -> None:
        self._cond.notify_all()

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
            conn = None
            if not fresh:
                with self._lock:
                    conn = self._core.take_freshest(route, time.monotonic(), retryable)
            if conn is None or not self._reuse(conn, events):
                conn = self._checkout(
                    route, pool_timeout, connect_timeout, fresh, retryable, events
                )
        except BaseException:
            if events:
                self._emit_all(events)  # what happened before the failure
            raise
        if events:
            self._deliver(conn, events)
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
        """The general path (``PoolShell._checkout_steps``), waiting on the
        condition whenever it says so."""
        steps = self._checkout_steps(route, pool_timeout, fresh, retryable, events)
        try:
            wait = next(steps)
            while True:
                self._waiters += 1
                try:
                    self._cond.wait(wait)  # the steps hold the lock here
                finally:
                    self._waiters -= 1
                wait = steps.send(None)
        except StopIteration as done:
            conn: Connection | None = done.value
        finally:
            steps.close()
        if conn is not None:
            return conn
        return self._open_reserved(route, connect_timeout, events)

    def _open_reserved(
        self, route: Route, connect_timeout: float | None, events: list[Event] | None
    ) -> Connection:
        started = time.monotonic()
        try:
            conn = self._opener(route, next(self._ids), connect_timeout)
        except BaseException:
            self._open_failed(route)
            raise
        self._opened(route, conn, started, events)
        return conn
