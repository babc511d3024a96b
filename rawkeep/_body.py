"""A response body still on its connection, which it gives back when done.

The connection is owned by the body until the body has been read to the
end, then handed back to whoever lent it (the pool): reusable or not, the
connection's verdict decides. Closing the body earlier either drains a
small rest (so the connection can be reused) or closes the connection: a
half-read connection is never reused, because the next response would
start in the middle of this one's body.

``Response`` reads through this object and knows nothing of the pool.
``BodyStream`` reads a blocking connection, ``AsyncBodyStream`` an asyncio
one; what they decide (when a body is read, given back, drained or closed)
is in ``_BodyBase``, once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final, Generic, Protocol, TypeVar

from ._exceptions import RawkeepError, with_context

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Iterator

    from ._aio_connection import AsyncConnection
    from ._connection import Connection
    from ._events import CloseReason

__all__ = ["DRAIN_LIMIT", "DRAIN_TIME", "AsyncBodyStream", "BodyStream", "Lender"]

#: A body closed with at most this much left is drained so its connection
#: can be reused; with more left, reading it would cost more than a new
#: connection (a loopback connect is ~50 us, 64 KiB ~20 us of reads, but
#: over a real network the balance tips quickly).
DRAIN_LIMIT: Final = 64 * 1024

#: Most seconds spent draining, whatever the read timeout says.
DRAIN_TIME: Final = 1.0


class _Source(Protocol):
    """What a body stream needs of a connection besides reading it."""

    id: int
    origin_str: str

    def body_left(self) -> int | None:
        """Bytes of a counted body not read yet (None: not counted)."""


C = TypeVar("C", bound=_Source)
C_contra = TypeVar("C_contra", contravariant=True)


class Lender(Protocol[C_contra]):
    """Where a connection goes back: the pool."""

    def release(self, conn: C_contra) -> None:
        """Take back a connection whose cycle finished."""

    def discard(self, conn: C_contra, reason: CloseReason = "error") -> None:
        """Close a connection that can't be reused."""


class _BodyBase(Generic[C]):
    """The body of one response on ``conn``, read within ``read_timeout``
    per wait; ``conn`` goes back to ``lender`` when the body ends, fails, or
    is closed."""

    __slots__ = ("_conn", "_lender", "_read_timeout", "received", "started")

    def __init__(self, conn: C, lender: Lender[C], read_timeout: float | None) -> None:
        self._conn: C | None = conn
        self._lender = lender
        self._read_timeout = read_timeout
        #: Bytes read so far, as received.
        self.received = 0
        #: Someone began to read it (it can be read once).
        self.started = False

    @property
    def is_closed(self) -> bool:
        """Whether the connection has been given back."""
        return self._conn is None

    def start(self) -> C:
        """Begin reading: the connection to read from.

        Raises:
            RuntimeError: it was read (or began to be) before, or closed.
        """
        if self.started:
            raise RuntimeError("the response body was already consumed")
        conn = self._conn
        if conn is None:
            raise RuntimeError("the response was closed before its body was read")
        self.started = True
        return conn

    def _may_drain(self, conn: C) -> bool:
        """Whether an unread rest is worth draining (it may still turn out
        too long or too slow: see ``_drained``)."""
        left = conn.body_left()
        return left is None or left <= DRAIN_LIMIT

    def _drain_timeout(self) -> float:
        """Each wait while draining."""
        return DRAIN_TIME if self._read_timeout is None else min(self._read_timeout, DRAIN_TIME)

    def _fail(self, conn: C, exc: BaseException) -> None:
        """Reading failed: close the connection, say which one in the error."""
        self._give_back(conn, "error")
        if isinstance(exc, RawkeepError):
            with_context(exc, origin=conn.origin_str, connection_id=conn.id)

    def _give_back(self, conn: C, reason: CloseReason | None) -> None:
        """Release ``conn`` to its lender, or close it for ``reason``."""
        self._conn = None
        if reason is None:
            self._lender.release(conn)
        else:
            self._lender.discard(conn, reason)

    def discard(self) -> None:
        """Close the connection without reading anything more. Idempotent."""
        conn = self._conn
        if conn is not None:
            self._give_back(conn, "unread_body")


