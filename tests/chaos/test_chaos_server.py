"""Self-tests of the chaos server, with raw sockets and http.client as the client.

The storm's verdicts rest on the chaos server doing what its ledger says it
did; these tests check each fault kind in isolation (its rate set to 1),
independently of rawkeep.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from servers.chaos import (
    FaultRates,
    chaos_server,
    expected_body,
    plan_for,
    upload_body,
)
from servers.scripted import wait_for

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from servers.chaos import ChaosLedger
    from servers.scripted import ScriptedServer

    StartChaos = Callable[..., tuple[ScriptedServer, ChaosLedger]]

#: Every fault off: a plain, correct keep-alive server.
QUIET = FaultRates(
    idle_close=0.0,
    close_after_response=0.0,
    drop_request=0.0,
    reset_request=0.0,
    connection_close=0.0,
    slow=0.0,
    reset_mid_body=0.0,
    stall=0.0,
    stall_mid_body=0.0,
    chunked=0.0,
)


def request_bytes(token: str, method: str = "GET", body: bytes = b"") -> bytes:
    head = f"{method} /{token} HTTP/1.1\r\nHost: chaos\r\nX-Token: {token}\r\n"
    if method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def read_until_eof(sock: socket.socket, limit: float = 2.0) -> tuple[bytes, str]:
    """Everything until EOF ("eof"), a reset ("reset") or `limit` s ("timeout")."""
    sock.settimeout(limit)
    data = b""
    for _ in range(10_000):
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data, "reset"
        except TimeoutError:
            return data, "timeout"
        if not chunk:
            return data, "eof"
        data += chunk
    raise AssertionError("unbounded response")


@pytest.fixture
def start_chaos() -> Iterator[StartChaos]:
    """``start_chaos(**rates)``: a quiet chaos server with `rates` changed."""
    with contextlib.ExitStack() as stack:

        def start(**rates: Any) -> tuple[ScriptedServer, ChaosLedger]:
            server, ledger = chaos_server(1, replace(QUIET, **rates))
            return stack.enter_context(server), ledger

        yield start


def connect(server: ScriptedServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=2.0)


def test_quiet_server_is_a_correct_keep_alive_server(start_chaos: StartChaos) -> None:
    server, ledger = start_chaos()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
    try:
        for token in ("a", "b", "c"):
            conn.request("GET", f"/{token}", headers={"X-Token": token})
            response = conn.getresponse()
            assert response.read() == expected_body(token)
            assert response.getheader("connection") is None
        conn.request("POST", "/p", body=upload_body("p"), headers={"X-Token": "p"})
        assert conn.getresponse().read() == expected_body("p")
    finally:
        conn.close()
    assert server.accepted == 1
    # The server counts an answer once it is sent: the client may be faster.
    assert wait_for(lambda: sum(ledger.answered.values()) == 4)
    assert dict(ledger.received) == dict(ledger.answered) == {"a": 1, "b": 1, "c": 1, "p": 1}
    assert not ledger.faults
    assert ledger.corrupt == []


def test_connection_close(start_chaos: StartChaos) -> None:
    server, ledger = start_chaos(connection_close=1.0)
    with connect(server) as sock:
        sock.sendall(request_bytes("t"))
        data, end = read_until_eof(sock)
    assert end == "eof"
    assert b"\r\nConnection: close\r\n" in data
    assert data.endswith(expected_body("t"))
    assert ledger.faults == {"connection_close": 1}


def test_close_after_response_closes_without_saying_so(start_chaos: StartChaos) -> None:
    server, ledger = start_chaos(close_after_response=1.0)
    with connect(server) as sock:
        sock.sendall(request_bytes("t"))
        data, end = read_until_eof(sock)
    assert end == "eof"
    assert b"Connection:" not in data
    assert data.endswith(expected_body("t"))
    assert ledger.faults == {"close_after_response": 1}


def test_idle_close_waits_then_closes(start_chaos: StartChaos) -> None:
    server, ledger = start_chaos(idle_close=1.0, idle_wait=(0.2, 0.2))
    with connect(server) as sock:
        sock.sendall(request_bytes("t1"))
        sock.settimeout(2.0)
        first = sock.recv(65536)
        # Within the idle wait, the next request is still served...
        sock.sendall(request_bytes("t2"))
        started = time.monotonic()
        data, end = read_until_eof(sock)
        waited = time.monotonic() - started
    assert first.endswith(expected_body("t1"))
    assert data.endswith(expected_body("t2"))
    # ...and after it, the idle connection is closed.
    assert end == "eof"
    assert 0.15 <= waited < 1.5
    assert ledger.faults == {"idle_close": 1}


@pytest.mark.parametrize(("kind", "ending"), [("drop_request", "eof"), ("reset_request", "reset")])
def test_drop_and_reset_hit_only_reused_connections(
    start_chaos: StartChaos, kind: str, ending: str
) -> None:
    server, ledger = start_chaos(**{kind: 1.0})
    with connect(server) as sock:
        sock.sendall(request_bytes("first"))
        sock.settimeout(2.0)
        assert sock.recv(65536).endswith(expected_body("first"))
        sock.sendall(request_bytes("second"))
        data, end = read_until_eof(sock)
    assert (data, end) == (b"", ending)
    assert ledger.received == {"first": 1, "second": 1}
    assert ledger.answered == {"first": 1}
    assert ledger.faults_by_token == {"second": [kind]}


def test_slow_answers_late(start_chaos: StartChaos) -> None:
    server, ledger = start_chaos(slow=1.0, slow_delay=(0.3, 0.3))
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(request_bytes("t"))
        sock.settimeout(2.0)
        data = sock.recv(65536)
        assert time.monotonic() - started >= 0.25
    assert data.endswith(expected_body("t"))
    assert ledger.faults == {"slow": 1}


def test_reset_mid_body_hits_posts_only(start_chaos: StartChaos) -> None:
    server, ledger = start_chaos(reset_mid_body=1.0)
    with connect(server) as sock:
        sock.sendall(request_bytes("g"))
        sock.settimeout(2.0)
        assert sock.recv(65536).endswith(expected_body("g"))
        sock.sendall(request_bytes("p", "POST", upload_body("p")))
        data, end = read_until_eof(sock)
    assert end == "reset"
    head, _, partial = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert 0 < len(partial) < len(expected_body("p"))
    assert ledger.faults_by_token == {"p": ["reset_mid_body"]}


@pytest.mark.parametrize("kind", ["stall", "stall_mid_body"])
def test_stalls_hit_posts_only_and_end_when_the_client_leaves(
    start_chaos: StartChaos, kind: str
) -> None:
    server, ledger = start_chaos(**{kind: 1.0})
    with connect(server) as sock:
        sock.sendall(request_bytes("g"))
        sock.settimeout(2.0)
        assert sock.recv(65536).endswith(expected_body("g"))
        sock.sendall(request_bytes("p", "POST", upload_body("p")))
        data, end = read_until_eof(sock, limit=0.3)
    assert end == "timeout"
    assert (data == b"") == (kind == "stall")
    assert ledger.faults_by_token == {"p": [kind]}
    # The client left: the stalled handler notices and ends at once.
    assert server.wait_for_closed(0, timeout=2.0)


def test_corrupt_upload_is_recorded(start_chaos: StartChaos) -> None:
    server, ledger = start_chaos()
    with connect(server) as sock:
        sock.sendall(request_bytes("p", "POST", b"not the upload"))
        sock.settimeout(2.0)
        assert sock.recv(65536).endswith(expected_body("p"))
    assert len(ledger.corrupt) == 1


def test_plans_depend_on_seed_token_and_attempt_only() -> None:
    rates = FaultRates()
    plans = [plan_for(rates, 5, f"t{i}", "POST", 0, reused=True) for i in range(300)]
    assert plans == [plan_for(rates, 5, f"t{i}", "POST", 0, reused=True) for i in range(300)]
    assert plans != [plan_for(rates, 6, f"t{i}", "POST", 0, reused=True) for i in range(300)]
    # Idempotent requests never get a visible fault, nor a drop on a new connection.
    for i in range(2000):
        plan = plan_for(rates, 5, f"t{i}", "GET", 0, reused=False)
        assert plan.before in (None, "slow")
    assert {len(expected_body(f"t{i}")) for i in range(50)} != {len(expected_body("t0"))}
