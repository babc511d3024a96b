"""The lab server (``rawkeep._app.labserver``): its paths and its knobs.

Real sockets on 127.0.0.1. The client is ``rawkeep.Client`` where the test is
about what a user of the lab sees, ``http.client`` or a raw socket where it is
about the exact bytes or about a connection the client would not keep. Every
wait is bounded by a socket timeout or a deadline below.
"""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
import time
import zlib
from typing import TYPE_CHECKING

import pytest

import rawkeep
from rawkeep._app import labconnection, labserver
from rawkeep._app.labserver import Behaviour, Exchange, LabServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

#: Bound (seconds) of every client wait; loopback answers in microseconds.
WAIT = 5.0


@pytest.fixture
def server() -> Iterator[LabServer]:
    with LabServer() as server:
        yield server


@pytest.fixture
def client() -> Iterator[rawkeep.Client]:
    with rawkeep.Client(timeout=WAIT) as client:
        yield client


def raw_connection(server: LabServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    sock.settimeout(WAIT)
    return sock


def read_until_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (bounded by the socket's timeout)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def is_closed(sock: socket.socket) -> bool:
    """Whether the server closed ``sock``: an end of file, or a reset when it
    closed before reading what was sent."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def lab_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("lab-")]


# -- paths ---------------------------------------------------------------------------------


def test_hello_counts_connections_and_requests(server: LabServer, client: rawkeep.Client) -> None:
    assert client.get(server.url + "/").text == "hello from connection 0, request 1\n"
    assert client.get(server.url + "/any/path").text == "hello from connection 0, request 2\n"
    with rawkeep.Client(timeout=WAIT) as other:
        assert other.get(server.url + "/").text == "hello from connection 1, request 1\n"
    assert server.accepted == 2


def test_json_and_items(server: LabServer, client: rawkeep.Client) -> None:
    client.get(server.url + "/")
    response = client.get(server.url + "/json")
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"connection": 0, "request": 2}
    items = client.get(server.url + "/items?count=3").json()
    assert items == [{"id": i, "name": f"item {i}"} for i in (1, 2, 3)]
    assert len(client.get(server.url + "/items").json()) == 10


def test_echo_returns_the_request(server: LabServer, client: rawkeep.Client) -> None:
    response = client.post(
        server.url + "/echo?x=1", content=b"caf\xc3\xa9", headers={"X-Lab-Case": "Kept"}
    )
    echo = response.json()
    assert echo["method"] == "POST"
    assert echo["target"] == "/echo?x=1"
    assert echo["http_version"] == "1.1"
    assert "X-Lab-Case: Kept" in echo["headers"]
    assert "Content-Length: 5" in echo["headers"]
    assert echo["body"] == "café"
    assert echo["body_length"] == 5


@pytest.mark.parametrize("code", [200, 201, 404, 418, 500, 503, 599])
def test_status_code(server: LabServer, client: rawkeep.Client, code: int) -> None:
    response = client.get(f"{server.url}/status/{code}")
    assert response.status == code
    assert response.text == f"status {code}\n"


@pytest.mark.parametrize("code", [204, 304])
def test_status_without_a_body(server: LabServer, code: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT)
    try:
        conn.request("GET", f"/status/{code}")
        response = conn.getresponse()
        assert response.status == code
        assert response.getheader("Content-Length") is None
        assert response.read() == b""
        conn.request("GET", "/json")  # the connection is still in step
        assert json.loads(conn.getresponse().read()) == {"connection": 0, "request": 2}
    finally:
        conn.close()


def test_head_gets_the_length_and_no_body(server: LabServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT)
    try:
        conn.request("HEAD", "/bytes/1000")
        response = conn.getresponse()
        assert response.getheader("Content-Length") == "1000"
        assert response.read() == b""
        conn.request("GET", "/bytes/3")
        assert conn.getresponse().read() == b"\x00\x01\x02"
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("/items?count=x", "count must be a number, not 'x'"),
        ("/items?count=1.5", "count must be a whole number"),
        ("/slow?seconds=11", "seconds must be from 0 to 10"),
        ("/status/99", "the status must be from 200 to 599, not 99"),
        ("/status/600", "the status must be from 0 to 599"),
        ("/redirect/0", "the number of redirects must be at least 1"),
        ("/redirect?to=/json&status=300", "status must be one of"),
        ("/chunked?chunks=-1", "chunks must be from 0"),
        ("/bytes/lots", "the size must be a number"),
    ],
)
def test_bad_values_get_a_400_that_says_why(
    server: LabServer, client: rawkeep.Client, target: str, message: str
) -> None:
    response = client.get(server.url + target)
    assert response.status == 400
    assert message in response.text


def test_redirect_chain_on_one_connection(server: LabServer) -> None:
    with rawkeep.Client(timeout=WAIT, follow_redirects=True) as client:
        response = client.get(server.url + "/redirect/3")
    assert [hop.headers["location"] for hop in response.history] == [
        "/redirect/2",
        "/redirect/1",
        "/json",
    ]
    assert response.json() == {"connection": 0, "request": 4}
    assert server.accepted == 1


def test_redirect_to_a_url_with_a_status(server: LabServer, client: rawkeep.Client) -> None:
    response = client.get(server.url + "/redirect?to=http://127.0.0.1:9/x&status=307")
    assert response.status == 307
    assert response.headers["location"] == "http://127.0.0.1:9/x"


def test_bare_redirect_goes_to_json_and_loop_never_ends(
    server: LabServer, client: rawkeep.Client
) -> None:
    response = client.get(server.url + "/redirect")
    assert (response.status, response.headers["location"]) == (302, "/json")
    assert response.text == "redirecting to /json\n"
    with pytest.raises(rawkeep.TooManyRedirects):
        client.get(server.url + "/loop", follow_redirects=True)


def test_slow_waits_before_the_head(server: LabServer, client: rawkeep.Client) -> None:
    started = time.monotonic()
    assert client.get(server.url + "/slow?seconds=0.3").text == "waited 0.3 s\n"
    assert time.monotonic() - started >= 0.3
    with pytest.raises(rawkeep.ReadTimeout):
        client.get(server.url + "/slow?seconds=2", timeout=0.2)


def test_chunked_body_in_pieces(server: LabServer, client: rawkeep.Client) -> None:
    started = time.monotonic()
    response = client.get(server.url + "/chunked?chunks=4&pause=0.1")
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    assert response.text == "".join(f"chunk {i} of 4\n" for i in range(1, 5))
    assert time.monotonic() - started >= 0.3  # three pauses between four pieces


def test_chunked_bytes_on_the_wire(server: LabServer) -> None:
    with raw_connection(server) as sock:
        sock.sendall(b"GET /chunked?chunks=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_until_close(sock)
    assert data.endswith(b"\r\n\r\nd\r\nchunk 1 of 2\n\r\nd\r\nchunk 2 of 2\n\r\n0\r\n\r\n")


def test_gzip_body(server: LabServer, client: rawkeep.Client) -> None:
    assert client.get(server.url + "/gzip").json() == {
        "gzipped": True,
        "connection": 0,
        "request": 1,
    }
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT)
    try:
        conn.request("GET", "/gzip")
        response = conn.getresponse()
        assert response.getheader("Content-Encoding") == "gzip"
        assert json.loads(gzip.decompress(response.read()))["gzipped"] is True
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("coding", "decompress"), [("gzip", gzip.decompress), ("deflate", zlib.decompress)]
)
def test_compressed_paths(
    server: LabServer, coding: str, decompress: Callable[[bytes], bytes]
) -> None:
    with rawkeep.Client(timeout=WAIT) as client:
        assert client.get(server.url + f"/{coding}").json()["connection"] == 0
        with client.stream("GET", server.url + f"/{coding}/items?count=3") as response:
            raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == coding
    assert [item["id"] for item in json.loads(decompress(raw))] == [1, 2, 3]


def test_broken_gzip_does_not_decode(server: LabServer, client: rawkeep.Client) -> None:
    with pytest.raises(rawkeep.DecodingError):
        client.get(server.url + "/broken-gzip")


def test_bytes_pattern_across_pieces(server: LabServer, client: rawkeep.Client) -> None:
    size = 3 * 65536 + 100
    body = client.get(f"{server.url}/bytes/{size}").content
    assert len(body) == size
    assert body == bytes(i % 256 for i in range(size))


def test_expect_100_continue(server: LabServer) -> None:
    with raw_connection(server) as sock:
        sock.sendall(
            b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(b"body")
        data = read_until_close(sock)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert json.loads(data.split(b"\r\n\r\n", 1)[1])["body"] == "body"


# -- knobs ---------------------------------------------------------------------------------


def test_keep_alive_header_counts_down_and_the_server_closes() -> None:
    behaviour = Behaviour(keep_alive_timeout=5, keep_alive_max=2)
    with LabServer(behaviour) as server, rawkeep.Client(timeout=WAIT) as client:
        first = client.get(server.url + "/")
        second = client.get(server.url + "/")
        client.get(server.url + "/")
        stats = client.pool_stats()
    assert first.headers["keep-alive"] == "timeout=5, max=1"
    assert second.headers["keep-alive"] == "timeout=5, max=0"
    assert "connection" not in second.headers
    assert (stats.opened, stats.reused) == (2, 1)


def test_keep_alive_timeout_is_enforced() -> None:
    with LabServer(Behaviour(keep_alive_timeout=1)) as server, raw_connection(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
        started = time.monotonic()
        assert sock.recv(65536) == b""  # closed after 1 s idle, within WAIT
        assert 0.9 <= time.monotonic() - started < 3
        assert server.wait_for_idle_closes(1, timeout=WAIT)


def test_connection_close_on_every_response() -> None:
    with LabServer(Behaviour(connection_close=True)) as server:
        with rawkeep.Client(timeout=WAIT) as client:
            response = client.get(server.url + "/")
            client.get(server.url + "/")
            stats = client.pool_stats()
        assert response.headers["connection"] == "close"
        assert (stats.opened, stats.reused) == (2, 0)
        assert server.accepted == 2


def test_close_after_n_requests() -> None:
    exchanges: list[Exchange] = []
    behaviour = Behaviour(close_after=2)
    with (
        LabServer(behaviour, on_exchange=exchanges.append) as server,
        rawkeep.Client(timeout=WAIT) as client,
    ):
        responses = [client.get(server.url + "/") for _ in range(4)]
    assert [r.headers.get("connection") for r in responses] == [None, "close", None, "close"]
    # Each connection's thread tells of an exchange after answering it, so
    # connection #1's first and #0's last may be told in either order.
    told = sorted((e.request.connection, e.request.number, e.closed) for e in exchanges)
    assert told == [
        (0, 1, False),
        (0, 2, True),
        (1, 1, False),
        (1, 2, True),
    ]


def test_drop_idle_after_says_nothing() -> None:
    with LabServer(Behaviour(drop_idle_after=0.2)) as server, raw_connection(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = sock.recv(65536)
        assert b"Keep-Alive" not in head
        assert b"Connection" not in head
        assert server.wait_for_idle_closes(1, timeout=WAIT)
        assert sock.recv(65536) == b""


def test_hang_up_on_the_chosen_request() -> None:
    with LabServer(Behaviour(hang_up_on_request=2)) as server, raw_connection(server) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).endswith(b"hello from connection 0, request 1\n")
        sock.sendall(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536) == b""
        assert server.responses == 1


def test_http_1_0_answers() -> None:
    with LabServer(Behaviour(http_version="1.0", keep_alive_timeout=5)) as server:
        with rawkeep.Client(timeout=WAIT) as client:
            first = client.get(server.url + "/")
            chunked = client.get(server.url + "/chunked?chunks=2")
            stats = client.pool_stats()
        with raw_connection(server) as sock:
            sock.sendall(b"GET /status/404 HTTP/1.1\r\nHost: x\r\n\r\n")
            data = read_until_close(sock)
    assert first.http_version == "HTTP/1.0"
    assert first.text == "hello from connection 0, request 1\n"
    assert "keep-alive" not in first.headers
    # Close-delimited: HTTP/1.0 has no chunked encoding.
    assert "transfer-encoding" not in chunked.headers
    assert "content-length" not in chunked.headers
    assert chunked.text == "chunk 1 of 2\nchunk 2 of 2\n"
    assert (stats.opened, stats.reused) == (2, 0)
    assert data.startswith(b"HTTP/1.0 404 Not Found\r\n")
    assert data.endswith(b"\r\n\r\nstatus 404\n")


def test_http_1_0_request_gets_an_answer_and_a_close(server: LabServer) -> None:
    with raw_connection(server) as sock:
        sock.sendall(b"GET /json HTTP/1.0\r\n\r\n")
        data = read_until_close(sock)
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert json.loads(body) == {"connection": 0, "request": 1}


@pytest.mark.parametrize(
    "knobs",
    [
        {"keep_alive_max": 0},
        {"close_after": 0},
        {"hang_up_on_request": 0},
        {"keep_alive_timeout": 0},
        {"drop_idle_after": -1.0},
        {"delay": -0.1},
        {"redirects": -1},
        {"compress": "br"},
    ],
)
def test_behaviour_refuses_impossible_knobs(knobs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"at least|must be one of"):
        Behaviour(**knobs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("accept", "compressed"),
    [
        ("gzip", True),
        ("br, GZIP;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("deflate, identity", False),
    ],
)
def test_compress_knob_follows_accept_encoding(accept: str, compressed: bool) -> None:
    with LabServer(Behaviour(compress="gzip")) as server, raw_connection(server) as sock:
        sock.sendall(
            f"GET /json HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {accept}\r\n\r\n".encode()
        )
        head = sock.recv(65536).split(b"\r\n\r\n")[0]
    assert (b"Content-Encoding: gzip" in head) is compressed


# -- limits and stopping -------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::"])
def test_listens_on_loopback_only(host: str) -> None:
    with pytest.raises(ValueError, match="loopback only"):
        LabServer(host=host)


def test_ipv6_loopback() -> None:
    server = LabServer(host="::1")
    try:
        server.start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        with rawkeep.Client(timeout=WAIT) as client:
            assert server.url == f"http://[::1]:{server.port}"
            assert client.get(server.url + "/json").json() == {"connection": 0, "request": 1}
    finally:
        server.stop()


def test_stalled_request_is_given_up(monkeypatch: pytest.MonkeyPatch, server: LabServer) -> None:
    monkeypatch.setattr(labconnection, "REQUEST_TIMEOUT", 0.2)
    with raw_connection(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # the head never ends
        started = time.monotonic()
        assert sock.recv(65536) == b""
        assert time.monotonic() - started < 3
    assert server.responses == 0


def test_a_client_that_stops_reading_is_given_up(
    monkeypatch: pytest.MonkeyPatch, server: LabServer
) -> None:
    monkeypatch.setattr(labconnection, "WRITE_TIMEOUT", 0.3)
    with raw_connection(server) as sock:
        sock.sendall(b"GET /bytes/104857600 HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read
        deadline = time.monotonic() + WAIT
        while "lab-conn-0" in lab_threads() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "lab-conn-0" not in lab_threads()
    assert server.responses == 0


def test_too_large_a_body_closes_the_connection(
    monkeypatch: pytest.MonkeyPatch, server: LabServer
) -> None:
    monkeypatch.setattr(labconnection, "MAX_BODY", 1000)
    with raw_connection(server) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n")
        sock.sendall(b"x" * 2000)
        assert read_until_close(sock) == b""
    assert server.responses == 0


def test_stop_is_bounded_and_closes_every_connection() -> None:
    server = LabServer()
    server.start()
    with raw_connection(server) as idle, raw_connection(server) as waiting:
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
        waiting.sendall(b"GET /slow?seconds=10 HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + WAIT
        while len(lab_threads()) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < labserver.JOIN_TIMEOUT
        assert is_closed(idle)
        assert is_closed(waiting)
    assert lab_threads() == []
