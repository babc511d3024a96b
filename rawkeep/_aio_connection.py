"""One HTTP/1.1 connection over an asyncio stream: the asyncio shell of ``ConnectionCore``.

The same cycle as ``_connection.Connection`` (see its docstring), with
every wait awaited: ``send_request``, ``receive_head``, ``receive_body``.
What is decided (the exchange and its verdict, how the request is written,
how long the head may take) is ``ConnectionCore``'s and the exchange's;
this class only moves bytes with ``_aio_socket.AsyncStream``.

Cancellation. A task cancelled at any await here leaves the connection in
the middle of a cycle; the caller (the pool's user) then discards it, so a
half-used connection never goes back to the pool.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ._connection_core import (
    EXPECT_CONTINUE_TIMEOUT,
    ConnectionCore,
    blocks,
    check_piece,
    whole_request,
)
from ._exceptions import RawkeepError, ReadTimeout, RemoteProtocolError
from ._exchange import Exchange
from ._framing import NEED_DATA

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Iterable

    import h11

    from ._aio_socket import AsyncStream
    from ._exchange import Head

__all__ = ["AsyncConnection"]


class AsyncConnection(ConnectionCore):
    """One HTTP/1.1 connection to one origin over an ``AsyncStream``
    (arguments as for ``ConnectionCore``)."""

    __slots__ = ()

    _stream: AsyncStream

    # -- sending ------------------------------------------------------------

    async def send_request(
        self,
        request: h11.Request,
        body: bytes | Iterable[bytes] | AsyncIterable[bytes] | None,
        *,
        write_timeout: float | None,
        read_timeout: float | None,
        expect_continue: bool = False,
        ends_with_head: bool = False,
        asks_to_close: bool = False,
    ) -> Head | None:
        """As ``Connection.send_request``, awaited; ``body`` may also be an
        async iterable of bytes."""
        ex = self._ex = Exchange(
            self._max_head_size, self.reused, self.life, request,
            ends_with_head, asks_to_close,
        )  # fmt: skip
        try:
            whole = whole_request(ex, body, expect_continue, ends_with_head)
            if whole is not None:  # the common case: one write
                await self._stream.send_all(whole, write_timeout)
                return None
            await self._stream.send_all(ex.request_head, write_timeout)
            return await self._send_body(ex, body, write_timeout, read_timeout, expect_continue)
        except RemoteProtocolError:
            # The write failed: the server may have answered and closed.
            early = await self._response_after_failed_write(read_timeout)
            if early is None:
                raise
            return early

    async def _send_body(
        self,
        ex: Exchange,
        body: bytes | Iterable[bytes] | AsyncIterable[bytes] | None,
        write_timeout: float | None,
        read_timeout: float | None,
        expect_continue: bool,
    ) -> Head | None:
        """A body written after its head, in blocks, watching for an answer."""
        if expect_continue:
            early = await self._wait_for_continue(read_timeout)
            if early is not None:
                return early
        stream = self._stream
        if hasattr(body, "__aiter__"):
            async for chunk in body:  # type: ignore[union-attr]
                if not check_piece(chunk):
                    continue
                if stream.is_readable():  # answering (or closing) early
                    return await self.receive_head(read_timeout)
                for piece in ex.body_bytes(chunk):
                    await stream.send_all(piece, write_timeout)
        else:
            for block in blocks(body):
                if stream.is_readable():
                    return await self.receive_head(read_timeout)
                for piece in ex.body_bytes(block):
                    await stream.send_all(piece, write_timeout)
        await stream.send_all(ex.end_bytes(), write_timeout)
        return None

    async def _wait_for_continue(self, read_timeout: float | None) -> Head | None:
        """As ``Connection._wait_for_continue``, awaited."""
        ex = self._ex
        assert ex is not None  # a cycle has started
        deadline = time.monotonic() + EXPECT_CONTINUE_TIMEOUT
        self._head_deadline = None if read_timeout is None else deadline + read_timeout
        if not await self._stream.wait_readable(max(deadline - time.monotonic(), 0.0)):
            return None
        head = ex.feed_head(await self._recv_head(read_timeout), stop_at_continue=True)
        while head is NEED_DATA:
            head = ex.feed_head(await self._recv_head(read_timeout), stop_at_continue=True)
        return head  # the final head, or None for 100 Continue

    async def _response_after_failed_write(self, read_timeout: float | None) -> Head | None:
        timeout = EXPECT_CONTINUE_TIMEOUT if read_timeout is None else read_timeout
        try:
            return await self.receive_head(min(timeout, EXPECT_CONTINUE_TIMEOUT))
        except RawkeepError:
            return None

    # -- receiving ----------------------------------------------------------

    async def receive_head(self, timeout: float | None) -> Head:
        """As ``Connection.receive_head``, awaited."""
        ex = self._ex
        assert ex is not None  # a cycle has started
        self._head_deadline = None
        if ex.response_started:
            head = ex.feed_head(None)
        else:
            head = ex.feed_head(await self._stream.recv(self._head_read_size, timeout))
        while head is NEED_DATA:
            head = ex.feed_head(await self._recv_head(timeout))
        assert head is not None  # only with stop_at_continue
        return head

    async def _recv_head(self, timeout: float | None) -> bytes:
        ex = self._ex
        assert ex is not None
        if timeout is None or not ex.response_started:
            return await self._stream.recv(self._head_read_size, timeout)
        wait = self._head_wait(timeout)
        try:
            return await self._stream.recv(self._head_read_size, wait)
        except ReadTimeout as exc:
            raise self._head_timed_out(timeout) from exc

    async def receive_body(self, timeout: float | None) -> bytes | bytearray | None:
        """As ``Connection.receive_body``, awaited."""
        ex = self._ex
        assert ex is not None
        assert ex.body is not None
        body = ex.body
        piece = body.next_piece()
        while piece is NEED_DATA:
            piece = body.feed(await self._stream.recv(body.read_size(), timeout))
        if piece is None:
            self._finish(ex)
        return piece

    async def receive_rest(self, timeout: float | None) -> bytes:
        """As ``Connection.receive_rest``, awaited."""
        whole = self.take_whole_body()
        if whole is not None:  # the common case: it came with the head
            return whole
        pieces = []
        while (data := await self.receive_body(timeout)) is not None:
            pieces.append(data)
        return bytes(pieces[0]) if len(pieces) == 1 else b"".join(pieces)
