"""A response body still on its connection, which it gives back when done.

The connection is owned by the body until the body has been read to the
end, then handed back to whoever lent it (the pool): reusable or not, the
connection's verdict decides. Closing the body earlier either drains a
small rest (so the connection can be reused) or closes the connection: a
half-read connection is never reused, because the next response would
start in the middle of this one's body.

``Response`` reads through this object and knows nothing of the pool.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final, Protocol

from ._exceptions import RawkeepError, with_context

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._connection import Connection
    from ._events import CloseReason

__all__ = ["DRAIN_LIMIT", "DRAIN_TIME", "BodyStream", "Lender"]

#: A body closed with at most this much left is drained so its connection
#: can be reused; with more left, reading it would cost more than a new
#: connection (a loopback connect is ~50 us, 64 KiB ~20 us of reads, but
#: over a real network the balance tips quickly).
DRAIN_LIMIT: Final = 64 * 1024

#: Most seconds spent draining, whatever the read timeout says.
DRAIN_TIME: Final = 1.0


class Lender(Protocol):
    """Where a connection goes back: the pool."""

    def release(self, conn: Connection) -> None:
        """Take back a connection whose cycle finished."""

    def discard(self, conn: Connection, reason: CloseReason = "error") -> None:
        """Close a connection that can't be reused."""


class BodyStream:
    """The body of one response on ``conn``, read within ``read_timeout``
    per wait; ``conn`` goes back to ``lender`` when the body ends, fails, or
    is closed."""

    __slots__ = ("_conn", "_lender", "_read_timeout", "received", "started")

    def __init__(self, conn: Connection, lender: Lender, read_timeout: float | None) -> None:
        self._conn: Connection | None = conn
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

    def start(self) -> Connection:
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
            self._give_back(conn, None if self._drain(conn) else "unread_body")

    def _drain(self, conn: Connection) -> bool:
        left = conn.body_left()
        if left is not None and left > DRAIN_LIMIT:
            return False
        deadline = time.monotonic() + DRAIN_TIME
        budget = DRAIN_LIMIT
        timeout = DRAIN_TIME if self._read_timeout is None else min(self._read_timeout, DRAIN_TIME)
        try:
            while (data := conn.receive_body(timeout)) is not None:
                budget -= len(data)
                if budget < 0 or time.monotonic() > deadline:
                    return False
        except RawkeepError:
            return False
        return True

    def _fail(self, conn: Connection, exc: BaseException) -> None:
        """Reading failed: close the connection, say which one in the error."""
        self._give_back(conn, "error")
        if isinstance(exc, RawkeepError):
            with_context(exc, origin=conn.origin_str, connection_id=conn.id)

    def _give_back(self, conn: Connection, reason: CloseReason | None) -> None:
        """Release ``conn`` to its lender, or close it for ``reason``."""
        self._conn = None
        if reason is None:
            self._lender.release(conn)
        else:
            self._lender.discard(conn, reason)
