"""Ready-made misbehaving connection scripts for `ScriptedServer`.

Each is a ``(conn) -> None`` function or a factory returning one. They read
the request first where it matters, so the client's request always completes
and the failure lands exactly where the test wants it: before any response
byte, mid-head or mid-body. Every loop is bounded by bytes or time.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .scripted import MAX_WAIT, render_response

if TYPE_CHECKING:
    from collections.abc import Callable

    from .scripted import ServerConnection

    Script = Callable[[ServerConnection], None]


def ok(conn: ServerConnection, body: bytes = b"ok") -> bool:
    """Read one request and answer 200 with `body`; False on EOF."""
    request = conn.read_request(timeout=MAX_WAIT)
    if request is None:
        return False
    conn.respond(render_response(200, body, head=request.method == "HEAD"))
    return True


def close_without_response(conn: ServerConnection) -> None:
    """Read the request, then close (FIN) without answering."""
    conn.read_request()
    conn.close()


def reset_after_request(conn: ServerConnection) -> None:
    """Read the request, then abort the connection (RST)."""
    conn.read_request()
    conn.reset()


def truncated_body(conn: ServerConnection) -> None:
    """Announce Content-Length 100, send 10 bytes of it, close."""
    conn.read_request()
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
    conn.close()


def reset_mid_body(conn: ServerConnection) -> None:
    """Announce Content-Length 100000, send part of it, then RST."""
    conn.read_request()
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
    # Give the client time to see the head before the abort, so the failure
    # is "mid-response" rather than "before any response byte".
    conn.sleep(0.1)
    conn.reset()


def garbage(conn: ServerConnection) -> None:
    """Answer with bytes that are not an HTTP response at all."""
    conn.read_request()
    conn.send(b"HELLO\r\n\r\n")
    conn.close()


def truncated_head(conn: ServerConnection) -> None:
    """Send half a status line, then close."""
    conn.read_request()
    conn.send(b"HTTP/1.1 200")
    conn.close()


#: Bound of the endless header block, in bytes.
ENDLESS_HEADERS_LIMIT = 1024 * 1024


def endless_headers(conn: ServerConnection) -> None:
    """Send a status line, then header lines forever (up to 1 MiB or 10 s).

    A client must give up on its own head-size limit; when it closes, the
    next send fails with an OSError, which ends the script. At the limit the
    server closes.
    """
    conn.read_request()
    conn.send(b"HTTP/1.1 200 OK\r\n")
    deadline = time.monotonic() + 10.0
    sent = 0
    line = 0
    while sent < ENDLESS_HEADERS_LIMIT and time.monotonic() < deadline:
        chunk = b"".join(b"X-Filler-%d: %s\r\n" % (line + i, b"f" * 100) for i in range(64))
        line += 64
        conn.send(chunk, timeout=1.0)
        sent += len(chunk)
    conn.close()


def stall(conn: ServerConnection) -> None:
    """Read the request and never answer, until the client or server quits."""
    conn.read_request()
    conn.wait_for_peer_close(MAX_WAIT)


def stall_mid_body(conn: ServerConnection) -> None:
    """Send the head and part of the body, then stall."""
    conn.read_request()
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
    conn.wait_for_peer_close(MAX_WAIT)


def never_read(conn: ServerConnection) -> None:
    """Accept and never read a byte, until the server stops (upload stall)."""
    conn.sleep(MAX_WAIT)


def answer_then_close(conn: ServerConnection) -> None:
    """Answer one request (no Connection: close), then close at once.

    The connection goes idle in the client's pool while the server's FIN is on
    its way: the keep-alive race window.
    """
    ok(conn)
    conn.close()


def serve_then(count: int, then: Script) -> Script:
    """Answer `count` requests normally (200 "ok"), then run `then`."""

    def script(conn: ServerConnection) -> None:
        for _ in range(count):
            if not ok(conn):
                return
        then(conn)

    return script


def keep_serving(conn: ServerConnection) -> None:
    """Answer every request with 200 "ok" until the client closes."""
    for _ in range(10_000):
        if not ok(conn):
            return


def per_connection(*scripts: Script) -> Script:
    """Run ``scripts[i]`` on the i-th accepted connection (the last repeats)."""

    def script(conn: ServerConnection) -> None:
        scripts[min(conn.index, len(scripts) - 1)](conn)

    return script


def large_body(size: int = 1024 * 1024) -> Script:
    """Answer every request with a `size`-byte body, keep-alive."""
    body = bytes(i % 251 for i in range(size))

    def script(conn: ServerConnection) -> None:
        for _ in range(10_000):
            if not ok(conn, body):
                return

    return script
