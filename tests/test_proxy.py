"""Forward proxies: a scripted proxy for the exact bytes, tinyproxy for the real thing."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from typing import TYPE_CHECKING

import pytest
from servers.scripted import render_response

import rawkeep
from rawkeep._proxy import ProxyConfig
from rawkeep._url import Origin

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from servers.recorder import EventRecorder
    from servers.scripted import ScriptedServer, ServerConnection

pytestmark = pytest.mark.both_clients

TINYPROXY = shutil.which("tinyproxy")
needs_tinyproxy = pytest.mark.skipif(
    TINYPROXY is None,
    reason="tinyproxy is not installed (apt-get install tinyproxy; .ci/run installs it)",
)


def answering_proxy(conn: ServerConnection) -> None:
    """A forward proxy stand-in: answers each request itself, 200 with the
    request target as the body, so the test sees what the client sent."""
    while (request := conn.read_request()) is not None:
        conn.send(render_response(200, request.target.encode()))


def test_http_target_goes_in_absolute_form_with_proxy_auth(
    start_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    proxy = start_server(answering_proxy)
    authority = proxy.origin.removeprefix("http://")
    client = make_client(proxy=f"http://user:pa%24s@{authority}")
    first = client.get("http://example.test:8080/a?b=1")
    second = client.get("http://example.test:8080/c")
    assert first.content == b"http://example.test:8080/a?b=1"
    assert second.content == b"http://example.test:8080/c"
    request = proxy.requests[0]
    assert request.header("host") == b"example.test:8080"
    assert request.header("proxy-authorization") == b"Basic dXNlcjpwYSRz"
    # Pooled per proxy and target: one connection, reused.
    assert proxy.accepted == 1
    stats = client.pool_stats()
    assert list(stats.per_host) == [f"http://example.test:8080 via {proxy.origin}"]
    assert stats.reused == 1


def test_proxy_and_direct_connections_are_never_shared(
    start_server: Callable[..., ScriptedServer],
    server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
) -> None:
    proxy = start_server(answering_proxy)
    direct = make_client()
    proxied = make_client(proxy=proxy.url)
    direct.get(server.url + "/d")
    proxied.get(server.url + "/p")
    assert [r.target for r in server.requests] == ["/d"]
    assert [r.target for r in proxy.requests] == [server.url + "/p"]


def test_connect_refused_raises_proxy_error_with_status(
    start_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    def refusing(conn: ServerConnection) -> None:
        request = conn.read_request()
        assert request is not None
        assert request.method == "CONNECT"
        assert request.target == "secure.test:443"
        conn.send(render_response(403, b"no", [("Connection", "close")]))

    proxy = start_server(refusing)
    client = make_client(proxy=proxy.url)
    with pytest.raises(rawkeep.ProxyError) as info:
        client.get("https://secure.test/")
    assert info.value.status == 403
    assert client.pool_stats().active == 0
    assert client.pool_stats().opened == 0


def test_407_for_an_http_target_raises_proxy_error(
    start_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    def wants_auth(conn: ServerConnection) -> None:
        while conn.read_request() is not None:
            conn.send(render_response(407, b"", [("Proxy-Authenticate", 'Basic realm="p"')]))

    proxy = start_server(wants_auth)
    client = make_client(proxy=proxy.url)
    with pytest.raises(rawkeep.ProxyError) as info:
        client.get("http://example.test/")
    assert info.value.status == 407
    assert client.pool_stats().active == 0


@pytest.mark.parametrize("bad", ["socks5://127.0.0.1:1080", "127.0.0.1:3128", "https://p:1"])
def test_unsupported_proxy_urls(bad: str) -> None:
    with pytest.raises(rawkeep.InvalidURL):
        rawkeep.Client(proxy=bad)


def test_proxy_credentials_never_in_repr_or_events(
    start_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    proxy = start_server(answering_proxy)
    seen: list[rawkeep.Event] = []
    client = make_client(
        proxy=proxy.url.replace("http://", "http://u:hunter2@"), on_event=seen.append
    )
    client.get("http://example.test/")
    assert seen
    assert all("hunter2" not in repr(event) for event in seen)
    assert "hunter2" not in repr(client.pool_stats())


# -- the environment -----------------------------------------------------------


def test_environment_is_ignored_unless_trusted(
    start_server: Callable[..., ScriptedServer],
    server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = start_server(answering_proxy)
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    make_client().get(server.url + "/direct")
    make_client(trust_env=True).get(server.url + "/via")
    assert [r.target for r in server.requests] == ["/direct"]
    assert [r.target for r in proxy.requests] == [server.url + "/via"]


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "bypassed"),
    [
        ("*", "anything.test", 80, True),
        ("example.org", "example.org", 80, True),
        ("example.org", "api.example.org", 80, True),
        (".example.org", "api.example.org", 80, True),
        ("example.org", "badexample.org", 80, False),
        ("example.org:8080", "example.org", 8080, True),
        ("example.org:8080", "example.org", 80, False),
        ("10.0.0.0/8, localhost", "10.1.2.3", 80, True),
        ("10.0.0.0/8", "11.1.2.3", 80, False),
        ("[::1]", "::1", 80, True),
        ("", "example.org", 80, False),
    ],
)
def test_no_proxy_rules(no_proxy: str, host: str, port: int, bypassed: bool) -> None:
    config = ProxyConfig(None, {"http_proxy": "http://127.0.0.1:3128", "no_proxy": no_proxy})
    chosen = config.for_origin(Origin("http", host, port))
    assert (chosen is None) == bypassed


def test_cgi_environment_ignores_upper_case_http_proxy() -> None:
    env = {"HTTP_PROXY": "http://127.0.0.9:1", "REQUEST_METHOD": "GET"}
    assert ProxyConfig(None, env).for_origin(Origin("http", "a.test", 80)) is None


# -- tinyproxy -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def run_tinyproxy(tmp_path: Path, *, basic_auth: tuple[str, str] | None = None) -> Iterator[str]:
    """Start tinyproxy on a free loopback port with its own config; yield its URL."""
    assert TINYPROXY is not None
    port = _free_port()
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Allow 127.0.0.1",
        "Timeout 10",
        "MaxClients 20",
        f'LogFile "{tmp_path / "tinyproxy.log"}"',
        "LogLevel Info",
        f'PidFile "{tmp_path / "tinyproxy.pid"}"',
    ]
    if basic_auth is not None:
        lines.append(f"BasicAuth {basic_auth[0]} {basic_auth[1]}")
    config = tmp_path / "tinyproxy.conf"
    config.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(
        [TINYPROXY, "-d", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"tinyproxy did not listen on {port}: {config.read_text()}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@needs_tinyproxy
def test_tinyproxy_forwards_http(
    server: ScriptedServer, make_client: Callable[..., rawkeep.Client], tmp_path: Path
) -> None:
    with run_tinyproxy(tmp_path) as proxy_url:
        client = make_client(proxy=proxy_url)
        bodies = [client.get(f"{server.url}/t{i}").content for i in range(3)]
        client.close()
    assert bodies == [b"/t0", b"/t1", b"/t2"]
    # tinyproxy announces itself to the origin server.
    assert all(request.header("via") for request in server.requests)


@needs_tinyproxy
def test_tinyproxy_connect_tunnel_with_tls_verified_against_target(
    start_keepalive_server: Callable[..., ScriptedServer],
    server_ssl_context: ssl.SSLContext,
    ca_pem_path: str,
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
    tmp_path: Path,
) -> None:
    tls_server = start_keepalive_server(ssl_context=server_ssl_context)
    with run_tinyproxy(tmp_path) as proxy_url:
        client = make_client(proxy=proxy_url, verify=ca_pem_path)
        first = client.get(tls_server.url + "/secret")
        second = client.get(tls_server.url + "/again")
        stats = client.pool_stats()
        client.close()
    assert (first.content, second.content) == (b"/secret", b"/again")
    assert second.reused
    assert (stats.opened, stats.reused) == (1, 1)
    # Inside the tunnel the request is in origin form: the target saw it.
    assert [r.target for r in tls_server.requests] == ["/secret", "/again"]
    assert tls_server.accepted == 1
    # The TLS details are the target's, agreed inside the tunnel.
    (opened,) = [e for e in events.snapshot() if isinstance(e, rawkeep.ConnectionOpened)]
    assert opened.tls is not None
    assert opened.tls.verified
    assert "IP Address:127.0.0.1" in opened.tls.subject_alt_names


@needs_tinyproxy
def test_tinyproxy_tunnel_still_verifies_the_target(
    start_keepalive_server: Callable[..., ScriptedServer],
    server_ssl_context: ssl.SSLContext,
    make_client: Callable[..., rawkeep.Client],
    tmp_path: Path,
) -> None:
    tls_server = start_keepalive_server(ssl_context=server_ssl_context)
    with run_tinyproxy(tmp_path) as proxy_url:
        client = make_client(proxy=proxy_url)  # system trust store: no trustme CA
        with pytest.raises(rawkeep.TLSError):
            client.get(tls_server.url)
        assert client.pool_stats().active == 0


@needs_tinyproxy
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_tinyproxy_basic_auth(
    start_keepalive_server: Callable[..., ScriptedServer],
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    make_client: Callable[..., rawkeep.Client],
    tmp_path: Path,
    scheme: str,
) -> None:
    target = start_keepalive_server(ssl_context=server_ssl_context if scheme == "https" else None)
    with run_tinyproxy(tmp_path, basic_auth=("alice", "s3cret")) as proxy_url:
        anonymous = make_client(proxy=proxy_url, verify=client_ssl_context)
        with pytest.raises(rawkeep.ProxyError) as info:
            anonymous.get(target.url + "/x")
        assert info.value.status == 407
        with_auth = make_client(
            proxy=proxy_url.replace("http://", "http://alice:s3cret@"),
            verify=client_ssl_context,
        )
        assert with_auth.get(target.url + "/y").content == b"/y"
        anonymous.close()
        with_auth.close()
    # The credentials were for the proxy: the target never saw them.
    assert all(r.header("proxy-authorization") is None for r in target.requests)


def test_slow_connect_answer_is_a_connect_timeout(
    start_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    def silent(conn: ServerConnection) -> None:
        conn.read_request()
        conn.wait_for_peer_close()

    proxy = start_server(silent)
    client = make_client(proxy=proxy.url, timeout=rawkeep.Timeout(5.0, connect=0.3))
    started = time.monotonic()
    with pytest.raises(rawkeep.ConnectTimeout, match="tunnel"):
        client.get("https://secure.test/")
    assert time.monotonic() - started < 3.0
    assert client.pool_stats().active == 0


# -- proxy URLs that can't be used ---------------------------------------------


def test_escaped_colon_in_proxy_user_name_is_an_invalid_url() -> None:
    url = "http://a%3Ab:s3cret@127.0.0.1:3128"
    for make in (
        lambda: rawkeep.Client(proxy=url),
        lambda: ProxyConfig(None, {"http_proxy": url}),
    ):
        with pytest.raises(rawkeep.InvalidURL, match="proxy") as info:
            make()
        assert "%3A" in str(info.value)
        assert "s3cret" not in str(info.value)
        assert isinstance(info.value.__cause__, rawkeep.InvalidURL)


def test_proxy_url_without_scheme_hides_its_credentials() -> None:
    with pytest.raises(rawkeep.InvalidURL, match="needs a scheme") as info:
        rawkeep.Client(proxy="u:s3cret@127.0.0.1:3128")
    assert "s3cret" not in str(info.value)
    assert "http://***@127.0.0.1:3128" in str(info.value)


def test_no_proxy_port_in_other_digits_is_no_port() -> None:
    # "²".isdigit() is true but int("²") fails; such an entry reads as one
    # without a port, like "example.org:abc".
    origin = Origin("http", "example.org", 80)
    chosen = [
        ProxyConfig(None, {"http_proxy": "http://127.0.0.1:3128", "no_proxy": entry}).for_origin(
            origin
        )
        for entry in ("example.org:²", "example.org:abc")
    ]
    assert chosen == [None, None]
