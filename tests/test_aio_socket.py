"""The asyncio I/O layer: AsyncStream, connect, connect_unix, open_stream.

Real loopback servers (asyncio ones, in the test's own loop). Each test is
a plain function running one coroutine under ``asyncio.run``, bounded by a
timeout, and collects garbage afterwards so that a transport left open
warns (an error here) in the test that leaked it. Errors must read as the
blocking ``_socket`` ones do: where a message is compared, it is compared
with what the sync path says for the same failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any

import pytest

import rawkeep
from rawkeep import _aio_socket, _socket
from rawkeep._aio_connect import open_stream
from rawkeep._aio_socket import AsyncStream, connect, connect_unix
from rawkeep._connect import Connector
from rawkeep._url import URL

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
    from pathlib import Path

    ServerSide = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def run(coro: Coroutine[Any, Any, None], timeout: float = 15.0) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(coro, timeout)

    asyncio.run(bounded(), debug=True)
    gc.collect()


class Server:
    """An asyncio server whose accepted connections the test drives itself."""

    def __init__(self) -> None:
        self.accepted: asyncio.Queue[ServerSide] = asyncio.Queue()
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        await self.accepted.put((reader, writer))

    async def peer(self) -> ServerSide:
        return await asyncio.wait_for(self.accepted.get(), 5)


@contextlib.asynccontextmanager
async def serving(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]] | None = None,
    *,
    host: str = "127.0.0.1",
    ssl_context: ssl.SSLContext | None = None,
    path: str | None = None,
) -> AsyncIterator[Server]:
    server = Server()
    writers = server.writers

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if handler is None:
            await server.handle(reader, writer)
        else:
            writers.append(writer)
            await handler(reader, writer)

    if path is None:
        listener = await asyncio.start_server(handle, host, 0, ssl=ssl_context)
        server.port = listener.sockets[0].getsockname()[1]
    else:
        listener = await asyncio.start_unix_server(handle, path, ssl=ssl_context)
    try:
        yield server
    finally:
        listener.close()
        for writer in writers:
            writer.transport.abort()
        await asyncio.wait_for(listener.wait_closed(), 5)


async def eventually(predicate: Callable[[], bool], limit: float = 3.0) -> bool:
    """Let the loop run until ``predicate()`` holds, or ``limit`` seconds pass."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def read_exactly(stream: AsyncStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await stream.recv(size - len(data), 5)
        assert chunk, f"EOF after {len(data)} of {size} bytes"
        data += chunk
    return data


# -- plain TCP -------------------------------------------------------------------


def test_connect_send_and_recv() -> None:
    async def main() -> None:
        async with serving() as server:
            stream = await connect("127.0.0.1", server.port, timeout=5)
            reader, writer = await server.peer()
            try:
                await stream.send_all(b"GET / HTTP/1.1\r\n\r\n", 5)
                await stream.send_all(memoryview(bytearray(b"body")), 5)
                assert await reader.readexactly(22) == b"GET / HTTP/1.1\r\n\r\nbody"
                writer.write(b"0123456789")
                assert await read_exactly(stream, 4) == b"0123"  # part of a chunk...
                assert await read_exactly(stream, 6) == b"456789"  # ...then its rest
                assert stream.tls is None
                sock = stream._transport.get_extra_info("socket")
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            finally:
                stream.close()
                stream.close()  # idempotent
            assert await asyncio.wait_for(reader.read(), 5) == b""  # the server sees it

    run(main())


def test_recv_joins_buffered_chunks_up_to_size() -> None:
    async def main() -> None:
        async with serving() as server:
            stream = await connect("127.0.0.1", server.port, timeout=5)
            _, writer = await server.peer()
            try:
                for part in (b"ab", b"cd", b"ef"):
                    writer.write(part)
                    await writer.drain()
                    assert await eventually(lambda: stream._protocol.size >= 2)
                    await asyncio.sleep(0.02)
                assert await eventually(lambda: stream._protocol.size == 6)
                assert await stream.recv(5, 1) == b"abcd"  # whole chunks that fit
                assert await stream.recv(5, 1) == b"ef"
            finally:
                stream.close()

    run(main())


def test_ipv6_literal() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no ::1 here")

    async def main() -> None:
        async with serving(host="::1") as server:
            stream = await connect("::1", server.port, timeout=5)
            _, writer = await server.peer()
            try:
                writer.write(b"six")
                assert await read_exactly(stream, 3) == b"six"
            finally:
                stream.close()

    run(main())


