"""Asyncio sockets: connect, TLS, timed reads and writes, and the idle probe.

The asyncio twin of ``_socket``: ``AsyncStream`` offers what ``Stream``
offers, as coroutines, and raises the same errors with the same words
(both take them from ``_io_errors``). This is the asyncio shell's only
module that touches transports and ``ssl``; the TCP connect itself (a race
between the host's addresses) is ``_aio_dial``'s.

A protocol, not asyncio streams
-------------------------------
``asyncio.StreamReader`` costs a future and a task switch per read even
when bytes are already there, plus a lock-free but layered ``drain()``. The
transport here talks to a small ``asyncio.BufferedProtocol`` that keeps
received chunks in a deque: a ``recv`` that finds bytes buffered returns them at
once, without a future; only an empty buffer makes it wait. A write is
``transport.write`` (which sends at once when it can) and waits only when
the transport says its buffer is over the high-water mark
(``pause_writing``). When the receive buffer holds more than
``_READ_LIMIT`` bytes nobody has read, the protocol pauses the transport's
reading, and the next ``recv`` that brings it under ``_READ_RESUME``
resumes it: a slow reader holds a bounded amount of memory, and the
server's writes are slowed by TCP, as with a blocking socket left unread.

Why buffered: a plain ``Protocol`` gets each read as a new bytes object
for which the transport asked the kernel with room for 256 KiB: a fresh
``mmap`` and ``munmap`` per read, about 20 us, for a response of a hundred
bytes. A ``BufferedProtocol`` lends the transport a buffer to read into,
and the bytes are copied out at once, so one 64 KiB scratch buffer per
thread serves every connection (the loop reads one socket at a time) and
an idle connection holds none.

Timeouts are per operation, as in ``_socket``: each wait for bytes, each
wait for the write buffer to drain. A wait is a future and a deadline; the
stream keeps one timer, armed only when none is pending at or before the
deadline. When it fires early (an earlier wait's deadline), it re-arms for
the current one: about one timer per timeout period, where a ``call_later``
per wait cost a tenth of a small exchange. Connecting keeps ``wait_for``
(a task per call): one deadline bounds TCP connect and the TLS handshake.

The idle probe
--------------
``Stream.is_readable`` asks the kernel (``poll()`` or ``TCP_INFO``) whether
a read would not block: unread bytes, a FIN or a reset. Here the event loop
already asks: while reading is not paused, the loop's selector watches
every transport's socket, and whenever it becomes readable the transport
reads and tells the protocol (``data_received``, ``eof_received``,
``connection_lost``). So "the protocol holds unread bytes, or saw EOF, or
lost the connection" is what ``poll()`` said the last time the loop
looked, and ``is_readable`` answers it from three attributes, with no
system call. (Reading is paused only with bytes buffered, which is
"readable" already.) What it cannot see is what the loop has not looked at
yet: a FIN that reached the kernel since the loop's last ``select``, or is
still on the network (the sync probe misses that too: the keep-alive race).

Closing
-------
``close`` aborts the transport, as ``Stream.close`` closes its socket: no
TLS close_notify, no wait for unsent bytes (either could wait on a dead
peer; HTTP/1.1 framing, not close_notify, marks each response's end).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from typing import TYPE_CHECKING, Final

from ._aio_dial import open_tcp
from ._exceptions import ConnectError
from ._io_errors import (
    connect_unix_failed,
    lost_while,
    read_timed_out,
    tls_failed,
    tls_timed_out,
    write_timed_out,
)
from ._tcp_info import fin_ago
from ._tls_details import TLSDetails, read_tls_details

if TYPE_CHECKING:
    import ssl
    from collections.abc import Sequence

__all__ = ["AsyncStream", "connect", "connect_unix"]

#: Unread bytes above which the transport stops reading from the socket...
_READ_LIMIT: Final = 256 * 1024
#: ...until a read brings them down to this.
_READ_RESUME: Final = 64 * 1024

#: asyncio's handshake timeout when the caller gave none (its own 60 s
#: would end what None allows); with one, ours comes first.
_NO_HANDSHAKE_TIMEOUT: Final = 86400.0


#: A write at least this large gives the loop a turn (see ``send_all``).
_YIELD_AFTER: Final = 64 * 1024

#: Bytes the transport may read into the scratch buffer at a time.
_SCRATCH_SIZE: Final = 64 * 1024


class _Scratch(threading.local):
    """One read buffer per thread (see "Why buffered" above)."""

    def __init__(self) -> None:
        self.view = memoryview(bytearray(_SCRATCH_SIZE))


_SCRATCH = _Scratch()


def _wake(waiter: asyncio.Future[bool] | None, value: bool) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(value)


class _Protocol(asyncio.BufferedProtocol):
    """What the transport reports, kept for ``AsyncStream`` to take."""

    __slots__ = (
        "chunks",
        "drain_waiter",
        "eof",
        "error",
        "lost",
        "offset",
        "read_waiter",
        "reading_paused",
        "size",
        "transport",
        "writing_paused",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        #: Received, unread chunks; ``offset`` bytes of the first one are read.
        self.chunks: collections.deque[bytes] = collections.deque()
        self.offset = 0
        #: Unread bytes in ``chunks``.
        self.size = 0
        self.eof = False
        self.lost = False
        #: Why the connection was lost (None: closed cleanly, or by us).
        self.error: Exception | None = None
        self.reading_paused = False
        self.writing_paused = False
        self.read_waiter: asyncio.Future[bool] | None = None
        self.drain_waiter: asyncio.Future[bool] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.attach(transport)

    def attach(self, transport: asyncio.Transport) -> None:
        """Take ``transport`` (also for TLS: ``loop.start_tls`` does not call
        ``connection_made``); bytes may have come in before it."""
        self.transport = transport
        self._check_limit()

    def get_buffer(self, sizehint: int) -> memoryview:
        return _SCRATCH.view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(_SCRATCH.view[:nbytes]))

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > _READ_LIMIT:
            self._check_limit()
        _wake(self.read_waiter, True)
        # A writer waiting for the buffer to drain stops waiting too: the
        # peer is answering (an early 413), and the writer should read it.
        _wake(self.drain_waiter, True)

    def _check_limit(self) -> None:
        if self.size > _READ_LIMIT and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        # True: the transport stays open (half-closed) until we close it.
        # With False it would close itself, after sending on whatever it
        # still holds of a request body the server has already answered;
        # a connection whose peer closed is never reused anyway. (An ssl
        # transport closes either way.)
        self.eof = True
        _wake(self.read_waiter, True)
        _wake(self.drain_waiter, True)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        _wake(self.read_waiter, True)
        _wake(self.drain_waiter, True)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        _wake(self.drain_waiter, True)

    def take(self, size: int) -> bytes:
        """Up to ``size`` buffered bytes (there are some)."""
        chunks = self.chunks
        first = chunks[0]
        offset = self.offset
        end = offset + size
        if end < len(first):
            data = first[offset:end]
            self.offset = end
        else:
            # The rest of the first chunk, and whole chunks after it that fit.
            data = first[offset:] if offset else first
            chunks.popleft()
            self.offset = 0
            if chunks and len(data) + len(chunks[0]) <= size:
                parts = [data]
                room = size - len(data)
                while chunks and len(chunks[0]) <= room:
                    part = chunks.popleft()
                    parts.append(part)
                    room -= len(part)
                data = b"".join(parts)
        self.size -= len(data)
        if self.reading_paused and self.size <= _READ_RESUME and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()
        return data


class AsyncStream:
    """A connected transport (plain or TLS) with per-operation timeouts.

    One connection, one owner at a time (the pool's rule); every method
    must be called from the loop the stream was opened on.
    """

    __slots__ = (
        "_closed",
        "_deadline",
        "_loop",
        "_protocol",
        "_timer",
        "_transport",
        "_waiter",
        "tls",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        protocol: _Protocol,
        tls: TLSDetails | None = None,
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self.tls = tls  # what the TLS handshake agreed (None: plain TCP)
        #: The current wait: its future and deadline (None: no limit).
        self._waiter: asyncio.Future[bool] | None = None
        self._deadline: float | None = None
        #: The one timer, pending or None (see "Timeouts" above).
        self._timer: asyncio.TimerHandle | None = None

    async def send_all(self, data: bytes | bytearray | memoryview, timeout: float | None) -> None:
        """Hand every byte of ``data`` to the transport; wait, up to
        ``timeout`` seconds, only while its buffer is over the high-water
        mark. Bytes still buffered when this returns are sent by the loop.

        A failure the transport meets while sending shows at the next call
        (a read: "connection lost while reading").

        Raises:
            WriteTimeout: the buffer did not drain within ``timeout`` seconds.
            RemoteProtocolError: the connection was reset or closed.
        """
        protocol = self._protocol
        if protocol.lost or self._closed or self._transport.is_closing():
            raise lost_while("sending", self._why_lost())
        if type(data) is not bytes:
            # The transport keeps what it cannot send at once by reference;
            # the caller may reuse its buffer as soon as this returns.
            data = bytes(data)
        self._transport.write(data)
        if protocol.writing_paused:
            # Until the buffer drains, or the peer answers (an early 413:
            # the caller then reads it rather than write on).
            if not await self._wait("drain_waiter", timeout):
                raise write_timed_out(timeout)
            if protocol.lost:
                raise lost_while("sending", self._why_lost())
        elif len(data) >= _YIELD_AFTER:
            # A large write the kernel took whole: give the loop a turn, so
            # that an answer sent meanwhile is seen before the next block
            # (the blocking Stream asks the kernel before each block).
            await asyncio.sleep(0)

    async def recv(self, size: int, timeout: float | None) -> bytes:
        """Read up to ``size`` bytes; b"" means the peer closed. Returns at
        once when bytes are buffered; waits only for an empty buffer.

        Raises:
            ReadTimeout: nothing arrived for ``timeout`` seconds.
            RemoteProtocolError: the connection was reset (or closed by us).
        """
        protocol = self._protocol
        if not protocol.size:
            if not (protocol.eof or protocol.lost or self._closed) and not await self._wait(
                "read_waiter", timeout
            ):
                raise read_timed_out(timeout)
            if not protocol.size:
                if self._closed or protocol.error is not None:
                    raise lost_while("reading", self._why_lost())
                return b""
        return protocol.take(size)

    async def wait_readable(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for bytes, EOF or a reset."""
        if self.is_readable():
            return True
        return await self._wait("read_waiter", timeout)

    def is_readable(self) -> bool:
        """Whether a read would not wait: for an idle connection, that the
        peer closed or reset it, or sent bytes nobody asked for. No system
        call: the loop told the protocol (see "The idle probe" above)."""
        protocol = self._protocol
        return bool(protocol.size) or protocol.eof or protocol.lost or self._closed

    def fin_ago(self) -> float | None:  # since the peer's FIN came (``_tcp_info``)
        return fin_ago(self._transport.get_extra_info("socket"))

    async def _wait(self, slot: str, timeout: float | None) -> bool:
        """Wait until the protocol wakes ``slot``'s waiter (True) or
        ``timeout`` passes (False)."""
        loop = self._loop
        waiter: asyncio.Future[bool] = loop.create_future()
        setattr(self._protocol, slot, waiter)
        if timeout is not None:
            deadline = self._deadline = loop.time() + timeout
            timer = self._timer
            if timer is None or timer.when() > deadline:
                if timer is not None:
                    timer.cancel()
                self._timer = loop.call_at(deadline, self._on_timer)
        self._waiter = waiter
        try:
            return await waiter
        finally:
            setattr(self._protocol, slot, None)
            self._waiter = self._deadline = None

    def _on_timer(self) -> None:
        self._timer = None
        waiter, deadline = self._waiter, self._deadline
        if waiter is None or deadline is None or waiter.done():
            return  # the wait it was armed for ended; none is pending now
        if self._loop.time() >= deadline:
            waiter.set_result(False)
        else:  # armed for an earlier wait: on to this one's deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _why_lost(self) -> object:
        if self._protocol.error is not None:
            return self._protocol.error
        return "stream closed" if self._closed else "connection closed by the peer"

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str, timeout: float | None
    ) -> AsyncStream:
        """TLS over this stream (a proxy tunnel, a Unix socket): the new
        stream replaces this one, which must not be used any more.

        Raises:
            TLSError, ConnectTimeout, ConnectError: as for ``connect``.
        """
        try:
            return await _start_tls(self._transport, context, server_hostname, timeout)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the socket, without a TLS close_notify (see "Closing"
        above). Idempotent."""
        if not self._closed:
            self._closed = True
            # RuntimeError: its event loop is closed (a client kept past the
            # end of asyncio.run); the socket closes when it is collected.
            with contextlib.suppress(RuntimeError):
                if not self._protocol.lost:
                    self._transport.abort()
                else:
                    # The socket is closed (a plain transport dropped its loop:
                    # abort would fail); a TLS one counts itself open till told.
                    self._transport.close()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


async def _start_tls(
    transport: asyncio.Transport,
    context: ssl.SSLContext,
    server_hostname: str,
    timeout: float | None,
) -> AsyncStream:
    loop = asyncio.get_running_loop()
    protocol = _Protocol()
    if timeout is not None:
        timeout = max(timeout, 0.001)  # a deadline already passed: fail in the handshake
    handshake = loop.start_tls(
        transport,
        protocol,
        context,
        server_hostname=server_hostname,
        ssl_handshake_timeout=_NO_HANDSHAKE_TIMEOUT if timeout is None else timeout + 1,
    )
    try:
        tls = await asyncio.wait_for(handshake, timeout)
    except asyncio.TimeoutError as exc:  # TimeoutError's alias from 3.11 on
        raise tls_timed_out(server_hostname) from exc
    except OSError as exc:
        raise tls_failed(exc, server_hostname) from exc
    if tls is None:  # the connection closed under the handshake
        raise ConnectError("connection lost during TLS handshake")
    protocol.attach(tls)
    ssl_object = tls.get_extra_info("ssl_object")
    return AsyncStream(tls, protocol, None if ssl_object is None else read_tls_details(ssl_object))


async def connect(
    host: str,
    port: int,
    *,
    timeout: float | None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    tcp_keepalive: float | None = None,
    addresses: Sequence[str] | None = None,
) -> AsyncStream:
    """Open a TCP connection, with TLS when ``ssl_context`` is given.

    ``timeout`` bounds the look-up, the TCP connect (a race between the
    host's addresses: ``_aio_dial``) and the TLS handshake together; the
    other arguments are as for ``_socket.connect``.

    Raises:
        ConnectTimeout: connect plus handshake took longer than ``timeout``.
        ConnectError: refused, unreachable, or the name did not resolve.
        TLSError: the handshake failed or the certificate did not verify.
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    sock = await open_tcp(
        host, port, timeout=timeout, tcp_keepalive=tcp_keepalive, addresses=addresses
    )
    try:
        transport, protocol = await loop.create_connection(_Protocol, sock=sock)
    except BaseException:
        sock.close()
        raise
    try:
        if ssl_context is None:
            return AsyncStream(transport, protocol)
        left = None if deadline is None else deadline - loop.time()
        return await _start_tls(transport, ssl_context, server_hostname or host, left)
    except BaseException:
        transport.abort()
        raise


async def connect_unix(path: str, *, timeout: float | None) -> AsyncStream:
    """Open a stream to a Unix domain socket at ``path``.

    Raises:
        ConnectTimeout: the connect took longer than ``timeout``.
        ConnectError: no such socket, refused, or permission denied.
    """
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await asyncio.wait_for(
            loop.create_unix_connection(_Protocol, path), timeout
        )
    except asyncio.TimeoutError as exc:
        raise connect_unix_failed(TimeoutError(), path, timeout) from exc
    except OSError as exc:
        raise connect_unix_failed(exc, path, timeout) from exc
    return AsyncStream(transport, protocol)
