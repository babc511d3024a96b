"""A connection's facts and its current exchange, without I/O: what both shells share.

``_connection.Connection`` (blocking sockets) and
``_aio_connection.AsyncConnection`` (asyncio) move bytes and keep time
their own way; everything they decide is decided here, once:

- the cycle: a new ``Exchange`` per request (made by the shell, the first
  step of ``send_request``), its verdict recorded when the body ends
  (``_finish``); each exchange runs on its own h11 state machine;
- how a request is written: whole in one write when it is small, else its
  head, then its body in blocks (``whole_request``, ``blocks``);
- how long a wait for the head may last (``_head_wait``): the read timeout
  bounds the wait for the first bytes, then the rest of the head, interim
  responses included, as a whole;
- the pool's questions: reusable, response started, may carry a request
  that can't be retried, stale, and the keep-alive facts in ``life``.

Timing the head. However a server spreads a head out (``102 Processing``
every few seconds, a few bytes at a time), no server can hold a request
waiting for it for longer than twice the read timeout. For the body, the
read timeout bounds each wait for bytes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final, Protocol

from ._exceptions import ReadTimeout
from ._exchange import MAX_HEAD_SIZE, Exchange
from ._framing import READ_SIZE
from ._keepalive import Lifetime

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._events import CloseReason
    from ._tls_details import TLSDetails
    from ._url import Route

__all__ = [
    "EXPECT_CONTINUE_TIMEOUT",
    "SEND_BLOCK",
    "SMALL_BODY",
    "ConnectionCore",
    "Transport",
    "blocks",
    "check_piece",
    "whole_request",
]

#: Bodies below this size are joined to the request head and sent in one
#: write; larger ones go out in their own writes, never copied.
SMALL_BODY: Final = 64 * 1024

#: In-memory bodies are written in blocks of this size, so that a server
#: answering early (413) is noticed between blocks, not after 64 MiB.
SEND_BLOCK: Final = 256 * 1024

#: Seconds to wait for "100 Continue" before sending the body anyway
#: (RFC 9110 section 10.1.1 lets a client stop waiting; curl waits 1 s).
EXPECT_CONTINUE_TIMEOUT: Final = 1.0


class Transport(Protocol):
    """What the core asks of either shell's stream, without waiting."""

    tls: TLSDetails | None

    def is_readable(self) -> bool:
        """Bytes or the peer's close are waiting to be read (never blocks)."""

    def fin_ago(self) -> float | None:
        """Seconds since the peer's FIN arrived (None: not known)."""

    def close(self) -> None:
        """Close it. Idempotent."""


