"""The fuzz corpus: every failure the fuzzers found, and classic nasty responses.

Each case runs through the same `harness.exchange` as the fuzz tests (real
socket, fresh client, no-leak checks) and pins what rawkeep must make of
it. `FOUND` and the two tests after it hold the library bugs the fuzzers
found (fixed since; see docs/reliability.md). A new bug goes in as a case
marked ``xfail(strict=True, reason="BUG: ...")`` stating the correct
behaviour: the mark turns into a failure (XPASS) once the bug is fixed, and
is then removed so the case guards the fix.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

import rawkeep

from .harness import exchange

if TYPE_CHECKING:
    from servers.replay import ReplayBook
    from servers.scripted import ScriptedServer


@dataclass(frozen=True)
class Case:
    """Bytes to answer with, and what the client must make of them."""

    wire: bytes
    #: The server closes the connection after sending.
    close: bool = False
    #: The error expected on the first request, or None for a response.
    error: type[rawkeep.RawkeepError] | None = None
    #: The decoded body of the first response (when a response is expected).
    body: bytes | None = None
    #: Whether the second request reuses the connection (None: not checked).
    reused: bool | None = None


def ok(headers: bytes = b"", body: bytes = b"ok", *, head: bytes = b"HTTP/1.1 200 OK") -> bytes:
    return head + b"\r\n" + headers + b"Content-Length: %d\r\n\r\n" % len(body) + body


def gzip_members(*parts: bytes) -> bytes:
    return b"".join(gzip.compress(part) for part in parts)


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


RAW = raw_deflate(b"hello world " * 20)
PROTOCOL = rawkeep.RemoteProtocolError

CASES = {
    # -- framing -------------------------------------------------------------
    "conflicting-content-lengths": Case(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        close=True,
        error=PROTOCOL,
    ),
    "negative-content-length": Case(
        ok(head=b"HTTP/1.1 200 OK\r\nContent-Length: -1"), error=PROTOCOL
    ),
    "empty-content-length": Case(
        b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nok", close=True, error=PROTOCOL
    ),
    "huge-content-length-then-close": Case(
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nabc",
        close=True,
        error=PROTOCOL,
    ),
    "truncated-body-server-waits": Case(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", error=rawkeep.ReadTimeout
    ),
    "transfer-coding-other-than-chunked": Case(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        close=True,
        error=PROTOCOL,
    ),
    # RFC 9112 section 6.3: Transfer-Encoding overrides Content-Length, and
    # the message ought to be handled as an error: read, then not reused.
    "content-length-and-chunked": Case(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n",
        body=b"abc",
        reused=False,
    ),
    "identical-content-length-list": Case(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", body=b"ok", reused=True
    ),
    # Found by the fuzzer: RFC 9112 section 7.1.1 allows whitespace (BWS)
    # before a chunk extension's ";", h11 refuses it. Pinned as it is: a
    # typed error, nothing leaked. Servers do not send it in practice.
    "chunk-extension-after-whitespace": Case(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1 ;ext=1\r\nx\r\n0\r\n\r\n",
        error=PROTOCOL,
    ),
    # -- response splitting and desynchronisation -----------------------------
    "second-response-smuggled-after-the-first": Case(
        ok(body=b"ok") + ok(body=b"evil"), body=b"ok", reused=False
    ),
    "bytes-after-a-bodiless-response": Case(
        b"HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nevil", body=b"", reused=False
    ),
    # -- status lines and headers ----------------------------------------------
    "http-2-status-line": Case(b"HTTP/2 200\r\n\r\n", close=True, error=PROTOCOL),
    "status-000": Case(b"HTTP/1.1 000 X\r\nContent-Length: 0\r\n\r\n", close=True, error=PROTOCOL),
    "switching-protocols-unasked": Case(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", close=True, error=PROTOCOL
    ),
    "interim-response-then-close": Case(
        b"HTTP/1.1 100 Continue\r\n\r\n", close=True, error=PROTOCOL
    ),
    "nul-in-header-name": Case(ok(b"X\x00: y\r\n"), close=True, error=PROTOCOL),
    "space-before-colon": Case(ok(b"Content-Type : x\r\n"), close=True, error=PROTOCOL),
    "obsolete-line-folding": Case(ok(b"X-Folded: a\r\n b\r\n"), body=b"ok", reused=True),
    "bare-lf-line-endings": Case(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", body=b"ok"),
    "status-without-reason-or-space": Case(ok(head=b"HTTP/1.1 200"), body=b"ok", reused=True),
    # -- Keep-Alive parameters: only usable numbers are believed ------------------
    "keep-alive-timeout-0": Case(ok(b"Keep-Alive: timeout=0\r\n"), body=b"ok", reused=False),
    "keep-alive-max-0": Case(ok(b"Keep-Alive: max=0\r\n"), body=b"ok", reused=False),
    "keep-alive-max-minus-0": Case(ok(b"Keep-Alive: max=-0\r\n"), body=b"ok", reused=False),
    "keep-alive-timeout-infinite": Case(
        ok(b"Keep-Alive: timeout=1e400\r\n"), body=b"ok", reused=True
    ),
    "keep-alive-negative": Case(
        ok(b"Keep-Alive: timeout=-1, max=-1\r\n"), body=b"ok", reused=True
    ),
    "keep-alive-fractional-max": Case(ok(b"Keep-Alive: max=0.5\r\n"), body=b"ok", reused=True),
    "keep-alive-nan": Case(ok(b"Keep-Alive: timeout=nan\r\n"), body=b"ok", reused=True),
    # -- content codings ---------------------------------------------------------
    "gzip-with-trailing-garbage": Case(
        ok(b"Content-Encoding: gzip\r\n", gzip.compress(b"hi") + b"junk"), body=b"hi"
    ),
    "gzip-with-a-bad-header": Case(
        ok(b"Content-Encoding: gzip\r\n", b"\x1f\x8c" + gzip.compress(b"hi")[2:]),
        error=rawkeep.DecodingError,
    ),
    "raw-deflate-in-one-piece": Case(
        ok(b"Content-Encoding: deflate\r\n", RAW), body=b"hello world " * 20
    ),
}

#: Library bugs the fuzzers found, fixed since: kept as regression cases.
FOUND = {
    "gzip-stream-cut-short": Case(
        ok(b"Content-Encoding: gzip\r\n", gzip.compress(bytes(range(256)) * 40)[:192]),
        error=rawkeep.DecodingError,
    ),
    "gzip-with-two-members": Case(
        ok(b"Content-Encoding: gzip\r\n", gzip_members(b"hello ", b"world")),
        body=b"hello world",
    ),
    "raw-deflate-first-chunk-one-byte": Case(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"1\r\n"
        + RAW[:1]
        + b"\r\n%x\r\n" % (len(RAW) - 1)
        + RAW[1:]
        + b"\r\n0\r\n\r\n",
        body=b"hello world " * 20,
    ),
}


@pytest.mark.parametrize("case", [*CASES.values(), *FOUND.values()], ids=[*CASES, *FOUND])
def test_corpus_case(fuzz_server: ScriptedServer, book: ReplayBook, case: Case) -> None:
    outcome = exchange(fuzz_server, book, case.wire, close=case.close)
    if case.error is not None:
        assert isinstance(outcome.error, case.error), outcome.error
        assert outcome.responses == []
        return
    assert outcome.error is None, outcome.error
    assert len(outcome.responses) == 2
    assert outcome.bodies[0] == case.body
    if case.reused is not None:
        first, second = outcome.responses
        assert second.reused is case.reused
        assert (second.connection_id == first.connection_id) is case.reused
        # A connection is reused only when it is clean: never read past a
        # response into bytes that were not asked for.
        assert outcome.bodies[1] == case.body


#: Codecs that ``codecs.lookup`` knows but that do not decode bytes to text.
NON_TEXT_CHARSETS = ["rot13", "base64", "hex", "zlib", "bz2", "quopri", "uu"]


@pytest.mark.parametrize("charset", NON_TEXT_CHARSETS)
def test_text_never_raises_for_any_charset(
    fuzz_server: ScriptedServer, book: ReplayBook, charset: str
) -> None:
    wire = ok(f"Content-Type: text/plain; charset={charset}\r\n".encode())
    key = book.add(wire, close=False)
    with rawkeep.Client(timeout=2.0) as client:
        response = client.get(fuzz_server.url, headers={"X-Replay-Key": key})
        assert response.text == "ok"


def test_connect_method_through_request_is_a_typed_error_and_leaks_nothing(
    fuzz_server: ScriptedServer, book: ReplayBook
) -> None:
    # Found by the request fuzzer: client.request("CONNECT", ...) answered
    # with 200 made h11 switch protocols mid-cycle, and rawkeep blamed the
    # server ("connection paused mid-cycle"). CONNECT is how a client asks a
    # proxy for a tunnel, which rawkeep does itself (proxy=): as a request
    # method it is refused before any I/O.
    accepted = fuzz_server.accepted
    with rawkeep.Client(timeout=2.0) as client:
        for method in ("CONNECT", "connect"):
            with pytest.raises(rawkeep.LocalProtocolError, match="CONNECT"):
                client.request(method, fuzz_server.url)
        stats = client.pool_stats()
        assert (stats.active, stats.idle, stats.opened, stats.closed) == (0, 0, 0, 0)
    assert fuzz_server.accepted == accepted
