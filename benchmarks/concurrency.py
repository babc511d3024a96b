"""Many requests at once: N asyncio tasks, or N threads, sharing one client.

    python benchmarks/concurrency.py             # about 6 minutes
    python benchmarks/concurrency.py --quick     # about 1 minute
    python benchmarks/concurrency.py --tasks 8,64 --threads 8 --clients rawkeep-async,aiohttp
    python benchmarks/concurrency.py --profile   # cProfile of rawkeep-async, 8 tasks

Against the private nginx of ``run.py`` (see ``_server.py``), small GETs
(the 13-byte body) on kept-alive connections:

- asyncio: N in {1, 8, 64, 256} tasks on one event loop sharing one client
  whose pool allows N connections; the floors give each task its own
  connection (no pool: nothing cheaper is possible).
- threads: N in {1, 8, 64} threads sharing one client whose pool allows N
  connections; the floors give each thread its own socket or handle.

One run of a client at one N ("a cell"): the client is opened, its N workers
start and run freely for a warm-up (connections opened, code and caches
warm), then completed requests and the process's CPU time are counted over
a fixed window with all N workers busy; then they stop and the client is
closed. Each round runs every cell once, in a fresh random order (async and
thread cells mixed), so drift of a busy machine spreads over all of them.
Tables give the median over the rounds and the min-max; ratios to rawkeep
(async rows to ``rawkeep-async``, thread rows to ``rawkeep``) are computed
within each round, then medianed. ``conns`` is nginx's ``accepts`` counter
before and after the cell, warm-up included: about N for every client.

Memory per idle connection, ``AsyncClient`` next to ``Client``, is measured
as run.py's memory suite does (``_memory.py``, a fresh process each).
See docs/benchmarks.md, "Concurrency".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import os
import platform
import pstats
import random
import shlex
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

import h11
import run
from _server import HOST, SMALL_BODY, Nginx

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    #: One GET on a task's connection or client, returning the body.
    Get = Callable[[], Awaitable[bytes]]
    SyncGet = Callable[[], bytes]


@dataclass(frozen=True)
class Settings:
    """How much work a run does."""

    rounds: int = 5
    warmup: float = 0.3
    window: float = 1.5
    tasks: tuple[int, ...] = (1, 8, 64, 256)
    threads: tuple[int, ...] = (1, 8, 64)
    memory_connections: int = 200
    memory_rounds: int = 3


FULL: Final = Settings()
QUICK: Final = Settings(rounds=2, warmup=0.1, window=0.4, memory_rounds=1)

#: Seconds the tasks of an asyncio cell get to finish their last requests.
DRAIN: Final = 2.0

REQUEST_HEADERS: Final = (
    ("User-Agent", "h11-loop"),
    ("Accept", "*/*"),
    ("Accept-Encoding", "gzip, deflate"),
)


class BenchError(Exception):
    """A client returned something other than what the server sent."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def response_size(port: int) -> tuple[bytes, int]:
    """The floors' request and the exact length of nginx's answer to it
    (fixed: the Date header has a fixed width)."""
    request = f"GET /small HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    with socket.create_connection((HOST, port), 5) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += sock.recv(65536)
    if body != SMALL_BODY:
        raise BenchError(f"unexpected body {body!r}")
    return request, len(head) + 4 + length


# -- asyncio clients -------------------------------------------------------------------


class _FloorProtocol(asyncio.Protocol):
    """The least a connection needs: received bytes kept, one waiter woken."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv(self) -> bytes:
        if not self.buffer:
            if self.closed:
                raise BenchError("connection closed")
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
            self.waiter = None
            if not self.buffer:
                raise BenchError("connection closed")
        data, self.buffer = self.buffer, b""
        return data


class AsyncCase:
    """An asyncio client: ``open(n)``, then ``getter()`` once per task (a
    coroutine function doing one GET and returning the body), ``close()``."""

    name: ClassVar[str]
    module: ClassVar[str]
    distribution: ClassVar[str | None] = None
    kind: ClassVar[str] = "async"

    def __init__(self, port: int, request: bytes, size: int) -> None:
        self.port = port
        self.url = f"http://{HOST}:{port}/small"
        self.request = request
        self.size = size

    @classmethod
    def available(cls) -> bool:
        return _importable(cls.module)

    async def open(self, n: int) -> None:
        pass

    async def getter(self) -> Get:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class _AsyncFloor(AsyncCase):
    async def open(self, n: int) -> None:
        self.transports: list[asyncio.Transport] = []

    async def connect(self) -> _FloorProtocol:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(_FloorProtocol, HOST, self.port)
        self.transports.append(transport)
        return protocol

    async def close(self) -> None:
        for transport in self.transports:
            transport.close()
        await asyncio.sleep(0)


class RawAsync(_AsyncFloor):
    """A task's own connection: fixed request bytes written, reads until the
    response's known length is in."""

    name = "raw-aio"
    module = "asyncio"

    async def getter(self) -> Get:
        protocol = await self.connect()
        write = protocol.transport.write  # type: ignore[union-attr]
        recv = protocol.recv
        request, size = self.request, self.size

        async def get() -> bytes:
            write(request)
            data = await recv()
            while len(data) < size:
                data += await recv()
            if len(data) != size:
                raise BenchError("response longer than expected")
            return data[-13:]

        return get


