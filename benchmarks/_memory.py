"""Memory held per idle pooled connection, measured in a fresh process.

    python benchmarks/_memory.py CLIENT URL COUNT MODE

Each client makes one warm-up request (its code paths loaded, one
connection idle), then the baseline is taken; then COUNT requests are held
open at once (so COUNT connections exist), their bodies read and the
responses released, leaving COUNT idle connections in the client's pool.
The difference, divided by COUNT - 1 new connections, is printed as JSON.

MODE ``tracemalloc``: bytes the Python allocators hold (precise, what the
client's objects and buffers cost). MODE ``rss``: growth of the resident set
(what the OS sees, including C allocations that tracemalloc misses, and
freed-but-kept heap from the burst; an upper bound). Neither counts kernel
socket buffers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import socket
import sys
import tracemalloc
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable

    Holder = tuple[Any, Callable[[int], int]]

MEMORY_CLIENTS = (
    "raw",
    "h11",
    "rawkeep",
    "http.client",
    "urllib3",
    "requests",
    "httpx",
    "httpcore",
    "aiohttp",
)


def _rss() -> int:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _sample(mode: str) -> int:
    gc.collect()
    if mode == "tracemalloc":
        return tracemalloc.get_traced_memory()[0]
    return _rss()


def _raw_get(sock: socket.socket, request: bytes) -> None:
    sock.sendall(request)
    data = b""
    while not data.endswith(b"Hello, world!"):
        data += sock.recv(65536)


def setup_raw(url: str) -> Holder:
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    request = f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    idle: list[socket.socket] = []

    def connect() -> socket.socket:
        sock = socket.create_connection(address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _raw_get(sock, request)
        return sock

    idle.append(connect())

    def fill(count: int) -> int:
        idle.extend(connect() for _ in range(count - len(idle)))
        return len(idle)

    return idle, fill


def setup_h11(url: str) -> Holder:
    import h11

    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    request = h11.Request(method="GET", target=parts.path, headers=[("Host", parts.netloc)])
    idle: list[tuple[socket.socket, h11.Connection]] = []

    def connect() -> tuple[socket.socket, h11.Connection]:
        sock = socket.create_connection(address)
        conn = h11.Connection(h11.CLIENT)
        sock.sendall(conn.send(request) + conn.send(h11.EndOfMessage()))
        while type(event := conn.next_event()) is not h11.EndOfMessage:
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
        conn.start_next_cycle()
        return sock, conn

    idle.append(connect())

    def fill(count: int) -> int:
        idle.extend(connect() for _ in range(count - len(idle)))
        return len(idle)

    return idle, fill


def setup_http_client(url: str) -> Holder:
    import http.client

    parts = urlsplit(url)
    idle: list[http.client.HTTPConnection] = []

    def connect() -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
        conn.request("GET", parts.path)
        conn.getresponse().read()
        return conn

    idle.append(connect())

    def fill(count: int) -> int:
        idle.extend(connect() for _ in range(count - len(idle)))
        return len(idle)

    return idle, fill


def setup_rawkeep(url: str) -> Holder:
    import rawkeep

    client = rawkeep.Client(max_connections=None, max_connections_per_host=None)
    client.get(url)

    def fill(count: int) -> int:
        with contextlib.ExitStack() as stack:
            held = [stack.enter_context(client.stream("GET", url)) for _ in range(count)]
            for response in held:
                response.read()
        return client.pool_stats().idle

    return client, fill


def setup_urllib3(url: str) -> Holder:
    import urllib3

    manager = urllib3.PoolManager(maxsize=10_000)
    manager.request("GET", url)

    def fill(count: int) -> int:
        held = [manager.request("GET", url, preload_content=False) for _ in range(count)]
        for response in held:
            response.read()
            response.release_conn()
        return count

    return manager, fill


def setup_requests(url: str) -> Holder:
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=10_000))
    session.get(url)

    def fill(count: int) -> int:
        held = [session.get(url, stream=True) for _ in range(count)]
        for response in held:
            _ = response.content  # read to the end: the connection goes back
        return count

    return session, fill


def setup_httpx(url: str) -> Holder:
    import httpx

    client = httpx.Client(
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=None)
    )
    client.get(url)

    def fill(count: int) -> int:
        held = [client.send(client.build_request("GET", url), stream=True) for _ in range(count)]
        for response in held:
            response.read()
            response.close()
        return count

    return client, fill


def setup_httpcore(url: str) -> Holder:
    import httpcore

    pool = httpcore.ConnectionPool(max_connections=10_000)
    pool.request("GET", url)

    def fill(count: int) -> int:
        with contextlib.ExitStack() as stack:
            held = [stack.enter_context(pool.stream("GET", url)) for _ in range(count)]
            for response in held:
                response.read()
        return len(pool.connections)

    return pool, fill


async def measure_rawkeep_async(url: str, count: int, mode: str) -> dict[str, float]:
    """``AsyncClient`` as ``setup_rawkeep`` measures ``Client``: COUNT
    streams held at once, their bodies read, then all released idle."""
    import rawkeep

    async with rawkeep.AsyncClient(max_connections=None, max_connections_per_host=None) as client:
        await client.get(url)
        before = _sample(mode)
        async with contextlib.AsyncExitStack() as stack:
            held = [
                await stack.enter_async_context(client.stream("GET", url)) for _ in range(count)
            ]
            for response in held:
                await response.aread()
        del held
        after = _sample(mode)
        idle = client.pool_stats().idle
    return {"per_connection": (after - before) / (count - 1), "idle": idle}


async def measure_aiohttp(url: str, count: int, mode: str) -> dict[str, float]:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async with session.get(url) as response:
            await response.read()
        before = _sample(mode)
        # aiohttp hands a connection back as soon as a small body is in, so
        # the requests must be in flight together to need COUNT connections.
        everyone = asyncio.Event()
        arrived = 0

        async def hold() -> None:
            nonlocal arrived
            async with session.get(url) as held:
                arrived += 1
                if arrived == count:
                    everyone.set()
                await everyone.wait()
                await held.read()

        await asyncio.gather(*(hold() for _ in range(count)))
        after = _sample(mode)
    return {"per_connection": (after - before) / (count - 1), "idle": count}


SETUPS: dict[str, Callable[[str], Holder]] = {
    "raw": setup_raw,
    "h11": setup_h11,
    "rawkeep": setup_rawkeep,
    "http.client": setup_http_client,
    "urllib3": setup_urllib3,
    "requests": setup_requests,
    "httpx": setup_httpx,
    "httpcore": setup_httpcore,
}


def measure(client: str, url: str, count: int, mode: str) -> dict[str, float]:
    if mode == "tracemalloc":
        tracemalloc.start()
    if client == "aiohttp":
        return asyncio.run(measure_aiohttp(url, count, mode))
    if client == "rawkeep-async":
        return asyncio.run(measure_rawkeep_async(url, count, mode))
    holder, fill = SETUPS[client](url)
    before = _sample(mode)
    idle = fill(count)
    after = _sample(mode)
    del holder
    return {"per_connection": (after - before) / (count - 1), "idle": idle}


if __name__ == "__main__":
    name, target, number, how = sys.argv[1:5]
    print(json.dumps(measure(name, target, int(number), how)))
