"""Self-tests of the test servers, with the standard library as the client.

The behaviour tests trust these servers' ledgers; these tests make that
trust earned, independently of rawkeep.
"""

from __future__ import annotations

import http.client
import socket
import time
from typing import TYPE_CHECKING

import pytest

from servers import faults
from servers.scripted import ScriptedServer, render_response

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable


def raw_exchange(server: ScriptedServer, data: bytes, timeout: float = 2.0) -> bytes:
    """Send `data` on a fresh connection and read until EOF."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        for _ in range(10_000):
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_keepalive_server_echoes_tokens_on_one_connection(
    server: ScriptedServer,
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
    try:
        bodies = []
        for i in range(3):
            conn.request("GET", f"/token-{i}")
            bodies.append(conn.getresponse().read())
        conn.request("POST", "/x", body=b"payload", headers={"X-Token": "t"})
        bodies.append(conn.getresponse().read())
    finally:
        conn.close()
    assert bodies == [b"/token-0", b"/token-1", b"/token-2", b"t"]
    assert server.accepted == 1
    assert server.requests_per_connection() == [4]
    last = server.requests[-1]
    assert (last.method, last.target, last.body) == ("POST", "/x", b"payload")
    assert last.header("content-length") == b"7"
    assert server.raw(0).startswith(b"GET /token-0 HTTP/1.1\r\n")
    assert server.wait_for_peer_closed(0)


def test_keep_alive_header_counts_down(
    start_keepalive_server: Callable[..., ScriptedServer],
) -> None:
    server = start_keepalive_server(keep_alive_timeout=5, keep_alive_max=2)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
    try:
        values = []
        for _ in range(3):
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            values.append(response.getheader("Keep-Alive"))
    finally:
        conn.close()
    assert values == ["timeout=5, max=2", "timeout=5, max=1", "timeout=5, max=0"]


def test_idle_close_after_closes_silently(
    start_keepalive_server: Callable[..., ScriptedServer],
) -> None:
    server = start_keepalive_server(idle_close_after=0.1)
    reply = raw_exchange(server, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n/a"
    assert server.wait_for_closed(0)


@pytest.mark.parametrize(
    ("knobs", "expected_head"),
    [
        ({"connection_close": True}, b"HTTP/1.1 200 OK\r\nConnection: close\r\n"),
        ({"max_requests_per_connection": 1}, b"HTTP/1.1 200 OK\r\nConnection: close"),
        ({"http10": True}, b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n"),
    ],
)
def test_closing_variants_close_after_one_response(
    start_keepalive_server: Callable[..., ScriptedServer],
    knobs: dict[str, object],
    expected_head: bytes,
) -> None:
    server = start_keepalive_server(**knobs)
    reply = raw_exchange(server, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(expected_head)
    assert reply.endswith(b"\r\n\r\n/a")


def test_http10_keep_alive_variant_keeps_socket_open(
    start_keepalive_server: Callable[..., ScriptedServer],
) -> None:
    server = start_keepalive_server(http10=True, http10_keep_alive=True)
    request = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(request + request)
        assert server.wait_for_requests(2)
    assert server.requests_per_connection() == [2]


def test_chunked_request_body_is_decoded(server: ScriptedServer) -> None:
    request = (
        b"PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(request)
        assert server.wait_for_requests(1)
    assert server.requests[0].body == b"abcde"


def test_invalid_request_is_reported_at_teardown() -> None:
    server = ScriptedServer(faults.keep_serving)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
            sock.sendall(b"GET /a HTTP/1.1\r\nBad Name: x\r\n\r\n")
            assert sock.recv(100) == b""
    finally:
        problems = server.stop()
    assert len(problems) == 1
    assert "RequestParseError" in problems[0]


def test_fault_scripts(start_server: Callable[..., ScriptedServer]) -> None:
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    truncated = start_server(faults.truncated_body)
    assert raw_exchange(truncated, request).endswith(b"\r\n\r\n" + b"x" * 10)
    assert raw_exchange(start_server(faults.garbage), request) == b"HELLO\r\n\r\n"
    assert raw_exchange(start_server(faults.close_without_response), request) == b""
    with pytest.raises(ConnectionResetError):
        raw_exchange(start_server(faults.reset_after_request), request)
    endless = raw_exchange(start_server(faults.endless_headers), request)
    assert len(endless) >= faults.ENDLESS_HEADERS_LIMIT


def test_stalled_server_stops_promptly() -> None:
    server = ScriptedServer(faults.stall)
    with server, socket.create_connection(("127.0.0.1", server.port), timeout=2) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert server.wait_for_requests(1)
        started = time.monotonic()
        assert not server.stop()
    assert time.monotonic() - started < 2.0
    assert server.record(0).closed.is_set()


def test_concurrency_gauges(
    start_keepalive_server: Callable[..., ScriptedServer],
) -> None:
    server = start_keepalive_server(response_delay=0.2)
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=2) as one,
        socket.create_connection(("127.0.0.1", server.port), timeout=2) as two,
    ):
        one.sendall(request)
        two.sendall(request)
        assert one.recv(1000).endswith(b"\r\n\r\n/")
        assert two.recv(1000).endswith(b"\r\n\r\n/")
    assert server.max_open == 2
    assert server.max_in_flight == 2


def test_tls_server(
    start_keepalive_server: Callable[..., ScriptedServer],
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    server = start_keepalive_server(ssl_context=server_ssl_context)
    assert server.url.startswith("https://127.0.0.1:")
    conn = http.client.HTTPSConnection(
        "127.0.0.1", server.port, timeout=2, context=client_ssl_context
    )
    try:
        for path in ("/a", "/b"):
            conn.request("GET", path)
            assert conn.getresponse().read() == path.encode()
    finally:
        conn.close()
    assert server.requests_per_connection() == [2]


def test_never_accepting_listener_hangs(never_accepting_listener: str) -> None:
    port = int(never_accepting_listener.rsplit(":", 1)[1])
    with (
        pytest.raises(TimeoutError),
        socket.create_connection(("127.0.0.1", port), timeout=0.2),
    ):
        pass


def test_refused_url_refuses(refused_url: str) -> None:
    port = int(refused_url.rsplit(":", 1)[1])
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=1),
    ):
        pass


def test_render_response_head_and_chunked() -> None:
    assert render_response(200, b"abc", head=True) == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
    )
    assert render_response(200, b"abcd", chunked=True).endswith(
        b"\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"
    )