class H11Async(_AsyncFloor):
    """A task's own connection and ``h11.Connection``; request events built
    once; the response read event by event."""

    name = "h11-aio"
    module = "h11"
    distribution = "h11"

    async def getter(self) -> Get:
        protocol = await self.connect()
        write = protocol.transport.write  # type: ignore[union-attr]
        recv = protocol.recv
        request = h11.Request(
            method="GET",
            target="/small",
            headers=[("Host", f"{HOST}:{self.port}"), *REQUEST_HEADERS],
        )
        end = h11.EndOfMessage()
        conn = h11.Connection(h11.CLIENT)

        async def get() -> bytes:
            write(conn.send(request) + conn.send(end))  # type: ignore[operator,unused-ignore]
            parts = []
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await recv())
                elif type(event) is h11.Data:
                    parts.append(event.data)
                elif type(event) is h11.EndOfMessage:
                    break
                elif type(event) is not h11.Response:
                    raise BenchError(f"unexpected {event!r}")
            conn.start_next_cycle()
            return b"".join(parts)

        return get


class RawkeepAsync(AsyncCase):
    """``rawkeep.AsyncClient(max_connections=N, max_connections_per_host=N)``."""

    name = "rawkeep-async"
    module = "rawkeep"

    async def open(self, n: int) -> None:
        import rawkeep

        self.client = rawkeep.AsyncClient(max_connections=n, max_connections_per_host=n)

    async def getter(self) -> Get:
        client_get, url = self.client.get, self.url

        async def get() -> bytes:
            body: bytes = (await client_get(url)).content
            return body

        return get

    async def close(self) -> None:
        await self.client.aclose()


class AiohttpAsync(AsyncCase):
    """``aiohttp.ClientSession(connector=TCPConnector(limit=N))``."""

    name = "aiohttp"
    module = "aiohttp"
    distribution = "aiohttp"

    async def open(self, n: int) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n))

    async def getter(self) -> Get:
        session_get, url = self.session.get, self.url

        async def get() -> bytes:
            async with session_get(url) as response:
                body: bytes = await response.read()
                return body

        return get

    async def close(self) -> None:
        await self.session.close()


class HttpxAsync(AsyncCase):
    """``httpx.AsyncClient(limits=Limits(max_connections=N,
    max_keepalive_connections=N))`` (its default keeps 20 idle)."""

    name = "httpx-async"
    module = "httpx"
    distribution = "httpx"

    async def open(self, n: int) -> None:
        import httpx

        self.client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=n, max_keepalive_connections=n)
        )

    async def getter(self) -> Get:
        client_get, url = self.client.get, self.url

        async def get() -> bytes:
            return (await client_get(url)).content

        return get

    async def close(self) -> None:
        await self.client.aclose()


# -- thread clients ------------------------------------------------------------------


class SyncCase:
    """A client shared by threads: ``open(n)``, ``getter()`` once per thread
    (in that thread), ``close()``."""

    name: ClassVar[str]
    module: ClassVar[str]
    distribution: ClassVar[str | None] = None
    kind: ClassVar[str] = "threads"

    def __init__(self, port: int, request: bytes, size: int) -> None:
        self.port = port
        self.url = f"http://{HOST}:{port}/small"
        self.request = request
        self.size = size

    @classmethod
    def available(cls) -> bool:
        return _importable(cls.module)

    def open(self, n: int) -> None:
        pass

    def getter(self) -> SyncGet:
        raise NotImplementedError

    def close(self) -> None:
        pass


