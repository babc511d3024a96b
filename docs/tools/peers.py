"""Check how HTTP clients pool and reuse connections, against local servers.

Runs the same small experiments with every client that is installed
(rawkeep, requests, urllib3, httpx, aiohttp, pycurl, http.client) and
prints one table per experiment. docs/comparison.md quotes the results.
Every server listens on 127.0.0.1; nothing else is contacted.

    python docs/tools/peers.py [--clients rawkeep,requests,...]
"""

from __future__ import annotations

import asyncio
import http.client
import importlib.util
import socketserver
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

#: Seconds every client waits for anything before giving up.
TIMEOUT = 5.0


class Server(socketserver.ThreadingTCPServer):
    """An HTTP/1.1 server on 127.0.0.1 with a ledger and a few knobs.

    Answers each request with 200 and the index of the connection it came
    on. ``/slow/N`` answers after N milliseconds. ``keep_alive`` is sent as
    the ``Keep-Alive`` header (not enforced); ``idle_close`` closes a
    connection idle that long, silently; ``hang_up_on`` reads that request
    of every connection (1 is the first) and closes without answering;
    ``http10`` answers in HTTP/1.0 with ``Connection: keep-alive`` and
    keeps the connection open.
    """

    daemon_threads = False
    block_on_close = True

    def __init__(
        self,
        *,
        keep_alive: str | None = None,
        idle_close: float = TIMEOUT,
        hang_up_on: int | None = None,
        http10: bool = False,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Connection)
        self.keep_alive = keep_alive
        self.idle_close = idle_close
        self.hang_up_on = hang_up_on
        self.http10 = http10
        self.lock = threading.Lock()
        self.connections: list[list[bytes]] = []
        self.port: int = self.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        self.server_close()

    def connection_of(self, path: bytes) -> int:
        """Index of the connection whose requests include ``path``."""
        with self.lock:
            for index, heads in enumerate(self.connections):
                if any(head.split(b" ")[1] == path for head in heads):
                    return index
        raise LookupError(path)


class _Connection(socketserver.BaseRequestHandler):
    server: Server

    def handle(self) -> None:
        server = self.server
        heads: list[bytes] = []
        with server.lock:
            index = len(server.connections)
            server.connections.append(heads)
        self.request.settimeout(server.idle_close)
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                try:
                    data = self.request.recv(65536)
                except TimeoutError:
                    return
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            buffer = self._skip_body(head, buffer)
            with server.lock:
                heads.append(head)
            if len(heads) == server.hang_up_on:
                return
            path = head.split(b" ")[1]
            if path.startswith(b"/slow/"):
                time.sleep(int(path[6:]) / 1000)
            body = f"{index}\n".encode()
            extra = f"Keep-Alive: {server.keep_alive}\r\n" if server.keep_alive else ""
            version = "1.1"
            if server.http10:
                version, extra = "1.0", extra + "Connection: keep-alive\r\n"
            answer = f"HTTP/{version} 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            self.request.sendall(answer.encode() + body)

    def _skip_body(self, head: bytes, buffer: bytes) -> bytes:
        for line in head.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                size = int(line.split(b":")[1])
                while len(buffer) < size:
                    data = self.request.recv(65536)
                    if not data:
                        break
                    buffer += data
                return buffer[size:]
        return buffer


# -- one adapter per client: get(path), post(path), close() ----------------------------


class Adapter:
    name = ""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str) -> None:
        raise NotImplementedError

    def post(self, path: str) -> None:
        raise NotImplementedError

    def parallel_gets(self, paths: list[str]) -> None:
        """Send the GETs at the same time (threads)."""
        threads = [threading.Thread(target=self.get, args=(path,)) for path in paths]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT * 2)

    def close(self) -> None:
        pass


class Rawkeep(Adapter):
    name = "rawkeep"

    def __init__(self, url: str) -> None:
        import rawkeep

        super().__init__(url)
        self.client = rawkeep.Client(timeout=TIMEOUT)

    def get(self, path: str) -> None:
        self.client.get(self.url + path).raise_for_status()

    def post(self, path: str) -> None:
        self.client.post(self.url + path, content=b"x").raise_for_status()

    def close(self) -> None:
        self.client.close()


class Requests(Adapter):
    name = "requests"

    def __init__(self, url: str) -> None:
        import requests

        super().__init__(url)
        self.session = requests.Session()

    def get(self, path: str) -> None:
        self.session.get(self.url + path, timeout=TIMEOUT).raise_for_status()

    def post(self, path: str) -> None:
        self.session.post(self.url + path, data=b"x", timeout=TIMEOUT).raise_for_status()

    def close(self) -> None:
        self.session.close()


