"""Uploads: Expect: 100-continue, and a server answering before the body is sent."""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

import pytest
from servers.scripted import render_response

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from servers.recorder import EventRecorder
    from servers.scripted import ScriptedServer, ServerConnection

    import rawkeep

pytestmark = pytest.mark.both_clients

BODY = bytes(range(256)) * 4096  # 1 MiB
EXPECT = {"Expect": "100-continue"}


def read_head(conn: ServerConnection) -> bytes:
    """Bytes up to and including the blank line ending the request head."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv_some(timeout=5.0)
        if not chunk:
            break
        data += chunk
    return data


def drain(conn: ServerConnection, seconds: float) -> int:
    """Read and count what the client sends for `seconds` (or until EOF)."""
    received = 0
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            chunk = conn.recv_some(timeout=remaining)
        except TimeoutError:
            break
        if not chunk:
            break
        received += len(chunk)
    return received


@pytest.mark.parametrize("status", [417, 401])
def test_expect_continue_refused_body_never_sent(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
    status: int,
) -> None:
    seen: dict[str, int] = {}

    def handler(conn: ServerConnection) -> None:
        head = read_head(conn)
        seen["extra"] = len(head) - head.index(b"\r\n\r\n") - 4
        conn.send(render_response(status, b"no", [("Connection", "close")]))
        # Anything the client sends now would be the body it must not send.
        seen["after"] = drain(conn, 0.5)

    server = start_server(handler)
    response = client.post(server.url, content=BODY, headers=EXPECT)
    assert response.status == status
    assert response.content == b"no"
    assert server.wait_for_closed(0)
    assert seen == {"extra": 0, "after": 0}
    assert client.pool_stats().active == 0
    assert ("ConnectionClosed", "early_response") in events.summary()


def test_expect_continue_accepted_sends_body(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    def handler(conn: ServerConnection) -> None:
        read_head(conn)
        conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        received = 0
        while received < len(BODY):
            chunk = conn.recv_some()
            if not chunk:
                return
            received += len(chunk)
        conn.send(render_response(200, str(received).encode()))
        conn.wait_for_peer_close()

    server = start_server(handler)
    response = client.put(server.url, content=BODY, headers=EXPECT)
    assert response.status == 200
    assert response.content == str(len(BODY)).encode()


def test_expect_continue_silence_sends_body_after_a_wait(
    server: ScriptedServer, client: rawkeep.Client
) -> None:
    # The keep-alive server ignores Expect; the client waits 1 s, then sends.
    started = time.monotonic()
    response = client.put(server.url + "/x", content=b"late body", headers=EXPECT)
    elapsed = time.monotonic() - started
    assert response.status == 200
    assert server.requests[0].body == b"late body"
    assert 0.9 < elapsed < 4.0
    # Nothing early happened: the connection is reused.
    assert client.get(server.url).status == 200
    assert server.accepted == 1


def test_early_413_mid_upload_is_returned(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    big = BODY * 16  # 16 MiB: far more than the socket buffers hold

    def handler(conn: ServerConnection) -> None:
        read_head(conn)
        conn.recv_some()
        conn.send(render_response(413, b"too large", [("Connection", "close")]))
        # A polite server stops writing and drains for a while before it
        # closes, so its RST can't destroy the response in flight.
        conn.sock.shutdown(socket.SHUT_WR)
        drain(conn, 2.0)

    server = start_server(handler)
    response = client.post(server.url, content=big)
    assert response.status == 413
    assert response.content == b"too large"
    assert len(server.raw(0)) < len(big)
    assert client.pool_stats().active == 0
    assert ("ConnectionClosed", "early_response") in events.summary()


def test_file_upload_streams_with_content_length(
    server: ScriptedServer, client: rawkeep.Client, tmp_path: Path
) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes(BODY)
    with open(path, "rb") as file:
        client.put(server.url, content=file)
    (request,) = server.requests
    assert request.header("content-length") == str(len(BODY)).encode()
    assert request.header("transfer-encoding") is None
    assert request.body == BODY


def test_iterable_upload_is_chunked(server: ScriptedServer, client: rawkeep.Client) -> None:
    client.post(server.url, content=iter([b"one ", b"", b"two"]))
    (request,) = server.requests
    assert request.header("transfer-encoding") == b"chunked"
    assert request.body == b"one two"


@pytest.mark.parametrize(
    ("threshold", "body", "expects"),
    [
        (1000, b"x" * 1001, True),
        (1000, b"x" * 1000, False),
        (1000, iter([b"unknown size"]), True),
        (None, b"x" * 10_000, False),
    ],
)
def test_client_asks_for_100_continue_above_a_size(
    start_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    threshold: int | None,
    body: object,
    expects: bool,
) -> None:
    seen: list[bool] = []

    def handler(conn: ServerConnection) -> None:
        head = read_head(conn)
        seen.append(b"expect: 100-continue" in head.lower())
        status = 417 if seen[-1] else 200
        conn.send(render_response(status, b"", [("Connection", "close")]))
        conn.sock.shutdown(socket.SHUT_WR)
        drain(conn, 1.0)

    server = start_server(handler)
    client = make_client(expect_continue_above=threshold)
    response = client.post(server.url, content=body)  # type: ignore[arg-type]
    assert seen == [expects]
    assert response.status == (417 if expects else 200)
    assert client.pool_stats().active == 0


def test_expect_continue_above_must_be_a_count() -> None:
    import rawkeep

    with pytest.raises(ValueError, match="expect_continue_above"):
        rawkeep.Client(expect_continue_above=-1)