class RawSync(SyncCase):
    """A thread's own socket: fixed request bytes, reads until the
    response's known length is in."""

    name = "raw"
    module = "socket"

    def open(self, n: int) -> None:
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()

    def getter(self) -> SyncGet:
        sock = socket.create_connection((HOST, self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.lock:
            self.sockets.append(sock)
        send, recv = sock.sendall, sock.recv
        request, size = self.request, self.size

        def get() -> bytes:
            send(request)
            data = recv(65536)
            while len(data) < size:
                more = recv(65536)
                if not more:
                    raise BenchError("connection closed")
                data += more
            if len(data) != size:
                raise BenchError("response longer than expected")
            return data[-13:]

        return get

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


class RawkeepSync(SyncCase):
    """``rawkeep.Client(max_connections=N, max_connections_per_host=N)``."""

    name = "rawkeep"
    module = "rawkeep"

    def open(self, n: int) -> None:
        import rawkeep

        self.client = rawkeep.Client(max_connections=n, max_connections_per_host=n)

    def getter(self) -> SyncGet:
        client_get, url = self.client.get, self.url
        return lambda: client_get(url).content

    def close(self) -> None:
        self.client.close()


class RequestsSync(SyncCase):
    """``requests.Session`` with ``HTTPAdapter(pool_maxsize=N)`` mounted."""

    name = "requests"
    module = "requests"
    distribution = "requests"

    def open(self, n: int) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=n))

    def getter(self) -> SyncGet:
        session_get, url = self.session.get, self.url
        return lambda: session_get(url).content  # type: ignore[no-any-return,unused-ignore]

    def close(self) -> None:
        self.session.close()


class Urllib3Sync(SyncCase):
    """``urllib3.PoolManager(maxsize=N)``."""

    name = "urllib3"
    module = "urllib3"
    distribution = "urllib3"

    def open(self, n: int) -> None:
        import urllib3

        self.manager = urllib3.PoolManager(maxsize=n)

    def getter(self) -> SyncGet:
        request, url = self.manager.request, self.url
        return lambda: request("GET", url).data  # type: ignore[no-any-return,unused-ignore]

    def close(self) -> None:
        self.manager.clear()


class HttpxSync(SyncCase):
    """``httpx.Client(limits=Limits(max_connections=N,
    max_keepalive_connections=N))``."""

    name = "httpx"
    module = "httpx"
    distribution = "httpx"

    def open(self, n: int) -> None:
        import httpx

        self.client = httpx.Client(
            limits=httpx.Limits(max_connections=n, max_keepalive_connections=n)
        )

    def getter(self) -> SyncGet:
        client_get, url = self.client.get, self.url
        return lambda: client_get(url).content

    def close(self) -> None:
        self.client.close()


class PycurlSync(SyncCase):
    """One ``pycurl.Curl`` handle per thread (a handle is single-threaded;
    libcurl keeps its connection)."""

    name = "pycurl"
    module = "pycurl"
    distribution = "pycurl"

    def open(self, n: int) -> None:
        self.handles: list[Any] = []
        self.lock = threading.Lock()

    def getter(self) -> SyncGet:
        import pycurl

        handle = pycurl.Curl()
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.URL, self.url)
        with self.lock:
            self.handles.append(handle)
        setopt, perform, writedata = handle.setopt, handle.perform, pycurl.WRITEDATA

        def get() -> bytes:
            buffer = io.BytesIO()
            setopt(writedata, buffer)
            perform()
            return buffer.getvalue()

        return get

    def close(self) -> None:
        for handle in self.handles:
            handle.close()


ASYNC_CASES: Final[tuple[type[AsyncCase], ...]] = (
    RawAsync,
    H11Async,
    RawkeepAsync,
    AiohttpAsync,
    HttpxAsync,
)
SYNC_CASES: Final[tuple[type[SyncCase], ...]] = (
    RawSync,
    RawkeepSync,
    RequestsSync,
    Urllib3Sync,
    HttpxSync,
    PycurlSync,
)
CASES: Final[tuple[type[AsyncCase] | type[SyncCase], ...]] = (*ASYNC_CASES, *SYNC_CASES)
NAMES: Final = [c.name for c in CASES]


# -- one cell: a client at one N --------------------------------------------------------


@dataclass
class Window:
    """What one cell measured."""

    requests: int
    seconds: float
    cpu: float


