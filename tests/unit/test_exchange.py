"""The exchange, driven with plain bytes: no socket.

Each test plays the shell: it takes the request's bytes, feeds response
bytes as a socket would deliver them, reads body pieces, and checks the
verdict the exchange gives at the end.
"""

from __future__ import annotations

import h11
import pytest

import rawkeep
from rawkeep._exchange import MAX_INTERIM_RESPONSES, Exchange, Head
from rawkeep._framing import NEED_DATA
from rawkeep._keepalive import Lifetime

GET = h11.Request(method="GET", target="/", headers=[("Host", "a.test")])
HEAD = h11.Request(method="HEAD", target="/", headers=[("Host", "a.test")])
POST = h11.Request(
    method="POST", target="/", headers=[("Host", "a.test"), ("Content-Length", "4")]
)


def exchange(
    request: h11.Request = GET,
    *,
    reused: bool = False,
    ends_with_head: bool = True,
    asks_to_close: bool = False,
    max_head_size: int = 64 * 1024,
) -> Exchange:
    return Exchange(
        max_head_size,
        reused,
        Lifetime(0.0),
        request,
        ends_with_head=ends_with_head,
        asks_to_close=asks_to_close,
    )


def head_of(ex: Exchange, *chunks: bytes) -> Head:
    """Feed `chunks` one by one until the head is complete."""
    result: object = NEED_DATA
    for chunk in chunks:
        result = ex.feed_head(chunk)
        if result is not NEED_DATA:
            break
    assert isinstance(result, Head)
    return result


def body_of(ex: Exchange, *reads: bytes) -> list[bytes]:
    """Every piece of the body, feeding `reads` whenever it needs data."""
    assert ex.body is not None
    pieces: list[bytes] = []
    feed = iter(reads)
    piece = ex.body.next_piece()
    for _ in range(100):
        while piece is NEED_DATA:
            piece = ex.body.feed(next(feed))
        if piece is None:
            return pieces
        assert isinstance(piece, bytes | bytearray)
        pieces.append(bytes(piece))
        piece = ex.body.next_piece()
    raise AssertionError("the body never ended")


def test_request_head_bytes() -> None:
    ex = exchange()
    assert ex.request_head.startswith(b"GET / HTTP/1.1\r\n")
    assert b"host: a.test\r\n" in ex.request_head.lower()


def test_a_connections_first_request_asks_the_server_to_say_its_limits() -> None:
    # Apache announces "Keep-Alive: timeout, max" only to a request that
    # carries the token: the first request of a connection says it, last.
    assert exchange(reused=False).request_head.endswith(b"\r\nConnection: keep-alive\r\n\r\n")
    # The requests that reuse the connection don't repeat it.
    assert b"connection" not in exchange(reused=True).request_head.lower()
    # A caller's own Connection header stands alone, whatever it says.
    own = h11.Request(
        method="GET", target="/", headers=[("Host", "a.test"), ("Connection", "close")]
    )
    head = exchange(own, reused=False, asks_to_close=True).request_head
    assert head.lower().count(b"connection:") == 1
    assert head.endswith(b"\r\nConnection: close\r\n\r\n")