class Urllib3(Adapter):
    name = "urllib3"

    def __init__(self, url: str) -> None:
        import urllib3

        super().__init__(url)
        self.pool = urllib3.PoolManager(maxsize=2, timeout=TIMEOUT)

    def get(self, path: str) -> None:
        assert self.pool.request("GET", self.url + path).status == 200

    def post(self, path: str) -> None:
        assert self.pool.request("POST", self.url + path, body=b"x").status == 200

    def close(self) -> None:
        self.pool.clear()


class Httpx(Adapter):
    name = "httpx"

    def __init__(self, url: str) -> None:
        import httpx

        super().__init__(url)
        self.client = httpx.Client(timeout=TIMEOUT)

    def get(self, path: str) -> None:
        self.client.get(self.url + path).raise_for_status()

    def post(self, path: str) -> None:
        self.client.post(self.url + path, content=b"x").raise_for_status()

    def close(self) -> None:
        self.client.close()


class Aiohttp(Adapter):
    """aiohttp on its own event loop in this thread."""

    name = "aiohttp"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.loop = asyncio.new_event_loop()
        self.session: Any = self.loop.run_until_complete(self._open())

    async def _open(self) -> Any:
        import aiohttp

        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))

    async def _request(self, method: str, path: str) -> None:
        async with self.session.request(method, self.url + path, data=b"x") as response:
            await response.read()
            response.raise_for_status()

    def get(self, path: str) -> None:
        self.loop.run_until_complete(self._request("GET", path))

    def post(self, path: str) -> None:
        self.loop.run_until_complete(self._request("POST", path))

    def parallel_gets(self, paths: list[str]) -> None:
        async def both() -> None:
            await asyncio.gather(*(self._request("GET", path) for path in paths))

        self.loop.run_until_complete(both())

    def close(self) -> None:
        self.loop.run_until_complete(self.session.close())
        self.loop.close()


class Pycurl(Adapter):
    """libcurl through pycurl: one easy handle per request, in one multi
    handle, so that they share its connection cache."""

    name = "libcurl"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.pycurl = importlib.import_module("pycurl")  # no type stubs
        self.multi = self.pycurl.CurlMulti()

    def _easy(self, method: str, path: str) -> Any:
        easy = self.pycurl.Curl()
        easy.setopt(self.pycurl.URL, self.url + path)
        easy.setopt(self.pycurl.TIMEOUT_MS, int(TIMEOUT * 1000))
        easy.setopt(self.pycurl.WRITEFUNCTION, lambda data: None)
        if method == "POST":
            easy.setopt(self.pycurl.POSTFIELDS, "x")
        return easy

    def _run(self, handles: list[Any]) -> None:
        for easy in handles:
            self.multi.add_handle(easy)
        deadline = time.monotonic() + TIMEOUT * 2
        while time.monotonic() < deadline:
            _, running = self.multi.perform()
            if not running:
                break
            self.multi.select(0.05)
        _, ok, failed = self.multi.info_read()
        for easy in handles:
            self.multi.remove_handle(easy)
            easy.close()
        if failed:
            raise RuntimeError(failed[0][2])
        del ok

    def get(self, path: str) -> None:
        self._run([self._easy("GET", path)])

    def post(self, path: str) -> None:
        self._run([self._easy("POST", path)])

    def parallel_gets(self, paths: list[str]) -> None:
        self._run([self._easy("GET", path) for path in paths])

    def close(self) -> None:
        self.multi.close()


class HttpClient(Adapter):
    """http.client: one HTTPConnection, no pool."""

    name = "http.client"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.conn = http.client.HTTPConnection(
            "127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=TIMEOUT
        )

    def _request(self, method: str, path: str) -> None:
        self.conn.request(method, path, body=b"x" if method == "POST" else None)
        response = self.conn.getresponse()
        response.read()
        assert response.status == 200

    def get(self, path: str) -> None:
        self._request("GET", path)

    def post(self, path: str) -> None:
        self._request("POST", path)

    def parallel_gets(self, paths: list[str]) -> None:
        raise NotImplementedError("one connection object, one request at a time")

    def close(self) -> None:
        self.conn.close()


MODULES = {
    "rawkeep": Rawkeep,
    "requests": Requests,
    "urllib3": Urllib3,
    "httpx": Httpx,
    "aiohttp": Aiohttp,
    "pycurl": Pycurl,
    "http": HttpClient,
}