async def _async_cell(case: AsyncCase, n: int, warmup: float, window: float) -> Window:
    await case.open(n)
    try:
        getters = [await case.getter() for _ in range(n)]
        done = [0] * n
        stop = False
        failures: list[BaseException] = []

        async def worker(index: int, get: Get) -> None:
            try:
                while not stop:
                    if await get() != SMALL_BODY:
                        raise BenchError("unexpected body")
                    done[index] += 1
            except Exception as exc:
                failures.append(exc)
                raise

        tasks = [asyncio.create_task(worker(i, g)) for i, g in enumerate(getters)]
        await asyncio.sleep(warmup)
        count, cpu, start = sum(done), time.process_time(), time.perf_counter()
        await asyncio.sleep(window)
        count, cpu, elapsed = (
            sum(done) - count,
            time.process_time() - cpu,
            time.perf_counter() - start,
        )
        stop = True
        # Each task finishes the request it is in; a client too slow to do
        # that soon (httpx-async at 256 tasks) has the rest cancelled.
        _, pending = await asyncio.wait(tasks, timeout=DRAIN)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if failures:
            raise failures[0]
        if min(done) == 0:
            raise BenchError("a task completed no request")
        return Window(count, elapsed, cpu)
    finally:
        await case.close()


def _thread_cell(case: SyncCase, n: int, warmup: float, window: float) -> Window:
    case.open(n)
    try:
        done = [0] * n
        stopping = threading.Event()
        ready = threading.Barrier(n + 1)
        failures: list[BaseException] = []

        def worker(index: int) -> None:
            try:
                get = case.getter()
            except BaseException as exc:
                failures.append(exc)
                ready.abort()
                return
            try:
                ready.wait()
            except threading.BrokenBarrierError:
                return  # another thread's getter failed
            try:
                while not stopping.is_set():
                    if get() != SMALL_BODY:
                        raise BenchError("unexpected body")
                    done[index] += 1
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
        for thread in threads:
            thread.start()
        with contextlib.suppress(threading.BrokenBarrierError):
            ready.wait()  # broken: a getter failed (raised below)
        time.sleep(warmup)
        count, cpu, start = sum(done), time.process_time(), time.perf_counter()
        time.sleep(window)
        count, cpu, elapsed = (
            sum(done) - count,
            time.process_time() - cpu,
            time.perf_counter() - start,
        )
        stopping.set()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
        if min(done) == 0:
            raise BenchError("a thread completed no request")
        return Window(count, elapsed, cpu)
    finally:
        case.close()


# -- rounds ----------------------------------------------------------------------------


@dataclass
class Cell:
    """One client at one N, over the rounds."""

    name: str
    kind: str
    n: int
    rate: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    conns: list[int] = field(default_factory=list)
    rate_to_rawkeep: list[float] = field(default_factory=list)
    cpu_to_rawkeep: list[float] = field(default_factory=list)
    error: str | None = None


def reference(kind: str) -> str:
    return "rawkeep-async" if kind == "async" else "rawkeep"


def run_rounds(
    server: Nginx,
    cases: Sequence[AsyncCase | SyncCase],
    s: Settings,
) -> dict[tuple[str, int], Cell]:
    cells: dict[tuple[str, int], Cell] = {}
    plan: list[tuple[AsyncCase | SyncCase, int]] = []
    for case in cases:
        for n in s.tasks if case.kind == "async" else s.threads:
            cells[case.name, n] = Cell(case.name, case.kind, n)
            plan.append((case, n))
    for number in range(1, s.rounds + 1):
        random.shuffle(plan)
        log(f"  round {number}/{s.rounds}: {len(plan)} cells")
        for case, n in plan:
            cell = cells[case.name, n]
            if cell.error is not None:
                continue
            gc.collect()
            before = server.accepts()
            try:
                if isinstance(case, AsyncCase):
                    found = asyncio.run(_async_cell(case, n, s.warmup, s.window))
                else:
                    found = _thread_cell(case, n, s.warmup, s.window)
            except Exception as exc:
                cell.error = f"{type(exc).__name__}: {exc}"[:200]
                log(f"    {case.name} at {n} failed: {cell.error}")
                continue
            after = server.accepts()
            cell.rate.append(found.requests / found.seconds)
            cell.cpu.append(found.cpu / found.requests * 1e6)
            if before is not None and after is not None:
                cell.conns.append(after - before)
        for cell in cells.values():
            ours = cells.get((reference(cell.kind), cell.n))
            if (
                ours is None
                or len(ours.rate) < number
                or len(cell.rate) < number
                or cell.error is not None
            ):
                continue
            cell.rate_to_rawkeep.append(cell.rate[number - 1] / ours.rate[number - 1])
            cell.cpu_to_rawkeep.append(cell.cpu[number - 1] / ours.cpu[number - 1])
    return cells


