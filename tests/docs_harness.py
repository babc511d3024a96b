"""What the documentation's code blocks run against, and how they are run.

`tests/test_docs.py` executes the Python blocks of README.md and docs/*.md.
This module holds its two moving parts:

- `docs_servers()`: the servers behind the addresses the docs use:
  ``http://127.0.0.1:8080`` (an HTTP/1.1 keep-alive server),
  ``http://127.0.0.1:8081`` (the same answers in HTTP/1.0, like
  ``python3 -m http.server`` without ``--protocol``),
  ``https://127.0.0.1:8443`` (the same over TLS, with a certificate no
  client trusts) and ``http://127.0.0.1:3128`` (a forward proxy that
  refuses everything). They run in the test process on free loopback
  ports; `respond` serves every path the pages use.
- `main()`: the runner, started as ``python docs_harness.py BLOCKS RESULTS``
  in a subprocess per page. It executes the page's blocks in order in one
  namespace (as a reader pasting them into one interpreter would), each
  under its own time limit, with stdout captured per block, connections
  limited to loopback, and every `ResourceWarning` (an unclosed socket)
  charged to the block that caused it. Results go to a JSON file.

The runner imports nothing from the test suite, so a page runs as it would
for a reader: a fresh interpreter, no pytest, no ``-bb``.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import signal
import sys
import time
import traceback
import warnings
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterator
    from types import FrameType

    from servers.h11server import Reply
    from servers.scripted import ReceivedRequest, ScriptedServer, ServerConnection

#: The address the pages are written against, and the HTTP/1.0 one.
DOCS_ORIGIN: Final = "127.0.0.1:8080"
DOCS_ORIGIN_HTTP10: Final = "127.0.0.1:8081"
#: An https server whose certificate no CA the client trusts signed.
DOCS_ORIGIN_UNTRUSTED_TLS: Final = "127.0.0.1:8443"
#: A forward proxy that refuses every request and tunnel with 403.
DOCS_PROXY: Final = "127.0.0.1:3128"

#: Seconds ``/slow`` takes to answer: past the 0.5 s read timeouts of the
#: pages' examples, short for the ones that wait for it.
SLOW_SECONDS: Final = 1.0

#: Seconds one block may run before the runner interrupts it.
BLOCK_TIMEOUT: Final = 20.0

#: Bodies of ``/big`` (1 MiB) and ``/big.json`` (about 300 KiB before gzip).
BIG_BODY: Final = bytes(i % 251 for i in range(1024 * 1024))
BIG_JSON: Final = json.dumps([{"id": i, "name": f"item {i}"} for i in range(12_000)]).encode()
PAGE_HTML: Final = b"<!doctype html><title>rawkeep</title>" + b"<p>keep-alive</p>" * 200

#: Stand-ins for the files the pages open, created in the runner's directory.
STAND_IN_FILES: Final = {"report.pdf": 20 * 1024, "big.iso": 300 * 1024}


# -- the server side -------------------------------------------------------------------


def respond(request: ReceivedRequest) -> Reply:
    """The docs server's answer to one request, by path."""
    from servers.h11server import Reply

    path = request.path
    text = [("Content-Type", "text/plain; charset=utf-8")]
    if path == "/slow":
        time.sleep(SLOW_SECONDS)
        return Reply(body=b"slow, but here\n", headers=text)
    if path == "/json":
        agent = (request.header("user-agent") or b"").decode("latin-1")
        return _json_reply({"path": path, "user-agent": agent})
    if path in ("/redirect", "/loop"):
        target = "/json" if path == "/redirect" else "/loop"
        return Reply(
            status=302, body=f"see {target}\n".encode(), headers=[*text, ("Location", target)]
        )
    if path.startswith("/status/") and path[8:].isdigit():
        return Reply(status=int(path[8:]), body=f"status {path[8:]}\n".encode(), headers=text)
    if path == "/big":
        return Reply(body=BIG_BODY, headers=[("Content-Type", "application/octet-stream")])
    if path in ("/page", "/big.json"):
        kind = "text/html" if path == "/page" else "application/json"
        body = PAGE_HTML if path == "/page" else BIG_JSON
        if b"gzip" in (request.header("accept-encoding") or b""):
            return Reply(
                body=gzip.compress(body),
                headers=[("Content-Type", kind), ("Content-Encoding", "gzip")],
            )
        return Reply(body=body, headers=[("Content-Type", kind)])
    if path == "/lines":
        lines = b"event: tick\r\ndata: 1\r\n\r\nevent: tick\r\ndata: 2\r\n\r\n"
        return Reply(body=lines, headers=text, chunked=True, trailers=[("X-Lines", "6")])
    if path == "/hints":
        hints = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"
        return Reply(body=PAGE_HTML, headers=[("Content-Type", "text/html")], interim=hints)
    if path == "/broken-gzip":
        return Reply(body=b"this is not gzip data", headers=[*text, ("Content-Encoding", "gzip")])
    content_type = request.header("content-type") or b""
    if request.body and content_type.startswith(b"application/json"):
        received = json.loads(request.body)
        return _json_reply({"method": request.method, "path": path, "json": received})
    summary = f"{request.method} {request.target}: {len(request.body)} bytes received\n"
    return Reply(body=summary.encode(), headers=text)


def _json_reply(data: object) -> Reply:
    from servers.h11server import Reply

    return Reply(body=json.dumps(data).encode(), headers=[("Content-Type", "application/json")])


