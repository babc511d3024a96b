"""The lab server: a local HTTP/1.1 server with knobs for every keep-alive rule.

``rawkeep demo`` needs servers that behave in exactly one telling way each:
one that keeps connections open, one that announces ``Keep-Alive: timeout=1,
max=2``, one that says ``Connection: close``, one that drops idle
connections without a word, one that hangs up just as a request arrives.
Real servers do all of these, but not on demand, and the demo must run with
no network. The tests and anyone learning what the client does need the
same. So this is one small server whose connection behaviour is a frozen
``Behaviour`` (``labconnection``) and whose answers, path by path, come from
``labroutes`` (``/json``, ``/echo``, ``/slow``, ``/redirect/N``, ...).

Theory of operation. One thread accepts; each connection gets a thread that
runs a ``LabConnection`` until the connection ends. Every socket has a short
timeout (``POLL_INTERVAL``), so every blocking call returns often enough to
notice ``stop()``; ``stop()`` joins every thread with one deadline and
closes every socket, whether its thread has finished or not.

It listens on loopback only. ``rawkeep serve`` (``serve``) starts one in the
foreground, ``rawkeep.testing.LocalServer`` one inside a user's tests (its
handler as the ``responder``). With a TLS context, each connection's thread
wraps its socket and completes the handshake (bounded by
``HANDSHAKE_TIMEOUT``) before the first request, so a slow or failing
handshake holds up no other connection.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import TYPE_CHECKING, Final

from .labbehaviour import Behaviour
from .labconnection import POLL_INTERVAL, Exchange, LabConnection
from .labroutes import respond

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable
    from types import TracebackType

    from .labroutes import Reply, ServerRequest

__all__ = ["Behaviour", "Exchange", "LabServer", "loopback_family"]

#: Deadline for all server threads to finish in ``stop()``.
JOIN_TIMEOUT: Final = 2.0
#: Longest a TLS handshake may take, in seconds.
HANDSHAKE_TIMEOUT: Final = 10.0


class LabServer:
    """A local HTTP/1.1 server in background threads.

    Use it as a context manager (or call ``start()`` and ``stop()``);
    ``url`` is its base URL.

    Args:
        behaviour: what it does with connections (see ``Behaviour``).
        host: a loopback address to listen on.
        port: the port, 0 for any free one.
        on_exchange: called in the connection's thread after each response;
            it must not raise.
        ssl_context: a server-side TLS context: serve https.
        responder: what answers each request, in the connection's thread
            (the lab's paths by default); it must not raise.
        on_request: called in the connection's thread with each request as
            soon as it is read; it must not raise.

    Raises:
        ValueError: ``host`` is not a loopback address.
    """

    def __init__(
        self,
        behaviour: Behaviour | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_exchange: Callable[[Exchange], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        responder: Callable[[ServerRequest], Reply] = respond,
        on_request: Callable[[ServerRequest], None] | None = None,
    ) -> None:
        self._family = loopback_family(host)
        self.behaviour = behaviour or Behaviour()
        self.host = host
        self.port = port
        self.on_exchange = on_exchange
        self.ssl_context = ssl_context
        self.responder = responder
        self.on_request = on_request
        # Made by start(): a server made and never started holds no socket.
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._acceptor: threading.Thread | None = None
        self._threads: list[threading.Thread] = []  # one per connection
        self._sockets: set[socket.socket] = set()
        #: Connections accepted so far.
        self.accepted = 0
        #: Connections the server closed while they were idle (its timeouts).
        self.idle_closes = 0
        #: Responses sent so far.
        self.responses = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "http" if self.ssl_context is None else "https"
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> None:
        """Listen, and accept in a background thread.

        Raises:
            OSError: the address can't be bound.
        """
        listener = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            listener.bind((self.host, self.port))
            listener.listen(128)
            listener.settimeout(POLL_INTERVAL)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._acceptor = threading.Thread(
            target=self._accept_loop, args=(listener,), name="lab-accept", daemon=True
        )
        self._acceptor.start()

    def stop(self) -> None:
        """Stop the threads (one bounded wait for all) and close every socket."""
        self._stopping.set()
        deadline = time.monotonic() + JOIN_TIMEOUT
        # The acceptor first: once it is gone, no connection thread is added.
        if self._acceptor is not None:
            self._acceptor.join(JOIN_TIMEOUT)
        with self._cond:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._listener is not None:
            self._listener.close()
        with self._cond:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def __enter__(self) -> LabServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_for_idle_closes(self, count: int, timeout: float) -> bool:
        """Wait until the server has closed ``count`` idle connections."""
        with self._cond:
            return self._cond.wait_for(lambda: self.idle_closes >= count, timeout)

    # -- threads ------------------------------------------------------------------------

    def _start_connection_thread(self, sock: socket.socket, index: int) -> None:
        thread = threading.Thread(
            target=self._serve, args=(sock, index), name=f"lab-conn-{index}", daemon=True
        )
        with self._cond:
            # Finished threads are forgotten, so a long run does not pile them up.
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed by stop()
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(POLL_INTERVAL)
            except OSError:
                sock.close()  # reset before it was served
                continue
            with self._cond:
                index = self.accepted
                self.accepted += 1
                self._sockets.add(sock)
            self._start_connection_thread(sock, index)

    def _serve(self, sock: socket.socket, index: int) -> None:
        idle_close = False
        try:
            if self.ssl_context is not None:
                sock = self._handshake(sock, self.ssl_context)
            connection = LabConnection(
                sock,
                index,
                self.behaviour,
                self._stopping,
                self._note_response,
                responder=self.responder,
                received=self.on_request,
            )
            idle_close = connection.serve()
        except (OSError, _HandshakeFailed):
            pass  # the TLS handshake failed or timed out: close
        finally:
            sock.close()
            with self._cond:
                self._sockets.discard(sock)
        if idle_close:
            # Counted only once the FIN is sent, so that a demo step waiting
            # for this count knows the client's socket will be readable.
            with self._cond:
                self.idle_closes += 1
                self._cond.notify_all()

    def _handshake(self, sock: socket.socket, context: ssl.SSLContext) -> ssl.SSLSocket:
        """``sock`` wrapped in TLS, its handshake done.

        Raises:
            OSError: the handshake failed (``ssl.SSLError``), or the socket did.
            _HandshakeFailed: it took too long, or ``stop()`` was called.
        """
        tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._cond:  # the wrapper owns the file descriptor now
            self._sockets.discard(sock)
            self._sockets.add(tls)
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        try:
            while not self._stopping.is_set() and time.monotonic() < deadline:
                try:
                    tls.do_handshake()
                except TimeoutError:
                    continue  # the socket's POLL_INTERVAL: check stop() and the deadline
                return tls
            raise _HandshakeFailed
        except BaseException:
            tls.close()
            with self._cond:
                self._sockets.discard(tls)
            raise

    def _note_response(self, exchange: Exchange) -> None:
        with self._cond:
            self.responses += 1
        if self.on_exchange is not None:
            self.on_exchange(exchange)


def loopback_family(host: str) -> socket.AddressFamily:
    """The address family of ``host``, a loopback IP address.

    Raises:
        ValueError: ``host`` is not an IP address, or not a loopback one.
    """
    address = ipaddress.ip_address(host)
    if not address.is_loopback:
        raise ValueError(f"the lab server listens on loopback only, not {host}")
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


class _HandshakeFailed(Exception):
    """The TLS handshake did not finish in time, or the server is stopping."""
