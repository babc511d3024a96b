"""Responses a hostile or broken server sends, and what rawkeep makes of them.

- The status line's version is reported as received, or refused when it is
  not HTTP/1.x; never reported as a version the server did not send.
- Every message speaks of the response (h11's roles and states stay inside).
- Interim (1xx) responses are bounded in number, in bytes and in time: a drip
  of them, or of head bytes, can't hold a request past its read timeout.
- Bytes that can't begin a status line, on a reused connection, prove it was
  out of step before the request went out: a retryable request goes again on
  a fresh connection, any other raises; after a HEAD response, whose body a
  broken server may still send, only retryable requests reuse the connection.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from servers.scripted import render_response

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.recorder import EventRecorder
    from servers.scripted import ScriptedServer, ServerConnection

pytestmark = pytest.mark.both_clients

#: Words of h11's that must never reach a user's error message.
H11_WORDS = ("role=", "state=", "request line", "bytearray", "ConnectionClosed")


def _answer(raw: bytes) -> Callable[[ServerConnection], None]:
    """A script answering one request with `raw`, then closing."""

    def script(conn: ServerConnection) -> None:
        if conn.read_request() is not None:
            conn.respond(raw)
            conn.sleep(0.2)

    return script


def _assert_pool_clean(client: rawkeep.Client) -> None:
    stats = client.pool_stats()
    assert stats.active == 0
    assert stats.opened - stats.closed == stats.idle


# -- the version in the status line ------------------------------------------------


@pytest.mark.parametrize("version", ["2.0", "0.9", "3.0", "2.1"])
def test_a_status_line_not_http_1_x_is_refused(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client, version: str
) -> None:
    server = start_server(
        _answer(f"HTTP/{version} 200 OK\r\nContent-Length: 2\r\n\r\nok".encode())
    )
    with pytest.raises(rawkeep.RemoteProtocolError, match=f"HTTP/{version}"):
        client.get(server.url)
    _assert_pool_clean(client)


def test_a_higher_minor_version_is_read_as_1_1_and_reported_as_sent(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    def script(conn: ServerConnection) -> None:
        while conn.read_request() is not None:
            conn.respond(b"HTTP/1.9 200 OK\r\nContent-Length: 2\r\n\r\nok")

    server = start_server(script)
    first = client.get(server.url)
    second = client.get(server.url)
    assert (first.http_version, second.http_version) == ("HTTP/1.9", "HTTP/1.9")
    assert second.reused  # persistent, as HTTP/1.1 is (RFC 9110 section 6.2)
    assert server.accepted == 1


def test_http_1_0_is_reported_as_http_1_0(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_server(_answer(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    assert client.get(server.url).http_version == "HTTP/1.0"


# -- messages that speak of the response -------------------------------------------


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"garbage\r\n\r\n", "does not begin with a status line"),
        (b"HTTP/1.1 abc OK\r\n\r\n", "malformed response head"),
        (b"HTTP/1.1 100 Continue\r\n\r\n", "after 1 interim (1xx) response"),
        (b"HTTP/1.1 200 OK\r\nContent-", "before the response head was complete"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "before the response body was complete",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "malformed response body",
        ),
    ],
)
def test_messages_say_what_happened_to_the_response(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    raw: bytes,
    words: str,
) -> None:
    def script(conn: ServerConnection) -> None:
        if conn.read_request() is not None:
            conn.respond(raw)
        conn.close()

    server = start_server(script)
    with pytest.raises(rawkeep.RemoteProtocolError) as info:
        client.get(server.url)
    message = str(info.value)
    assert words in message
    for h11_word in H11_WORDS:
        assert h11_word not in message
    _assert_pool_clean(client)


# -- interim responses --------------------------------------------------------------


def test_a_drip_of_102_processing_cannot_outlast_the_read_timeout(
    start_server: Callable[..., ScriptedServer], make_client: Callable[..., rawkeep.Client]
) -> None:
    def script(conn: ServerConnection) -> None:
        if conn.read_request() is None:
            return
        for _ in range(100):  # 10 s of "still working" at most
            conn.send(b"HTTP/1.1 102 Processing\r\n\r\n")
            if conn.sleep(0.1):
                return

    server = start_server(script)
    client = make_client(timeout=rawkeep.Timeout(connect=5.0, read=0.5, write=5.0, pool=5.0))
    started = time.monotonic()
    with pytest.raises(rawkeep.ReadTimeout, match="interim"):
        client.get(server.url)
    assert time.monotonic() - started < 2.0
    _assert_pool_clean(client)


def test_a_head_sent_a_byte_at_a_time_cannot_outlast_the_read_timeout(
    start_server: Callable[..., ScriptedServer], make_client: Callable[..., rawkeep.Client]
) -> None:
    def script(conn: ServerConnection) -> None:
        if conn.read_request() is None:
            return
        conn.send(b"HTTP/1.1 200 OK\r\n")
        for _ in range(200):
            conn.send(b"X")
            if conn.sleep(0.05):
                return

    server = start_server(script)
    client = make_client(timeout=rawkeep.Timeout(connect=5.0, read=0.5, write=5.0, pool=5.0))
    started = time.monotonic()
    with pytest.raises(rawkeep.ReadTimeout, match="did not arrive whole"):
        client.get(server.url)
    assert time.monotonic() - started < 2.0


def test_interim_heads_count_against_max_header_size_as_they_arrive(
    start_server: Callable[..., ScriptedServer], make_client: Callable[..., rawkeep.Client]
) -> None:
    """A flood of interim heads is refused while it arrives, not after it:
    here the final head never comes, and the error must not wait for it."""
    big_interim = b"HTTP/1.1 103 Early Hints\r\nLink: " + b"x" * 20_000 + b"\r\n\r\n"

    def script(conn: ServerConnection) -> None:
        if conn.read_request() is None:
            return
        for _ in range(5):
            conn.send(big_interim)
        conn.sleep(10)

    server = start_server(script)
    client = make_client(max_header_size=64 * 1024, timeout=5.0)
    started = time.monotonic()
    with pytest.raises(rawkeep.RemoteProtocolError, match="max_header_size"):
        client.get(server.url)
    assert time.monotonic() - started < 2.0


def test_a_flood_of_100_continue_is_refused_by_count(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    def script(conn: ServerConnection) -> None:
        if conn.read_request() is None:
            return
        for _ in range(10_000):
            try:
                conn.send(b"HTTP/1.1 100 Continue\r\n\r\n", timeout=1.0)
            except OSError:
                return  # the client gave up: good
        conn.sleep(10)

    server = start_server(script)
    with pytest.raises(rawkeep.RemoteProtocolError, match="more than 32 interim"):
        client.get(server.url)


def test_a_few_interim_responses_are_fine(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    interim = (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 102 Processing\r\n\r\n" * 3
    )

    def script(conn: ServerConnection) -> None:
        while conn.read_request() is not None:
            conn.respond(interim + render_response(200, b"done", []))

    server = start_server(script)
    assert client.get(server.url).content == b"done"
    assert client.get(server.url).reused


# -- bytes that belong to no response -------------------------------------------------


def _late_body_after_head(conn: ServerConnection) -> None:
    """Connection 0 answers HEAD with a head announcing 5 bytes, then sends
    those 5 bytes only with the answer to the next request: they arrive
    after the client's probe, in front of the next response."""
    stray = b""
    while (request := conn.read_request()) is not None:
        body = request.target.encode()
        if request.method == "HEAD":
            conn.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
            stray = b"hello"
            continue
        conn.respond(stray + render_response(200, body, []))
        stray = b""