def test_recv_timeout_is_a_read_timeout() -> None:
    async def main() -> None:
        async with serving() as server:
            stream = await connect("127.0.0.1", server.port, timeout=5)
            try:
                started = time.monotonic()
                with pytest.raises(rawkeep.ReadTimeout, match=r"^read timed out after 0\.2 s$"):
                    await stream.recv(10, 0.2)
                assert 0.15 < time.monotonic() - started < 2
                assert not await stream.wait_readable(0.1)
            finally:
                stream.close()

    run(main())


def test_each_wait_has_its_own_deadline() -> None:
    async def main() -> None:
        async with serving() as server:
            stream = await connect("127.0.0.1", server.port, timeout=5)
            _, writer = await server.peer()
            loop = asyncio.get_running_loop()
            try:
                # A long wait that ends early leaves a timer far ahead...
                loop.call_later(0.05, writer.write, b"a")
                assert await stream.recv(1, 30) == b"a"
                started = time.monotonic()
                with pytest.raises(rawkeep.ReadTimeout):  # ...a short one must not wait for it
                    await stream.recv(1, 0.2)
                assert 0.15 < time.monotonic() - started < 2
                # A short wait that ends early leaves a timer just ahead: a
                # longer wait after it must outlive that timer.
                loop.call_later(0.05, writer.write, b"b")
                assert await stream.recv(1, 0.3) == b"b"
                loop.call_later(0.4, writer.write, b"c")
                assert await stream.recv(1, 1.5) == b"c"
            finally:
                stream.close()

    run(main())


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # bound, never listening: refused


def test_refused_is_a_connect_error_worded_as_the_sync_one() -> None:
    port = _refused_port()
    with pytest.raises(rawkeep.ConnectError) as sync_error:
        _socket.connect("127.0.0.1", port, timeout=5)

    async def main() -> None:
        with pytest.raises(rawkeep.ConnectError) as caught:
            await connect("127.0.0.1", port, timeout=5)
        assert type(caught.value) is rawkeep.ConnectError
        assert caught.value.message == sync_error.value.message
        assert caught.value.message == f"could not connect to 127.0.0.1:{port}: Connection refused"

    run(main())


def test_unresolvable_name_is_a_connect_error() -> None:
    async def main() -> None:
        # The tests' loopback guard answers every such look-up "no name".
        with pytest.raises(rawkeep.ConnectError, match=r"^could not resolve 'nowhere\.test'"):
            await connect("nowhere.test", 80, timeout=5)

    run(main())


def test_eof_is_empty_bytes_after_the_data() -> None:
    async def main() -> None:
        async with serving() as server:
            stream = await connect("127.0.0.1", server.port, timeout=5)
            _, writer = await server.peer()
            try:
                writer.write(b"last words")
                writer.close()
                assert await read_exactly(stream, 10) == b"last words"
                assert await stream.recv(10, 5) == b""
                assert await stream.recv(10, 5) == b""  # and stays so
            finally:
                stream.close()

    run(main())


def test_reset_is_a_remote_protocol_error() -> None:
    async def main() -> None:
        async with serving() as server:
            stream = await connect("127.0.0.1", server.port, timeout=5)
            _, writer = await server.peer()
            try:
                linger = socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0"
                writer.get_extra_info("socket").setsockopt(*linger)
                writer.transport.abort()  # close with SO_LINGER 0: a reset
                with pytest.raises(
                    rawkeep.RemoteProtocolError, match=r"^connection lost while reading: .*reset"
                ):
                    await stream.recv(10, 5)
                with pytest.raises(
                    rawkeep.RemoteProtocolError, match=r"^connection lost while sending: "
                ):
                    await stream.send_all(b"more", 5)
                assert stream.is_readable()
            finally:
                stream.close()

    run(main())


def test_use_after_close_is_a_remote_protocol_error() -> None:
    async def main() -> None:
        async with serving() as server:
            stream = await connect("127.0.0.1", server.port, timeout=5)
            stream.close()
            with pytest.raises(rawkeep.RemoteProtocolError, match="stream closed"):
                await stream.recv(10, 5)
            with pytest.raises(rawkeep.RemoteProtocolError, match="stream closed"):
                await stream.send_all(b"x", 5)
            assert stream.is_readable()  # a closed stream is never reused

    run(main())


