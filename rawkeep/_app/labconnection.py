"""One connection of the lab server: the knobs it obeys, and the thread's loop.

A ``LabConnection`` reads a request (h11 parses it), asks the ``Behaviour``
for the reply (the responder's: the paths of ``labroutes``, or the handler
of a ``rawkeep.testing`` server; shaped by the knobs), decides
whether this is the connection's last response (the knobs, or h11 when the
client asked to close), writes it and either ends or goes round again. h11
writes every HTTP/1.1 response, so the server side is as strict as the
client side; HTTP/1.0 answers are written here, as h11 writes only HTTP/1.1.

Every wait is bounded: the socket's timeout (``POLL_INTERVAL``, set by the
server) makes each read and write return often enough to notice the
server's stop event, an idle connection is kept ``labbehaviour.MAX_IDLE`` at
most (or the knobs' shorter limit), a request that started must arrive within
``REQUEST_TIMEOUT`` and each write must be taken within ``WRITE_TIMEOUT``.
"""

from __future__ import annotations

import http
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import h11

from .labbehaviour import Behaviour
from .labroutes import Reply, ServerRequest, respond

if TYPE_CHECKING:
    import socket
    import threading
    from collections.abc import Callable

__all__ = ["POLL_INTERVAL", "Behaviour", "Exchange", "LabConnection"]

#: Seconds each blocking socket call may take before the stop event is checked.
POLL_INTERVAL: Final = 0.05
#: Longest a request may take to arrive once its first byte came.
REQUEST_TIMEOUT: Final = 10.0
#: Longest one write of a response may wait for the client to read.
WRITE_TIMEOUT: Final = 10.0
#: Largest request head, and largest request body, the server reads (bytes);
#: past either it closes the connection.
MAX_HEAD: Final = 64 * 1024
MAX_BODY: Final = 64 * 1024 * 1024
#: Bodies up to this size go out in the same write as the head.
_SMALL_BODY: Final = 16 * 1024
#: The interim answer to ``Expect: 100-continue`` (RFC 9110 section 10.1.1).
_CONTINUE: Final = h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
#: Statuses whose responses never have a body (RFC 9110 sections 15.3.5, 15.4.5).
_NO_BODY: Final = (204, 304)


@dataclass(frozen=True, kw_only=True, slots=True)
class Exchange:
    """One request answered, as ``on_exchange`` is told."""

    request: ServerRequest
    status: int
    #: The server closed the connection after this response.
    closed: bool