def refuse_tunnels(conn: ServerConnection) -> None:
    """A forward proxy that answers every request (CONNECT too) with 403."""
    from servers.scripted import render_response

    if conn.read_request() is not None:
        headers = [("Content-Type", "text/plain"), ("Connection", "close")]
        conn.respond(render_response(403, b"no tunnels here\n", headers, reason="Forbidden"))


def untrusted_tls_context() -> ssl.SSLContext:
    """A server context whose certificate (for 127.0.0.1) no client trusts."""
    import ssl

    import trustme

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    return context


@contextlib.contextmanager
def docs_servers() -> Iterator[dict[str, str]]:
    """Start the docs servers; yield ``{address in the docs: real address}``."""
    from servers.h11server import keepalive_server
    from servers.scripted import ScriptedServer

    servers: dict[str, ScriptedServer] = {
        DOCS_ORIGIN: keepalive_server(respond=respond),
        DOCS_ORIGIN_HTTP10: keepalive_server(respond=respond, http10=True),
        DOCS_ORIGIN_UNTRUSTED_TLS: keepalive_server(
            respond=respond, ssl_context=untrusted_tls_context()
        ),
        DOCS_PROXY: ScriptedServer(refuse_tunnels),
    }
    with contextlib.ExitStack() as stack:
        for server in servers.values():
            stack.enter_context(server)
        yield {address: f"127.0.0.1:{server.port}" for address, server in servers.items()}


# -- the runner (in a subprocess) --------------------------------------------------------


class BlockTimeout(BaseException):
    """The block ran past BLOCK_TIMEOUT (a BaseException: blocks catch Exception)."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise BlockTimeout(f"block still running after {BLOCK_TIMEOUT} s")


def _loopback_only() -> None:
    """Refuse connects and look-ups of anything but loopback, as the suite does."""
    import ipaddress
    import socket

    def is_loopback(host: object) -> bool:
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if not isinstance(host, str):
            return False
        if host.lower() in ("localhost", "localhost.", ""):
            return True
        try:
            return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
        except ValueError:
            return False

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family != getattr(socket, "AF_UNIX", None):
            host = address[0] if isinstance(address, tuple) else address
            if not is_loopback(host):
                raise ConnectionRefusedError(f"docs tests connect to loopback only, not {host!r}")

    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not is_loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, f"docs tests resolve no {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    setattr(socket.socket, "connect", connect)  # noqa: B010 - typeshed types it narrower
    setattr(socket.socket, "connect_ex", connect_ex)  # noqa: B010
    socket.getaddrinfo = getaddrinfo


def _expected_exception(name: str) -> type[BaseException]:
    import builtins

    import rawkeep

    found = getattr(rawkeep, name, None) or getattr(builtins, name, None)
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise LookupError(f"doc-test: raises {name}: no such exception")
    return found


def _run_block(
    block: dict[str, Any], namespace: dict[str, Any], leaks: list[str]
) -> dict[str, Any]:
    import gc

    # Padding puts each line at its line number in the page, so tracebacks
    # point into the Markdown file.
    source = "\n" * (block["line"] - 1) + block["code"]
    out = io.StringIO()
    result: dict[str, Any] = {"line": block["line"], "status": "ok", "error": None}
    del leaks[:]
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, BLOCK_TIMEOUT)
    try:
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(source, block["page"], "exec"), namespace)
            finally:
                gc.collect()  # a socket dropped by this block warns now, not later
        if block["raises"]:
            result["status"] = "error"
            result["error"] = f"expected {block['raises']}, but the block raised nothing"
    except BlockTimeout:
        result["status"] = "timeout"
        result["error"] = traceback.format_exc()
    except BaseException as exc:
        expected = _expected_exception(block["raises"]) if block["raises"] else None
        if expected is None or not isinstance(exc, expected):
            result["status"] = "error"
            result["error"] = traceback.format_exc()
        else:
            result["raised"] = f"{type(exc).__name__}: {exc}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    result["elapsed"] = time.monotonic() - started
    result["stdout"] = out.getvalue()
    if leaks and result["status"] == "ok":
        result["status"] = "leak"
        result["error"] = "\n".join(leaks)
    return result


def _close_clients() -> None:
    """End the reader's session: close the clients a page left open (and the
    pools of clients it dropped whose responses it still holds)."""
    import gc

    import rawkeep
    from rawkeep._pool import Pool

    for value in gc.get_objects():
        if isinstance(value, rawkeep.Client | Pool):
            value.close()


def main(argv: list[str]) -> int:
    """Run the blocks in ``argv[1]`` (JSON); write results to ``argv[2]``."""
    import gc

    with open(argv[1], encoding="utf-8") as file:
        blocks: list[dict[str, Any]] = json.load(file)
    _loopback_only()
    for name, size in STAND_IN_FILES.items():
        with open(name, "wb") as stand_in:
            stand_in.write(bytes(size))
    leaks: list[str] = []

    def record_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        leaks.append(f"{category.__name__}: {message}")

    def record_unraisable(info: Any) -> None:
        leaks.append(f"unraisable {info.exc_type.__name__}: {info.exc_value} in {info.object!r}")

    warnings.simplefilter("always", ResourceWarning)
    warnings.showwarning = record_warning
    sys.unraisablehook = record_unraisable
    signal.signal(signal.SIGALRM, _on_alarm)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    results = [_run_block(block, namespace, leaks) for block in blocks]
    del leaks[:]
    _close_clients()
    namespace.clear()
    gc.collect()
    with open(argv[2], "w", encoding="utf-8") as file:
        json.dump({"blocks": results, "end_of_page_leaks": list(leaks)}, file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