def test_write_timeout_when_the_peer_reads_nothing() -> None:
    async def main() -> None:
        async with serving() as server:
            stream = await connect("127.0.0.1", server.port, timeout=5)
            await server.peer()  # ...and never read from
            try:
                started = time.monotonic()

                async def flood() -> None:
                    for _ in range(100):
                        await stream.send_all(b"x" * (1 << 20), 0.3)

                with pytest.raises(rawkeep.WriteTimeout, match=r"^write timed out after 0\.3 s$"):
                    await flood()
                assert time.monotonic() - started < 3
            finally:
                stream.close()

    run(main())


def test_a_write_that_fits_does_not_wait() -> None:
    async def main() -> None:
        async with serving() as server:
            stream = await connect("127.0.0.1", server.port, timeout=5)
            reader, _ = await server.peer()
            try:
                for _ in range(100):
                    await stream.send_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n", 0)
                assert len(await reader.readexactly(2700)) == 2700
            finally:
                stream.close()

    run(main())


# -- the idle probe -----------------------------------------------------------------


def test_probe_quiet_then_bytes_then_close() -> None:
    async def main() -> None:
        async with serving() as server:
            stream = await connect("127.0.0.1", server.port, timeout=5)
            _, writer = await server.peer()
            try:
                await asyncio.sleep(0.1)  # whatever would arrive, let the loop see it
                assert not stream.is_readable()
                writer.write(b"!")  # bytes nobody asked for
                assert await eventually(stream.is_readable)
                assert await stream.wait_readable(0)
                assert await stream.recv(10, 1) == b"!"
                assert not stream.is_readable()  # read: quiet again
                writer.close()  # the server's keep-alive timeout
                assert await eventually(stream.is_readable)
            finally:
                stream.close()

    run(main())


def test_wait_readable_wakes_on_data() -> None:
    async def main() -> None:
        async with serving() as server:
            stream = await connect("127.0.0.1", server.port, timeout=5)
            _, writer = await server.peer()
            try:
                asyncio.get_running_loop().call_later(0.1, writer.write, b"x")
                started = time.monotonic()
                assert await stream.wait_readable(5)
                assert time.monotonic() - started < 2
            finally:
                stream.close()

    run(main())


def test_probe_makes_no_system_call() -> None:
    async def main() -> None:
        async with serving() as server:
            stream = await connect("127.0.0.1", server.port, timeout=5)
            try:
                # The socket is gone from under the transport: a probe that
                # asked the kernel would fail or say "readable".
                sock = stream._transport.get_extra_info("socket")
                real = socket.socket(fileno=socket.dup(sock.fileno()))
                real.close()
                assert not stream.is_readable()
            finally:
                stream.close()

    run(main())


# -- flow control ----------------------------------------------------------------------


def test_unread_bytes_are_bounded_by_pausing_the_transport() -> None:
    size = 10 * 1024 * 1024

    async def main() -> None:
        async with serving() as server:
            stream = await connect("127.0.0.1", server.port, timeout=5)
            _, writer = await server.peer()
            try:
                writer.write(b"x" * size)
                await asyncio.sleep(0.5)  # the server writes; the client reads nothing
                protocol = stream._protocol
                assert protocol.reading_paused
                # At most one transport read past the limit (asyncio reads 256 KiB).
                assert protocol.size <= _aio_socket._READ_LIMIT + 256 * 1024
                total = 0
                while total < size:
                    chunk = await stream.recv(1 << 20, 5)
                    assert chunk
                    total += len(chunk)
                    assert protocol.size <= _aio_socket._READ_LIMIT + 256 * 1024
                assert total == size
                assert not protocol.reading_paused
            finally:
                stream.close()

    run(main())


# -- TLS ------------------------------------------------------------------------------------


