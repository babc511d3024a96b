"""``resolve=``: names dialed at given addresses, on both clients (curl's --resolve).

Every name here ends in ``.test`` and is never looked up: the suite's
loopback guard (conftest) makes a look-up of such a name fail, so a test
whose mapping were missed would fail with ``ConnectError`` rather than go
to the network (``test_an_entry_for_another_port_is_not_used`` shows it).
A dead address is 127.0.0.2 at the server's port, bound and not listening:
connects to it are refused at once.
"""

from __future__ import annotations

import ssl
import time
from typing import TYPE_CHECKING, Any

import pytest
from servers.addresses import refusing
from servers.scripted import render_response

import rawkeep
from rawkeep._tcp import ATTEMPT_DELAY

if TYPE_CHECKING:
    from collections.abc import Callable

    import trustme
    from servers.recorder import EventRecorder
    from servers.scripted import ScriptedServer, ServerConnection

pytestmark = pytest.mark.both_clients


def test_a_name_is_dialed_at_its_address_and_keeps_its_name(
    make_client: Callable[..., rawkeep.Client], server: ScriptedServer, events: EventRecorder
) -> None:
    client = make_client(resolve={f"example.test:{server.port}": "127.0.0.1"})
    url = f"http://example.test:{server.port}"
    first = client.get(f"{url}/a")
    second = client.get(f"{url}/b")
    assert (first.content, second.content) == (b"/a", b"/b")
    assert second.reused
    assert [r.header("host") for r in server.requests] == [
        f"example.test:{server.port}".encode()
    ] * 2
    assert list(client.pool_stats().per_host) == [url]
    assert {event.origin for event in events.snapshot()} == {url}


def test_a_key_without_port_stands_for_every_port(
    make_client: Callable[..., rawkeep.Client], server: ScriptedServer
) -> None:
    client = make_client(resolve={"Example.TEST": ["[127.0.0.1]"]})
    assert client.get(f"http://example.test:{server.port}/x").content == b"/x"


def test_host_and_port_wins_over_host(
    make_client: Callable[..., rawkeep.Client], server: ScriptedServer
) -> None:
    with refusing("127.0.0.2", server.port) as dead:
        client = make_client(
            resolve={"example.test": dead, f"example.test:{server.port}": "127.0.0.1"}
        )
        assert client.get(f"http://example.test:{server.port}/x").content == b"/x"


def test_an_entry_for_another_port_is_not_used(
    make_client: Callable[..., rawkeep.Client], server: ScriptedServer
) -> None:
    client = make_client(resolve={f"example.test:{server.port + 1}": "127.0.0.1"})
    # Looked up, and the loopback guard answers that example.test has no address.
    with pytest.raises(rawkeep.ConnectError):
        client.get(f"http://example.test:{server.port}/")
    assert server.accepted == 0


def test_a_dead_first_address_hands_over_to_the_next(
    make_client: Callable[..., rawkeep.Client], server: ScriptedServer, events: EventRecorder
) -> None:
    with refusing("127.0.0.2", server.port) as dead:
        client = make_client(resolve={"example.test": [dead, "127.0.0.1"]})
        started = time.monotonic()
        response = client.get(f"http://example.test:{server.port}/x")
        elapsed = time.monotonic() - started
        assert response.content == b"/x"
        # A refusal hands over at once, not after the attempt delay.
        assert elapsed < ATTEMPT_DELAY
        assert events.summary() == [("ConnectionOpened", None)]
        # The address alone is dead indeed.
        alone = make_client(resolve={"example.test": dead})
        with pytest.raises(rawkeep.ConnectError, match="refused"):
            alone.get(f"http://example.test:{server.port}/x")
    assert server.accepted == 1


def test_the_proxy_host_is_resolved_the_target_is_the_proxys(
    make_client: Callable[..., rawkeep.Client],
    start_server: Callable[..., ScriptedServer],
) -> None:
    def answering_proxy(conn: ServerConnection) -> None:
        while (request := conn.read_request()) is not None:
            conn.send(render_response(200, request.target.encode()))

    proxy = start_server(answering_proxy)
    client = make_client(
        proxy=f"http://proxy.test:{proxy.port}",
        resolve={"proxy.test": "127.0.0.1", "example.test": "127.0.0.2"},
    )
    response = client.get("http://example.test:8080/a")
    # The proxy was dialed at its mapped address; the target's name went to it.
    assert response.content == b"http://example.test:8080/a"
    assert proxy.requests[0].header("host") == b"example.test:8080"


