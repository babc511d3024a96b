"""One request/response cycle over an h11 connection, without I/O.

Theory of operation
-------------------
h11 holds the protocol state of a connection: who is sending what, how a
message is framed. An ``Exchange`` is one cycle on it, from the request's
first byte to the response's last, and holds every fact about that cycle;
it dies with it. It takes bytes and returns bytes, heads, body pieces and
one verdict; the shells (``_connection`` for blocking sockets) move the
bytes and keep the time.

The response head
  h11 parses and validates it. Around h11, the exchange checks what h11
  leaves open: the first bytes must begin a status line (``HTTP/``; bytes
  that can't, on a reused connection, belong to an earlier response the
  server got wrong, see ``feed_head``); only HTTP/1.x answers an HTTP/1.1
  request; interim (1xx) responses are bounded in number and their bytes
  count with the final head's against ``max_header_size`` as they arrive.

The body: one framing, chosen once
  As h11 picks one reader per framing, the head picks one body object
  (``_framing``): ``Counted`` for a known length, read past h11,
  ``H11Body`` for chunked bodies and bodies that end when the server
  closes.

The reuse verdict, written once
  HTTP/1.1 connections persist unless either side says ``Connection:
  close`` (RFC 9112 section 9.3); HTTP/1.0 responses never persist here,
  even with ``Connection: keep-alive`` (obsolete, RFC 9112 appendix
  C.2.2). ``verdict()`` applies, in order: the request was not sent whole
  (the server answered early); the response forbids another exchange
  (HTTP/1.0, ``Connection: close``, both framings at once); our request
  said ``Connection: close``; bytes came past the response's end (never
  valid from a server we did not pipeline to); the server closed.

One h11 state machine per cycle
  Each exchange makes its own, at the cycle's start: on a reused
  connection that is exactly what h11's ``start_next_cycle`` would leave,
  for less work, and it dies with the exchange.

The end of a bodiless request
  A GET's head is the whole request: h11's ``EndOfMessage`` for it writes
  no bytes and only moves our side of h11's state machine, at 1.5 us per
  request. It is never sent: the verdict takes "sent whole" and "asked to
  close" from the request, and the state machine dies with the
  exchange.

Asking the server to say its limits
  The first request of a connection carries ``Connection: keep-alive``
  unless the caller set a ``Connection`` header of its own. It changes
  nothing about persistence (HTTP/1.1 persists anyway), but Apache httpd
  announces ``Keep-Alive: timeout=N, max=M`` only to a request that
  carries the token, and a known limit retires connections before the
  server closes them. Later requests on the connection don't repeat it:
  the first answer's limits hold for the connection's life (the pool
  counts ``max`` down itself).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import h11

from ._exceptions import LocalProtocolError, RemoteProtocolError
from ._framing import NEED_DATA, Counted, H11Body, Need, h11_words
from ._headers import parse_keep_alive

if TYPE_CHECKING:
    from ._events import CloseReason
    from ._keepalive import Lifetime

__all__ = ["MAX_HEAD_SIZE", "MAX_INTERIM_RESPONSES", "Exchange", "Head"]

#: Most bytes of response head accepted before RemoteProtocolError (the
#: default of ``max_header_size``): an endless header block costs an error,
#: not our memory.
MAX_HEAD_SIZE: Final = 64 * 1024

#: Most interim (1xx) responses accepted before the final one. Servers send
#: one or two (100 Continue, 103 Early Hints); 102 Processing comes every
#: few seconds of a long operation, which the read timeout bounds anyway.
MAX_INTERIM_RESPONSES: Final = 32


#: The response headers the cycle reads (the rest are only passed on).
_HEADERS_READ: Final = frozenset(
    (b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"content-encoding")
)

#: h11 events are immutable; the one that ends every request body is shared.
_END: Final = h11.EndOfMessage()

#: The header that asks a server to announce its keep-alive limits.
_ASK_LIMITS: Final = (b"Connection", b"keep-alive")

#: What a response without interim responses (most) or trailers (all but
#: some chunked ones) holds: one shared empty tuple, no list per response.
_NONE: Final[tuple[()]] = ()


@dataclass
class Head:
    """A final response head, as the caller sees it.

    A plain class: one is made per response, and CPython makes it faster
    than a class with ``__slots__`` and reads its fields faster than a
    tuple's."""

    status: int
    reason: str
    http_version: str  # as the status line said, e.g. "HTTP/1.1"
    #: As h11 parsed (and validated) them, names in their original case;
    #: ``Headers`` are built from them only if someone looks.
    raw_headers: list[tuple[bytes, bytes]]
    #: The Content-Encoding header, the one the body path needs.
    content_encoding: str | None
    #: The request as h11 took it (method and headers as sent).
    request: h11.Request
    #: Seconds from the start of the exchange (the request about to be
    #: written) until this head was parsed.
    elapsed: float
    #: The interim (1xx) responses that came before it, in order.
    interim: list[h11.InformationalResponse] | tuple[()]
    #: The trailer fields of a chunked body, filled in when the body ends
    #: (the list is the body reader's; empty tuple: the body has none).
    trailers: list[tuple[bytes, bytes]] | tuple[()]


