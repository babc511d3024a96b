"""Sockets: connect, TLS, timed reads and writes, and the idle probe.

This is the blocking shell's module that touches ``socket`` and ``ssl``
once a connection is open, and catches their exceptions (its asyncio twin
is ``_aio_socket``; the TCP connect itself, a race between the host's
addresses, is ``_dial``'s). Each operation translates what the OS says
into rawkeep's errors, in words both share (``_io_errors``):

* connect: no address connected in time -> ``ConnectTimeout``; refused,
  unreachable, name not resolved -> ``ConnectError``; a failed TLS
  handshake -> ``TLSError``.
* read / write on an open connection: a timeout -> ``ReadTimeout`` /
  ``WriteTimeout``; a reset, a broken pipe or a TLS alert ->
  ``RemoteProtocolError`` (the peer went away in the middle of an exchange).

Timeouts
--------
Timeouts are per operation: ``read=5`` bounds each wait for bytes, not the
whole response. Python's own socket timeout implements that with a
``poll()`` before every ``recv`` and every ``send``: three system calls per
small exchange where one each would do, and under threads each system call
is a moment another thread can take the GIL. So on Linux a plain socket
stays blocking and carries its timeouts in the kernel instead
(``SO_RCVTIMEO`` for reads, ``SO_SNDTIMEO`` for writes; a blocked call
fails with EAGAIN when its time is up): a read is one ``recv``, a write one
``send``. The two options are separate, so alternating reads and writes
costs nothing; a value is set again only when it changes. A write that
does not fit in the socket buffer at once goes on against one deadline, as
with Python's ``sendall``. A timeout of 0 ("never wait") is a single call
with ``MSG_DONTWAIT``. TLS sockets, and other systems, use Python's socket
timeout (OpenSSL must see the socket as non-blocking to wait correctly).

The idle probe
--------------
A pooled connection sits idle between requests, and the server may close it
at any time (its keep-alive timeout, a restart, a load balancer). TCP tells
us only if we look: a closed connection becomes *readable* (recv would
return b"" for the FIN, or fail with ECONNRESET for a reset). A healthy idle
HTTP/1.1 connection, on the other hand, is never readable: the server must
not send anything before it gets a request. So one zero-timeout ``poll()``
is a complete, non-blocking staleness check: readable means "do not use".
It cannot see a close that is still in flight on the network; that
remaining window is the keep-alive race, which retries cover.

On Linux a plain TCP connection asks the kernel instead, with one
``getsockopt(TCP_INFO)``: the connection is stale when its TCP state is no
longer ESTABLISHED (a FIN moves it to CLOSE_WAIT, a reset to CLOSE) or when
the kernel has received more bytes than were ever read from the socket
(the stream counts them). Same verdict as ``poll()``, and as cheap, but
CPython releases the GIL around ``poll()`` and not around ``getsockopt``:
with many threads sharing a client, every release before a reuse was a
chance for a thread switch (measured: a fifth of the throughput of eight
threads). A "stale" verdict is rare, and is confirmed with ``poll()``; if
``poll()`` disagrees (an emulated or old kernel that fills TCP_INFO in
differently), that stream goes back to ``poll()`` for good. TLS connections
keep ``poll()``: their decrypted bytes and TLS records do not match the
kernel's count.

``ssl`` is imported only when an https connection or context is first
needed, so plain-http users do not pay its import time.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import sys
import time
from typing import TYPE_CHECKING, Final, TypeAlias

from ._dial import open_tcp
from ._exceptions import TLSError
from ._io_errors import (
    connect_unix_failed,
    lost_while,
    read_timed_out,
    tls_failed,
    write_timed_out,
)
from ._tcp_info import fin_ago
from ._tls_details import TLSDetails, read_tls_details

if TYPE_CHECKING:
    import ssl
    from collections.abc import Sequence

__all__ = [
    "CertInput",
    "Stream",
    "VerifyInput",
    "connect",
    "connect_unix",
    "make_ssl_context",
]

#: ``verify=``: True (system trust store), False, a CA bundle path, or a context.
VerifyInput: TypeAlias = "bool | str | ssl.SSLContext"
#: ``cert=``: a PEM file holding certificate and key, or (certificate, key).
CertInput: TypeAlias = "str | tuple[str, str] | None"

_HAS_POLL: Final = hasattr(select, "poll")

#: Time plain sockets' reads and writes with SO_RCVTIMEO / SO_SNDTIMEO.
#: 64-bit Linux only: there ``struct timeval`` is two longs of 8 bytes each
#: (32-bit builds may use either of two layouts, so they keep Python's).
_KERNEL_TIMEOUTS: Final = (
    sys.platform == "linux" and hasattr(socket, "SO_RCVTIMEO") and struct.calcsize("@l") == 8
)

#: The idle probe by TCP_INFO (Linux ``struct tcp_info``, include/uapi/linux/tcp.h):
#: its first byte is the TCP state, and ``tcpi_bytes_received`` (Linux 4.1+)
#: is the u64 at byte 128, so the first 136 bytes are asked for.
_TCP_INFO: Final = getattr(socket, "TCP_INFO", 0)
_HAS_TCP_INFO: Final = sys.platform == "linux" and _TCP_INFO != 0
_TCP_INFO_LEN: Final = 136
_TCP_BYTES_RECEIVED: Final = struct.Struct("=Q")
_TCP_BYTES_RECEIVED_AT: Final = 128
_TCP_ESTABLISHED: Final = 1
_TCP_FAMILIES: Final = (socket.AF_INET, socket.AF_INET6)

#: recv/send flag for one call that must not block (a timeout of 0).
_DONTWAIT: Final = getattr(socket, "MSG_DONTWAIT", 0)

#: Longest kernel timeout set, in seconds (about 68 years): anything longer
#: is "forever" in practice, and stays inside every ``time_t``.
_MAX_KERNEL_TIMEOUT: Final = 2**31 - 1

#: ``struct timeval`` on 64-bit Linux: seconds, microseconds.
_TIMEVAL: Final = struct.Struct("@ll")


def _timeval(timeout: float | None) -> bytes:
    """``timeout`` as the ``struct timeval`` SO_RCVTIMEO takes (Linux);
    None is all zeros, which the kernel reads as "no timeout"."""
    if timeout is None:
        return _TIMEVAL.pack(0, 0)
    micros = max(round(min(timeout, _MAX_KERNEL_TIMEOUT) * 1_000_000), 1)
    return _TIMEVAL.pack(*divmod(micros, 1_000_000))


class Stream:
    """A connected socket (plain or TLS) with per-operation timeouts.

    Not thread-safe: one connection, one owner at a time (the pool's rule).
    """

    __slots__ = (
        "_kernel",
        "_poller",
        "_read_timeout",
        "_received",
        "_sock",
        "_tcp_probe",
        "_write_timeout",
        "tls",
    )

    def __init__(self, sock: socket.socket, tls: TLSDetails | None = None) -> None:
        self._sock = sock
        #: What the TLS handshake agreed (None: plain TCP), read once by it.
        self.tls = tls
        # Plain sockets on Linux time their reads and writes in the kernel
        # (see "Timeouts" above); anything else uses Python's socket timeout.
        self._kernel = _KERNEL_TIMEOUTS and tls is None
        # ...and plain TCP sockets there are probed with TCP_INFO, which
        # needs the count of bytes read (see "The idle probe" above).
        self._tcp_probe = self._kernel and _HAS_TCP_INFO and sock.family in _TCP_FAMILIES
        self._received = 0
        if self._kernel:
            sock.settimeout(None)
            self._read_timeout: float | None = None
            self._write_timeout: float | None = None
        else:
            self._read_timeout = self._write_timeout = sock.gettimeout()
        self._poller: select.poll | None = None  # made on the first wait

    def _python_timeout(self, timeout: float | None) -> None:
        # One socket timeout serves both directions: both caches follow it.
        if timeout != self._read_timeout or timeout != self._write_timeout:
            self._sock.settimeout(timeout)
            self._read_timeout = self._write_timeout = timeout

    def send_all(self, data: bytes | bytearray | memoryview, timeout: float | None) -> None:
        """Send every byte of ``data`` within ``timeout`` seconds.

        Raises:
            WriteTimeout: the peer did not take it all in ``timeout`` seconds.
            RemoteProtocolError: the connection was reset or closed.
        """
        try:
            if not self._kernel:
                self._python_timeout(timeout)
                self._sock.sendall(data)
            elif timeout is None or timeout == 0:
                self._set_write_timeout(None)
                self._sock.sendall(data, 0 if timeout is None else _DONTWAIT)
            else:
                self._set_write_timeout(timeout)
                start = time.monotonic()
                sent = self._sock.send(data)  # most writes fit in the socket buffer
                if sent < len(data):
                    self._send_rest(memoryview(data)[sent:], start + timeout)
        except (TimeoutError, BlockingIOError) as exc:
            raise write_timed_out(timeout) from exc
        except OSError as exc:
            raise lost_while("sending", exc) from exc

    def _send_rest(self, view: memoryview, deadline: float) -> None:
        """Send the rest before ``deadline``. As with Python's ``sendall``,
        the limit is for the whole write, not for each ``send``: a peer that
        takes a few bytes at a time must not stretch it."""
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self._set_write_timeout(left)
            view = view[self._sock.send(view) :]

    def _set_write_timeout(self, timeout: float | None) -> None:
        if timeout != self._write_timeout:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(timeout))
            self._write_timeout = timeout

    def recv(self, size: int, timeout: float | None) -> bytes:
        """Read up to ``size`` bytes into a new bytes object; b"" means the
        peer closed. One copy, from the kernel straight into the result.

        Raises:
            ReadTimeout: nothing arrived for ``timeout`` seconds.
            RemoteProtocolError: the connection was reset.
        """
        flags = 0
        if not self._kernel:
            self._python_timeout(timeout)
        elif timeout == 0:
            flags = _DONTWAIT
        elif timeout != self._read_timeout:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(timeout))
            self._read_timeout = timeout
        try:
            data = self._sock.recv(size, flags)
        except (TimeoutError, BlockingIOError) as exc:
            raise read_timed_out(timeout) from exc
        except OSError as exc:
            raise lost_while("reading", exc) from exc
        self._received += len(data)
        return data

    def wait_readable(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the socket to become readable
        (bytes, EOF or a reset). A closed socket counts as readable."""
        sock = self._sock
        if sock.fileno() < 0:
            return True
        if self.tls is not None and sock.pending():  # type: ignore[attr-defined]
            return True  # decrypted bytes wait inside the TLS object, unseen by poll
        if _HAS_POLL:
            # poll, not select: select fails for descriptors above 1023,
            # which busy programs reach.
            if self._poller is None:
                self._poller = select.poll()
                self._poller.register(sock, select.POLLIN | select.POLLPRI)
            return bool(self._poller.poll(timeout * 1000))
        readable, _, _ = select.select([sock], [], [], timeout)
        return bool(readable)

    def is_readable(self) -> bool:
        """Whether a read would not block: for an idle connection, that the
        peer closed or reset it, or sent bytes nobody asked for. Never blocks."""
        if not self._tcp_probe:
            return self.wait_readable(0)
        try:
            info = self._sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_LEN)
        except OSError:
            info = b""  # closed, or no TCP_INFO here: poll() will tell
        if (
            len(info) >= _TCP_INFO_LEN
            and info[0] == _TCP_ESTABLISHED
            and _TCP_BYTES_RECEIVED.unpack_from(info, _TCP_BYTES_RECEIVED_AT)[0] == self._received
        ):
            return False  # no FIN, no reset, nothing unread: the common case
        # Stale by the kernel's word (or no word): rare, so confirm with
        # poll(). Should poll() disagree, TCP_INFO is not what it claims to
        # be here (an emulated kernel, a kernel before 4.1): poll from now on.
        readable = self.wait_readable(0)
        if not readable:
            self._tcp_probe = False
        return readable

    def fin_ago(self) -> float | None:
        """Seconds since the peer's FIN arrived (see ``_tcp_info``)."""
        return fin_ago(self._sock)

    def start_tls(
        self, context: ssl.SSLContext, server_hostname: str, timeout: float | None
    ) -> Stream:
        """TLS over this stream (a proxy tunnel, a Unix socket): the new
        stream replaces this one, which must not be used any more.

        Raises:
            TLSError, ConnectTimeout, ConnectError: as for ``connect``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            if self._kernel:
                # TLS waits with Python's timeouts; kernel ones would make a
                # blocking handshake read fail with EAGAIN instead.
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(None))
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(None))
            return _start_tls(self._sock, context, server_hostname, deadline)
        except BaseException:
            self._sock.close()
            raise

    def close(self) -> None:
        """Close the socket, without a TLS close_notify (see below). Idempotent."""
        # A TLS close_notify would cost a write that can block on a dead peer,
        # and HTTP/1.1 framing (not close_notify) marks the end of each
        # response, so truncation cannot go unnoticed. Plain close is enough.
        with contextlib.suppress(OSError):
            self._sock.close()


def connect_unix(path: str, *, timeout: float | None) -> Stream:
    """Open a stream to a Unix domain socket at ``path``.

    Raises:
        ConnectTimeout: the connect took longer than ``timeout``.
        ConnectError: no such socket, refused, or permission denied.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise connect_unix_failed(exc, path, timeout) from exc
    return Stream(sock)


