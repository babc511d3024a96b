"""What a response tells besides its status, headers and bytes, on both clients.

- ``trailers``: a chunked body's trailer fields, complete once the body is
  read (whole, streamed, or drained by ``close``); empty otherwise.
- ``interim``: the 1xx responses before the final one (103, 100).
- ``request``: the request as sent; each redirect hop has its own.
- ``elapsed``: from sending the request to the final head, body excluded.
- ``iter_text`` / ``iter_lines``: decoded as the body arrives.
- one INFO line per response on the ``rawkeep`` logger, naming its
  connection and whether it was reused.
"""

from __future__ import annotations

import datetime
import logging
import pickle
from typing import TYPE_CHECKING

import pytest
from servers.scripted import render_response

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.scripted import ScriptedServer, ServerConnection

pytestmark = pytest.mark.both_clients

CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum, X-Count\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
)
CHUNKS = b"5\r\nhello\r\n6\r\n world\r\n"
TRAILER = b"0\r\nX-Checksum: abc123\r\nX-Count: 2\r\nX-Count: 3\r\n\r\n"


def _chunked_with_trailers(conn: ServerConnection) -> None:
    """Every request: a chunked body, then two trailer fields (one twice)."""
    while conn.read_request() is not None:
        conn.send(CHUNKED_HEAD)
        conn.send(CHUNKS)
        conn.sleep(0.05)  # the trailer section in a read of its own
        conn.send(TRAILER)


def _check_trailers(trailers: rawkeep.Headers) -> None:
    assert isinstance(trailers, rawkeep.Headers)
    assert trailers["x-checksum"] == "abc123"
    assert trailers.get_all("X-Count") == ["2", "3"]
    assert [name for name, _ in trailers.items()] == ["X-Checksum", "X-Count", "X-Count"]


# -- trailers ---------------------------------------------------------------------------


