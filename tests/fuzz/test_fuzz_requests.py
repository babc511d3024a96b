"""Fuzzing the request side: any method, header, URL or query a caller passes.

Each input either produces a request that goes out and is answered, or is
refused with the documented error (``InvalidURL``, ``LocalProtocolError``,
``TypeError`` / ``ValueError`` for wrong types and ranges, ``ProxyError``
when the stand-in proxy refuses a tunnel), before a single byte is sent.
Whatever goes out is parsed by the scripted server and cross-checked with
h11 (`servers.scripted.validate_with_h11`): rawkeep never writes an invalid
request, whatever it was handed.

URLs may name any host, so they go through a stand-in forward proxy on
127.0.0.1 that answers every request itself: no name is ever resolved and
no connection leaves the machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from servers.h11server import keepalive_server
from servers.scripted import ScriptedServer, render_response

import rawkeep

from .harness import TIMEOUT, fuzz_settings
from .strategies import TCHAR

if TYPE_CHECKING:
    from collections.abc import Iterator

    from servers.scripted import ServerConnection

#: Errors a caller's bad input may raise, as documented.
INPUT_ERRORS = (rawkeep.InvalidURL, rawkeep.LocalProtocolError, TypeError, ValueError)

#: Headers rawkeep sets or checks itself: their values are not echoed as given.
MANAGED = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "expect", "x-token"}
)


@pytest.fixture(scope="module")
def echo_server() -> Iterator[ScriptedServer]:
    with keepalive_server() as server:
        yield server


def stand_in_proxy(conn: ServerConnection) -> None:
    """A forward proxy that answers itself: 200 with the target as body;
    CONNECT (a tunnel for https) is refused with 403."""
    while (request := conn.read_request()) is not None:
        if request.method == "CONNECT":
            conn.respond(render_response(403, b"no tunnels", [("Connection", "close")]))
            return
        conn.respond(render_response(200, request.target.encode()))


@pytest.fixture(scope="module")
def proxy() -> Iterator[ScriptedServer]:
    with ScriptedServer(stand_in_proxy) as server:
        yield server


def sent_nothing(server: ScriptedServer, bytes_before: int) -> bool:
    return server.total_bytes_received() == bytes_before


methods = st.one_of(
    st.sampled_from(
        ["GET", "get", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "M-SEARCH", "CONNECT"]
    ),
    st.text(TCHAR, min_size=1, max_size=10),
    st.text(max_size=10),
)


@fuzz_settings(120)
@given(method=methods)
@example(method="GET\r\nX-Injected: yes")
@example(method="GET /other HTTP/1.1\r\n\r\nGET")
@example(method="G\x00T")
@example(method="")
@example(method="CONNECT")
@example(method="ﬀ")  # upper-cases to "FF": must be refused, never mapped
def test_any_method_is_sent_upper_cased_or_refused(
    echo_server: ScriptedServer, method: str
) -> None:
    """An ASCII method goes out upper-cased (as requests and httpx send
    it); anything else goes out exactly as given, or is refused."""
    before = echo_server.total_bytes_received()
    count = len(echo_server.requests)
    with rawkeep.Client(timeout=TIMEOUT) as client:
        try:
            response = client.request(method, f"{echo_server.url}/m", headers={"X-Token": "m"})
        except INPUT_ERRORS:
            assert sent_nothing(echo_server, before)
            return
    sent = method.upper() if method.isascii() else method
    assert echo_server.requests[count].method == sent
    assert response.status == 200
    assert response.content == (b"" if sent == "HEAD" else b"m")


header_text = st.one_of(
    st.text(max_size=12),
    st.text(TCHAR, min_size=1, max_size=12),
    st.sampled_from(["X-Ok", "Host", "Content-Length", "Transfer-Encoding", "Connection", ""]),
)
value_text = st.one_of(
    st.text(max_size=16),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF), max_size=16),
    st.sampled_from(["a\r\nInjected: yes", "a\nb", "a\rb", "a\x00b", " padded ", "chunked", "12"]),
)


@fuzz_settings(200)
@given(name=header_text, value=value_text)
@example(name="X-Evil", value="a\r\nInjected: yes")
@example(name="X-Evil", value="\x00")
@example(name="Bad Name", value="x")
@example(name="Content-Length", value="5")
@example(name="Transfer-Encoding", value="gzip")
def test_any_header_is_sent_verbatim_or_refused(
    echo_server: ScriptedServer, name: str, value: str
) -> None:
    before = echo_server.total_bytes_received()
    count = len(echo_server.requests)
    with rawkeep.Client(timeout=TIMEOUT) as client:
        try:
            response = client.get(f"{echo_server.url}/h", headers=[(name, value)])
        except INPUT_ERRORS:
            assert sent_nothing(echo_server, before)
            return
    assert response.status == 200
    received = echo_server.requests[count]
    if name.lower() not in MANAGED:
        assert received.header_all(name) == [value.encode("latin-1")]


url_text = st.one_of(
    st.text(max_size=40),
    st.builds(
        "{}://{}{}{}{}".format,
        st.sampled_from(["http", "https", "HTTP", "ftp", "http:", ""]),
        st.one_of(st.just(""), st.text(max_size=8).map(lambda t: t + "@")),
        st.one_of(
            st.text(max_size=12),
            st.sampled_from(
                [
                    "example.test",
                    "127.0.0.1",
                    "[::1]",
                    "[fe80::1%25eth0]",
                    "xn--nxasmq6b.test",
                    "ex ample.test",
                ]
            ),
        ),
        st.one_of(
            st.just(""),
            st.integers(-1, 70000).map(lambda p: f":{p}"),
            st.text(max_size=4).map(lambda t: ":" + t),
        ),
        st.text(max_size=20),
    ),
)


@fuzz_settings(200)
@given(url=url_text)
@example(url="http://user:pa ss@example.test/")
@example(url="http://example.test/a\r\nHost: evil")
@example(url="http://example.test/\x00")
@example(url="http://[::1/")
@example(url="http://example.test:99999/")
@example(url="https://example.test/")
def test_any_url_is_requested_or_refused(proxy: ScriptedServer, url: str) -> None:
    before = proxy.total_bytes_received()
    count = len(proxy.requests)
    with rawkeep.Client(timeout=TIMEOUT, proxy=proxy.url) as client:
        try:
            response = client.get(url)
        except INPUT_ERRORS:
            assert sent_nothing(proxy, before)
            return
        except rawkeep.ProxyError:
            assert proxy.requests[count].method == "CONNECT"
            return
    target = proxy.requests[count].target
    assert response.content == target.encode()
    parts = urlsplit(target)
    assert (parts.scheme, parts.fragment) == ("http", "")
    assert "@" not in parts.netloc  # credentials never in the target


@fuzz_settings(120)
@given(params=st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=4))
def test_any_query_parameters_arrive_intact(
    echo_server: ScriptedServer, params: list[tuple[str, str]]
) -> None:
    count = len(echo_server.requests)
    with rawkeep.Client(timeout=TIMEOUT) as client:
        try:
            client.get(f"{echo_server.url}/q", params=params, headers={"X-Token": "q"})
        except INPUT_ERRORS:
            return
    target = echo_server.requests[count].target
    query = urlsplit(target).query
    assert parse_qsl(query, keep_blank_values=True) == params
