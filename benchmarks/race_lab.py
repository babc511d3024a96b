"""The keep-alive race lab: a server that closes idle connections and says nothing.

    python benchmarks/race_lab.py                  # every client, T = 0.5 s
    python benchmarks/race_lab.py --limit 1.0 --clients rawkeep,requests
    python benchmarks/race_lab.py --variant header   # other servers: see VARIANTS

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
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
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


#: The lab's servers: (announced timeout as a factor of T, max, change).
VARIANTS: Final[dict[str, str]] = {
    "silent": "closes idle connections after T, says nothing",
    "header": "closes after T, announces Keep-Alive: timeout=T",
    "max": "announces timeout=T and Apache's max=3, closes after 4 requests",
    "early": "announces timeout=2T but closes after T",
    "change": "closes after T, then after T/2 from the middle of the run on",
    "apache": "Apache httpd, KeepAliveTimeout T (whole seconds), asked or not",
    "node": "Node's own: keepAliveTimeout T, announced, closes about 1 s later",
}


class NodeServer:
    """``race_server.js`` in a Node process: a precise idle timer."""

    def __init__(self, limit: float, variant: str, calls: int) -> None:
        announce = {"header": limit, "max": limit, "early": 2 * limit, "node": "own"}
        argv = [str(limit), str(announce.get(variant, 0)), "3" if variant == "max" else "0"]
        if variant == "change":
            argv += [str(calls // 2), str(limit / 2)]
        self._process = subprocess.Popen(
            ["node", str(HERE / "race_server.js"), *argv],
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


APACHE_CONF: Final = """\
ServerRoot "{dir}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {dir}/httpd.pid
DefaultRuntimeDir {dir}
ErrorLog {dir}/error.log
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule lua_module /usr/lib/apache2/modules/mod_lua.so
{user}
KeepAlive On
KeepAliveTimeout {timeout}
LogFormat "%{{remote}}p %m %q" conn
CustomLog {dir}/access.log conn
DocumentRoot {dir}
<Directory {dir}>
    Require all granted
</Directory>
LuaMapHandler ^/ {dir}/ok.lua handle
"""

APACHE_LUA: Final = """\
function handle(r)
  r.content_type = "text/plain"
  if r.method == "POST" then r:requestbody() end
  r:puts("ok")
  return apache2.OK
end
"""


class ApacheServer:
    """Apache httpd (event MPM), its idle limit whole seconds: it announces
    ``Keep-Alive`` only to requests that carry ``Connection: keep-alive``."""

    def __init__(self, limit: float) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="race-lab-apache-"))
        self._dir.chmod(0o755)  # its workers run as nobody when started as root
        (self._dir / "ok.lua").write_text(APACHE_LUA)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        user = "User nobody\nGroup nogroup" if os.geteuid() == 0 else ""
        conf = self._dir / "httpd.conf"
        timeout = max(1, round(limit))
        conf.write_text(APACHE_CONF.format(dir=self._dir, port=port, user=user, timeout=timeout))
        apache = shutil.which("apache2", path="/usr/sbin:/usr/bin") or "apache2"
        self._process = subprocess.Popen([apache, "-f", str(conf), "-DFOREGROUND"])
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            time.sleep(0.025)
        else:
            self._process.kill()
            raise RuntimeError("apache2 did not start")
        self.url = f"http://127.0.0.1:{port}"
        self._log = self._dir / "access.log"

    def stop(self) -> tuple[list[str], int]:
        """Every POST id answered, and the connections (client ports) seen."""
        time.sleep(0.2)  # the last log line
        lines = [line.split(" ") for line in self._log.read_text().splitlines()]
        self._process.terminate()
        self._process.wait(timeout=10)
        shutil.rmtree(self._dir, ignore_errors=True)
        posts = [query for _port, method, query in lines if method == "POST"]
        return posts, len({port for port, *_ in lines}) - 1  # less the start-up probe


def sweep(name: str, method: str, limit: float, rounds: int, variant: str) -> dict[str, object]:
    """One client, one method, against a fresh server."""
    learned: list[float] = []
    errors = calls = before = errors_before = 0
    if variant == "apache":
        limit = max(1, round(limit))
    pauses = [limit + (i - STEPS * 3 // 4) * STEP for i in range(STEPS)] * rounds
    if variant == "node":  # from 0.5 T to 2.5 T: Node keeps longer than it says
        pauses = [limit * (0.5 + 2 * i / STEPS) for i in range(STEPS)] * rounds
    random.Random(len(pauses)).shuffle(pauses)
    server: NodeServer | ApacheServer
    if variant == "apache":
        server = ApacheServer(limit)
    else:
        server = NodeServer(limit, variant, len(pauses) + 1)
    send, close = CLIENTS[name](learned)
    try:
        for number, pause in enumerate([0.0, *pauses]):
            time.sleep(pause)
            body = b"id=%d" % number if method == "POST" else None
            target = f"/?id={number}" if method == "POST" else "/"
            calls += 1
            knew = bool(learned)  # a call that teaches counts as before
            before += not knew
            ok = False  # an exception counts: it is what the user would see
            with contextlib.suppress(Exception):
                ok = send(method, server.url + target, body) == 200
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
    parser.add_argument("--variant", choices=VARIANTS, default="silent", help="the server")
    args = parser.parse_args(argv)
    names = [name for name in args.clients.split(",") if name]
    print(f"server: {VARIANTS[args.variant]}; T = {args.limit} s")
    print(
        f"{'client':<14} {'method':<6} {'errors':>7} {'calls':>6} {'dup':>4} {'conns':>6} "
        f"{'before':>9}"
    )
    for name in names:
        for method in ("GET", "POST"):
            row = sweep(name, method, args.limit, args.rounds, args.variant)
            before = "" if row["before"] is None else str(row["before"])
            print(
                f"{name:<14} {method:<6} {row['errors']:>7} {row['calls']:>6} "
                f"{row['duplicates']:>4} {row['conns']:>6} {before:>9}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