class Exchange:
    """One request/response cycle (see the module docstring).

    Args:
        max_head_size: most bytes of response head, interim ones included.
        reused: the connection served a response before this one.
        life: the connection's keep-alive facts, to note the server's
            ``Keep-Alive`` in.
        request: the request's head, as h11 takes it.
        ends_with_head: no body and no chunked framing follow the head.
        asks_to_close: the request carries ``Connection: close``.

    Raises:
        LocalProtocolError: h11 refuses the request.
    """

    # No __slots__: one is made per request, and CPython builds instances of
    # a class without them by a shorter path (it enters __init__ directly).

    def __init__(
        self,
        max_head_size: int,
        reused: bool,
        life: Lifetime,
        request: h11.Request,
        ends_with_head: bool,
        asks_to_close: bool,
    ) -> None:
        #: When the exchange began, for ``Head.elapsed`` (perf_counter s).
        self._started = time.perf_counter()
        #: This cycle's h11 state machine (see "One h11 state machine per
        #: cycle"). max_incomplete_event_size by position: CPython builds an
        #: instance of a class called with keywords by a slower, general path.
        self._h11 = h11_conn = h11.Connection(h11.CLIENT, max_head_size)
        self._max_head_size = max_head_size
        self._life = life
        self._request = request
        self.reused = reused
        #: Some byte of a response (one that can begin a status line)
        #: arrived: the retry rule (RFC 9112 section 9.3.1) depends on it.
        self.response_started = False
        self.head_request = request.method == b"HEAD"
        #: A bodiless request: h11 is never told its end (see "The end of
        #: a bodiless request"), and whether it asked to close.
        self._end_untold = ends_with_head
        self._asks_to_close = asks_to_close
        #: Interim (1xx) responses so far, and bytes fed before the final head.
        self.interim = 0
        self._interim: list[h11.InformationalResponse] | tuple[()] = _NONE
        self._head_bytes = 0
        #: Why the response forbids another exchange (None: it allows one).
        self._response_close: CloseReason | None = None
        #: The body's framing, once the head is known.
        self.body: Counted | H11Body | None = None
        #: The body has ended and the verdict is given.
        self.finished = False
        if not reused and not _names_connection(request):
            # See "Asking the server to say its limits".
            request = self._request = _asking_limits(request)
        try:
            #: The request head's bytes, for the shell to write.
            self.request_head = h11_conn.send(request)
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(f"can't send request: {exc}") from exc

    # -- the request ------------------------------------------------------------

    def body_bytes(self, chunk: bytes | memoryview) -> list[bytes]:
        """The pieces to write for one body chunk: the chunk itself (not
        copied), with chunked framing around it when the body is chunked."""
        # h11 types Data.data as bytes; it only takes len() of it and passes
        # it through, so a memoryview works and saves a copy per block.
        try:
            return self._h11.send_with_data_passthrough(h11.Data(data=chunk)) or []  # type: ignore[arg-type]
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(f"can't send request: {exc}") from exc

    def end_bytes(self) -> bytes:
        """What ends the request body (b"" for Content-Length framing)."""
        try:
            return self._h11.send(_END) or b""
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(f"can't send request: {exc}") from exc

    # -- the response head ------------------------------------------------------

    def feed_head(
        self, data: bytes | None, *, stop_at_continue: bool = False
    ) -> Head | Need | None:
        """Bytes read while waiting for the head (b"": the peer closed; None:
        nothing new, look at what h11 holds); then the final head if it is
        complete, ``NEED_DATA`` if more bytes are needed, or None, with
        ``stop_at_continue``, for a ``100 Continue``.

        Raises:
            RemoteProtocolError: the first bytes can't begin a status line; a
                malformed, oversized or truncated head, too many interim
                responses, or a version not HTTP/1.x.
        """
        h11_conn = self._h11
        if data is not None:
            if not self.response_started:
                if data.startswith(b"HTTP/"):
                    self.response_started = True
                elif data:
                    self._check_first_bytes(data)
            self._head_bytes += len(data)
            h11_conn.receive_data(data)
        try:
            while True:
                event = h11_conn.next_event()
                if type(event) is h11.Response:
                    return self._note_head(event)
                if event is h11.NEED_DATA:
                    return NEED_DATA
                self._note_interim(event)
                if stop_at_continue and event.status_code == 100:  # type: ignore[union-attr]
                    return None
        except h11.RemoteProtocolError as exc:
            raise self._head_error(exc) from exc

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

    def _note_interim(self, event: object) -> None:
        """Count an interim (1xx) response against the head's bounds: their
        number, and their bytes with the final head's (``max_header_size``),
        checked as each arrives rather than after a flood."""
        if type(event) is not h11.InformationalResponse:
            raise RemoteProtocolError(f"unexpected {type(event).__name__} before the response")
        self.interim += 1
        if self._interim is _NONE:
            self._interim = []
        self._interim.append(event)  # type: ignore[union-attr]
        if self.interim > MAX_INTERIM_RESPONSES:
            raise RemoteProtocolError(
                f"more than {MAX_INTERIM_RESPONSES} interim (1xx) responses before the final one"
            )
        if self._head_bytes > self._max_head_size:
            self._check_head_size()

    def _head_error(self, exc: h11.RemoteProtocolError) -> RemoteProtocolError:
        """What to raise for h11's verdict on a head, in words about the
        response (h11's own speak of roles and states)."""
        if not self.response_started:
            return RemoteProtocolError("server closed the connection without sending a response")
        if exc.error_status_hint == 431:  # h11's "receive buffer too long"
            return RemoteProtocolError(
                f"response head larger than max_header_size={self._max_head_size} bytes"
            )
        if self._h11.trailing_data[1]:
            after = ""
            if self.interim:
                after = f" after {self.interim} interim (1xx) response"
                after += "s" if self.interim > 1 else ""
            return RemoteProtocolError(
                f"server closed the connection{after} before the response head was complete"
            )
        return RemoteProtocolError(f"malformed response head: {h11_words(exc)}")

    def _note_head(self, response: h11.Response) -> Head:
        """Build the head the caller gets, and take from it, in one pass over
        the headers, what the cycle needs: the body's framing, whether the
        response allows another exchange, the server's Keep-Alive."""
        if self._head_bytes > self._max_head_size:
            self._check_head_size()
        raw = response.headers.raw_items()
        length = None
        chunked = close = False
        keep_alive = []
        encoding = None
        for name, value in raw:
            name = name.lower()
            if name not in _HEADERS_READ:
                continue  # most of them: Date, Server, Content-Type...
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
        version = response.http_version
        version_text = "HTTP/1.1" if version == b"1.1" else _version_text(version)
        if version != b"1.1" or close or chunked:
            self._response_close = _response_close(version, close, chunked and length is not None)
        status = response.status_code
        h11_conn = self._h11
        trailers: list[tuple[bytes, bytes]] | tuple[()] = _NONE
        if self.head_request or status == 204 or status == 304:
            self.body = Counted(0, h11_conn)  # no body, whatever the headers say
        elif chunked or length is None:
            trailers = []
            self.body = H11Body(h11_conn, self._max_head_size, chunked, trailers)
        else:
            # h11 checked Content-Length is one number; chunked wins.
            self.body = Counted(int(length), h11_conn)
        if keep_alive:
            self._life.note_keep_alive(*parse_keep_alive(keep_alive))
        return Head(
            status, response.reason.decode("latin-1"), version_text, raw, encoding,
            self._request, time.perf_counter() - self._started, self._interim, trailers,
        )  # fmt: skip

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

    # -- the end ------------------------------------------------------------------

    def finish(self) -> CloseReason | None:
        """The body has ended: why the connection can't carry another
        exchange, or None if it can. The one place this is decided."""
        self.finished = True
        if self._end_untold:  # see "The end of a bodiless request"
            sent_whole, we_keep_open = True, not self._asks_to_close
        else:
            our_state = self._h11.our_state
            sent_whole, we_keep_open = our_state is not h11.SEND_BODY, our_state is h11.DONE
        body = self.body
        assert body is not None  # only asked after the body ended
        if not sent_whole:
            return "early_response"
        if self._response_close is not None:
            return self._response_close
        if not we_keep_open:
            return "connection_close"  # our request said so
        if body.past_end:
            return "error"
        if body.eof:
            return "connection_close"
        return None