def test_stray_bytes_on_a_reused_connection_retry_a_get(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client, events: EventRecorder
) -> None:
    server = start_server(_late_body_after_head)
    assert client.head(server.url + "/h").status == 200
    response = client.get(server.url + "/g")
    assert response.content == b"/g"
    assert response.connection_id == 1
    retried = events.of_type("RequestRetried")
    assert len(retried) == 1
    assert "out of step" in retried[0].error
    assert "b'hello" in retried[0].error
    assert (retried[0].connection_id, retried[0].method) == (0, "GET")
    _assert_pool_clean(client)


def test_stray_bytes_on_a_reused_connection_raise_for_a_post(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client, events: EventRecorder
) -> None:
    """A response whose Content-Length was 2 bytes short sends them late."""

    def script(conn: ServerConnection) -> None:
        stray = b""
        while conn.read_request() is not None:
            conn.respond(stray + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            stray = b"!!"

    server = start_server(script)
    assert client.get(server.url).content == b"ok"
    with pytest.raises(rawkeep.RemoteProtocolError) as info:
        client.post(server.url, content=b"data")
    assert "out of step" in str(info.value)
    assert "not retried: POST is not idempotent" in str(info.value)
    assert events.count("RequestRetried") == 0
    _assert_pool_clean(client)


def test_a_connection_that_answered_head_is_not_reused_for_a_post(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client, events: EventRecorder
) -> None:
    server = start_server(_late_body_after_head)
    assert client.head(server.url + "/h").status == 200
    response = client.post(server.url + "/p", content=b"x")
    assert response.content == b"/p"
    assert (response.connection_id, response.reused) == (1, False)
    assert events.count("RequestRetried") == 0
    # The HEAD connection waits idle for a request that can be retried.
    assert client.pool_stats().idle == 2
    assert client.get(server.url + "/g").content == b"/g"


def test_after_head_a_get_reuses_the_connection(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    """A correct server after HEAD: the connection is simply reused."""

    def script(conn: ServerConnection) -> None:
        while (request := conn.read_request()) is not None:
            conn.respond(render_response(200, b"abc", [], head=request.method == "HEAD"))

    server = start_server(script)
    client.head(server.url)
    assert client.get(server.url).reused
    assert server.accepted == 1


def test_stray_bytes_on_a_fresh_connection_are_a_malformed_response(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client, events: EventRecorder
) -> None:
    server = start_server(_answer(b"hello" + render_response(200, b"ok", [])))
    with pytest.raises(rawkeep.RemoteProtocolError, match="does not begin with a status line"):
        client.get(server.url)
    assert events.count("RequestRetried") == 0