class ConnectionCore:
    """One HTTP/1.1 connection to one origin, its I/O left to a subclass.

    Args:
        stream: the connected stream (blocking or asyncio).
        route: where it goes (target origin, and proxy if any).
        connection_id: unique within the client.
        max_head_size: most bytes of response head (status line and
            headers) accepted before ``RemoteProtocolError``.
    """

    __slots__ = (
        "_ex",
        "_head_deadline",
        "_head_read_size",
        "_max_head_size",
        "_stream",
        "close_reason",
        "id",
        "is_reusable",
        "life",
        "origin",
        "origin_str",
        "reused",
        "route",
        "tls",
    )

    def __init__(
        self,
        stream: Transport,
        route: Route,
        connection_id: int,
        *,
        max_head_size: int = MAX_HEAD_SIZE,
    ) -> None:
        self._stream = stream
        self._max_head_size = max_head_size
        # Never more than the head limit at a time: what follows the head
        # (a chunk-size line) must meet h11's bound too.
        self._head_read_size = min(READ_SIZE, max_head_size)
        self.id = connection_id
        self.route = route
        self.origin = route.origin
        self.origin_str = str(route.origin)
        #: What its TLS handshake agreed (None: plain TCP).
        self.tls = stream.tls
        #: Its keep-alive facts and place in the pool's life cycle.
        self.life = Lifetime(time.monotonic())
        #: The current request runs on a connection that served before.
        self.reused = False
        #: Why the connection can't be reused, once a cycle has ended.
        self.close_reason: CloseReason | None = None
        #: The last cycle finished and left the connection fit for another
        #: (False again from the moment it is handed out for the next).
        self.is_reusable = False
        #: The current (or last) cycle; None before the first request.
        self._ex: Exchange | None = None
        #: When the wait for the final head must end (monotonic seconds).
        self._head_deadline: float | None = None

    # -- the cycle ----------------------------------------------------------------

    def _head_wait(self, timeout: float) -> float:
        """How long the next read for the head may wait once its first bytes
        came: what is left of ``timeout`` for the rest of the head as a
        whole (until then, each read waits ``timeout``).

        Raises:
            ReadTimeout: no time is left.
        """
        deadline = self._head_deadline
        if deadline is None:
            deadline = self._head_deadline = time.monotonic() + timeout
        left = deadline - time.monotonic()
        if left <= 0:
            raise self._head_timed_out(timeout)
        return left

    def _head_timed_out(self, timeout: float | None) -> ReadTimeout:
        ex = self._ex
        interim = 0 if ex is None else ex.interim
        return ReadTimeout(
            f"the response head did not arrive whole within read={timeout} s"
            f" ({interim} interim responses so far)"
        )

    def _finish(self, ex: Exchange) -> None:
        """The cycle ended: record the exchange's verdict."""
        self.life.responses += 1
        self.close_reason = reason = ex.finish()
        self.is_reusable = reason is None

    def take_whole_body(self) -> bytes | None:
        """The whole body, when it came with the head (the common small
        response): the cycle is then finished, as after the last piece.
        None when it must be read."""
        ex = self._ex
        assert ex is not None
        assert ex.body is not None
        whole = ex.body.at_hand
        if whole is not None:
            self._finish(ex)
        return whole

    def body_left(self) -> int | None:
        """Bytes of a counted body not read yet; None when the body is not
        counted (chunked, until close) or no head was read."""
        ex = self._ex
        body = None if ex is None else ex.body
        return None if body is None else body.left

    @property
    def request_head(self) -> bytes:
        """The head of the current (or last) request, as written."""
        ex = self._ex
        return b"" if ex is None else ex.request_head

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
        nobody asked for). Never blocks: see ``_socket`` and ``_aio_socket``
        for why this works."""
        return self._stream.is_readable()

    def fin_ago(self) -> float | None:
        """Seconds since the server's FIN arrived on this connection, which
        it closed (None: not known; see ``_tcp_info``)."""
        return self._stream.fin_ago()

    def start_reuse(self) -> None:
        """Note that the next request goes over this already-used connection
        (the pool core already made its ``life`` active)."""
        self.reused = True
        self.is_reusable = False

    def close(self) -> None:
        """Close the socket. Idempotent."""
        self.life.become_closed()
        self._stream.close()


def whole_request(
    ex: Exchange,
    body: object,
    expect_continue: bool,
    ends_with_head: bool,
) -> bytes | None:
    """The whole request as one write, when it goes in one (no body, or
    a small in-memory one, and no wait for ``100 Continue``); None when
    the head goes first and the body after it in blocks."""
    if expect_continue:
        return None
    if ends_with_head:
        return ex.request_head
    if body is None:
        return ex.request_head + ex.end_bytes()
    if isinstance(body, bytes) and len(body) <= SMALL_BODY:
        pieces = ex.body_bytes(body) if body else ()
        return ex.request_head + b"".join(pieces) + ex.end_bytes()
    return None


def blocks(body: bytes | Iterable[bytes] | None) -> Iterable[bytes | memoryview]:
    """The body as pieces to write: blocks of an in-memory body (views, no
    copies), or the caller's own pieces (empty ones skipped)."""
    if body is None:
        return ()
    if isinstance(body, bytes):
        view = memoryview(body)
        return (view[i : i + SEND_BLOCK] for i in range(0, len(body), SEND_BLOCK))
    return (chunk for chunk in body if check_piece(chunk))


def check_piece(piece: object) -> bool:
    """Whether a piece of a caller's body iterable has bytes to send (an
    empty one is skipped).

    Raises:
        TypeError: it is not bytes (a str, a number...): the connection the
            body was going out on is then closed, never reused.
    """
    if not isinstance(piece, bytes | bytearray | memoryview):
        raise TypeError(
            f"a request body iterable must give bytes, and gave a {type(piece).__name__}"
        )
    return len(piece) > 0
