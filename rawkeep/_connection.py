"""One HTTP/1.1 connection over a blocking socket: the thread shell of ``Exchange``.

Theory of operation
-------------------
Each request/response cycle is an ``_exchange.Exchange``: it turns the
request into bytes, the response's bytes into a head and body pieces, and
decides at the end whether the connection may carry another cycle. This
class owns the socket and the time: it writes what the exchange gives,
reads what it asks for, within the read and write timeouts, and records
the outcome (``close_reason``, the keep-alive facts in ``life``) for the
pool.

A cycle is: ``send_request`` (head and body), then ``receive_head``
(skipping 1xx interim responses), then ``receive_body`` until it returns
``None``. At that point the cycle is *finished*: the connection is either
ready for another one (``is_reusable``), on a fresh h11 state machine, or
must be closed, with ``close_reason`` saying why.

Timing the head. The read timeout bounds the wait for the final head as a
whole: interim responses (``102 Processing`` every few seconds) and a head
sent a few bytes at a time don't restart it. For the body, it bounds each
wait for bytes.

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
from typing import TYPE_CHECKING, Final

import h11

from ._exceptions import RawkeepError, ReadTimeout, RemoteProtocolError
from ._exchange import MAX_HEAD_SIZE, Exchange, Head, new_h11
from ._framing import NEED_DATA, READ_SIZE
from ._keepalive import Lifetime

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._events import CloseReason
    from ._socket import Stream
    from ._url import Route

__all__ = ["Connection", "Head"]

#: Bodies below this size are joined to the request head and sent in one
#: write; larger ones go out in their own writes, never copied.
SMALL_BODY: Final = 64 * 1024

#: In-memory bodies are written in blocks of this size, so that a server
#: answering early (413) is noticed between blocks, not after 64 MiB.
SEND_BLOCK: Final = 256 * 1024

#: Seconds to wait for "100 Continue" before sending the body anyway
#: (RFC 9110 section 10.1.1 lets a client stop waiting; curl waits 1 s).
EXPECT_CONTINUE_TIMEOUT: Final = 1.0


class Connection:
    """One HTTP/1.1 connection to one origin.

    Args:
        stream: the connected socket.
        route: where it goes (target origin, and proxy if any).
        connection_id: unique within the client.
        max_head_size: most bytes of response head (status line and
            headers) accepted before ``RemoteProtocolError``.
    """

    __slots__ = (
        "_ex",
        "_h11",
        "_head_deadline",
        "_head_read_size",
        "_max_head_size",
        "_stream",
        "close_reason",
        "id",
        "life",
        "origin",
        "origin_str",
        "reused",
        "route",
        "tls_version",
    )

    def __init__(
        self,
        stream: Stream,
        route: Route,
        connection_id: int,
        *,
        max_head_size: int = MAX_HEAD_SIZE,
    ) -> None:
        self._stream = stream
        self._h11 = new_h11(max_head_size)
        self._max_head_size = max_head_size
        # Never more than the head limit at a time: what follows the head
        # (a chunk-size line) must meet h11's bound too.
        self._head_read_size = min(READ_SIZE, max_head_size)
        self.id = connection_id
        self.route = route
        self.origin = route.origin
        self.origin_str = str(route.origin)
        self.tls_version = stream.tls_version
        #: Its keep-alive facts and place in the pool's life cycle.
        self.life = Lifetime(time.monotonic())
        #: The current request runs on a connection that served before.
        self.reused = False
        #: Why the connection can't be reused, once a cycle has ended.
        self.close_reason: CloseReason | None = None
        #: The current (or last) cycle; None before the first request.
        self._ex: Exchange | None = None
        #: When the wait for the final head must end (monotonic seconds).
        self._head_deadline: float | None = None

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
            self._h11, self._max_head_size, self.reused, self.life, request,
            ends_with_head=ends_with_head, asks_to_close=asks_to_close,
        )  # fmt: skip
        head = ex.request_head
        try:
            if not expect_continue:
                if ends_with_head:
                    self._stream.send_all(head, write_timeout)
                    return None
                if body is None or (isinstance(body, bytes) and len(body) <= SMALL_BODY):
                    # The common case: head and small body in one write.
                    if body:
                        head += b"".join(ex.body_bytes(body))
                    self._stream.send_all(head + ex.end_bytes(), write_timeout)
                    return None
            self._stream.send_all(head, write_timeout)
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
        for chunk in _blocks(body):
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
        the rest of the head, interim responses included, as a whole:
        however the server spreads it out, no server can hold a request
        here for longer than twice ``timeout``.

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
        """A read while waiting for the head: until its first bytes, within
        ``timeout``; from then on, all within ``timeout`` together."""
        ex = self._ex
        assert ex is not None
        if timeout is None or not ex.response_started:
            return self._stream.recv(self._head_read_size, timeout)
        deadline = self._head_deadline
        if deadline is None:
            deadline = self._head_deadline = time.monotonic() + timeout
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise ReadTimeout("no time left")
            return self._stream.recv(self._head_read_size, left)
        except ReadTimeout as exc:
            raise ReadTimeout(
                f"the response head did not arrive whole within read={timeout} s"
                f" ({ex.interim} interim responses so far)"
            ) from exc

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
        ex = self._ex
        assert ex is not None
        assert ex.body is not None
        whole = ex.body.at_hand
        if whole is not None:  # the common case: it came with the head
            self._finish(ex)
            return whole
        pieces = []
        while (data := self.receive_body(timeout)) is not None:
            pieces.append(data)
        return bytes(pieces[0]) if len(pieces) == 1 else b"".join(pieces)

    def body_left(self) -> int | None:
        """Bytes of a counted body not read yet; None when the body is not
        counted (chunked, until close) or no head was read."""
        ex = self._ex
        body = None if ex is None else ex.body
        return None if body is None else body.left

    def _finish(self, ex: Exchange) -> None:
        """The cycle ended: record the exchange's verdict; a connection fit
        for another cycle starts it on a fresh h11 state machine."""
        self.life.responses += 1
        self.close_reason = ex.finish()
        if self.close_reason is None:
            self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=self._max_head_size)

    @property
    def is_reusable(self) -> bool:
        """Whether the finished cycle left the connection fit for another."""
        ex = self._ex
        return ex is not None and ex.finished and self.close_reason is None

    @property
    def response_started(self) -> bool:
        """Whether any byte of the current response arrived (the retry rule
        depends on it)."""
        ex = self._ex
        return ex is not None and ex.response_started

    # -- the pool's questions -------------------------------------------------

    def carries_unretryable(self) -> bool:
        """Whether this idle connection may carry a request that can't be
        sent again (a POST, a streamed body) if it turns out to be broken.

        Not after a response to HEAD. A HEAD response announces a body it
        doesn't carry, and a server that gets this wrong (an application
        writing the body anyway, behind a server that passes it on) leaves
        that body on the connection. Arriving with the response it is
        caught at once (bytes past the response's end: the connection is
        closed); arriving later, it is caught by the probe before reuse or
        by the first bytes of the next response, which then can't begin a
        status line. Those bytes prove the request went out on a
        connection out of step, so a request that can be retried is, and
        only the others need keeping away. Closing after every HEAD (as
        some clients do) would cost every correct server a handshake.
        """
        ex = self._ex
        return ex is None or not ex.head_request

    def is_stale(self) -> bool:
        """Whether the idle connection was closed by the peer (or holds bytes
        nobody asked for). Never blocks. See ``_socket`` for why this works."""
        return self._stream.is_readable()

    def start_reuse(self) -> None:
        """Note that the next request goes over this already-used connection."""
        self.reused = True
        life = self.life
        if life.server_requests_left is not None:
            life.server_requests_left -= 1  # the server's Keep-Alive max

    def close(self) -> None:
        """Close the socket. Idempotent."""
        self.life.become_closed()
        self._stream.close()


def _blocks(body: bytes | Iterable[bytes] | None) -> Iterable[bytes | memoryview]:
    """The body as pieces to write: blocks of an in-memory body (views, no
    copies), or the caller's own pieces (empty ones skipped)."""
    if body is None:
        return ()
    if isinstance(body, bytes):
        view = memoryview(body)
        return (view[i : i + SEND_BLOCK] for i in range(0, len(body), SEND_BLOCK))
    return (chunk for chunk in body if chunk)