# -- tables ----------------------------------------------------------------------------


def _spread(values: list[float], digits: int) -> str:
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


def _median_ratio(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x" if values else "n/a"


def cell_table(cells: dict[tuple[str, int], Cell], kind: str, s: Settings) -> str:
    ours = reference(kind)
    headers = [
        "client",
        "N",
        "req/s",
        "min-max",
        f"x {ours}",
        "CPU us/req",
        "min-max",
        f"CPU x {ours}",
        "conns",
    ]
    rows = []
    for n in s.tasks if kind == "async" else s.threads:
        for cell in cells.values():
            if cell.kind != kind or cell.n != n:
                continue
            if cell.error is not None and not cell.rate:
                rows.append([cell.name, str(n), "error", cell.error, "", "", "", "", ""])
                continue
            rows.append(
                [
                    cell.name,
                    str(n),
                    f"{statistics.median(cell.rate):.0f}",
                    _spread(cell.rate, 0),
                    _median_ratio(cell.rate_to_rawkeep),
                    f"{statistics.median(cell.cpu):.1f}",
                    _spread(cell.cpu, 1),
                    _median_ratio(cell.cpu_to_rawkeep),
                    run._conns(cell.conns),
                ]
            )
    if kind == "async":
        title = "asyncio tasks sharing one client (one event loop)"
        note = (
            "N tasks on one default asyncio event loop; rawkeep-async, aiohttp and"
            " httpx-async each share one client whose pool allows N connections; raw-aio and"
            " h11-aio give each task a connection of its own."
        )
    else:
        title = "Threads sharing one client"
        note = (
            "N threads; rawkeep, requests, urllib3 and httpx each share one client whose pool"
            " allows N connections; raw and pycurl give each thread a socket or a Curl handle"
            " of its own."
        )
    return (
        f"### {title}\n\n"
        f"{note} req/s: requests completed in a {s.window:g} s window with all N busy"
        f" (after {s.warmup:g} s of warm-up), median and min-max over {s.rounds} rounds;"
        " higher is better. CPU us/req: this process's CPU time (all threads) over the"
        " window, per request; lower is better. Ratios are per round, medianed."
        " conns: connections nginx accepted during the cell, warm-up included (expected: N)."
        f"\n\n{run.markdown_table(headers, rows)}\n"
    )


def _paired(
    cells: dict[tuple[str, int], Cell], a: tuple[str, int], b: tuple[str, int], what: str
) -> float | None:
    """Median over rounds of a's value / b's (``what``: rate or cpu)."""
    x, y = cells.get(a), cells.get(b)
    if x is None or y is None:
        return None
    xs: list[float] = getattr(x, what)
    ys: list[float] = getattr(y, what)
    if not xs or not ys or len(xs) != len(ys):
        return None
    return statistics.median(p / q for p, q in zip(xs, ys, strict=True))


def targets(cells: dict[tuple[str, int], Cell], s: Settings) -> str:
    rows: list[list[str]] = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "NOT met")

    for n in (8, 64):
        r = _paired(cells, ("rawkeep-async", n), ("aiohttp", n), "rate")
        rows.append(
            [
                f"{n} tasks: rawkeep-async req/s >= aiohttp's",
                "n/a" if r is None else f"{r:.2f}x aiohttp",
                verdict(None if r is None else r >= 1.0),
            ]
        )
    for n in s.tasks:
        r = _paired(cells, ("rawkeep-async", n), ("httpx-async", n), "rate")
        rows.append(
            [
                f"{n} tasks: rawkeep-async req/s >= 3x httpx-async's",
                "n/a" if r is None else f"{r:.2f}x httpx-async",
                verdict(None if r is None else r >= 3.0),
            ]
        )
    for n in s.tasks:
        r = _paired(cells, ("rawkeep-async", n), ("h11-aio", n), "cpu")
        rows.append(
            [
                f"{n} tasks: rawkeep-async CPU per request <= 1.2x the h11-aio floor's",
                "n/a" if r is None else f"{r:.2f}x",
                verdict(None if r is None else r <= 1.2),
            ]
        )
    r = _paired(cells, ("rawkeep-async", 1), ("rawkeep", 1), "rate")
    cpu = _paired(cells, ("rawkeep-async", 1), ("rawkeep", 1), "cpu")
    rows.append(
        [
            "N=1: rawkeep-async at most 15% slower than rawkeep (req/s >= 0.85x)",
            "n/a"
            if r is None
            else f"{r:.2f}x rawkeep's req/s" + ("" if cpu is None else f" ({cpu:.2f}x its CPU)"),
            verdict(None if r is None else r >= 0.85),
        ]
    )
    return (
        "### Targets, judged from this run\n\n"
        "Ratios paired by round, then medianed.\n\n"
        f"{run.markdown_table(['target', 'this run', 'verdict'], rows)}\n"
    )


