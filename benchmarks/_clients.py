"""The clients under test: one small adapter per library, one interface for all.

Each adapter knows how to do four things with its library, written the way
that library's documentation shows them (no private APIs, no tuning beyond
what a user would set, and the same pool size where a pool has one):

``get(path, close=False)``  one GET, returning the whole body (``close``:
                            send ``Connection: close``, forcing a new
                            connection for the next request).
``download(path)``          stream the body to a discarding sink; return
                            the byte count. Nothing accumulates.
``upload(path, body)``      send ``body`` (bytes in memory); return the status.

The timed loops (``time_gets``, ``time_downloads``, ``time_uploads``,
``time_threads``) return wall-clock seconds (``time_gets`` also leaves the
process's CPU seconds in ``last_cpu``) and are shared, except by aiohttp,
whose loops are coroutines run under one ``asyncio.run`` (calling into the
event loop once per request would charge it for our harness). Every loop makes one untimed warm-up
request first, on the same connection the timed part then uses.

Clients without a pool of their own (the raw socket floor, the bare h11
loop, ``http.client``, a pycurl handle) use one connection object directly
in the sequential suites; in the threads suite they share a LIFO stack of
such objects under a lock: the smallest pool that lets threads share them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, TypeVar

import h11  # rawkeep's one dependency: always there
from _server import BIG_SIZE, SMALL_BODY

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["ADAPTERS", "Adapter", "BenchError", "Target"]

#: Read size for APIs that take one (http.client, urllib3, requests).
CHUNK: Final = 64 * 1024

#: The raw floor's receive buffer for downloads: larger reads mean fewer
#: system calls; 256 KiB measured a little faster than 64 KiB or 1 MiB here.
RAW_READ: Final = 256 * 1024

#: Pool size for clients that have one and let it be set: rawkeep's default
#: per-host limit, also requests' and httpcore's default.
POOL_SIZE: Final = 10

_CLOSE: Final = {"Connection": "close"}
_CLOSE_PAIRS: Final[list[tuple[bytes | str, bytes | str]]] = [("Connection", "close")]


class BenchError(Exception):
    """A client returned something other than what the server sent."""


class Target:
    """Where the clients send requests: nginx's http or https port."""

    def __init__(self, host: str, port: int, *, tls: bool, ca_path: str) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.ca_path = ca_path
        self.base = f"{'https' if tls else 'http'}://{host}:{port}"
        self.authority = f"{host}:{port}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_path)


def _check_body(body: bytes) -> None:
    if body != SMALL_BODY:
        raise BenchError(f"unexpected body {body[:40]!r}")


def _check_size(size: int) -> None:
    if size != BIG_SIZE:
        raise BenchError(f"downloaded {size} bytes, expected {BIG_SIZE}")


def _check_status(status: int) -> None:
    if status != 204:
        raise BenchError(f"upload answered {status}, expected 204")


class Adapter:
    """One HTTP client library driven in the benchmark's fixed ways."""

    #: Short name used in tables and on the command line.
    name: ClassVar[str]
    #: Module imported to use it (also what the import-time suite imports).
    module: ClassVar[str]
    #: Distribution whose version is printed (None: standard library / ours).
    distribution: ClassVar[str | None] = None
    #: How the threads suite shares it, when that needs saying.
    threads_note: ClassVar[str] = ""

    def __init__(self, target: Target) -> None:
        self.target = target
        #: CPU seconds this process spent in the last ``time_gets`` loop.
        self.last_cpu = 0.0

    @classmethod
    def is_available(cls) -> bool:
        return importlib.util.find_spec(cls.module.split(".")[0]) is not None

    # -- what each library implements ----------------------------------------

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def get(self, path: str, *, close: bool = False) -> bytes:
        raise NotImplementedError

    def download(self, path: str) -> int:
        raise NotImplementedError

    def upload(self, path: str, body: bytes) -> int:
        raise NotImplementedError

    # -- timed loops (seconds) -------------------------------------------------

    def time_gets(self, path: str, n: int, *, close: bool = False) -> float:
        self.open()
        try:
            get = self.get
            _check_body(get(path, close=close))  # warm-up: connects, loads lazy code
            cpu, start = time.process_time(), time.perf_counter()
            for _ in range(n):
                if get(path, close=close) != SMALL_BODY:
                    raise BenchError("unexpected body")
            elapsed = time.perf_counter() - start
            self.last_cpu = time.process_time() - cpu
            return elapsed
        finally:
            self.close()

    def time_downloads(self, path: str, reps: int) -> float:
        self.open()
        try:
            _check_body(self.get("/small"))
            start = time.perf_counter()
            for _ in range(reps):
                _check_size(self.download(path))
            return time.perf_counter() - start
        finally:
            self.close()

    def time_uploads(self, path: str, body: bytes, reps: int) -> float:
        self.open()
        try:
            _check_body(self.get("/small"))
            start = time.perf_counter()
            for _ in range(reps):
                _check_status(self.upload(path, body))
            return time.perf_counter() - start
        finally:
            self.close()

    def time_threads(self, path: str, threads: int, per_thread: int) -> float:
        self.open()
        try:
            _check_body(self.get(path))
            barrier = threading.Barrier(threads + 1)
            failures: list[BaseException] = []

            def work() -> None:
                barrier.wait()
                try:
                    for _ in range(per_thread):
                        _check_body(self.get(path))
                except BaseException as exc:
                    failures.append(exc)

            workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
            for worker in workers:
                worker.start()
            barrier.wait()
            start = time.perf_counter()
            for worker in workers:
                worker.join()
            elapsed = time.perf_counter() - start
            if failures:
                raise failures[0]
            return elapsed
        finally:
            self.close()


