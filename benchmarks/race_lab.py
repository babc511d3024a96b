"""The keep-alive race lab: a server that closes idle connections and says nothing.

    python benchmarks/race_lab.py                  # every client, T = 0.5 s
    python benchmarks/race_lab.py --limit 1.0 --clients rawkeep,requests

The server (``race_server.js``, Node's http server with a millisecond timer
of its own) closes a connection idle for T seconds after its last
response, sending no ``Keep-Alive`` header. Each client makes one request,
then, for every pause in a sweep around T (from 0.8 T to 1.2 T, in 21
steps, ``--rounds`` times over), waits that long and sends the next one on
whatever connection it chooses. A GET sweep and a POST sweep, each POST
carrying a unique id in its body. The table gives, per client and method:

errors      calls that raised or did not answer 200 (what the user sees)
duplicates  POST ids the server received more than once
conns       connections the server accepted
before      for rawkeep: calls made before it learned the limit, and in
            brackets how many of the errors came before it had

A request sent just as the server's timer fires meets the close; which
pauses do depends on the machine's timing, so compare clients from the
same run. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

HERE: Final = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import rawkeep  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

#: The sweep: pauses STEP apart, three quarters of them before T.
STEPS: Final = 40
STEP: Final = 0.0001


def _rawkeep(learned: list[float]) -> tuple[Any, Any]:
    def on_event(event: rawkeep.Event) -> None:
        if isinstance(event, rawkeep.IdleLimitLearned):
            learned.append(time.monotonic())

    client = rawkeep.Client(timeout=5.0, on_event=on_event)

    def send(method: str, url: str, body: bytes | None) -> int:
        return client.request(method, url, content=body).status

    return send, client.close


def _rawkeep_async(learned: list[float]) -> tuple[Any, Any]:
    loop = asyncio.new_event_loop()

    def on_event(event: rawkeep.Event) -> None:
        if isinstance(event, rawkeep.IdleLimitLearned):
            learned.append(time.monotonic())

    client = rawkeep.AsyncClient(timeout=5.0, on_event=on_event)

    def send(method: str, url: str, body: bytes | None) -> int:
        response = loop.run_until_complete(client.request(method, url, content=body))
        return response.status

    def close() -> None:
        loop.run_until_complete(client.aclose())
        loop.close()

    return send, close


def _requests(_: list[float]) -> tuple[Any, Any]:
    import requests

    session = requests.Session()

    def send(method: str, url: str, body: bytes | None) -> int:
        return session.request(method, url, data=body, timeout=5.0).status_code

    return send, session.close


def _urllib3(_: list[float]) -> tuple[Any, Any]:
    import urllib3

    pool = urllib3.PoolManager(timeout=5.0)

    def send(method: str, url: str, body: bytes | None) -> int:
        return pool.request(method, url, body=body).status

    return send, pool.clear


def _httpx(_: list[float]) -> tuple[Any, Any]:
    import httpx

    client = httpx.Client(timeout=5.0)

    def send(method: str, url: str, body: bytes | None) -> int:
        return client.request(method, url, content=body).status_code

    return send, client.close


def _aiohttp(_: list[float]) -> tuple[Any, Any]:
    import aiohttp

    loop = asyncio.new_event_loop()
    session = loop.run_until_complete(_session(aiohttp))

    async def call(method: str, url: str, body: bytes | None) -> int:
        async with session.request(method, url, data=body) as response:
            await response.read()
            return response.status

    def send(method: str, url: str, body: bytes | None) -> int:
        return loop.run_until_complete(call(method, url, body))

    def close() -> None:
        loop.run_until_complete(session.close())
        loop.close()

    return send, close


async def _session(aiohttp: Any) -> Any:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5.0))


def _pycurl(_: list[float]) -> tuple[Any, Any]:
    import io

    import pycurl

    curl = pycurl.Curl()

    def send(method: str, url: str, body: bytes | None) -> int:
        curl.setopt(pycurl.URL, url)
        curl.setopt(pycurl.CUSTOMREQUEST, method)
        if body is not None:
            curl.setopt(pycurl.POSTFIELDS, body)
        else:
            curl.setopt(pycurl.HTTPGET, 1)
            curl.setopt(pycurl.CUSTOMREQUEST, method)
        curl.setopt(pycurl.WRITEDATA, io.BytesIO())
        curl.setopt(pycurl.TIMEOUT, 5)
        curl.perform()
        return int(curl.getinfo(pycurl.RESPONSE_CODE))

    return send, curl.close


CLIENTS: Final[dict[str, Callable[[list[float]], tuple[Any, Any]]]] = {
    "rawkeep": _rawkeep,
    "rawkeep-async": _rawkeep_async,
    "requests": _requests,
    "urllib3": _urllib3,
    "httpx": _httpx,
    "aiohttp": _aiohttp,
    "pycurl": _pycurl,
}


class NodeServer:
    """``race_server.js`` in a Node process: a precise idle timer, no header."""

    def __init__(self, limit: float) -> None:
        self._process = subprocess.Popen(
            ["node", str(HERE / "race_server.js"), str(limit)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("PORT "):
            self._process.kill()
            raise RuntimeError(f"race_server.js did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def stop(self) -> tuple[list[str], int]:
        """Every POST body answered, and the connections accepted."""
        self._process.terminate()
        out, _ = self._process.communicate(timeout=10)
        lines = out.splitlines()
        return [line[5:] for line in lines if line.startswith("POST ")], lines.count("CONN")


def sweep(name: str, method: str, limit: float, rounds: int) -> dict[str, object]:
    """One client, one method, against a fresh server."""
    learned: list[float] = []
    errors = calls = before = errors_before = 0
    pauses = [limit + (i - STEPS * 3 // 4) * STEP for i in range(STEPS)] * rounds
    random.Random(len(pauses)).shuffle(pauses)
    server = NodeServer(limit)
    send, close = CLIENTS[name](learned)
    try:
        for number, pause in enumerate([0.0, *pauses]):
            time.sleep(pause)
            body = b"id=%d" % number if method == "POST" else None
            calls += 1
            knew = bool(learned)  # a call that teaches counts as before
            before += not knew
            ok = False  # an exception counts: it is what the user would see
            with contextlib.suppress(Exception):
                ok = send(method, server.url + "/", body) == 200
            if not ok:
                errors += 1
                errors_before += not knew
    finally:
        close()
    posts, accepted = server.stop()
    bodies = collections.Counter(posts)
    duplicates = sum(1 for count in bodies.values() if count > 1)
    return {
        "errors": errors,
        "calls": calls,
        "duplicates": duplicates,
        "conns": accepted,
        "before": f"{before} ({errors_before})" if name.startswith("rawkeep") else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=float, default=0.5, help="the server's idle limit, s")
    parser.add_argument("--rounds", type=int, default=2, help="sweeps per client and method")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated")
    args = parser.parse_args(argv)
    names = [name for name in args.clients.split(",") if name]
    print(f"server closes idle connections after {args.limit} s, says nothing")
    print(
        f"{'client':<14} {'method':<6} {'errors':>7} {'calls':>6} {'dup':>4} {'conns':>6} "
        f"{'before':>9}"
    )
    for name in names:
        for method in ("GET", "POST"):
            row = sweep(name, method, args.limit, args.rounds)
            before = "" if row["before"] is None else str(row["before"])
            print(
                f"{name:<14} {method:<6} {row['errors']:>7} {row['calls']:>6} "
                f"{row['duplicates']:>4} {row['conns']:>6} {before:>9}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