def adapters(names: list[str] | None) -> list[type[Adapter]]:
    """The adapters of the installed clients, all or those named."""
    return [
        cls
        for module, cls in MODULES.items()
        if importlib.util.find_spec(module) and (names is None or cls.name in names)
    ]


# -- experiments -------------------------------------------------------------------------


def _outcome(action: Callable[[], None]) -> str:
    try:
        action()
    except Exception as exc:
        return f"raised {type(exc).__name__}"
    return "ok"


def reuse_order(cls: type[Adapter]) -> str:
    """Two connections become idle, A first, then B. Which carries the next GET?"""
    with Server() as server:
        client = cls(server.url)
        try:
            client.parallel_gets(["/slow/200", "/slow/600"])
            client.get("/next")
        except NotImplementedError:
            return "no pool"
        finally:
            client.close()
        first, last = server.connection_of(b"/slow/200"), server.connection_of(b"/slow/600")
        if first == last:
            return "the two requests shared a connection"
        used = server.connection_of(b"/next")
        return {last: "LIFO (newest idle first)", first: "FIFO (oldest idle first)"}.get(
            used, "a new connection"
        )


def honours_keep_alive_timeout(cls: type[Adapter]) -> str:
    """The server says Keep-Alive: timeout=1 (without closing); idle 1.5 s, then GET."""
    with Server(keep_alive="timeout=1") as server:
        client = cls(server.url)
        try:
            client.get("/first")
            time.sleep(1.5)
            client.get("/second")
        finally:
            client.close()
        same = server.connection_of(b"/first") == server.connection_of(b"/second")
        return "no: reused past the timeout" if same else "yes: new connection"


def http10_keep_alive(cls: type[Adapter]) -> str:
    """An HTTP/1.0 server says Connection: keep-alive; two GETs."""
    with Server(http10=True) as server:
        client = cls(server.url)
        try:
            client.get("/first")
            client.get("/second")
        finally:
            client.close()
        same = server.connection_of(b"/first") == server.connection_of(b"/second")
        return "reused" if same else "not reused"


def stale(cls: type[Adapter]) -> str:
    """The server closes idle connections after 0.2 s; GET after 0.5 s idle."""
    with Server(idle_close=0.2) as server:
        client = cls(server.url)
        try:
            client.get("/first")
            time.sleep(0.5)
            return _outcome(lambda: client.get("/second"))
        finally:
            client.close()


def race(cls: type[Adapter], method: str) -> str:
    """The server reads the second request of each connection and hangs up."""
    with Server(hang_up_on=2) as server:
        client = cls(server.url)
        try:
            client.get("/first")
            send = client.get if method == "GET" else client.post
            outcome = _outcome(lambda: send("/second"))
        finally:
            client.close()
        if outcome == "ok":
            return "retried, ok"
        return f"not retried: {outcome}"


def connection_header(cls: type[Adapter]) -> str:
    """The Connection header of a connection's first request, and of the
    request that reuses it."""
    with Server() as server:
        client = cls(server.url)
        try:
            client.get("/")
            client.get("/")
        finally:
            client.close()
        heads = [head.decode("latin-1") for head in server.connections[0]]
    found = []
    for head in heads:
        values = [
            line.split(":", 1)[1].strip()
            for line in head.split("\r\n")
            if line.lower().startswith("connection:")
        ]
        found.append(values[0] if values else "(none)")
    if len(found) < 2:
        found.append("(not reused)")
    return f"{found[0]}, then {found[1]}"


EXPERIMENTS: list[tuple[str, Callable[[type[Adapter]], str]]] = [
    ("sends Connection: (first request, then reusing)", connection_header),
    ("reuse order", reuse_order),
    ("honours Keep-Alive: timeout", honours_keep_alive_timeout),
    ("HTTP/1.0 response with Connection: keep-alive", http10_keep_alive),
    ("server closed the idle connection", stale),
    ("keep-alive race, GET", lambda cls: race(cls, "GET")),
    ("keep-alive race, POST", lambda cls: race(cls, "POST")),
]


def main() -> None:
    import argparse
    import logging

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", help="comma-separated names, e.g. rawkeep,libcurl")
    args = parser.parse_args()
    names = None if args.clients is None else args.clients.split(",")
    logging.disable(logging.WARNING)  # urllib3's retry warnings are not the point
    for title, experiment in EXPERIMENTS:
        print(f"\n{title}")
        for cls in adapters(names):
            try:
                result = experiment(cls)
            except Exception as exc:
                result = f"(experiment failed: {type(exc).__name__}: {exc})"
            print(f"  {cls.name:<12} {result}")


if __name__ == "__main__":
    main()
