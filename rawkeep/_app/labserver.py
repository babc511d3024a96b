"""The demo's embedded HTTP/1.1 server: loopback only, threads, with knobs.

``rawkeep demo`` needs servers that behave in exactly one interesting way
each: one that keeps connections open, one that announces ``Keep-Alive:
timeout=1, max=2``, one that says ``Connection: close``, one that drops idle
connections without a word, one that hangs up just as a request arrives.
Real servers do all of these, but not on demand, and the demo must run with
no network. So this module is a small server whose behaviour is a frozen
``Behaviour``; h11 (already rawkeep's only dependency) parses and writes the
HTTP, so the server side is as correct as the client side.

One thread accepts; each connection gets a thread. Every blocking call polls
with a short socket timeout so that ``stop()`` is noticed within
``POLL_INTERVAL``, every wait has a deadline, and ``stop()`` joins every
thread with a deadline and closes every socket.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import h11

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

__all__ = ["Behaviour", "DemoServer"]

#: Seconds between checks for ``stop()`` in every blocking server call.
POLL_INTERVAL: Final = 0.05
#: Longest a patient server keeps an idle connection (bounded, not forever).
MAX_IDLE: Final = 30.0
#: Longest a request may take to arrive once its first byte came.
REQUEST_TIMEOUT: Final = 5.0
#: Deadline for all server threads to finish in ``stop()``.
JOIN_TIMEOUT: Final = 2.0


@dataclass(frozen=True, kw_only=True)
class Behaviour:
    """How the demo server treats its connections; defaults: patient keep-alive."""

    #: Sent as ``Keep-Alive: timeout=N`` and enforced: idle N s, then close.
    keep_alive_timeout: int | None = None
    #: Requests a connection may carry; each response says how many more
    #: remain as ``Keep-Alive: max=M`` (Apache's count), then it closes.
    keep_alive_max: int | None = None
    #: Answer every request with ``Connection: close`` and close.
    connection_close: bool = False
    #: Close a connection idle this many seconds, without any header saying so.
    drop_idle_after: float | None = None
    #: Read the n-th request of each connection, then close without answering:
    #: the keep-alive race, made deterministic.
    hang_up_on_request: int | None = None


class DemoServer:
    """An HTTP/1.1 server on 127.0.0.1 in background threads.

    Use it as a context manager; ``url`` is its base URL.

    Args:
        behaviour: what it does with connections (see ``Behaviour``).
    """

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        #: Connections accepted so far.
        self.accepted = 0
        #: Connections the server closed while they were idle (timeouts).
        self.idle_closes = 0
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> DemoServer:
        try:
            self._listener.bind(("127.0.0.1", 0))
            self._listener.listen(64)
            self._listener.settimeout(POLL_INTERVAL)
        except BaseException:
            self._listener.close()
            raise
        self.port = self._listener.getsockname()[1]
        self._start_thread(self._accept_loop, "demo-accept")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the threads (bounded wait) and close every socket."""
        self._stopping.set()
        deadline = time.monotonic() + JOIN_TIMEOUT
        with self._cond:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._listener.close()
        with self._cond:
            for sock in self._sockets:
                sock.close()

    def wait_for_idle_closes(self, count: int, timeout: float) -> bool:
        """Wait until the server has closed ``count`` idle connections."""
        with self._cond:
            return self._cond.wait_for(lambda: self.idle_closes >= count, timeout)

    # -- threads ----------------------------------------------------------------

    def _start_thread(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._cond:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed by stop()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(POLL_INTERVAL)
            with self._cond:
                index = self.accepted
                self.accepted += 1
                self._sockets.append(sock)
            self._start_thread(self._serve, f"demo-conn-{index}", sock, index)

    def _serve(self, sock: socket.socket, index: int) -> None:
        idle_close = False
        try:
            self._serve_connection(sock, index)
        except _IdleTooLong:
            idle_close = True
        except (OSError, h11.ProtocolError):
            pass  # the client went away or sent garbage: just close
        finally:
            sock.close()
        if idle_close:
            # Counted only once the FIN is sent, so that a demo step waiting
            # for this count knows the client's socket will be readable.
            with self._cond:
                self.idle_closes += 1
                self._cond.notify_all()

    # -- one connection ---------------------------------------------------------

    def _serve_connection(self, sock: socket.socket, index: int) -> None:
        behaviour = self.behaviour
        conn = h11.Connection(h11.SERVER)
        served = 0
        while True:
            request = self._read_request(sock, conn, self._idle_limit())
            if request is None:
                return
            served += 1
            if behaviour.hang_up_on_request == served:
                return  # read the request, say nothing, close: the race
            last = behaviour.keep_alive_max is not None and (served >= behaviour.keep_alive_max)
            body = f"hello from connection {index}, request {served}\n".encode()
            headers = self._response_headers(served, len(body))
            pieces = [
                conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK")),
                conn.send(h11.Data(data=body)),
                conn.send(h11.EndOfMessage()),
            ]
            sock.sendall(b"".join(piece for piece in pieces if piece))
            if last or conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()

    def _idle_limit(self) -> float:
        limits = [
            limit
            for limit in (
                self.behaviour.keep_alive_timeout,
                self.behaviour.drop_idle_after,
            )
            if limit is not None
        ]
        return min(limits, default=MAX_IDLE)

    def _response_headers(self, served: int, length: int) -> list[tuple[str, str]]:
        behaviour = self.behaviour
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(length))]
        if behaviour.connection_close:
            headers.append(("Connection", "close"))
        params = []
        if behaviour.keep_alive_timeout is not None:
            params.append(f"timeout={behaviour.keep_alive_timeout}")
        if behaviour.keep_alive_max is not None:
            params.append(f"max={behaviour.keep_alive_max - served}")
        if params:
            headers.append(("Keep-Alive", ", ".join(params)))
        return headers

    def _read_request(
        self, sock: socket.socket, conn: h11.Connection, idle_limit: float
    ) -> h11.Request | None:
        """The next whole request (its body read and dropped), or None when
        the client closed or the server is stopping.

        Raises:
            _IdleTooLong: no byte arrived for ``idle_limit`` seconds.
        """
        request: h11.Request | None = None
        deadline = time.monotonic() + idle_limit
        idle = True
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = self._recv(sock, deadline, idle=idle)
                if data is None:
                    return None
                if idle:
                    idle = False
                    deadline = time.monotonic() + REQUEST_TIMEOUT
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.EndOfMessage):
                return request
            elif isinstance(event, h11.ConnectionClosed):
                return None

    def _recv(self, sock: socket.socket, deadline: float, *, idle: bool) -> bytes | None:
        """Bytes from the client (b"" at its close), or None when stopping.

        Raises:
            _IdleTooLong: the deadline passed while the connection was idle.
        """
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if idle:
                    raise _IdleTooLong
                return None  # a request that started but stalled: give up
            readable, _, _ = select.select([sock], [], [], min(POLL_INTERVAL, remaining))
            if readable:
                return sock.recv(65536)
        return None


class _IdleTooLong(Exception):
    """The connection sat idle past the server's limit: close it."""