def connect(
    host: str,
    port: int,
    *,
    timeout: float | None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    tcp_keepalive: float | None = None,
    addresses: Sequence[str] | None = None,
) -> Stream:
    """Open a TCP connection, with TLS when ``ssl_context`` is given.

    ``timeout`` bounds the look-up, the TCP connect (a race between the
    host's addresses: ``_dial``) and the TLS handshake together.
    ``tcp_keepalive`` is the idle time before keepalive probes (None: off);
    ``addresses`` are IP literals to connect to instead of looking up ``host``.

    Raises:
        ConnectTimeout: connect plus handshake took longer than ``timeout``.
        ConnectError: refused, unreachable, or the name did not resolve.
        TLSError: the handshake failed or the certificate did not verify.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    sock = open_tcp(host, port, timeout=timeout, tcp_keepalive=tcp_keepalive, addresses=addresses)
    try:
        if ssl_context is None:
            return Stream(sock)
        return _start_tls(sock, ssl_context, server_hostname or host, deadline)
    except BaseException:
        sock.close()
        raise


def _start_tls(
    sock: socket.socket,
    context: ssl.SSLContext,
    server_hostname: str,
    deadline: float | None,
) -> Stream:
    if deadline is not None:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
    try:
        tls = context.wrap_socket(sock, server_hostname=server_hostname)
    except OSError as exc:
        raise tls_failed(exc, server_hostname) from exc
    return Stream(tls, read_tls_details(tls))


def make_ssl_context(verify: VerifyInput, cert: CertInput = None) -> ssl.SSLContext:
    """Build the client's TLS context once; every https connection shares it.

    Args:
        verify: ``True`` verifies against the system trust store; a path
            to a CA bundle file (or directory) verifies against it; an
            ``ssl.SSLContext`` is used as it is; ``False`` disables
            certificate and host name checks (never do this in production).
        cert: a client certificate: a PEM path holding cert and key, or a
            ``(cert_path, key_path)`` pair.

    Raises:
        TLSError: the CA bundle or the client certificate can't be loaded.
        TypeError: ``verify`` or ``cert`` has an unsupported type.
    """
    import ssl

    if isinstance(verify, ssl.SSLContext):
        context = verify
    elif verify is True or verify is False:
        context = ssl.create_default_context()
        if verify is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str):
        # Given a CA file or directory, create_default_context trusts only it:
        # the system store is loaded only when none is given.
        try:
            if os.path.isdir(verify):
                context = ssl.create_default_context(capath=verify)
            else:
                context = ssl.create_default_context(cafile=verify)
        except (OSError, ssl.SSLError) as exc:
            raise TLSError(f"could not load CA bundle {verify!r}: {exc}") from exc
    else:
        raise TypeError(f"verify must be a bool, a path or an SSLContext, not {verify!r}")
    if not isinstance(verify, ssl.SSLContext):
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
    if cert is not None:
        _load_cert(context, cert)
    return context


def _load_cert(context: ssl.SSLContext, cert: str | tuple[str, str]) -> None:
    import ssl

    if isinstance(cert, str):
        certfile, keyfile = cert, None
    elif len(cert) == 2:
        certfile, keyfile = cert
    else:
        raise TypeError(f"cert must be a path or a (cert, key) pair, not {cert!r}")
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise TLSError(f"could not load client certificate {certfile!r}: {exc}") from exc
