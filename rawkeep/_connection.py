"""One HTTP/1.1 connection over a blocking socket: the thread shell of ``ConnectionCore``.

Theory of operation
-------------------
Each request/response cycle is an ``_exchange.Exchange``: it turns the
request into bytes, the response's bytes into a head and body pieces, and
decides at the end whether the connection may carry another cycle.
``_connection_core.ConnectionCore`` holds the connection's facts and makes
the rest of its decisions (how the request is written, how long a wait for
the head may last). This class owns the blocking socket: it writes what
the exchange gives and reads what it asks for, within the timeouts.

A cycle is: ``send_request`` (head and body), then ``receive_head``
(skipping 1xx interim responses), then ``receive_body`` until it returns
``None``. At that point the cycle is *finished*: the connection is either
ready for another one (``is_reusable``; each cycle runs on a fresh h11
state machine), or must be closed, with ``close_reason`` saying why.

Answers before the request is sent whole. The server may answer before it
has the whole body: a final status to ``Expect: 100-continue`` (417,
401...), or an early error such as 413 in the middle of an upload. That
response is returned instead of being lost behind a broken pipe; the rest
of the body is not sent and the connection closes after the response
("early_response").

A connection is owned by one thread at a time (the pool hands it out), so
nothing here takes a lock.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ._connection_core import EXPECT_CONTINUE_TIMEOUT, ConnectionCore, blocks, whole_request
from ._exceptions import RawkeepError, ReadTimeout, RemoteProtocolError
from ._exchange import Exchange, Head
from ._framing import NEED_DATA

if TYPE_CHECKING:
    from collections.abc import Iterable

    import h11

    from ._socket import Stream

__all__ = ["Connection", "Head"]


class Connection(ConnectionCore):
    """One HTTP/1.1 connection to one origin over a blocking ``Stream``
    (arguments as for ``ConnectionCore``)."""

    __slots__ = ()

    _stream: Stream

    # -- sending ------------------------------------------------------------

    def send_request(
        self,
        request: h11.Request,
        body: bytes | Iterable[bytes] | None,
        *,
        write_timeout: float | None,
        read_timeout: float | None,
        expect_continue: bool = False,
        ends_with_head: bool = False,
        asks_to_close: bool = False,
    ) -> Head | None:
        """Start a cycle: send the request head and body.

        ``ends_with_head`` says the request has no body and no chunked
        framing, and ``asks_to_close`` that it carries ``Connection: close``.

        Returns:
            The final response head if the server answered early, else None.

        Raises:
            LocalProtocolError: the body disagrees with its framing headers.
            WriteTimeout, ReadTimeout, RemoteProtocolError: from the socket.
        """
        ex = self._ex = Exchange(
            self._max_head_size, self.reused, self.life, request,
            ends_with_head, asks_to_close,
        )  # fmt: skip
        try:
            whole = whole_request(ex, body, expect_continue, ends_with_head)
            if whole is not None:  # the common case: one write
                self._stream.send_all(whole, write_timeout)
                return None
            self._stream.send_all(ex.request_head, write_timeout)
            return self._send_body(ex, body, write_timeout, read_timeout, expect_continue)
        except RemoteProtocolError:
            # The write failed: the server may have answered and closed
            # (413 and close is common). Read what it sent, if anything.
            early = self._response_after_failed_write(read_timeout)
            if early is None:
                raise
            return early

    def _send_body(
        self,
        ex: Exchange,
        body: bytes | Iterable[bytes] | None,
        write_timeout: float | None,
        read_timeout: float | None,
        expect_continue: bool,
    ) -> Head | None:
        """A body written after its head, in blocks, watching for an answer."""
        if expect_continue:
            early = self._wait_for_continue(read_timeout)
            if early is not None:
                return early
        for chunk in blocks(body):
            # An idle peer never talks while we upload; if it does, it
            # is answering (or closing) early: stop and read.
            if self._stream.is_readable():
                return self.receive_head(read_timeout)
            for piece in ex.body_bytes(chunk):
                self._stream.send_all(piece, write_timeout)
        self._stream.send_all(ex.end_bytes(), write_timeout)
        return None

    def _wait_for_continue(self, read_timeout: float | None) -> Head | None:
        """After a head with ``Expect: 100-continue``: None to send the body
        (100 Continue came, or nothing came within EXPECT_CONTINUE_TIMEOUT,
        RFC 9110 section 10.1.1), or the final response that refused it."""
        ex = self._ex
        assert ex is not None  # a cycle has started
        deadline = time.monotonic() + EXPECT_CONTINUE_TIMEOUT
        self._head_deadline = None if read_timeout is None else deadline + read_timeout
        while self._stream.wait_readable(max(deadline - time.monotonic(), 0.0)):
            head = ex.feed_head(self._recv_head(read_timeout), stop_at_continue=True)
            while head is NEED_DATA:
                head = ex.feed_head(self._recv_head(read_timeout), stop_at_continue=True)
            return head  # the final head, or None for 100 Continue
        return None

    def _response_after_failed_write(self, read_timeout: float | None) -> Head | None:
        timeout = EXPECT_CONTINUE_TIMEOUT if read_timeout is None else read_timeout
        try:
            return self.receive_head(min(timeout, EXPECT_CONTINUE_TIMEOUT))
        except RawkeepError:
            return None

    # -- receiving ----------------------------------------------------------

    def receive_head(self, timeout: float | None) -> Head:
        """Read up to the final response head; 1xx responses are skipped.

        ``timeout`` bounds the wait for the first bytes, then the wait for
        the rest of the head, interim responses included, as a whole
        (``ConnectionCore._head_wait``).

        Raises:
            ReadTimeout, RemoteProtocolError.
        """
        ex = self._ex
        assert ex is not None  # a cycle has started
        self._head_deadline = None  # set on the first read after the first bytes
        # Bytes h11 already holds (read along with an early answer) first;
        # else read before asking: after a request, h11 can only say "need
        # data" until something arrives.
        if ex.response_started:
            head = ex.feed_head(None)
        else:
            head = ex.feed_head(self._stream.recv(self._head_read_size, timeout))
        while head is NEED_DATA:
            head = ex.feed_head(self._recv_head(timeout))
        assert head is not None  # only with stop_at_continue
        return head

    def _recv_head(self, timeout: float | None) -> bytes:
        """A read while waiting for the head, within what is left of the
        time for it."""
        ex = self._ex
        assert ex is not None
        if timeout is None or not ex.response_started:
            return self._stream.recv(self._head_read_size, timeout)
        wait = self._head_wait(timeout)
        try:
            return self._stream.recv(self._head_read_size, wait)
        except ReadTimeout as exc:
            raise self._head_timed_out(timeout) from exc

    def receive_body(self, timeout: float | None) -> bytes | bytearray | None:
        """The next piece of the body, or ``None`` once it has all arrived.

        When ``None`` is returned the cycle is finished and ``is_reusable`` /
        ``close_reason`` are final.

        Raises:
            ReadTimeout, RemoteProtocolError: truncated or malformed body.
        """
        ex = self._ex
        assert ex is not None
        assert ex.body is not None
        body = ex.body
        piece = body.next_piece()
        while piece is NEED_DATA:
            piece = body.feed(self._stream.recv(body.read_size(), timeout))
        if piece is None:
            self._finish(ex)
        return piece

    def receive_rest(self, timeout: float | None) -> bytes:
        """The rest of the body as one bytes object; the cycle is then
        finished, as after ``receive_body`` returned ``None``.

        Raises:
            ReadTimeout, RemoteProtocolError: truncated or malformed body.
        """
        whole = self.take_whole_body()
        if whole is not None:  # the common case: it came with the head
            return whole
        pieces = []
        while (data := self.receive_body(timeout)) is not None:
            pieces.append(data)
        return bytes(pieces[0]) if len(pieces) == 1 else b"".join(pieces)