# -- clients without a pool: one connection object, or a stack of them ---------

C = TypeVar("C")


class _Poolless(Adapter, Generic[C]):
    """Base for clients that are a single connection (see the module doc)."""

    threads_note = "LIFO stack of connections under a lock (no pool of its own)"

    def new_connection(self) -> C:
        raise NotImplementedError

    def close_connection(self, conn: C) -> None:
        raise NotImplementedError

    def get_on(self, conn: C, path: str, close: bool) -> bytes:
        raise NotImplementedError

    def download_on(self, conn: C, path: str) -> int:
        raise NotImplementedError

    def upload_on(self, conn: C, path: str, body: bytes) -> int:
        raise NotImplementedError

    def open(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[C] = []
        self._all: list[C] = []

    def close(self) -> None:
        for conn in self._all:
            self.close_connection(conn)
        self._all = self._idle = []

    def _take(self) -> C:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        conn = self.new_connection()
        with self._lock:
            self._all.append(conn)
        return conn

    def _give(self, conn: C) -> None:
        with self._lock:
            self._idle.append(conn)

    def get(self, path: str, *, close: bool = False) -> bytes:
        conn = self._take()
        try:
            return self.get_on(conn, path, close)
        finally:
            self._give(conn)

    def download(self, path: str) -> int:
        conn = self._take()
        try:
            return self.download_on(conn, path)
        finally:
            self._give(conn)

    def upload(self, path: str, body: bytes) -> int:
        conn = self._take()
        try:
            return self.upload_on(conn, path, body)
        finally:
            self._give(conn)

    def time_gets(self, path: str, n: int, *, close: bool = False) -> float:
        # The sequential loop uses its one connection object directly: no
        # stack, no lock, nothing between the loop and the library.
        self.open()
        try:
            conn = self._take()
            get_on = self.get_on
            _check_body(get_on(conn, path, close))
            cpu, start = time.process_time(), time.perf_counter()
            for _ in range(n):
                if get_on(conn, path, close) != SMALL_BODY:
                    raise BenchError("unexpected body")
            elapsed = time.perf_counter() - start
            self.last_cpu = time.process_time() - cpu
            return elapsed
        finally:
            self.close()


def _connect(target: Target, context: ssl.SSLContext | None) -> socket.socket:
    sock = socket.create_connection((target.host, target.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if context is not None:
        return context.wrap_socket(sock, server_hostname=target.host)
    return sock


class _Socket:
    """A reconnecting socket for the floors (reconnects after a close)."""

    __slots__ = ("context", "sock", "target")

    def __init__(self, target: Target, context: ssl.SSLContext | None) -> None:
        self.target = target
        self.context = context
        self.sock: socket.socket | None = None

    def get(self) -> socket.socket:
        if self.sock is None:
            self.sock = _connect(self.target, self.context)
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The response head and whatever body bytes came with it."""
    data = sock.recv(65536)
    while (end := data.find(b"\r\n\r\n")) < 0:
        more = sock.recv(65536)
        if not more:
            raise BenchError("connection closed in the response head")
        data += more
    return data[:end], data[end + 4 :]


def _content_length(head: bytes) -> int:
    at = head.lower().find(b"\r\ncontent-length:")
    if at < 0:
        return 0  # 204 here; the floor needs no other framing
    end = head.find(b"\r", at + 17)
    return int(head[at + 17 : end if end >= 0 else None])


class RawFloor(_Poolless[_Socket]):
    """The floor: pre-built request bytes, minimal parsing (Content-Length
    only), ``recv_into`` a reused buffer for big bodies. Not a client: the
    fastest a Python program can do this on one socket."""

    name = "raw"
    module = "socket"

    def open(self) -> None:
        super().open()
        self._context = self.target.ssl_context() if self.target.tls else None
        self._buffer = memoryview(bytearray(RAW_READ))
        host = self.target.authority
        self._requests = {
            (path, close): (
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
            ).encode()
            for path in ("/small", "/big.bin")
            for close in (False, True)
        }
        self._upload_head = (
            f"POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Length: {BIG_SIZE}\r\n\r\n"
        ).encode()

    def new_connection(self) -> _Socket:
        return _Socket(self.target, self._context)

    def close_connection(self, conn: _Socket) -> None:
        conn.close()

    def get_on(self, conn: _Socket, path: str, close: bool) -> bytes:
        sock = conn.sock or conn.get()
        sock.sendall(self._requests[path, close])
        head, body = _read_head(sock)
        length = _content_length(head)
        while len(body) < length:
            more = sock.recv(65536)
            if not more:
                raise BenchError("connection closed in the body")
            body += more
        if close:
            conn.close()
        return body

    def download_on(self, conn: _Socket, path: str) -> int:
        sock = conn.get()
        sock.sendall(self._requests[path, False])
        head, body = _read_head(sock)
        remaining = _content_length(head) - len(body)
        received = len(body)
        view = self._buffer
        while remaining > 0:
            count = sock.recv_into(view, min(remaining, RAW_READ))
            if not count:
                raise BenchError("connection closed in the body")
            remaining -= count
            received += count
        return received

    def upload_on(self, conn: _Socket, path: str, body: bytes) -> int:
        sock = conn.get()
        sock.sendall(self._upload_head)
        sock.sendall(body)
        head, _ = _read_head(sock)
        return int(head[9:12])


class _H11Socket:
    __slots__ = ("h11", "sock")

    def __init__(self, sock: _Socket) -> None:
        self.sock = sock
        self.h11 = h11.Connection(h11.CLIENT)


class H11Loop(_Poolless[_H11Socket]):
    """The floor of any h11-based client: one socket, one ``h11.Connection``,
    request events built once (as a client can cache them), the response
    read event by event. Reads of 64 KiB (``recv``), as rawkeep reads."""

    name = "h11"
    module = "h11"
    distribution = "h11"

    def open(self) -> None:
        super().open()
        self._context = self.target.ssl_context() if self.target.tls else None
        # The headers rawkeep sends, so that both write and validate the same.
        headers = [
            ("Host", self.target.authority),
            ("User-Agent", "h11-loop"),
            ("Accept", "*/*"),
            ("Accept-Encoding", "gzip, deflate"),
        ]
        self._requests = {
            (path, close): h11.Request(
                method="GET",
                target=path,
                headers=[*headers, ("Connection", "close")] if close else headers,
            )
            for path in ("/small", "/big.bin")
            for close in (False, True)
        }
        self._upload = h11.Request(
            method="POST",
            target="/upload",
            headers=[*headers, ("Content-Length", str(BIG_SIZE))],
        )

    def new_connection(self) -> _H11Socket:
        return _H11Socket(_Socket(self.target, self._context))

    def close_connection(self, conn: _H11Socket) -> None:
        conn.sock.close()

    def _events(self, conn: _H11Socket, sink: Callable[[Any], object]) -> int:
        """Read one response, feeding each body piece to ``sink``; end the
        cycle (or the connection). Returns the status code."""
        h11_conn = conn.h11
        sock = conn.sock.get()
        status = 0
        while True:
            event = h11_conn.next_event()
            if event is h11.NEED_DATA:
                h11_conn.receive_data(sock.recv(65536))
            elif type(event) is h11.Data:
                sink(event.data)
            elif type(event) is h11.Response:
                status = event.status_code
            elif type(event) is h11.EndOfMessage:
                break
            else:
                raise BenchError(f"unexpected {event!r}")
        if h11_conn.our_state is h11.DONE and h11_conn.their_state is h11.DONE:
            h11_conn.start_next_cycle()
        else:
            conn.sock.close()
            conn.h11 = h11.Connection(h11.CLIENT)
        return status

    def get_on(self, conn: _H11Socket, path: str, close: bool) -> bytes:
        h11_conn = conn.h11
        data = h11_conn.send(self._requests[path, close]) + h11_conn.send(h11.EndOfMessage())
        conn.sock.get().sendall(data)
        parts: list[bytes] = []
        self._events(conn, parts.append)
        return b"".join(parts)

    def download_on(self, conn: _H11Socket, path: str) -> int:
        h11_conn = conn.h11
        data = h11_conn.send(self._requests[path, False]) + h11_conn.send(h11.EndOfMessage())
        conn.sock.get().sendall(data)
        counter = _Counter()
        self._events(conn, counter.add)
        return counter.total

    def upload_on(self, conn: _H11Socket, path: str, body: bytes) -> int:
        h11_conn = conn.h11
        sock = conn.sock.get()
        sock.sendall(h11_conn.send(self._upload))
        # send_with_data_passthrough hands the body back uncopied.
        for piece in h11_conn.send_with_data_passthrough(h11.Data(data=body)) or ():
            sock.sendall(piece)
        sock.sendall(h11_conn.send(h11.EndOfMessage()))
        return self._events(conn, _discard)


class _Counter:
    __slots__ = ("total",)

    def __init__(self) -> None:
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)


def _discard(data: object) -> None:
    pass


class HttpClient(_Poolless[Any]):
    """``http.client.HTTPConnection`` (or HTTPSConnection), reused."""

    name = "http.client"
    module = "http.client"

    def open(self) -> None:
        super().open()
        self._context = self.target.ssl_context() if self.target.tls else None

    def new_connection(self) -> Any:
        import http.client

        if self._context is not None:
            return http.client.HTTPSConnection(
                self.target.host, self.target.port, context=self._context
            )
        return http.client.HTTPConnection(self.target.host, self.target.port)

    def close_connection(self, conn: Any) -> None:
        conn.close()

    def get_on(self, conn: Any, path: str, close: bool) -> bytes:
        conn.request("GET", path, headers=_CLOSE if close else {})
        body: bytes = conn.getresponse().read()
        return body

    def download_on(self, conn: Any, path: str) -> int:
        conn.request("GET", path)
        response = conn.getresponse()
        total = 0
        while chunk := response.read(CHUNK):
            total += len(chunk)
        return total

    def upload_on(self, conn: Any, path: str, body: bytes) -> int:
        conn.request("POST", path, body=body)
        response = conn.getresponse()
        response.read()
        status: int = response.status
        return status


class _Curl:
    __slots__ = ("closing", "handle")

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.closing: bool | None = None  # which header list is set


class Pycurl(_Poolless[_Curl]):
    """One ``pycurl.Curl`` handle, reused (libcurl keeps its connection)."""

    name = "pycurl"
    module = "pycurl"
    distribution = "pycurl"
    threads_note = "LIFO stack of Curl handles under a lock (a handle is single-threaded)"

    def open(self) -> None:
        import pycurl

        super().open()
        self._pycurl = pycurl

    def new_connection(self) -> _Curl:
        pycurl = self._pycurl
        handle = pycurl.Curl()
        handle.setopt(pycurl.NOSIGNAL, 1)
        if self.target.tls:
            handle.setopt(pycurl.CAINFO, self.target.ca_path)
        return _Curl(handle)

    def close_connection(self, conn: _Curl) -> None:
        conn.handle.close()

    def _prepare(self, conn: _Curl, path: str, close: bool) -> Any:
        handle = conn.handle
        if conn.closing is not close:
            handle.setopt(self._pycurl.HTTPHEADER, ["Connection: close"] if close else [])
            conn.closing = close
        handle.setopt(self._pycurl.URL, self.target.base + path)
        return handle

    def get_on(self, conn: _Curl, path: str, close: bool) -> bytes:
        handle = self._prepare(conn, path, close)
        buffer = io.BytesIO()
        handle.setopt(self._pycurl.WRITEDATA, buffer)
        handle.perform()
        return buffer.getvalue()

    def download_on(self, conn: _Curl, path: str) -> int:
        handle = self._prepare(conn, path, False)
        counter = _Counter()
        handle.setopt(self._pycurl.WRITEFUNCTION, counter.add)
        handle.perform()
        return counter.total

    def upload_on(self, conn: _Curl, path: str, body: bytes) -> int:
        pycurl = self._pycurl
        handle = self._prepare(conn, path, False)
        handle.setopt(pycurl.POSTFIELDS, body)
        handle.setopt(pycurl.WRITEFUNCTION, _discard)
        handle.perform()
        status: int = handle.getinfo(pycurl.RESPONSE_CODE)
        handle.setopt(pycurl.HTTPGET, 1)
        return status


# -- clients with a pool of their own -------------------------------------------


class Rawkeep(Adapter):
    """``rawkeep.Client`` with its defaults (10 connections per host)."""

    name = "rawkeep"
    module = "rawkeep"
    distribution = None

    def open(self) -> None:
        import rawkeep

        self._client = rawkeep.Client(verify=self.target.ca_path if self.target.tls else True)
        self._base = self.target.base

    def close(self) -> None:
        self._client.close()

    def get(self, path: str, *, close: bool = False) -> bytes:
        if close:
            return self._client.get(self._base + path, headers=_CLOSE).content
        return self._client.get(self._base + path).content

    def download(self, path: str) -> int:
        total = 0
        with self._client.stream("GET", self._base + path) as response:
            for chunk in response.iter_bytes():
                total += len(chunk)
        return total

    def upload(self, path: str, body: bytes) -> int:
        return self._client.post(self._base + path, content=body).status


class Urllib3(Adapter):
    """``urllib3.PoolManager(maxsize=10)`` (its default keeps 1 per host)."""

    name = "urllib3"
    module = "urllib3"
    distribution = "urllib3"

    def open(self) -> None:
        import urllib3

        options: dict[str, Any] = {"maxsize": POOL_SIZE}
        if self.target.tls:
            options["ca_certs"] = self.target.ca_path
        self._manager = urllib3.PoolManager(**options)
        self._base = self.target.base

    def close(self) -> None:
        self._manager.clear()

    def get(self, path: str, *, close: bool = False) -> bytes:
        response = self._manager.request(
            "GET", self._base + path, headers=_CLOSE if close else None
        )
        body: bytes = response.data
        return body

    def download(self, path: str) -> int:
        response = self._manager.request("GET", self._base + path, preload_content=False)
        total = 0
        for chunk in response.stream(CHUNK):
            total += len(chunk)
        response.release_conn()
        return total

    def upload(self, path: str, body: bytes) -> int:
        status: int = self._manager.request("POST", self._base + path, body=body).status
        return status


class Requests(Adapter):
    """``requests.Session`` (its adapter pools 10 connections per host)."""

    name = "requests"
    module = "requests"
    distribution = "requests"

    def open(self) -> None:
        import requests

        self._session = requests.Session()
        # Session.verify would lose to REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE
        # from the environment (requests issue 3829): pass it per request.
        self._options: dict[str, Any] = {"verify": self.target.ca_path} if self.target.tls else {}
        self._base = self.target.base

    def close(self) -> None:
        self._session.close()

    def get(self, path: str, *, close: bool = False) -> bytes:
        response = self._session.get(
            self._base + path, headers=_CLOSE if close else None, **self._options
        )
        body: bytes = response.content
        return body

    def download(self, path: str) -> int:
        total = 0
        with self._session.get(self._base + path, stream=True, **self._options) as response:
            for chunk in response.iter_content(CHUNK):
                total += len(chunk)
        return total

    def upload(self, path: str, body: bytes) -> int:
        status: int = self._session.post(self._base + path, data=body, **self._options).status_code
        return status


class Httpx(Adapter):
    """``httpx.Client`` with its defaults."""

    name = "httpx"
    module = "httpx"
    distribution = "httpx"

    def open(self) -> None:
        import httpx

        self._client = httpx.Client(verify=self.target.ssl_context() if self.target.tls else True)
        self._base = self.target.base

    def close(self) -> None:
        self._client.close()

    def get(self, path: str, *, close: bool = False) -> bytes:
        return self._client.get(self._base + path, headers=_CLOSE if close else None).content

    def download(self, path: str) -> int:
        total = 0
        with self._client.stream("GET", self._base + path) as response:
            for chunk in response.iter_bytes():
                total += len(chunk)
        return total

    def upload(self, path: str, body: bytes) -> int:
        return self._client.post(self._base + path, content=body).status_code


class Httpcore(Adapter):
    """``httpcore.ConnectionPool`` with its defaults (10 connections)."""

    name = "httpcore"
    module = "httpcore"
    distribution = "httpcore"

    def open(self) -> None:
        import httpcore

        self._pool = httpcore.ConnectionPool(
            ssl_context=self.target.ssl_context() if self.target.tls else None
        )
        self._base = self.target.base

    def close(self) -> None:
        self._pool.close()

    def get(self, path: str, *, close: bool = False) -> bytes:
        response = self._pool.request(
            "GET", self._base + path, headers=_CLOSE_PAIRS if close else None
        )
        return response.content

    def download(self, path: str) -> int:
        total = 0
        with self._pool.stream("GET", self._base + path) as response:
            for chunk in response.iter_stream():
                total += len(chunk)
        return total

    def upload(self, path: str, body: bytes) -> int:
        return self._pool.request("POST", self._base + path, content=body).status


class Aiohttp(Adapter):
    """One ``aiohttp.ClientSession``, requests awaited one after another."""

    name = "aiohttp"
    module = "aiohttp"
    distribution = "aiohttp"
    threads_note = "8 asyncio tasks on one session in one thread, not threads"

    def _session(self) -> Any:
        import aiohttp

        ssl_option: Any = self.target.ssl_context() if self.target.tls else True
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_option))

    @staticmethod
    async def _get(session: Any, url: str, close: bool) -> bytes:
        async with session.get(url, headers=_CLOSE if close else None) as response:
            body: bytes = await response.read()
            return body

    def _run(self, body: Callable[[Any], Awaitable[float]]) -> float:
        async def main() -> float:
            async with self._session() as session:
                return await body(session)

        return asyncio.run(main())

    def time_gets(self, path: str, n: int, *, close: bool = False) -> float:
        url = self.target.base + path

        async def loop(session: Any) -> float:
            get = self._get
            _check_body(await get(session, url, close))
            cpu, start = time.process_time(), time.perf_counter()
            for _ in range(n):
                if await get(session, url, close) != SMALL_BODY:
                    raise BenchError("unexpected body")
            elapsed = time.perf_counter() - start
            self.last_cpu = time.process_time() - cpu
            return elapsed

        return self._run(loop)

    def time_downloads(self, path: str, reps: int) -> float:
        url = self.target.base + path

        async def loop(session: Any) -> float:
            _check_body(await self._get(session, self.target.base + "/small", False))
            start = time.perf_counter()
            for _ in range(reps):
                total = 0
                async with session.get(url) as response:
                    async for chunk in response.content.iter_any():
                        total += len(chunk)
                _check_size(total)
            return time.perf_counter() - start

        return self._run(loop)

    def time_uploads(self, path: str, body: bytes, reps: int) -> float:
        url = self.target.base + path

        async def loop(session: Any) -> float:
            _check_body(await self._get(session, self.target.base + "/small", False))
            start = time.perf_counter()
            for _ in range(reps):
                async with session.post(url, data=body) as response:
                    await response.read()
                    _check_status(response.status)
            return time.perf_counter() - start

        return self._run(loop)

    def time_threads(self, path: str, threads: int, per_thread: int) -> float:
        url = self.target.base + path

        async def loop(session: Any) -> float:
            _check_body(await self._get(session, url, False))

            async def task() -> None:
                for _ in range(per_thread):
                    _check_body(await self._get(session, url, False))

            start = time.perf_counter()
            await asyncio.gather(*(task() for _ in range(threads)))
            return time.perf_counter() - start

        return self._run(loop)


#: Every adapter, in table order: the two floors, rawkeep, then the peers.
ADAPTERS: Final[tuple[type[Adapter], ...]] = (
    RawFloor,
    H11Loop,
    Rawkeep,
    HttpClient,
    Urllib3,
    Requests,
    Httpx,
    Httpcore,
    Aiohttp,
    Pycurl,
)
