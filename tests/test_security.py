"""Security properties, each against a real server on 127.0.0.1.

Where another suite already proves a property, this file does not repeat
it; docs/reliability.md maps every guarantee to the test that proves it:

* request smuggling and header injection: CR, LF and NUL anywhere in a
  request, and framing headers that contradict each other, are refused
  before anything is sent;
* response heads are bounded by ``max_header_size`` wherever the bytes come
  from (status line, one long header line, many headers, a chunk-size line,
  trailers);
* TLS: verification and host name checks on by default, TLS 1.2 at least,
  a server offering only TLS 1.0 / 1.1 refused;
* pooled connections are never shared across client certificates, TLS
  settings or proxy routes;
* credentials (URL userinfo, ``Authorization``, ``Proxy-Authorization``)
  never appear in logs, events, exception messages or reprs;
* ``Authorization`` and ``Proxy-Authorization`` never follow a redirect to
  another origin, however they were given;
* ``max_decoded_size`` stops decompression bombs, nested ones too, without
  inflating the bomb in memory first.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import logging
import socket
import ssl
import traceback
import tracemalloc
import warnings
import zlib
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

import pytest
from servers import faults
from servers.h11server import Reply
from servers.scripted import render_response

import rawkeep
from rawkeep._socket import make_ssl_context

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import trustme
    from servers.recorder import EventRecorder
    from servers.scripted import ReceivedRequest, ScriptedServer, ServerConnection

pytestmark = pytest.mark.both_clients


def assert_nothing_sent(server: ScriptedServer, client: rawkeep.Client) -> None:
    """Refused before any I/O: no connection made, no byte sent, pool untouched."""
    assert server.accepted == 0
    assert server.total_bytes_received() == 0
    stats = client.pool_stats()
    assert (stats.opened, stats.active, stats.idle) == (0, 0, 0)


# -- CR, LF and NUL in a request -------------------------------------------------------

CONTROL = {"CR": "\r", "LF": "\n", "CRLF": "\r\n", "NUL": "\x00"}


def _inject(place: str, bad: str, url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Client keywords, request keywords) carrying `bad` in `place`."""
    request: dict[str, Any] = {"method": "GET", "url": url + "/ok"}
    client: dict[str, Any] = {}
    if place == "method":
        request["method"] = f"GET{bad}X-Injected: 1"
    elif place == "target":
        request["url"] = f"{url}/a{bad}X-Injected: 1"
    elif place == "query":
        request["url"] = f"{url}/a?q=1{bad}X-Injected: 1"
    elif place == "header-name":
        request["headers"] = {f"X-Evil{bad}Injected": "1"}
    elif place == "header-value":
        request["headers"] = {"X-Evil": f"a{bad}Injected: 1"}
    elif place == "host-header":
        request["headers"] = {"Host": f"example.test{bad}Injected: 1"}
    elif place == "client-header-value":
        client["headers"] = {"X-Evil": f"a{bad}Injected: 1"}
    elif place == "bytes-header-value":
        request["headers"] = [(b"X-Evil", f"a{bad}Injected: 1".encode())]
    else:  # pragma: no cover - the parametrization lists every place
        raise AssertionError(place)
    return client, request


PLACES = [
    "method",
    "target",
    "query",
    "header-name",
    "header-value",
    "host-header",
    "client-header-value",
    "bytes-header-value",
]


@pytest.mark.parametrize("char", CONTROL.values(), ids=CONTROL.keys())
@pytest.mark.parametrize("place", PLACES)
def test_control_characters_in_a_request_are_refused_before_anything_is_sent(
    server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
    place: str,
    char: str,
) -> None:
    client_kwargs, request_kwargs = _inject(place, char, server.url)
    client = make_client(**client_kwargs)
    expected = rawkeep.InvalidURL if place in ("target", "query") else rawkeep.LocalProtocolError
    with pytest.raises(expected):
        client.request(**request_kwargs)
    assert_nothing_sent(server, client)
    assert events.summary() == []