def test_a_small_response_with_its_body_at_hand() -> None:
    ex = exchange()
    head = head_of(ex, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert (head.status, head.reason, head.http_version) == (200, "OK", "HTTP/1.1")
    assert ex.response_started
    assert ex.body is not None
    assert ex.body.at_hand == b"ok"
    assert ex.finish() is None


def test_a_head_in_pieces_and_a_counted_body_in_reads() -> None:
    ex = exchange()
    assert ex.feed_head(b"HTTP/1.1 200 OK\r\nCont") is NEED_DATA
    head_of(ex, b"ent-Length: 10\r\n\r\nabc")
    assert body_of(ex, b"defg", b"hij") == [b"abc", b"defg", b"hij"]
    assert ex.finish() is None


def test_a_counted_body_cut_short_raises() -> None:
    ex = exchange()
    head_of(ex, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(rawkeep.RemoteProtocolError, match="7 bytes of the body still to come"):
        body_of(ex, b"")


def test_bytes_past_a_counted_body_forbid_reuse() -> None:
    ex = exchange()
    head_of(ex, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
    assert body_of(ex) == [b"ok"]
    assert ex.finish() == "error"


def test_a_chunked_body_through_h11() -> None:
    ex = exchange()
    head_of(ex, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    assert body_of(ex, b"2\r\nde\r\n0\r\n\r\n") == [b"abc", b"de"]
    assert ex.finish() is None


def test_a_body_until_close_ends_the_connection() -> None:
    ex = exchange()
    head_of(ex, b"HTTP/1.1 200 OK\r\n\r\nabc")
    assert body_of(ex, b"def", b"") == [b"abc", b"def"]
    assert ex.finish() == "connection_close"


@pytest.mark.parametrize(
    ("raw", "verdict"),
    [
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", "http_1_0"),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", "http_1_0"),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", "connection_close"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
            "error",
        ),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", None),
    ],
)
def test_verdicts_from_the_response(raw: bytes, verdict: str | None) -> None:
    ex = exchange()
    head_of(ex, raw)
    body_of(ex)
    assert ex.finish() == verdict


def test_a_request_that_asked_to_close() -> None:
    ex = exchange(asks_to_close=True)
    head_of(ex, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    body_of(ex)
    assert ex.finish() == "connection_close"


def test_an_answer_before_the_request_body_was_sent() -> None:
    ex = exchange(POST, ends_with_head=False)
    assert ex.body_bytes(b"da") == [b"da"]  # two of the four bytes, then the answer
    head = head_of(ex, b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
    assert head.status == 413
    body_of(ex)
    assert ex.finish() == "early_response"


def test_a_body_too_long_for_its_content_length_is_refused_locally() -> None:
    ex = exchange(POST, ends_with_head=False)
    with pytest.raises(rawkeep.LocalProtocolError):
        ex.body_bytes(b"too long")


def test_head_and_204_have_no_body_whatever_the_headers_say() -> None:
    ex = exchange(HEAD)
    head_of(ex, b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n")
    assert ex.head_request
    assert ex.body is not None
    assert ex.body.at_hand == b""
    assert ex.finish() is None


def test_interim_responses_are_counted_and_bounded() -> None:
    ex = exchange()
    head = head_of(
        ex, b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" * 3, b"HTTP/1.1 200 OK\r\n\r\n"
    )
    assert head.status == 200
    assert ex.interim == 3
    flood = exchange()
    with pytest.raises(rawkeep.RemoteProtocolError, match="interim"):
        flood.feed_head(b"HTTP/1.1 102 Processing\r\n\r\n" * (MAX_INTERIM_RESPONSES + 1))


def test_interim_bytes_count_against_the_head_limit() -> None:
    ex = exchange(max_head_size=1024)
    big = b"HTTP/1.1 103 Early Hints\r\nLink: " + b"x" * 600 + b"\r\n\r\n"
    assert ex.feed_head(big) is NEED_DATA
    with pytest.raises(rawkeep.RemoteProtocolError, match="max_header_size=1024"):
        ex.feed_head(big)


def test_stop_at_continue() -> None:
    ex = exchange(POST, ends_with_head=False)
    assert ex.feed_head(b"HTTP/1.1 100 Continue\r\n\r\n", stop_at_continue=True) is None


@pytest.mark.parametrize("version", [b"2.0", b"0.9"])
def test_versions_that_cannot_answer_http_1_1(version: bytes) -> None:
    ex = exchange()
    with pytest.raises(rawkeep.RemoteProtocolError, match="HTTP/" + version.decode()):
        ex.feed_head(b"HTTP/" + version + b" 200 OK\r\nContent-Length: 0\r\n\r\n")


def test_a_higher_minor_version_is_reported_as_sent_and_reusable() -> None:
    ex = exchange()
    head = head_of(ex, b"HTTP/1.9 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert head.http_version == "HTTP/1.9"
    body_of(ex)
    assert ex.finish() is None


def test_bytes_that_cannot_begin_a_status_line() -> None:
    reused = exchange(reused=True)
    with pytest.raises(rawkeep.RemoteProtocolError, match="out of step"):
        reused.feed_head(b"hello")
    assert not reused.response_started  # for the retry rule: not answered
    fresh = exchange()
    with pytest.raises(rawkeep.RemoteProtocolError, match="does not begin with a status line"):
        fresh.feed_head(b"hello")
    cut = exchange(reused=True)
    assert cut.feed_head(b"HT") is NEED_DATA  # the start of a status line
    assert cut.response_started


def test_a_close_before_any_byte_and_after_an_interim_response() -> None:
    silent = exchange(reused=True)
    with pytest.raises(rawkeep.RemoteProtocolError, match="without sending a response"):
        silent.feed_head(b"")
    interim = exchange()
    assert interim.feed_head(b"HTTP/1.1 100 Continue\r\n\r\n") is NEED_DATA
    with pytest.raises(rawkeep.RemoteProtocolError, match="after 1 interim"):
        interim.feed_head(b"")


def test_the_servers_keep_alive_goes_to_the_lifetime() -> None:
    life = Lifetime(0.0)
    ex = Exchange(65536, False, life, GET, ends_with_head=True, asks_to_close=False)
    head_of(ex, b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=3\r\nContent-Length: 0\r\n\r\n")
    assert life.server_requests_left == 3
    assert life.server_idle_limit == 4.0  # 5 s less a 1 s margin