# -- https: SNI and the certificate check use the name -----------------------------------


@pytest.fixture
def named_tls_server(
    tls_ca: trustme.CA, start_keepalive_server: Callable[..., ScriptedServer]
) -> tuple[ScriptedServer, list[str | None]]:
    """An https server whose certificate names example.test only (not its
    address); with the server names its clients asked for (SNI)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("example.test").configure_cert(context)
    names: list[str | None] = []

    def record(sock: Any, name: str | None, context: ssl.SSLContext) -> None:
        names.append(name)

    context.sni_callback = record
    return start_keepalive_server(ssl_context=context), names


def test_https_verifies_the_name_and_sends_it_in_sni(
    make_client: Callable[..., rawkeep.Client],
    named_tls_server: tuple[ScriptedServer, list[str | None]],
    ca_pem_path: str,
) -> None:
    server, names = named_tls_server
    client = make_client(verify=ca_pem_path, resolve={"example.test": "127.0.0.1"})
    response = client.get(f"https://example.test:{server.port}/s")
    assert response.content == b"/s"
    assert names == ["example.test"]
    assert server.requests[0].header("host") == f"example.test:{server.port}".encode()


def test_https_checks_the_name_not_the_address(
    make_client: Callable[..., rawkeep.Client],
    named_tls_server: tuple[ScriptedServer, list[str | None]],
    ca_pem_path: str,
) -> None:
    server, _ = named_tls_server
    client = make_client(verify=ca_pem_path, resolve={"other.test": "127.0.0.1"})
    # The right address, a name the certificate does not carry: refused.
    with pytest.raises(rawkeep.TLSError):
        client.get(f"https://other.test:{server.port}/")
    # The address itself is not in the certificate either.
    with pytest.raises(rawkeep.TLSError):
        client.get(f"https://127.0.0.1:{server.port}/")
    assert server.requests == []


def test_https_localhost_resolved_to_its_address_verifies(
    make_client: Callable[..., rawkeep.Client],
    server_ssl_context: ssl.SSLContext,
    start_keepalive_server: Callable[..., ScriptedServer],
    ca_pem_path: str,
) -> None:
    server = start_keepalive_server(ssl_context=server_ssl_context)
    client = make_client(verify=ca_pem_path, resolve={f"localhost:{server.port}": "127.0.0.1"})
    assert client.get(f"https://localhost:{server.port}/l").content == b"/l"


# -- bad input, before any I/O -----------------------------------------------------


@pytest.mark.parametrize(
    ("resolve", "error", "named"),
    [
        ("example.test:127.0.0.1", TypeError, "mapping"),
        ([("example.test", "127.0.0.1")], TypeError, "mapping"),
        ({1: "127.0.0.1"}, TypeError, "1"),
        ({"example.test": 127}, TypeError, "example.test"),
        ({"example.test": b"127.0.0.1"}, TypeError, "example.test"),
        ({"example.test": ["127.0.0.1", None]}, TypeError, "None"),
        ({"example.test": "example.org"}, ValueError, "example.org"),
        ({"example.test": "127.0.0.1:80"}, ValueError, "127.0.0.1:80"),
        ({"example.test": []}, ValueError, "example.test"),
        ({"example.test:0": "127.0.0.1"}, ValueError, "example.test:0"),
        ({"example.test:http": "127.0.0.1"}, ValueError, "example.test:http"),
        ({"::1:80": "::1"}, ValueError, "brackets"),
        ({"[::1:80": "::1"}, ValueError, r"\[::1:80"),
        ({"": "127.0.0.1"}, ValueError, "host"),
        ({"a b": "127.0.0.1"}, ValueError, "a b"),
        ({"user@example.test": "127.0.0.1"}, ValueError, "user@example.test"),
    ],
)
def test_bad_entries_are_refused_when_the_client_is_made(
    client_kind: str, resolve: Any, error: type[Exception], named: str
) -> None:
    kind = rawkeep.AsyncClient if client_kind == "async" else rawkeep.Client
    with pytest.raises(error, match=named):
        kind(resolve=resolve)