def test_query_parameters_are_encoded_not_injected(
    server: ScriptedServer, client: rawkeep.Client
) -> None:
    client.get(server.url + "/p", params={"q": "1\r\nX-Injected: 1\x00"})
    (request,) = server.requests
    assert request.target == "/p?q=1%0D%0AX-Injected%3A+1%00"
    assert request.header("x-injected") is None


# -- framing headers from the caller ----------------------------------------------------


@pytest.mark.parametrize(
    ("client_headers", "request_kwargs"),
    [
        (None, {"headers": {"Content-Length": "3", "Transfer-Encoding": "chunked"}}),
        (
            None,
            {
                "headers": {"Content-Length": "3", "Transfer-Encoding": "chunked"},
                "content": b"abc",
            },
        ),
        (
            {"Transfer-Encoding": "chunked"},
            {"headers": {"Content-Length": "3"}, "content": b"abc"},
        ),
        (
            {"Content-Length": "3"},
            {"headers": {"Transfer-Encoding": "chunked"}, "content": b"abc"},
        ),
        (None, {"headers": [("Content-Length", "3"), ("Content-Length", "4")], "content": b"abc"}),
        (None, {"headers": {"Content-Length": "4"}, "content": b"abc"}),
        (None, {"headers": {"Content-Length": "-1"}, "content": b""}),
        (None, {"headers": {"Transfer-Encoding": "gzip"}, "content": b"abc"}),
        (None, {"headers": {"Transfer-Encoding": "gzip, chunked"}, "content": b"abc"}),
    ],
    ids=[
        "CL+TE",
        "CL+TE-with-body",
        "client-TE+request-CL",
        "client-CL+request-TE",
        "two-different-CL",
        "CL-not-the-body-length",
        "negative-CL",
        "TE-not-chunked",
        "TE-gzip-chunked",
    ],
)
def test_conflicting_framing_from_the_caller_is_refused_before_anything_is_sent(
    server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
    client_headers: dict[str, str] | None,
    request_kwargs: dict[str, Any],
) -> None:
    client = make_client(headers=client_headers)
    with pytest.raises(rawkeep.LocalProtocolError):
        client.post(server.url + "/smuggle", **request_kwargs)
    assert_nothing_sent(server, client)


def test_content_length_without_its_body_is_refused_before_a_byte_is_sent(
    server: ScriptedServer, client: rawkeep.Client
) -> None:
    # Found by the request fuzzer: the mismatch was once noticed only after
    # a connection was open. It is now refused when the request is built.
    with pytest.raises(rawkeep.LocalProtocolError, match="no body"):
        client.get(server.url + "/cl", headers={"Content-Length": "5"})
    assert server.total_bytes_received() == 0
    assert server.accepted == 0
    stats = client.pool_stats()
    assert (stats.active, stats.idle, stats.opened, stats.closed) == (0, 0, 0, 0)


# -- bounded response heads ----------------------------------------------------------------

LIMIT = 4096