def test_tls_round_trip_and_probe(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    async def main() -> None:
        async with serving(ssl_context=server_ssl_context) as server:
            stream = await connect(
                "127.0.0.1", server.port, timeout=5, ssl_context=client_ssl_context
            )
            reader, writer = await server.peer()
            try:
                assert stream.tls is not None
                assert stream.tls.version.startswith("TLS")
                await stream.send_all(b"ping", 5)
                assert await reader.readexactly(4) == b"ping"
                writer.write(b"pong")
                assert await read_exactly(stream, 4) == b"pong"
                assert not stream.is_readable()
            finally:
                stream.close()
            # Closed at once, without a close_notify to wait for.
            assert await asyncio.wait_for(reader.read(), 5) == b""

    run(main())


def test_tls_verify_failure_is_a_tls_error(server_ssl_context: ssl.SSLContext) -> None:
    async def main() -> None:
        async with serving(ssl_context=server_ssl_context) as server:
            untrusting = ssl.create_default_context()  # does not know the test CA
            with pytest.raises(
                rawkeep.TLSError, match=r"^certificate verify failed for 127\.0\.0\.1: "
            ):
                await connect("127.0.0.1", server.port, timeout=5, ssl_context=untrusting)

    run(main())


def test_tls_hostname_mismatch_is_a_tls_error(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    async def main() -> None:
        async with serving(ssl_context=server_ssl_context) as server:
            with pytest.raises(
                rawkeep.TLSError, match=r"^certificate verify failed for other\.test"
            ):
                await connect(
                    "127.0.0.1",
                    server.port,
                    timeout=5,
                    ssl_context=client_ssl_context,
                    server_hostname="other.test",
                )

    run(main())


def test_silent_tls_server_is_a_connect_timeout(client_ssl_context: ssl.SSLContext) -> None:
    async def main() -> None:
        async with serving() as server:  # accepts, never answers the hello
            started = time.monotonic()
            with pytest.raises(
                rawkeep.ConnectTimeout, match=r"^TLS handshake with 127\.0\.0\.1 timed out$"
            ):
                await connect(
                    "127.0.0.1", server.port, timeout=0.3, ssl_context=client_ssl_context
                )
            assert time.monotonic() - started < 2

    run(main())


# -- Unix sockets --------------------------------------------------------------------------


def test_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")

    async def main() -> None:
        async with serving(path=path) as server:
            stream = await connect_unix(path, timeout=5)
            reader, writer = await server.peer()
            try:
                await stream.send_all(b"hello", 5)
                assert await reader.readexactly(5) == b"hello"
                writer.write(b"there")
                assert await read_exactly(stream, 5) == b"there"
                assert not stream.is_readable()
            finally:
                stream.close()

    run(main())


def test_missing_unix_socket_is_a_connect_error_worded_as_the_sync_one(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.sock")
    with pytest.raises(rawkeep.ConnectError) as sync_error:
        _socket.connect_unix(path, timeout=5)

    async def main() -> None:
        with pytest.raises(rawkeep.ConnectError) as caught:
            await connect_unix(path, timeout=5)
        assert caught.value.message == sync_error.value.message
        assert caught.value.message.endswith("No such file or directory")

    run(main())


# -- open_stream: the five ways ------------------------------------------------------------


def connector(**kwargs: Any) -> Connector:
    options: dict[str, Any] = {
        "verify": True,
        "cert": None,
        "proxy": None,
        "environ": None,
        "uds": None,
    }
    options.update(kwargs)
    return Connector(**options)


def route_for(conn: Connector, url: str) -> Any:
    return conn.route(URL(url).origin)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)


async def exchange(stream: AsyncStream, data: bytes = b"ping") -> bytes:
    await stream.send_all(data, 5)
    return await read_exactly(stream, len(data))


class TinyProxy:
    """CONNECT tunnels (or a refusal), and a fixed answer to anything else."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.seen: list[bytes] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.seen.append(head)
        method, target, _ = head.split(b"\r\n", 1)[0].split(b" ")
        if method != b"CONNECT":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nproxy")
            return
        if self.refuse:
            writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            return
        host, _, port = target.decode().rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
            dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            up_writer.transport.abort()


def test_open_stream_direct_http() -> None:
    async def main() -> None:
        async with serving(echo) as server:
            conn = connector()
            stream = await open_stream(conn, route_for(conn, f"http://127.0.0.1:{server.port}"), 5)
            try:
                assert stream.tls is None
                assert await exchange(stream) == b"ping"
            finally:
                stream.close()

    run(main())


def test_open_stream_direct_https(server_ssl_context: ssl.SSLContext, ca_pem_path: str) -> None:
    async def main() -> None:
        async with serving(echo, ssl_context=server_ssl_context) as server:
            conn = connector(verify=ca_pem_path)
            url = f"https://127.0.0.1:{server.port}"
            stream = await open_stream(conn, route_for(conn, url), 5)
            try:
                assert stream.tls is not None
                assert await exchange(stream) == b"ping"
            finally:
                stream.close()

    run(main())


def test_open_stream_over_a_unix_socket_plain_and_tls(
    tmp_path: Path, server_ssl_context: ssl.SSLContext, ca_pem_path: str
) -> None:
    plain, tls = str(tmp_path / "plain.sock"), str(tmp_path / "tls.sock")

    async def main() -> None:
        async with (
            serving(echo, path=plain),
            serving(echo, path=tls, ssl_context=server_ssl_context),
        ):
            conn = connector(uds=plain)
            stream = await open_stream(conn, route_for(conn, "http://127.0.0.1/"), 5)
            try:
                assert await exchange(stream) == b"ping"
            finally:
                stream.close()
            conn = connector(uds=tls, verify=ca_pem_path)
            stream = await open_stream(conn, route_for(conn, "https://localhost/"), 5)
            try:
                assert stream.tls is not None  # verified as "localhost"
                assert await exchange(stream) == b"ping"
            finally:
                stream.close()

    run(main())


def test_open_stream_http_via_a_proxy_goes_to_the_proxy() -> None:
    async def main() -> None:
        proxy = TinyProxy()
        async with serving(proxy) as proxy_server:
            conn = connector(proxy=f"http://127.0.0.1:{proxy_server.port}")
            stream = await open_stream(conn, route_for(conn, "http://target.test/"), 5)
            try:
                await stream.send_all(b"GET http://target.test/ HTTP/1.1\r\n\r\n", 5)
                assert (await read_exactly(stream, 43)).endswith(b"proxy")
            finally:
                stream.close()

    run(main())


def test_open_stream_https_through_a_connect_tunnel(
    server_ssl_context: ssl.SSLContext, ca_pem_path: str
) -> None:
    async def main() -> None:
        proxy = TinyProxy()
        async with (
            serving(echo, ssl_context=server_ssl_context) as target,
            serving(proxy) as proxy_server,
        ):
            conn = connector(proxy=f"http://u:p@127.0.0.1:{proxy_server.port}", verify=ca_pem_path)
            url = f"https://localhost:{target.port}/"
            stream = await open_stream(conn, route_for(conn, url), 5)
            try:
                assert stream.tls is not None  # TLS to the target, inside
                assert await exchange(stream, b"through") == b"through"
            finally:
                stream.close()
            head = proxy.seen[0].decode()
            assert head.startswith(f"CONNECT localhost:{target.port} HTTP/1.1\r\n")
            assert "\r\nProxy-Authorization: Basic dTpw\r\n" in head  # base64 of u:p

    run(main())


def test_open_stream_refused_tunnel_is_a_proxy_error() -> None:
    async def main() -> None:
        async with serving(TinyProxy(refuse=True)) as proxy_server:
            conn = connector(proxy=f"http://127.0.0.1:{proxy_server.port}")
            with pytest.raises(rawkeep.ProxyError, match="refused CONNECT") as caught:
                await open_stream(conn, route_for(conn, "https://target.test/"), 5)
            assert caught.value.status == 403
            assert caught.value.origin == "https://target.test:443"

    run(main())


def test_open_stream_unreachable_proxy_names_the_proxy() -> None:
    port = _refused_port()

    async def main() -> None:
        conn = connector(proxy=f"http://127.0.0.1:{port}")
        with pytest.raises(rawkeep.ProxyError) as caught:
            await open_stream(conn, route_for(conn, "https://target.test/"), 5)
        assert caught.value.message == (
            f"could not connect to proxy 127.0.0.1:{port}: Connection refused"
        )
        assert caught.value.origin == "https://target.test:443"

    run(main())


def test_open_stream_silent_proxy_is_a_connect_timeout() -> None:
    async def main() -> None:
        async with serving() as proxy_server:  # accepts, never answers
            conn = connector(proxy=f"http://127.0.0.1:{proxy_server.port}")
            with pytest.raises(
                rawkeep.ConnectTimeout, match=r"did not open the tunnel within 0\.2 s"
            ):
                await open_stream(conn, route_for(conn, "https://target.test/"), 0.2)

    run(main())


def test_open_stream_proxy_dropping_the_connect_is_a_proxy_error() -> None:
    async def main() -> None:
        async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.close()

        async with serving(drop) as proxy_server:
            conn = connector(proxy=f"http://127.0.0.1:{proxy_server.port}")
            with pytest.raises(rawkeep.ProxyError, match="CONNECT"):
                await open_stream(conn, route_for(conn, "https://target.test/"), 5)

    run(main())