def test_trailers_of_a_whole_response(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_server(_chunked_with_trailers)
    response = client.get(server.url)
    assert response.content == b"hello world"
    _check_trailers(response.trailers)
    assert "x-checksum" not in response.headers
    again = client.get(server.url)  # the connection was reused: trailers read whole
    assert again.reused
    _check_trailers(again.trailers)


def test_trailers_of_a_streamed_response_come_at_its_end(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_server(_chunked_with_trailers)
    with client.stream("GET", server.url) as response:
        assert list(response.trailers.items()) == []  # nothing read yet
        pieces = list(response.iter_bytes())
        assert b"".join(pieces) == b"hello world"
        _check_trailers(response.trailers)


def test_trailers_arrive_when_close_drains_the_body(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_server(_chunked_with_trailers)
    with client.stream("GET", server.url) as response:
        pass  # closed unread: the small rest is drained
    _check_trailers(response.trailers)


def test_no_trailers_is_an_empty_headers(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    def script(conn: ServerConnection) -> None:
        while (request := conn.read_request()) is not None:
            chunked = request.path == "/chunked"
            conn.respond(render_response(200, b"plain", [], chunked=chunked))

    server = start_server(script)
    for path in ("/", "/chunked"):
        response = client.get(server.url + path)
        assert response.content == b"plain"
        assert response.trailers.items() == []


# -- interim responses ----------------------------------------------------------------


def test_early_hints_then_the_response(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    def script(conn: ServerConnection) -> None:
        while conn.read_request() is not None:
            conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            conn.sleep(0.05)
            conn.send(b"HTTP/1.1 102 Processing\r\n\r\n")
            conn.respond(render_response(200, b"page", []))

    server = start_server(script)
    response = client.get(server.url)
    assert response.status == 200
    assert response.content == b"page"
    assert [(i.status, i.reason) for i in response.interim] == [
        (103, "Early Hints"),
        (102, "Processing"),
    ]
    hints = response.interim[0]
    assert isinstance(hints, rawkeep.InterimResponse)
    assert hints.headers["link"] == "</style.css>; rel=preload"
    assert response.interim[1].headers.items() == []
    again = client.get(server.url)
    assert again.reused
    assert [i.status for i in again.interim] == [103, 102]  # its own, not the first's


def test_100_continue_is_an_interim_response(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    def script(conn: ServerConnection) -> None:
        while conn.wait_readable(5.0):  # the head, alone: the client waits for us
            conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            if conn.read_request() is None:
                return
            conn.respond(render_response(201, b"stored", []))

    server = start_server(script)
    response = client.put(
        server.url, content=b"x" * 1000, headers={"Expect": "100-continue"}, timeout=5.0
    )
    assert response.status == 201
    assert [(i.status, i.reason) for i in response.interim] == [(100, "Continue")]


# -- the request, and the time ------------------------------------------------------------


def test_the_request_as_sent(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    def script(conn: ServerConnection) -> None:
        while (request := conn.read_request()) is not None:
            if request.path == "/old":
                conn.respond(render_response(302, b"", [("Location", "/new")]))
            else:
                conn.respond(render_response(200, b"ok", []))

    server = start_server(script)
    response = client.post(server.url + "/new", content=b"12345", headers={"X-Trace": "t1"})
    sent = response.request
    assert isinstance(sent, rawkeep.SentRequest)
    assert (sent.method, sent.url) == ("POST", server.url + "/new")
    assert sent.headers["x-trace"] == "t1"
    assert sent.headers["content-length"] == "5"
    assert sent.headers["host"] == server.url.split("/")[2]
    assert response.request is sent  # built once

    followed = client.get(server.url + "/old", follow_redirects=True)
    assert [r.request.url for r in followed.history] == [server.url + "/old"]
    assert followed.request.url == server.url + "/new"
    assert followed.request.method == "GET"


def test_elapsed_counts_until_the_head_not_the_body(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    def script(conn: ServerConnection) -> None:
        while conn.read_request() is not None:
            conn.sleep(0.3)  # the server thinks
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
            conn.sleep(0.6)  # then the body is slow
            conn.send(b"body")

    server = start_server(script)
    with client.stream("GET", server.url) as response:
        elapsed = response.elapsed
        assert response.read() == b"body"
    assert isinstance(elapsed, datetime.timedelta)
    assert response.elapsed == elapsed  # fixed once the head is in
    assert 0.3 <= elapsed.total_seconds() < 0.9


# -- text and lines ---------------------------------------------------------------------


def _pieces_script(pieces: list[bytes], content_type: str) -> Callable[[ServerConnection], None]:
    """Every request: a chunked body of ``pieces``, one chunk (and one
    read, most likely) each."""

    def script(conn: ServerConnection) -> None:
        while conn.read_request() is not None:
            conn.send(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                + f"Content-Type: {content_type}\r\n\r\n".encode()
            )
            for piece in pieces:
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                conn.sleep(0.02)
            conn.send(b"0\r\n\r\n")

    return script


#: "café\r\nnaïve\r\n", é and both \r\n split between two pieces, then an
#: empty line ended by a bare \r, "x", an empty line, and a last line
#: without an end.
LINE_PIECES = [b"caf\xc3", b"\xa9\r", b"\nna\xc3\xafve\r", b"\n\rx\n", b"\nlast"]
LINES = ["café", "naïve", "", "x", "", "last"]


@pytest.mark.parametrize("whole", [False, True], ids=["streamed", "read"])
def test_iter_lines_and_iter_text(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client, whole: bool
) -> None:
    server = start_server(_pieces_script(LINE_PIECES, "text/plain; charset=utf-8"))
    text = b"".join(LINE_PIECES).decode()
    if whole:
        response = client.get(server.url)
        assert list(response.iter_lines()) == LINES
        assert "".join(response.iter_text()) == text
        return
    with client.stream("GET", server.url) as response:
        assert list(response.iter_lines()) == LINES
    with client.stream("GET", server.url) as response:
        pieces = list(response.iter_text())
    assert "".join(pieces) == text
    assert "\ufffd" not in "".join(pieces)


def test_iter_text_uses_the_charset_of_the_response(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    body = "Grüße, €".encode("cp1252")
    server = start_server(_pieces_script([body[:3], body[3:]], "text/plain; charset=cp1252"))
    with client.stream("GET", server.url) as response:
        assert "".join(response.iter_text()) == "Grüße, €"


def test_leaving_iter_lines_early_gives_the_connection_back(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_server(_pieces_script([b"one\n", b"two\n", b"three\n"], "text/plain"))
    with client.stream("GET", server.url) as response:
        for line in response.iter_lines():
            assert line == "one"
            break
        assert response.is_closed  # drained (small rest) when the loop was left
    assert client.get(server.url).reused


# -- raise_for_status -----------------------------------------------------------------


def test_http_status_error_carries_the_response_and_its_request(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    def script(conn: ServerConnection) -> None:
        while conn.read_request() is not None:
            conn.respond(render_response(503, b"busy", []))

    server = start_server(script)
    response = client.get(server.url)
    with pytest.raises(rawkeep.HTTPStatusError) as caught:
        response.raise_for_status()
    assert caught.value.response.status == 503
    assert caught.value.response.request.url == server.url + "/"


# -- the INFO line ------------------------------------------------------------------------


def test_one_info_line_per_response(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def script(conn: ServerConnection) -> None:
        while (request := conn.read_request()) is not None:
            status = 404 if request.path == "/missing" else 200
            conn.respond(render_response(status, b"", []))

    server = start_server(script)
    with caplog.at_level(logging.INFO, logger="rawkeep"):
        client.get(server.url)
        client.head(server.url + "/missing")
    lines = [
        r.getMessage() for r in caplog.records if r.name == "rawkeep" and r.levelno == logging.INFO
    ]
    assert lines == [
        f'HTTP Request: GET {server.url}/ "HTTP/1.1 200 OK" (connection 0, new)',
        f'HTTP Request: HEAD {server.url}/missing "HTTP/1.1 404 Not Found" (connection 0, reused)',
    ]
    # The events are still DEBUG lines, off at INFO.
    assert not [r for r in caplog.records if r.levelno == logging.DEBUG]


def test_no_info_line_when_info_is_off(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def script(conn: ServerConnection) -> None:
        while conn.read_request() is not None:
            conn.respond(render_response(200, b"", []))

    server = start_server(script)
    with caplog.at_level(logging.WARNING, logger="rawkeep"):
        client.get(server.url)
    assert [r for r in caplog.records if r.name == "rawkeep"] == []
    with caplog.at_level(logging.DEBUG, logger="rawkeep"):
        client.get(server.url)
    messages = [r.getMessage() for r in caplog.records if r.name == "rawkeep"]
    assert any(m.startswith("ConnectionReused #0") for m in messages)
    assert any(m.startswith("HTTP Request: GET") for m in messages)


# -- pickling -------------------------------------------------------------------------------


def test_a_pickled_response_keeps_its_record(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    def script(conn: ServerConnection) -> None:
        while conn.read_request() is not None:
            conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
            conn.send(CHUNKED_HEAD + CHUNKS + TRAILER)

    server = start_server(script)
    response = client.get(server.url, headers={"X-Trace": "t2"})
    received = getattr(response, "wrapped", response)  # the real Response
    again = pickle.loads(pickle.dumps(received))
    assert again.content == b"hello world"
    assert again.request == received.request
    assert again.request.headers["x-trace"] == "t2"
    assert again.elapsed == received.elapsed > datetime.timedelta(0)
    assert again.interim == received.interim
    assert again.interim[0].headers["link"] == "</a.css>"
    _check_trailers(again.trailers)


def test_a_built_response_has_no_request() -> None:
    built = rawkeep.Response(
        status=200, reason="OK", http_version="HTTP/1.1", headers=rawkeep.Headers(), url="u"
    )
    with pytest.raises(RuntimeError, match="no request"):
        built.request  # noqa: B018
    assert built.elapsed == datetime.timedelta(0)
    assert (built.interim, built.trailers.items()) == ([], [])
