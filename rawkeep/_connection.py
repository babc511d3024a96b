"""One HTTP/1.1 connection: a socket plus an ``h11.Connection``.

Theory of operation
-------------------
h11 holds the protocol state (who is sending what, how the body is framed,
whether the connection can carry another exchange); this module moves the
bytes and keeps the bookkeeping the pool needs to decide on reuse.

A request/response cycle is: ``send_request`` (head and body), then
``receive_head`` (skipping 1xx interim responses), then ``receive_body``
until it returns ``None``. At that point the cycle is *finished*, and the
connection is either ready for another one (``reusable`` is true) or must be
closed, with ``close_reason`` saying why.

When is a connection reusable?
  HTTP/1.1 connections are persistent by default (RFC 9112 section 9.3):
  nobody needs to ask for keep-alive. A connection is closed after a cycle
  when either side sent ``Connection: close``, when the response was HTTP/1.0
  (h11 never reuses those, even with ``Connection: keep-alive``: HTTP/1.0
  keep-alive is an obsolete extension, RFC 9112 appendix C.2.2), or when the
  body's end could only be known by the server closing (a response with
  neither Content-Length nor chunked framing). For bodies h11 reads
  (chunked, or until the close) we ask h11 (both states DONE); for
  Content-Length bodies, which are counted here (see "Content-Length bodies
  past h11" below), the same rules are applied to what h11 parsed: its
  state on our side, the response's version and ``Connection`` header.

The server's ``Keep-Alive`` header
  ``Keep-Alive: timeout=5, max=100`` (RFC 2068 section 19.7.1.1; never
  standardised for HTTP/1.1 but sent by Apache, Node and others) tells how
  long the server keeps an idle connection and how many more requests it
  will take. We record both and stop reusing the connection *before* the
  server would close it: after ``timeout - margin`` seconds idle (the margin
  covers the time between the server starting its timer and us seeing the
  response's end), and after ``max`` further requests. This removes most of
  the keep-alive race at its source.

Bookkeeping
  ``life`` (a ``_keepalive.Lifetime``) holds the facts the pool's rules
  need: completed cycles, when it was opened and went idle, the server's
  limits. ``response_started`` tells whether any byte of the current
  response arrived: the retry rule (RFC 9112 section 9.3.1) depends on it.

A connection is owned by one thread at a time (the pool hands it out), so
nothing here takes a lock.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final, NamedTuple, cast

import h11

from ._exceptions import LocalProtocolError, RawkeepError, ReadTimeout, RemoteProtocolError
from ._headers import parse_keep_alive
from ._keepalive import Lifetime

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._events import CloseReason
    from ._socket import Stream
    from ._url import Route

__all__ = ["Connection", "Head"]

#: Bytes asked of the socket per read through h11 (heads, and the bodies
#: h11 reads: chunked, or until the server closes). Each read gets a new
#: bytes object of what arrived: an idle connection holds no read buffer (it
#: would cost 64 KiB per pooled connection), and h11 copies the bytes into
#: its own buffer anyway.
READ_SIZE: Final = 64 * 1024

#: Most bytes of response head h11 will buffer before giving up: a server
#: sending an endless header block gets RemoteProtocolError, not our memory.
MAX_HEAD_SIZE: Final = 64 * 1024

#: Most bytes asked of the socket per read of a Content-Length body (read
#: past h11, see ``receive_body``). Loopback reads rarely return more; a
#: larger request only costs a larger allocation.
BODY_READ: Final = 256 * 1024

#: Bodies below this size are joined to the request head and sent in one
#: write; larger ones go out in their own writes, never copied.
SMALL_BODY: Final = 64 * 1024

#: In-memory bodies are written in blocks of this size, so that a server
#: answering early (413) is noticed between blocks, not after 64 MiB.
SEND_BLOCK: Final = 256 * 1024

#: Most interim (1xx) responses accepted before the final one. Servers send
#: one or two (100 Continue, 103 Early Hints); 102 Processing comes every
#: few seconds of a long operation, which the read timeout bounds anyway.
MAX_INTERIM_RESPONSES: Final = 32

#: Seconds to wait for "100 Continue" before sending the body anyway
#: (RFC 9110 section 10.1.1 lets a client stop waiting; curl waits 1 s).
EXPECT_CONTINUE_TIMEOUT: Final = 1.0


class Head(NamedTuple):
    """A final response head, as the caller sees it."""

    status: int
    reason: str
    http_version: str  # "HTTP/1.1" or "HTTP/1.0"
    #: As h11 parsed (and validated) them, names in their original case;
    #: ``Headers`` are built from them only if someone looks.
    raw_headers: list[tuple[bytes, bytes]]
    #: The Content-Encoding header, the one the body path needs.
    content_encoding: str | None


#: h11 events are immutable; the one that ends every request body is shared.
_END: Final = h11.EndOfMessage()


class Connection:
    """One HTTP/1.1 connection to one origin.

    Args:
        stream: the connected socket.
        max_head_size: most bytes of response head (status line and
            headers) accepted before ``RemoteProtocolError``.
        route: where it goes (target origin, and proxy if any).
        connection_id: unique within the client.
    """

    __slots__ = (
        "_asks_to_close",
        "_body_left",
        "_body_read_size",
        "_early",
        "_end_untold",
        "_eof",
        "_finished",
        "_h11",
        "_head_bytes",
        "_head_deadline",
        "_head_read_size",
        "_head_request",
        "_interim",
        "_max_head_size",
        "_past_end",
        "_read_first",
        "_response_close",
        "_stream",
        "close_reason",
        "id",
        "life",
        "origin",
        "origin_str",
        "response_started",
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
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head_size)
        self._max_head_size = max_head_size
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
        #: Some byte of the current response has arrived.
        self.response_started = False
        #: Why the connection can't be reused, once a cycle has ended.
        self.close_reason: CloseReason | None = None
        #: Per response: bytes of a counted body still to come (None for the
        #: framings h11 reads: chunked, or until the server closes).
        self._body_left: int | None = None
        self._body_read_size = READ_SIZE
        self._head_bytes = 0  # bytes read before the final head was parsed
        self._interim = 0  # interim (1xx) responses before the final head
        #: When the wait for the final head must end (monotonic seconds).
        self._head_deadline: float | None = None
        #: For a counted body: what h11 read past the head, whether it had
        #: seen the server close, whether bytes came past the body's end.
        self._early = b""
        self._eof = False
        self._past_end = False
        #: Why the response forbids another exchange (None: it allows one).
        self._response_close: CloseReason | None = None
        self._head_request = False
        #: A bodiless request went out without h11's EndOfMessage, and
        #: whether it asked to close (see "The end of a bodiless request").
        self._end_untold = False
        self._asks_to_close = False
        #: The request just went out whole: read before asking h11.
        self._read_first = False
        #: The current cycle ended (its response was read to the end).
        self._finished = False

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
        """Send the request head and body.

        ``ends_with_head`` says the request has no body and no chunked
        framing, and ``asks_to_close`` that it carries ``Connection: close``
        (see "The end of a bodiless request" below).

        The server may answer before it has the whole body: a final status
        to ``Expect: 100-continue`` (417, 401...), or an early error such as
        413 in the middle of an upload. That response is returned instead of
        being lost behind a broken pipe; the rest of the body is not sent and
        the connection closes after the response ("early_response").

        Returns:
            The final response head if the server answered early, else None.

        Raises:
            LocalProtocolError: the body disagrees with its framing headers.
            WriteTimeout, ReadTimeout, RemoteProtocolError: from the socket.
        """
        self.response_started = False
        self._finished = False
        self._head_bytes = 0
        self._interim = 0
        self._read_first = False
        self._end_untold = False
        self._head_request = request.method == b"HEAD"
        h11_conn = self._h11
        try:
            head = h11_conn.send(request)
            if ends_with_head and not expect_continue:
                self._stream.send_all(head, write_timeout)
                self._end_untold = True
                self._asks_to_close = asks_to_close
                self._read_first = True
                return None
            if not expect_continue and (
                body is None or (isinstance(body, bytes) and len(body) <= SMALL_BODY)
            ):
                # The common case: head and small body in one write.
                if body:
                    head += b"".join(self._frame(body))
                self._stream.send_all(head + h11_conn.send(_END), write_timeout)
                self._read_first = True
                return None
            self._stream.send_all(head, write_timeout)
            if expect_continue:
                early = self._wait_for_continue(read_timeout)
                if early is not None:
                    return early
            for chunk in _blocks(body):
                # An idle peer never talks while we upload; if it does, it
                # is answering (or closing) early: stop and read.
                if self._stream.is_readable():
                    return self.receive_head(read_timeout)
                for piece in self._frame(chunk):
                    self._stream.send_all(piece, write_timeout)
            self._stream.send_all(h11_conn.send(_END), write_timeout)
            return None
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(f"can't send request: {exc}") from exc
        except RemoteProtocolError:
            # The write failed: the server may have answered and closed
            # (413 and close is common). Read what it sent, if anything.
            early = self._response_after_failed_write(read_timeout)
            if early is None:
                raise
            return early

    # The end of a bodiless request
    # ------------------------------
    # A GET's head is the whole request: h11's EndOfMessage for it writes no
    # bytes and only moves our side of h11's state machine to DONE (or to
    # MUST_CLOSE after "Connection: close"), at a cost of 1.5 us per request.
    # When the response's body is counted past h11, that state machine is
    # replaced at the end of the exchange, so the move is never needed: the
    # reuse verdict takes "sent whole" from here and "asked to close" from
    # the request's headers. When h11 reads the body (chunked, or until the
    # close), it is told before it is asked to go on (``_finish_cycle``).

    def _frame(self, chunk: bytes | memoryview) -> list[bytes]:
        """The pieces h11 writes for one body chunk: the chunk itself (not
        copied), with chunked framing around it when the body is chunked."""
        # h11 types Data.data as bytes; it only takes len() of it and passes
        # it through, so a memoryview works and saves a copy per block.
        return self._h11.send_with_data_passthrough(h11.Data(data=chunk)) or []  # type: ignore[arg-type]

    def _wait_for_continue(self, read_timeout: float | None) -> Head | None:
        """After a head with ``Expect: 100-continue``: None to send the body
        (100 Continue came, or nothing came within EXPECT_CONTINUE_TIMEOUT,
        RFC 9110 section 10.1.1), or the final response that refused it."""
        deadline = time.monotonic() + EXPECT_CONTINUE_TIMEOUT
        self._head_deadline = None if read_timeout is None else deadline + read_timeout
        while self._stream.wait_readable(max(deadline - time.monotonic(), 0.0)):
            event = self._next_event(read_timeout)
            if type(event) is h11.Response:
                return self._note_head(event)
            self._note_interim(event)
            if cast("h11.InformationalResponse", event).status_code == 100:
                return None
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

        ``timeout`` bounds the wait for the final head as a whole, however
        the server spreads it out: interim responses (``102 Processing``
        every few seconds) and heads sent a few bytes at a time don't
        restart it, so no server can hold a request here for longer.

        Raises:
            ReadTimeout, RemoteProtocolError.
        """
        self._head_deadline = None if timeout is None else time.monotonic() + timeout
        if self._read_first:
            # The request went out in one piece and h11 holds no bytes yet,
            # so asking it for an event first would only say NEED_DATA.
            self._read_first = False
            self._feed_head(timeout)
        while True:
            event = self._next_event(timeout)
            if type(event) is h11.Response:
                return self._note_head(event)
            self._note_interim(event)

    def _note_interim(self, event: h11.Event) -> None:
        """Count an interim (1xx) response against the head's bounds: their
        number, and their bytes with the final head's (``max_header_size``),
        checked as each arrives rather than after a flood."""
        if type(event) is not h11.InformationalResponse:
            raise RemoteProtocolError(f"unexpected {type(event).__name__} before the response")
        self._interim += 1
        if self._interim > MAX_INTERIM_RESPONSES:
            raise RemoteProtocolError(
                f"more than {MAX_INTERIM_RESPONSES} interim (1xx) responses before the final one"
            )
        if self._head_bytes > self._max_head_size:
            self._check_head_size()

    def receive_body(self, timeout: float | None) -> bytes | bytearray | None:
        """The next piece of the body, or ``None`` once it has all arrived.

        When ``None`` is returned the cycle is finished and ``is_reusable`` /
        ``close_reason`` are final.

        Raises:
            ReadTimeout, RemoteProtocolError: truncated or malformed body.
        """
        if self._body_left is not None:
            return self._receive_counted(timeout)
        # Chunked, or delimited by the server closing: h11 parses it.
        h11_conn = self._h11
        try:
            while True:
                event = h11_conn.next_event()
                kind = type(event)
                if kind is h11.Data:
                    data: bytes = event.data  # type: ignore[union-attr]
                    if data:
                        return data
                elif kind is h11.EndOfMessage:
                    self._finish_cycle()
                    return None
                elif event is h11.NEED_DATA:
                    h11_conn.receive_data(self._stream.recv(self._body_read_size, timeout))
                else:
                    raise RemoteProtocolError(f"unexpected {kind.__name__} in body")
        except h11.RemoteProtocolError as exc:
            raise self._remote_error(exc, "body") from exc

    def receive_rest(self, timeout: float | None) -> bytes:
        """The rest of the body as one bytes object; the cycle is then
        finished, as after ``receive_body`` returned ``None``.

        Raises:
            ReadTimeout, RemoteProtocolError: truncated or malformed body.
        """
        early = self._early
        if self._body_left == len(early):
            # The common case: a small body that came whole with the head.
            self._early = b""
            self._body_left = 0
            self._finish_counted()
            return early
        pieces = []
        while (data := self.receive_body(timeout)) is not None:
            pieces.append(data)
        return bytes(pieces[0]) if len(pieces) == 1 else b"".join(pieces)

    # Content-Length bodies past h11
    # ------------------------------
    # A body of known length needs no parsing, only counting. Through h11,
    # every block is copied into its buffer, sliced out again as a Data
    # event and turned into bytes, and even a 13-byte body costs two more
    # events and a start_next_cycle: about 8 us of Python per response,
    # a fifth of a whole small request, and half the speed of the socket on
    # large downloads. So once h11 has parsed and validated the head (and
    # said, through its headers, that the framing is Content-Length), the
    # body is taken here: first what h11 read past the head, then straight
    # from the socket, never past the body's end. The length follows RFC
    # 9112 section 6.3, as h11 applies it: no body at all for HEAD, 204 and
    # 304, else the Content-Length. h11, having seen the head only, can't
    # finish the cycle; when both sides allow another exchange the
    # connection gets a fresh h11 state machine instead, exactly what
    # start_next_cycle would leave.

    def _receive_counted(self, timeout: float | None) -> bytes | None:
        left = self._body_left
        assert left is not None  # only called for counted bodies
        early = self._early
        if early:
            # What the read of the head brought along: the body's start (or
            # all of it), and, from a broken server, bytes past its end.
            self._early = b""
            if len(early) > left:
                self._past_end = True
                early = early[:left]
            if early:
                self._body_left = left - len(early)
                return early
        if left == 0:
            self._finish_counted()
            return None
        # (When h11 had already seen the server close, nothing more can come.)
        data = b"" if self._eof else self._stream.recv(min(left, BODY_READ), timeout)
        if not data:
            raise RemoteProtocolError(
                f"server closed the connection with {left} bytes of the body still to come"
            )
        self._body_left = left - len(data)
        return data

    def _finish_counted(self) -> None:
        """The counted body has ended: is the connection fit for another
        exchange? The same verdicts, in the same order, as the h11 path."""
        self.life.responses += 1
        self._finished = True
        if self._end_untold:  # see "The end of a bodiless request"
            sent_whole, we_keep_open = True, not self._asks_to_close
        else:
            our_state = self._h11.our_state
            sent_whole, we_keep_open = our_state is not h11.SEND_BODY, our_state is h11.DONE
        if not sent_whole:
            self.close_reason = "early_response"
        elif self._response_close is not None:
            self.close_reason = self._response_close
        elif not we_keep_open:
            self.close_reason = "connection_close"  # our request said so
        elif self._past_end:
            self.close_reason = "error"
        elif self._eof:
            self.close_reason = "connection_close"
        else:
            self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=self._max_head_size)

    def _next_event(self, timeout: float | None) -> h11.Event:
        """h11's next event up to the end of a head, reading as needed."""
        h11_conn = self._h11
        try:
            while True:
                event = h11_conn.next_event()
                if event is not h11.NEED_DATA:
                    if event is h11.PAUSED:  # pragma: no cover - cycles always finish
                        raise RemoteProtocolError("connection paused mid-cycle")
                    return event  # type: ignore[return-value]
                self._feed_head(timeout)
        except h11.RemoteProtocolError as exc:
            raise self._remote_error(exc, "head") from exc

    def _remote_error(self, exc: h11.RemoteProtocolError, part: str) -> RemoteProtocolError:
        """What to raise for h11's verdict on the server's bytes, in words
        about the response (h11's own speak of roles and states)."""
        if not self.response_started:
            return RemoteProtocolError("server closed the connection without sending a response")
        if exc.error_status_hint == 431:  # h11's "receive buffer too long"
            return RemoteProtocolError(
                "response head (or a chunk-size line) larger than"
                f" max_header_size={self._max_head_size} bytes"
            )
        closed = self._h11.trailing_data[1]
        if part == "head":
            if closed:
                after = ""
                if self._interim:
                    after = f" after {self._interim} interim (1xx) response"
                    after += "s" if self._interim > 1 else ""
                return RemoteProtocolError(
                    f"server closed the connection{after} before the response head was complete"
                )
            return RemoteProtocolError(f"malformed response head: {_h11_words(exc)}")
        if closed:
            return RemoteProtocolError(
                "server closed the connection before the response body was complete"
            )
        return RemoteProtocolError(f"malformed response body: {_h11_words(exc)}")

    def _feed_head(self, timeout: float | None) -> None:
        # Never more than the head limit at a time: what follows the head
        # (a chunk-size line) must meet h11's bound too.
        if self._head_bytes == 0:
            data = self._stream.recv(self._head_read_size, timeout)
        else:
            data = self._recv_more_head(timeout)
        if not self.response_started:
            if data.startswith(b"HTTP/"):
                self.response_started = True
            elif data:
                self._check_first_bytes(data)
        self._head_bytes += len(data)
        self._h11.receive_data(data)  # b"" tells h11 the peer closed

    def _recv_more_head(self, timeout: float | None) -> bytes:
        """A later read of the same head: within what is left of the time
        the whole head may take (see ``receive_head``)."""
        deadline = self._head_deadline
        if deadline is None:
            return self._stream.recv(self._head_read_size, timeout)
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise ReadTimeout("no time left")
            return self._stream.recv(self._head_read_size, left)
        except ReadTimeout as exc:
            raise ReadTimeout(
                f"the response head did not arrive whole within read={timeout} s"
                f" ({self._interim} interim responses, {self._head_bytes} bytes so far)"
            ) from exc

    def _check_first_bytes(self, data: bytes) -> None:
        """The first bytes after a request must begin a status line
        ("HTTP/", RFC 9112 section 4; h11 takes no blank line before it).
        Anything else belongs to no response of ours: on a reused
        connection, the rest of an earlier response the server got wrong
        (a body after a HEAD response, a Content-Length too small), so the
        connection was out of step before the request went out. Raised
        with ``response_started`` still false: for the retry rule this is
        the keep-alive race, and the request was not answered."""
        if b"HTTP/".startswith(data):  # the start of one, cut short
            self.response_started = True
            return
        if self.reused:
            raise RemoteProtocolError(
                f"connection out of step: {len(data)} bytes that belong to no response"
                f" ({_excerpt(data)}) arrived before the response"
            )
        raise RemoteProtocolError(
            f"the response does not begin with a status line: {_excerpt(data)}"
        )

    def _note_head(self, response: h11.Response) -> Head:
        """Build the head the caller gets, and take from it, in one pass over
        the headers, what this connection needs: the body's length, whether
        the response allows another exchange, the server's Keep-Alive."""
        if self._head_bytes > self._max_head_size:
            self._check_head_size()
        raw = response.headers.raw_items()
        length = None
        chunked = False
        close = False
        keep_alive = []
        encoding = None
        for name, value in raw:
            name = name.lower()
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"connection":
                close = close or b"close" in value.lower()
            elif name == b"keep-alive":
                keep_alive.append(value.decode("latin-1"))
            elif name == b"content-encoding":
                text = value.decode("latin-1")
                encoding = text if encoding is None else f"{encoding}, {text}"
        status = response.status_code
        if self._head_request or status == 204 or status == 304:
            self._body_left = 0  # no body, whatever the headers say
        else:
            # h11 checked Content-Length is one number; chunked wins.
            self._body_left = None if chunked or length is None else int(length)
        version = response.http_version
        version_text = "HTTP/1.1" if version == b"1.1" else self._check_version(version)
        if version < b"1.1":
            self._response_close = "http_1_0"
        elif close:
            self._response_close = "connection_close"
        elif chunked and length is not None:
            # Both framings at once: chunked wins (RFC 9112 section 6.3), but
            # the message "ought to be handled as an error": read this body,
            # then never trust the connection with another.
            self._response_close = "error"
        else:
            self._response_close = None
        if self._body_left is not None:
            self._early, self._eof = self._h11.trailing_data
            self._past_end = False
        # Chunk-size lines and trailers are bounded by h11 only while they
        # are incomplete; reading no more than the limit at a time keeps a
        # complete one under twice the limit.
        self._body_read_size = min(READ_SIZE, self._max_head_size) if chunked else READ_SIZE
        if keep_alive:
            self.life.note_keep_alive(*parse_keep_alive(keep_alive))
        return Head(
            response.status_code,
            response.reason.decode("latin-1"),
            version_text,
            raw,
            encoding,
        )

    @staticmethod
    def _check_version(version: bytes) -> str:
        """The version as reported, for a status line not HTTP/1.1.

        Only HTTP/1.x can answer an HTTP/1.1 request (RFC 9110 section
        6.2): HTTP/2.0 or HTTP/0.9 in a status line is a broken server. A
        higher 1.x minor (HTTP/1.9) is read as 1.1, the highest we know,
        as that section says, but reported as the server wrote it.
        """
        if not version.startswith(b"1."):
            raise RemoteProtocolError(
                f"the server answered with HTTP/{version.decode('ascii')},"
                " which can't answer an HTTP/1.1 request"
            )
        return "HTTP/" + version.decode("ascii")

    def _check_head_size(self) -> None:
        """Refuse a response head larger than the limit even when it arrived
        whole (h11 itself bounds only heads still incomplete)."""
        leftover, _ = self._h11.trailing_data  # bytes read past the head
        size = self._head_bytes - len(leftover)
        if size > self._max_head_size:
            raise RemoteProtocolError(
                f"response head of {size} bytes is larger than"
                f" max_header_size={self._max_head_size} bytes"
            )

    def _finish_cycle(self) -> None:
        self.life.responses += 1
        self._finished = True
        h11_conn = self._h11
        if self._end_untold:
            self._end_untold = False
            h11_conn.send(_END)  # writes nothing; see "The end of a bodiless request"
        # Look at what h11 still holds, whatever the states say: bytes after
        # the response (never valid from an HTTP/1.1 server we did not
        # pipeline to), or the server's EOF already seen (a body delimited
        # by the close: h11 would report it only on the next event).
        leftover, closed = h11_conn.trailing_data
        if self._response_close is None and not (leftover or closed):
            try:
                h11_conn.start_next_cycle()  # h11 checks both sides are DONE
                return
            except h11.LocalProtocolError:
                pass  # our side asked to close, or never finished sending
        if h11_conn.our_state is h11.DONE and h11_conn.their_state is h11.DONE:
            # h11 would reuse it; the bytes seen forbid it (or, with neither
            # leftover nor EOF, the conflicting framing noted in _note_head).
            self.close_reason = "connection_close" if closed and not leftover else "error"
            return
        self.close_reason = self._why_not_reusable()

    def _why_not_reusable(self) -> CloseReason:
        h11_conn = self._h11
        if h11_conn.our_state is h11.SEND_BODY:
            return "early_response"
        if h11_conn.their_http_version is not None and h11_conn.their_http_version < b"1.1":
            return "http_1_0"
        if h11_conn.our_state is h11.MUST_CLOSE or h11_conn.their_state in (
            h11.MUST_CLOSE,
            h11.CLOSED,
        ):
            return "connection_close"
        return "error"

    @property
    def is_reusable(self) -> bool:
        """Whether the finished cycle left the connection fit for another."""
        return self._finished and self.close_reason is None

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
        return not self._head_request

    def is_stale(self) -> bool:
        """Whether the idle connection was closed by the peer (or holds bytes
        nobody asked for). Never blocks. See ``_socket`` for why this works."""
        return self._stream.is_readable()

    def start_reuse(self) -> None:
        """Note that the next request goes over this already-used connection."""
        self.reused = True
        self.response_started = False
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


def _excerpt(data: bytes) -> str:
    """The start of some unexpected bytes, for an error message."""
    return repr(data[:32]) + ("..." if len(data) > 32 else "")


def _h11_words(exc: h11.RemoteProtocolError) -> str:
    """h11's description of a parse error, with its buffer types' reprs
    (``bytearray(b'...')``) shown as plain bytes."""
    text = str(exc)
    if "bytearray(" in text:
        import re  # only on this error path

        text = re.sub(r"bytearray\((b(['\"]).*?\2)\)", r"\1", text)
    return text