# -- environment, profile, main ----------------------------------------------------------


def environment(server: Nginx, cases: Sequence[AsyncCase | SyncCase], pin: str) -> str:
    import rawkeep

    versions = {"rawkeep": f"{rawkeep.__version__} ({run._git_commit()}, from {run.RAWKEEP_ROOT})"}
    for case in cases:
        if case.distribution is not None:
            try:
                versions[case.distribution] = metadata.version(case.distribution)
            except metadata.PackageNotFoundError:
                versions[case.distribution] = "?"
    lines = [
        f"- Python {platform.python_version()} ({platform.python_implementation()}),"
        f" {platform.system()} {platform.release()} {platform.machine()};"
        f" asyncio's default event loop ({type(asyncio.new_event_loop()).__name__})",
        f"- {os.cpu_count()} cores; CPU pinning: {pin}",
        f"- load average at the start: {run._load()}",
        f"- nginx {server.version} (1 worker; stub_status:"
        f" {'yes' if server.has_stub_status else 'no, connection counts unavailable'})",
        f"- {', '.join(f'{k} {v}' for k, v in versions.items())}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
    ]
    return "## Environment\n\n" + "\n".join(lines) + "\n"


def profile(server: Nginx, requests: int, tasks: int, top: int) -> None:
    """cProfile of rawkeep.AsyncClient: ``requests`` GETs by ``tasks`` tasks."""
    request, size = response_size(server.http_port)
    case = RawkeepAsync(server.http_port, request, size)
    per_task = requests // tasks

    async def main() -> cProfile.Profile:
        await case.open(tasks)
        try:
            getters = [await case.getter() for _ in range(tasks)]
            await asyncio.gather(*(get() for get in getters))  # connections, warm code

            async def worker(get: Get) -> None:
                for _ in range(per_task):
                    if await get() != SMALL_BODY:
                        raise BenchError("unexpected body")

            profiler = cProfile.Profile()
            profiler.enable()
            await asyncio.gather(*(worker(get) for get in getters))
            profiler.disable()
            return profiler
        finally:
            await case.close()

    profiler = asyncio.run(main())
    total = per_task * tasks
    stats = pstats.Stats(profiler, stream=sys.stdout)
    print(f"cProfile: rawkeep.AsyncClient, {total} small GETs by {tasks} tasks, top {top}")
    print("(own and cumulative us per request; cProfile inflates every Python call)\n")
    rows = []
    for (filename, line, function), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(filename).parent.name}/{Path(filename).name}:{line}" if line else filename
        rows.append((own, cumulative, calls, f"{function} ({where})"))
    rows.sort(reverse=True)
    print(f"{'own us':>8} {'cum us':>8} {'calls/req':>9}  function")
    for own, cumulative, calls, name in rows[:top]:
        own, cumulative = own / total * 1e6, cumulative / total * 1e6
        print(f"{own:8.2f} {cumulative:8.2f} {calls / total:9.2f}  {name}")
    print(f"\nall functions, own time: {sum(r[0] for r in rows) / total * 1e6:.1f} us per request")
    shares: dict[str, float] = {}
    for (filename, _, _), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        shares[_package(filename)] = shares.get(_package(filename), 0.0) + own
    print(
        "own time by where it runs: "
        + ", ".join(
            f"{name} {own / total * 1e6:.1f} us"
            for name, own in sorted(shares.items(), key=lambda item: -item[1])
        )
    )