def _names_connection(request: h11.Request) -> bool:
    """Whether the request has a ``Connection`` header of the caller's."""
    return any(name == b"connection" for name, _ in request.headers)


def _asking_limits(request: h11.Request) -> h11.Request:
    """The request with ``Connection: keep-alive`` last: once per connection,
    so the cost of building it again is one connection's, not a request's."""
    return h11.Request(
        method=request.method,
        target=request.target,
        headers=[*request.headers.raw_items(), _ASK_LIMITS],
        http_version=request.http_version,
    )


def _response_close(version: bytes, close: bool, both_framings: bool) -> CloseReason | None:
    """Why the response's head forbids another exchange, if it does."""
    if version < b"1.1":
        return "http_1_0"
    if close:
        return "connection_close"
    if both_framings:
        # Chunked wins (RFC 9112 section 6.3), but the message "ought to be
        # handled as an error": read this body, then never trust the
        # connection with another.
        return "error"
    return None


def _version_text(version: bytes) -> str:
    """The version as reported, for a status line not HTTP/1.1.

    Only HTTP/1.x can answer an HTTP/1.1 request (RFC 9110 section 6.2):
    HTTP/2.0 or HTTP/0.9 in a status line is a broken server. A higher 1.x
    minor (HTTP/1.9) is read as 1.1, the highest we know, as that section
    says, but reported as the server wrote it.
    """
    if not version.startswith(b"1."):
        raise RemoteProtocolError(
            f"the server answered with HTTP/{version.decode('ascii')},"
            " which can't answer an HTTP/1.1 request"
        )
    return "HTTP/" + version.decode("ascii")


def _excerpt(data: bytes) -> str:
    """The start of some unexpected bytes, for an error message."""
    return repr(data[:32]) + ("..." if len(data) > 32 else "")