class LabConnection:
    """One accepted connection, served in its own thread until it ends.

    Args:
        sock: the accepted socket, with a ``POLL_INTERVAL`` timeout.
        index: the connection's number on the server, from 0.
        behaviour: the knobs.
        stopping: set when the server stops; every wait gives up then.
        note: called after each response.
        responder: what answers a request (before the answer knobs).
        received: called with each whole request as soon as it is read,
            before it is answered (or hung up on).
    """

    def __init__(
        self,
        sock: socket.socket,
        index: int,
        behaviour: Behaviour,
        stopping: threading.Event,
        note: Callable[[Exchange], None],
        *,
        responder: Callable[[ServerRequest], Reply] = respond,
        received: Callable[[ServerRequest], None] | None = None,
    ) -> None:
        self.sock = sock
        self.index = index
        self.behaviour = behaviour
        self.http10 = behaviour.http_version == "1.0"
        self.stopping = stopping
        self.note = note
        self.responder = responder
        self.received = received
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        #: The trailer fields of the reply being sent.
        self._trailers: list[tuple[str, str]] = []

    def serve(self) -> bool:
        """Answer requests until the connection ends; the caller closes the socket.

        Returns:
            Whether it ended because it sat idle past the server's limit.
        """
        try:
            self._answer_requests()
        except _IdleTooLong:
            return True
        except (OSError, h11.ProtocolError, _Stopping, _TooLarge):
            pass  # the client went away, sent garbage or too much, or stop(): close
        return False

    def _answer_requests(self) -> None:
        """Read, answer, repeat; return when the connection is to end.

        Raises:
            _IdleTooLong, _Stopping, _TooLarge, OSError, h11.ProtocolError.
        """
        number = 0
        while True:
            request = self._read_request(number + 1)
            if request is None:
                return
            number += 1
            if self.received is not None:
                self.received(request)
            if self.behaviour.hang_up_on_request == number:
                return  # read the request, say nothing, close: the race
            reply = self.behaviour.reply(request, self.responder)
            self._wait(reply.delay)
            last = self.behaviour.is_last(number)
            self._send_reply(request, reply)
            closed = last or self.h11.our_state is h11.MUST_CLOSE
            self.note(Exchange(request=request, status=reply.status, closed=closed))
            if closed:
                return
            self.h11.start_next_cycle()

    # -- reading ----------------------------------------------------------------------

    def _read_request(self, number: int) -> ServerRequest | None:
        """The next whole request, or None when the client closed.

        Raises:
            _IdleTooLong: no byte arrived within the idle limit.
            _TooLarge: the body is over ``MAX_BODY``.
        """
        head: h11.Request | None = None
        body = bytearray()
        deadline, idle = time.monotonic() + self.behaviour.idle_limit(), True
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                if self.h11.they_are_waiting_for_100_continue:
                    self._send_all(self.h11.send(_CONTINUE))
                self.h11.receive_data(self._recv(deadline, idle=idle))
                if idle:
                    deadline, idle = time.monotonic() + REQUEST_TIMEOUT, False
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise _TooLarge
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                return self._lab_request(head, bytes(body), number)
            elif isinstance(event, h11.ConnectionClosed):
                return None

    def _lab_request(self, head: h11.Request, body: bytes, number: int) -> ServerRequest:
        return ServerRequest(
            method=head.method.decode("ascii"),
            target=head.target.decode("ascii", "replace"),
            http_version=head.http_version.decode("ascii"),
            headers=tuple(
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in head.headers.raw_items()
            ),
            body=body,
            connection=self.index,
            number=number,
        )

    def _recv(self, deadline: float, *, idle: bool) -> bytes:
        """Bytes from the client, b"" at its close.

        Raises:
            _IdleTooLong: the deadline passed while the connection was idle.
            _Stopping: ``stop()`` was called.
            TimeoutError: a request that started has stalled.
        """
        while not self.stopping.is_set():
            if time.monotonic() >= deadline:
                if idle:
                    raise _IdleTooLong
                raise TimeoutError("the request stalled")
            try:
                return self.sock.recv(65536)
            except TimeoutError:
                continue
        raise _Stopping

    # -- writing ----------------------------------------------------------------------

    def _send_reply(self, request: ServerRequest, reply: Reply) -> None:
        headers = [*reply.headers, *self.behaviour.headers(request.number)]
        pieces = reply.body
        if reply.status in _NO_BODY:
            pieces = ()
        elif not reply.chunked:
            headers.append(("Content-Length", str(sum(map(len, pieces)))))
        if request.method == "HEAD":
            pieces = ()
        if self.http10:
            head = _http10_head(reply.status, headers)
        else:
            hints = b""
            if reply.hints:
                early = h11.InformationalResponse(
                    status_code=103, headers=list(reply.hints), reason=b"Early Hints"
                )
                hints = self.h11.send(early) or b""
            response = h11.Response(
                status_code=reply.status, headers=headers, reason=_reason(reply.status)
            )
            head = hints + (self.h11.send(response) or b"")
        # Trailers go only after chunks: to an HTTP/1.1 client, chunked.
        chunked = reply.chunked and self.h11.their_http_version == b"1.1"
        self._trailers = list(reply.trailers) if chunked else []
        if sum(map(len, pieces)) <= _SMALL_BODY and not reply.pause:
            # One write for head and body: what most servers do for small answers.
            self._send_all(b"".join([head, *map(self._frame, pieces), self._finish()]))
            return
        self._send_all(head)
        for position, piece in enumerate(pieces):
            if position:
                self._wait(reply.pause)
            self._send_all(self._frame(piece))
        self._send_all(self._finish())

    def _frame(self, piece: bytes) -> bytes:
        """A piece of the body as it goes on the wire (a chunk, if chunked)."""
        return piece if self.http10 else self.h11.send(h11.Data(data=piece)) or b""

    def _finish(self) -> bytes:
        """What ends the body on the wire (the last chunk, if chunked)."""
        if self.http10:
            return b""
        return self.h11.send(h11.EndOfMessage(headers=self._trailers)) or b""

    def _send_all(self, data: bytes) -> None:
        """Write all of ``data`` within ``WRITE_TIMEOUT``.

        Raises:
            _Stopping: ``stop()`` was called.
            TimeoutError: the client did not read for ``WRITE_TIMEOUT``.
        """
        view = memoryview(data)
        deadline = time.monotonic() + WRITE_TIMEOUT
        while view:
            if self.stopping.is_set():
                raise _Stopping
            if time.monotonic() >= deadline:
                raise TimeoutError("the client stopped reading")
            try:
                view = view[self.sock.send(view) :]
            except TimeoutError:
                continue

    def _wait(self, seconds: float) -> None:
        """Sleep ``seconds`` (a route's delay or pause), or until ``stop()``."""
        if seconds and self.stopping.wait(seconds):
            raise _Stopping


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _http10_head(status: int, headers: list[tuple[str, str]]) -> bytes:
    """An HTTP/1.0 status line and headers (h11 writes only HTTP/1.1)."""
    lines = [f"HTTP/1.0 {status} {_reason(status).decode()}".rstrip()]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _IdleTooLong(Exception):
    """The connection sat idle past the server's limit: close it."""


class _Stopping(Exception):
    """``stop()`` was called while the connection waited: close it."""


class _TooLarge(Exception):
    """The request body is over ``MAX_BODY``: close the connection."""