class _Drain:
    """The budget of one drain: DRAIN_LIMIT bytes within DRAIN_TIME."""

    __slots__ = ("budget", "deadline")

    def __init__(self) -> None:
        self.budget = DRAIN_LIMIT
        self.deadline = time.monotonic() + DRAIN_TIME

    def spend(self, size: int) -> bool:
        """Count ``size`` bytes read; False when the budget is spent."""
        self.budget -= size
        return self.budget >= 0 and time.monotonic() <= self.deadline


class BodyStream(_BodyBase["Connection"]):
    """A body on a blocking connection (see ``_BodyBase``)."""

    __slots__ = ()

    def read_all(self) -> bytes:
        """The whole (rest of the) body in one piece, as received.

        Raises:
            ReadTimeout, RemoteProtocolError: the connection is then closed.
            RuntimeError: as for ``start``.
        """
        conn = self._conn
        if self.started or conn is None:
            self.start()  # raises the right RuntimeError
        assert conn is not None
        self.started = True
        try:
            content = conn.receive_rest(self._read_timeout)
        except BaseException as exc:
            self._fail(conn, exc)
            raise
        # The common end, in place: give the connection back.
        self._conn = None
        self._lender.release(conn)
        self.received += len(content)
        return content

    def pieces(self) -> Iterator[bytes]:
        """The body in pieces as they arrive. Left early (a ``break``, an
        exception in the caller's loop), the body is closed.

        Raises:
            as for ``read_all``.
        """
        conn = self.start()
        try:
            while True:
                try:
                    data = conn.receive_body(self._read_timeout)
                except BaseException as exc:
                    self._fail(conn, exc)
                    raise
                if data is None:
                    self._give_back(conn, None)
                    return
                self.received += len(data)
                yield data if type(data) is bytes else bytes(data)
        finally:
            self.close()

    def close(self) -> None:
        """Give the connection back without reading the rest: a small rest
        (at most DRAIN_LIMIT bytes, read within DRAIN_TIME) is drained and
        the connection reused; otherwise it is closed. Idempotent."""
        conn = self._conn
        if conn is not None:
            self._give_back(conn, None if self._drained(conn) else "unread_body")

    def _drained(self, conn: Connection) -> bool:
        if not self._may_drain(conn):
            return False
        drain = _Drain()
        timeout = self._drain_timeout()
        try:
            while (data := conn.receive_body(timeout)) is not None:
                if not drain.spend(len(data)):
                    return False
        except RawkeepError:
            return False
        return True


class AsyncBodyStream(_BodyBase["AsyncConnection"]):
    """A body on an asyncio connection (see ``_BodyBase``). A task cancelled
    while reading closes the connection: it is never given back half-read."""

    __slots__ = ()

    async def read_all(self) -> bytes:
        """The whole (rest of the) body in one piece, as received.

        Raises:
            ReadTimeout, RemoteProtocolError: the connection is then closed.
            RuntimeError: as for ``start``.
        """
        conn = self.start()
        try:
            content = await conn.receive_rest(self._read_timeout)
        except BaseException as exc:
            self._fail(conn, exc)
            raise
        self._give_back(conn, None)
        self.received += len(content)
        return content

    async def pieces(self) -> AsyncGenerator[bytes, None]:
        """The body in pieces as they arrive. Left early (the generator
        closed, an exception in the caller's loop), the body is closed as
        ``close`` closes it: a small rest drained, a larger one not.

        Raises:
            as for ``read_all``.
        """
        conn = self.start()
        try:
            while True:
                try:
                    data = await conn.receive_body(self._read_timeout)
                except BaseException as exc:
                    self._fail(conn, exc)
                    raise
                if data is None:
                    self._give_back(conn, None)
                    return
                self.received += len(data)
                yield data if type(data) is bytes else bytes(data)
        finally:
            await self.close()

    async def close(self) -> None:
        """As ``BodyStream.close``, awaited. Idempotent."""
        conn = self._conn
        if conn is not None:
            try:
                drained = await self._drained(conn)
            except BaseException:
                self._give_back(conn, "unread_body")
                raise
            self._give_back(conn, None if drained else "unread_body")

    async def _drained(self, conn: AsyncConnection) -> bool:
        if not self._may_drain(conn):
            return False
        drain = _Drain()
        timeout = self._drain_timeout()
        try:
            while (data := await conn.receive_body(timeout)) is not None:
                if not drain.spend(len(data)):
                    return False
        except RawkeepError:
            return False
        return True