def _long_head(part: str) -> bytes:
    big = b"x" * (LIMIT * 2)
    if part == "status-line":
        return b"HTTP/1.1 200 " + big + b"\r\nContent-Length: 0\r\n\r\n"
    if part == "one-header-line":
        return b"HTTP/1.1 200 OK\r\nX-Long: " + big + b"\r\nContent-Length: 0\r\n\r\n"
    if part == "line-without-end":
        return b"HTTP/1.1 200 OK\r\nX-Long: " + big
    if part == "many-headers":
        lines = b"".join(b"X-H%d: v\r\n" % i for i in range(LIMIT // 4))
        return b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 0\r\n\r\n"
    if part == "chunk-size-line":
        return (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;"
            + big
            + b"\r\nx\r\n0\r\n\r\n"
        )
    if part == "trailers":
        trailers = b"".join(b"X-T%d: %s\r\n" % (i, b"t" * 64) for i in range(LIMIT // 32))
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n" + trailers
    raise AssertionError(part)  # pragma: no cover


@pytest.mark.parametrize(
    "part",
    [
        "status-line",
        "one-header-line",
        "line-without-end",
        "many-headers",
        "chunk-size-line",
        "trailers",
    ],
)
def test_response_heads_and_lines_are_bounded_by_max_header_size(
    start_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    part: str,
) -> None:
    def handler(conn: ServerConnection) -> None:
        if conn.read_request() is not None:
            with contextlib.suppress(OSError):
                conn.send(_long_head(part))
            conn.wait_for_peer_close(5.0)

    server = start_server(handler)
    client = make_client(max_header_size=LIMIT)
    with pytest.raises(rawkeep.RemoteProtocolError, match=f"max_header_size={LIMIT}"):
        client.get(server.url)
    stats = client.pool_stats()
    assert (stats.active, stats.idle, stats.closed) == (0, 0, 1)


def test_max_header_size_has_a_floor(make_client: Callable[..., rawkeep.Client]) -> None:
    with pytest.raises(ValueError, match="max_header_size"):
        make_client(max_header_size=10)


# -- TLS ---------------------------------------------------------------------------------


@pytest.mark.parametrize("verify", [True, "ca-path"])
def test_tls_defaults_verify_certificates_and_host_names_with_tls_1_2_at_least(
    verify: bool | str, ca_pem_path: str, tls_ca: trustme.CA, tmp_path: Path
) -> None:
    identity = tmp_path / "client.pem"
    tls_ca.issue_cert("client.test").private_key_and_cert_chain_pem.write_to_path(str(identity))
    for cert in (None, str(identity)):
        context = make_ssl_context(ca_pem_path if verify == "ca-path" else True, cert)
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname is True
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def _old_tls_only_context(tls_server_cert: trustme.LeafCert) -> ssl.SSLContext:
    """A server context offering TLS 1.0 and 1.1 and nothing newer."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_server_cert.configure_cert(context)
    with warnings.catch_warnings():
        # The enum members themselves are deprecated: that is the point.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    # OpenSSL 3 allows TLS < 1.2 only at security level 0 (SHA-1 signatures).
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def _handshake_version(port: int, tls_ca: trustme.CA) -> str | None:
    """The version a permissive client negotiates with the server, or None."""
    context = ssl.create_default_context()
    tls_ca.configure_trust(context)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=2) as sock,
            context.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
        ):
            return tls.version()
    except (ssl.SSLError, OSError):
        return None


def test_server_offering_only_tls_1_0_or_1_1_is_refused(
    start_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    tls_server_cert: trustme.LeafCert,
    tls_ca: trustme.CA,
    ca_pem_path: str,
    events: EventRecorder,
) -> None:
    server = start_server(faults.keep_serving, ssl_context=_old_tls_only_context(tls_server_cert))
    # Control: the server really speaks old TLS (if this machine's OpenSSL
    # can't, the context check above is the remaining proof).
    version = _handshake_version(server.port, tls_ca)
    if version not in ("TLSv1", "TLSv1.1"):
        pytest.skip(f"local OpenSSL can't serve TLS 1.0/1.1 (got {version})")
    client = make_client(verify=ca_pem_path)
    with pytest.raises(rawkeep.TLSError):
        client.get(server.url)
    assert server.requests == []
    assert events.count("ConnectionOpened") == 0
    assert client.pool_stats().active == 0


# -- connections never shared across identities, TLS settings or routes --------------------


def identity_echo(conn: ServerConnection) -> None:
    """Answer each request with the client certificate's email (or "anonymous")."""
    assert isinstance(conn.sock, ssl.SSLSocket)
    cert = conn.sock.getpeercert() or {}
    names = cast("tuple[tuple[str, str], ...]", cert.get("subjectAltName", ()))
    emails = [value for kind, value in names if kind == "email"]
    who = (emails[0] if emails else "anonymous").encode()
    while (request := conn.read_request()) is not None:
        conn.respond(render_response(200, who, head=request.method == "HEAD"))


@pytest.fixture
def mtls_server(
    start_server: Callable[..., ScriptedServer],
    server_ssl_context: ssl.SSLContext,
    tls_ca: trustme.CA,
) -> ScriptedServer:
    server_ssl_context.verify_mode = ssl.CERT_OPTIONAL
    tls_ca.configure_trust(server_ssl_context)
    return start_server(identity_echo, ssl_context=server_ssl_context)


def test_connections_are_never_shared_across_certificates_or_tls_settings(
    mtls_server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
    tls_ca: trustme.CA,
    ca_pem_path: str,
    tmp_path: Path,
) -> None:
    clients: dict[str, rawkeep.Client] = {}
    for who in ("alice@example.test", "bob@example.test"):
        path = tmp_path / f"{who}.pem"
        tls_ca.issue_cert(who).private_key_and_cert_chain_pem.write_to_path(str(path))
        clients[who] = make_client(verify=ca_pem_path, cert=str(path))
    clients["anonymous"] = make_client(verify=ca_pem_path)
    clients["anonymous-unverified"] = make_client(verify=False)

    for _ in range(3):  # interleaved: any sharing would show a wrong identity
        for who, client in clients.items():
            assert client.get(mtls_server.url).content == who.split("-")[0].encode()

    assert mtls_server.accepted == len(clients)
    assert mtls_server.requests_per_connection() == [3] * len(clients)
    for client in clients.values():
        assert (client.pool_stats().opened, client.pool_stats().reused) == (1, 2)


def answering_proxy(conn: ServerConnection) -> None:
    """A forward proxy stand-in: answers each request itself with its target."""
    while (request := conn.read_request()) is not None:
        conn.respond(render_response(200, request.target.encode()))


def test_one_client_keeps_proxied_and_direct_routes_apart(
    start_server: Callable[..., ScriptedServer],
    server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = start_server(answering_proxy)
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.setenv("no_proxy", "localhost")
    client = make_client(trust_env=True)
    proxied = f"http://127.0.0.1:{server.port}"
    direct = f"http://localhost:{server.port}"

    ids: dict[str, set[int]] = {"proxied": set(), "direct": set()}
    for i in range(3):
        response = client.get(f"{proxied}/p{i}")
        assert response.content == f"{proxied}/p{i}".encode()  # the proxy answered
        ids["proxied"].add(response.connection_id)
        response = client.get(f"{direct}/d{i}", headers={"X-Token": f"d{i}"})
        assert response.content == f"d{i}".encode()  # the server itself answered
        ids["direct"].add(response.connection_id)

    assert len(ids["proxied"]) == len(ids["direct"]) == 1
    assert ids["proxied"].isdisjoint(ids["direct"])
    assert [r.target for r in server.requests] == ["/d0", "/d1", "/d2"]
    assert [r.target for r in proxy.requests] == [f"{proxied}/p{i}" for i in range(3)]
    assert set(client.pool_stats().per_host) == {f"{proxied} via {proxy.origin}", direct}


# -- credentials never shown ---------------------------------------------------------------

USER_SECRET = "uSeRiNfO-s3cr3t"
BEARER_SECRET = "bEaReR-t0k3n"
AUTH_SECRET = "aUtH-pAsSw0rd"
PROXY_SECRET = "pRoXy-pAsSw0rd"


def secret_forms() -> list[str]:
    """Every spelling of the secrets that could leak: plain, encoded, Basic."""
    forms = [USER_SECRET, BEARER_SECRET, AUTH_SECRET, PROXY_SECRET]
    pairs = [("alice", USER_SECRET), ("bob", AUTH_SECRET), ("carol", PROXY_SECRET)]
    forms += [base64.b64encode(f"{u}:{p}".encode()).decode() for u, p in pairs]
    forms += [quote(secret) for secret in forms]
    return forms


class Exposure:
    """Collects every string a user or a log could see."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def error(self, exc: BaseException) -> None:
        self.texts += [
            str(exc),
            repr(exc),
            repr(exc.args),
            "".join(traceback.format_exception(exc)),
        ]
        self.texts += [repr(getattr(exc, name, None)) for name in ("origin", "message")]

    def response(self, response: rawkeep.Response) -> None:
        self.texts += [repr(response), response.url, repr(response.headers)]
        self.texts += [r.url for r in response.history]
        sent = response.request  # the headers as sent: repr hides the credentials
        self.texts += [repr(sent), sent.url, repr(sent.headers), str(sent.headers)]

    def check(self) -> None:
        seen = "\n".join(self.texts)
        leaked = [form for form in secret_forms() if form in seen]
        assert leaked == [], leaked


def test_credentials_never_reach_logs_events_errors_or_reprs(
    start_server: Callable[..., ScriptedServer],
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
    refused_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="rawkeep")
    exposure = Exposure()
    userinfo = f"alice:{USER_SECRET}@"

    def expect_error(kind: type[BaseException], call: Callable[[], object]) -> None:
        with pytest.raises(kind) as info:
            call()
        exposure.error(info.value)

    # Success and reuse, with every kind of credential at once.
    server = start_keepalive_server(
        respond=lambda request: Reply(status=404 if request.path == "/missing" else 200)
    )
    client = make_client(auth=("bob", AUTH_SECRET), exchange_events=True)
    for path in ("/a", "/b"):
        exposure.response(client.get(f"http://{userinfo}{server.url[7:]}{path}"))
    exposure.response(
        client.get(server.url + "/c", headers={"Authorization": f"Bearer {BEARER_SECRET}"})
    )
    response = client.get(server.url + "/missing")
    expect_error(rawkeep.HTTPStatusError, response.raise_for_status)

    # The keep-alive race: a retried request is logged with its URL.
    race = start_server(
        faults.per_connection(
            faults.serve_then(1, faults.close_without_response), faults.keep_serving
        )
    )
    racer = make_client()
    racer.get(f"http://{userinfo}{race.url[7:]}/1")
    exposure.response(racer.get(f"http://{userinfo}{race.url[7:]}/2"))
    assert events.count("RequestRetried") == 1
    post_race = start_server(
        faults.per_connection(faults.serve_then(1, faults.close_without_response))
    )
    racer.get(f"http://{userinfo}{post_race.url[7:]}/1")
    expect_error(
        rawkeep.RemoteProtocolError, lambda: racer.post(f"http://{userinfo}{post_race.url[7:]}/2")
    )

    # Redirect loops, refused ports, bad URLs, timeouts, garbage, a proxy 407.
    looping = start_keepalive_server(
        respond=lambda request: Reply(status=302, headers=[("Location", request.target)])
    )
    expect_error(
        rawkeep.TooManyRedirects,
        lambda: make_client(max_redirects=2, follow_redirects=True).get(
            f"http://{userinfo}{looping.url[7:]}/loop", auth=("bob", AUTH_SECRET)
        ),
    )
    expect_error(rawkeep.ConnectError, lambda: client.get(f"http://{userinfo}{refused_url[7:]}/"))
    expect_error(rawkeep.InvalidURL, lambda: client.get(f"http://{userinfo}127.0.0.1:99999/"))
    expect_error(rawkeep.InvalidURL, lambda: client.get(f"http://{userinfo}127.0.0.1/\r\n"))
    stalled = start_server(faults.stall)
    expect_error(
        rawkeep.ReadTimeout,
        lambda: make_client(timeout=0.2).get(f"http://{userinfo}{stalled.url[7:]}/"),
    )
    broken = start_server(faults.garbage)
    expect_error(
        rawkeep.RemoteProtocolError, lambda: client.get(f"http://{userinfo}{broken.url[7:]}/")
    )

    def wants_proxy_auth(conn: ServerConnection) -> None:
        while conn.read_request() is not None:
            conn.respond(render_response(407, b"", [("Proxy-Authenticate", 'Basic realm="p"')]))

    proxy = start_server(wants_proxy_auth)
    proxied = make_client(
        proxy=f"http://carol:{PROXY_SECRET}@{proxy.url[7:]}", exchange_events=True
    )
    expect_error(rawkeep.ProxyError, lambda: proxied.get("http://example.test/"))
    assert proxy.requests[0].header("proxy-authorization") is not None  # it was sent

    exposure.texts += [repr(event) for event in events.snapshot()]
    exposure.texts += [str(event.to_dict()) for event in events.snapshot()]
    exposure.texts += [str(event.to_dict()) for event in events.exchange]
    assert any(  # the requests' own headers were really checked
        name.lower() == "authorization" for e in events.exchange for name, _ in e.headers
    )
    exposure.texts += [repr(c.pool_stats()) for c in (client, racer, proxied)]
    exposure.texts += [repr(c) for c in (client, racer, proxied)]
    exposure.texts.append(caplog.text)
    assert "RequestRetried" in caplog.text  # the logs were really captured
    exposure.check()


# -- credentials and redirects -----------------------------------------------------------


def redirect_to(target: str) -> Callable[[ReceivedRequest], Reply]:
    def respond(request: ReceivedRequest) -> Reply:
        if request.path == "/start":
            return Reply(status=302, headers=[("Location", target)])
        return Reply(body=b"landed")

    return respond


#: How the credential is given: (client keywords, request keywords, in the URL).
CREDENTIALS: dict[str, tuple[dict[str, Any], dict[str, Any], bool]] = {
    "auth-keyword": ({}, {"auth": ("alice", "pw")}, False),
    "client-auth": ({"auth": ("alice", "pw")}, {}, False),
    "authorization-header": ({}, {"headers": {"Authorization": "Bearer t0k"}}, False),
    "client-authorization-header": ({"headers": {"Authorization": "Bearer t0k"}}, {}, False),
    "url-userinfo": ({}, {}, True),
    "proxy-authorization-header": ({}, {"headers": {"Proxy-Authorization": "Basic eDp5"}}, False),
}


@pytest.mark.parametrize("how", CREDENTIALS)
def test_credentials_are_dropped_on_a_cross_origin_redirect_only(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    how: str,
) -> None:
    client_kwargs, request_kwargs, in_url = CREDENTIALS[how]
    header = "proxy-authorization" if "proxy" in how else "authorization"
    other = start_keepalive_server()
    same = start_keepalive_server(respond=redirect_to("/landing"))
    cross = start_keepalive_server(respond=redirect_to(other.url + "/landing"))
    client = make_client(follow_redirects=True, **client_kwargs)

    for origin in (same, cross):
        url = origin.url + "/start"
        if in_url:
            url = url.replace("http://", "http://alice:pw@")
        assert client.get(url, **request_kwargs).status == 200

    start, landing = same.requests
    assert start.header(header) is not None
    assert landing.header(header) == start.header(header)  # same origin: kept
    (start,) = cross.requests
    (landing,) = other.requests
    assert start.header(header) is not None
    assert landing.header(header) is None  # another origin: dropped
    assert landing.target == "/landing"


# -- decompression bombs -------------------------------------------------------------------

BOMB_SIZE = 64 * 1024 * 1024
LIMIT_DECODED = 1024 * 1024


def _bombs() -> Iterator[tuple[str, str, bytes]]:
    zeros = b"\0" * BOMB_SIZE
    yield "gzip", "gzip", gzip.compress(zeros)
    yield "deflate", "deflate", zlib.compress(zeros, 9)
    # Nested: each layer alone looks modest, the inner one explodes.
    yield "gzip-in-gzip", "gzip, gzip", gzip.compress(gzip.compress(zeros))


BOMBS = list(_bombs())


@pytest.mark.parametrize(
    ("coding", "body"), [(c, b) for _, c, b in BOMBS], ids=[i for i, _, _ in BOMBS]
)
@pytest.mark.parametrize("streamed", [False, True])
def test_decompression_bombs_stop_at_max_decoded_size_without_inflating(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    coding: str,
    body: bytes,
    streamed: bool,
) -> None:
    assert len(body) < 1024 * 1024 < BOMB_SIZE
    server = start_keepalive_server(
        respond=lambda request: Reply(body=body, headers=[("Content-Encoding", coding)])
    )
    client = make_client(max_decoded_size=LIMIT_DECODED)

    def fetch() -> None:
        if not streamed:
            client.get(server.url)
            return
        with client.stream("GET", server.url) as response:
            for _ in response.iter_bytes():
                pass

    tracemalloc.start()
    try:
        with pytest.raises(rawkeep.DecodingError, match="max_decoded_size"):
            fetch()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Stopped within about one inflate step of the limit, never near 64 MiB.
    assert peak < 8 * LIMIT_DECODED
    # The small rest of the body was drained: the connection may stay idle.
    stats = client.pool_stats()
    assert stats.active == 0
    assert stats.opened - stats.closed == stats.idle
