"""Fuzzing bytes that belong to no response, in front of one on a reused connection.

A server that got an earlier response wrong (a body after a HEAD response,
a Content-Length too small) leaves bytes on the connection that arrive with,
or just before, the next response. Whatever those bytes are, as long as they
can't begin a status line: an idempotent request is sent again on a fresh
connection and succeeds (with one ``RequestRetried`` saying "out of step"),
a POST raises ``RemoteProtocolError`` and is never sent twice, and nothing
leaks.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from servers.recorder import EventRecorder
from servers.scripted import ScriptedServer, render_response

import rawkeep

from .harness import TIMEOUT, fuzz_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

    from servers.scripted import ServerConnection


class StrayBytes:
    """What the server puts in front of every response after a
    connection's first (the first is always clean)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data = b""

    def set(self, data: bytes) -> None:
        with self._lock:
            self._data = data

    def get(self) -> bytes:
        with self._lock:
            return self._data


@pytest.fixture(scope="module")
def stray() -> StrayBytes:
    return StrayBytes()


@pytest.fixture(scope="module")
def stray_server(stray: StrayBytes) -> Iterator[ScriptedServer]:
    def handle(conn: ServerConnection) -> None:
        served = 0
        while conn.wait_readable(5.0) and (request := conn.read_request()) is not None:
            before = stray.get() if served else b""
            served += 1
            conn.respond(before + render_response(200, request.target.encode(), []))

    with ScriptedServer(handle) as server:
        yield server


def _can_begin_a_status_line(data: bytes) -> bool:
    return data.startswith(b"HTTP/") or b"HTTP/".startswith(data)


@fuzz_settings(60)
@given(data=st.binary(min_size=1, max_size=300), method=st.sampled_from(["GET", "POST"]))
def test_stray_bytes_retry_an_idempotent_request_and_fail_any_other(
    stray_server: ScriptedServer, stray: StrayBytes, data: bytes, method: str
) -> None:
    assume(not _can_begin_a_status_line(data))
    stray.set(data)
    events = EventRecorder()
    with rawkeep.Client(timeout=TIMEOUT, on_event=events) as client:
        first = client.get(stray_server.url + "/first")
        assert first.content == b"/first"
        if method == "GET":
            second = client.get(stray_server.url + "/second")
            assert second.content == b"/second"
            assert second.connection_id != first.connection_id
            (retried,) = events.of_type("RequestRetried")
            assert "out of step" in retried.error
        else:
            with pytest.raises(rawkeep.RemoteProtocolError, match="out of step"):
                client.post(stray_server.url + "/second", content=b"once")
            assert events.count("RequestRetried") == 0
        stats = client.pool_stats()
        assert stats.active == 0
        assert stats.opened - stats.closed == stats.idle
    stats = client.pool_stats()
    assert (stats.active, stats.idle, stats.opened) == (0, 0, stats.closed)