def _package(filename: str) -> str:
    """rawkeep, h11, asyncio, "C calls" (socket, select, ...) or "other"."""
    if filename == "~":
        return "C calls"
    parts = Path(filename).parts
    for name in ("rawkeep", "h11", "asyncio"):
        if name in parts:
            return name
    return "other"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="2 rounds of short windows")
    parser.add_argument("--rounds", type=int, help="rounds (default 5)")
    parser.add_argument("--window", type=float, help="seconds counted per cell (default 1.5)")
    parser.add_argument("--tasks", help="comma-separated task counts (default 1,8,64,256)")
    parser.add_argument("--threads", help="comma-separated thread counts (default 1,8,64)")
    parser.add_argument(
        "--clients", default=",".join(NAMES), help=f"comma-separated, of: {','.join(NAMES)}"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the idle memory table")
    parser.add_argument("--pin", choices=("none", "split", "same"), default="none")
    parser.add_argument("--seed", type=int, help="seed for the random cell orders")
    parser.add_argument("--rawkeep", metavar="DIR|REV", help="as for run.py")
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead: cProfile rawkeep-async, 20,000 GETs by 8 tasks (--requests, --top)",
    )
    parser.add_argument("--requests", type=int, default=20_000, help="for --profile")
    parser.add_argument("--top", type=int, default=15, help="for --profile")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.client_list = run._choose(args.clients, NAMES, "client")
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    s = QUICK if args.quick else FULL
    if args.rounds is not None:
        s = replace(s, rounds=args.rounds, memory_rounds=max(1, min(args.rounds, 3)))
    if args.window is not None:
        s = replace(s, window=args.window)
    if args.tasks:
        s = replace(s, tasks=tuple(int(x) for x in args.tasks.split(",")))
    if args.threads:
        s = replace(s, threads=tuple(int(x) for x in args.threads.split(",")))
    return s


MEMORY_NAMES: Final = ("h11", "rawkeep", "rawkeep-async", "aiohttp")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_from(args)
    with tempfile.TemporaryDirectory(prefix="rawkeep-rev-") as export:
        if args.rawkeep is not None:
            run._choose_rawkeep(args.rawkeep, Path(export))
        # The chosen rawkeep is the one measured, installed or not.
        sys.path.insert(1, str(run.RAWKEEP_ROOT))
        return _run(args, settings)


def _run(args: argparse.Namespace, s: Settings) -> int:
    random.seed(args.seed)
    signal.signal(signal.SIGTERM, run._interrupt)
    worker_cpu = run._pin(args.pin)
    classes = {c.name: c for c in CASES}
    missing = [n for n in args.client_list if not classes[n].available()]
    if missing:
        log(f"not installed, skipped: {', '.join(missing)} (pip install -e '.[bench]')")
    started = time.monotonic()
    server = Nginx(worker_cpu=worker_cpu)
    sections: list[str] = []
    try:
        server.start()
        log(f"nginx {server.version} on {HOST}:{server.http_port}")
        if args.profile:
            profile(server, args.requests, 8, args.top)
            return 0
        request, size = response_size(server.http_port)
        cases = [
            classes[n](server.http_port, request, size)
            for n in args.client_list
            if n not in missing
        ]
        sections.append(environment(server, cases, args.pin))
        print(sections[-1], flush=True)
        cells = run_rounds(server, cases, s)
        for kind in ("async", "threads"):
            if any(c.kind == kind for c in cells.values()):
                sections.append(cell_table(cells, kind, s))
                print(sections[-1], flush=True)
        sections.append(targets(cells, s))
        print(sections[-1], flush=True)
        if not args.no_memory:
            log("memory")
            memory = run.suite_memory(server, MEMORY_NAMES, s.memory_connections, s.memory_rounds)
            sections.append(run.memory_table(memory, s.memory_connections))
            print(sections[-1], flush=True)
    except KeyboardInterrupt:
        log("interrupted: stopping nginx")
        return 130
    finally:
        server.stop()
    elapsed = time.monotonic() - started
    command = shlex.join(["python", "benchmarks/concurrency.py", *args.argv])
    footer = (
        f"Run: `{command}`, {elapsed / 60:.1f} minutes; load average at the end: {run._load()}."
    )
    print(footer, flush=True)
    if args.markdown is not None:
        args.markdown.write_text("\n\n".join([*sections, footer]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
