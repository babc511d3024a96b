"""HTTPS against a trustme-certified server on 127.0.0.1.

TLS adds its own ways for a connection to look alive when it is not (and the
reverse), so the keep-alive story is re-checked over TLS 1.2 and 1.3.
"""

from __future__ import annotations

import ssl
import time
from typing import TYPE_CHECKING

import pytest
from servers import faults
from servers.h11server import Reply

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import trustme
    from servers.recorder import EventRecorder
    from servers.scripted import ReceivedRequest, ScriptedServer

pytestmark = pytest.mark.both_clients

OPENED = ("ConnectionOpened", None)
REUSED = ("ConnectionReused", None)


@pytest.fixture(params=["TLSv1_2", "TLSv1_3"])
def tls_server(
    request: pytest.FixtureRequest,
    server_ssl_context: ssl.SSLContext,
    start_keepalive_server: Callable[..., ScriptedServer],
) -> ScriptedServer:
    """A keep-alive HTTPS server speaking only the parametrized TLS version."""
    version = getattr(ssl.TLSVersion, request.param)
    server_ssl_context.minimum_version = version
    server_ssl_context.maximum_version = version
    return start_keepalive_server(ssl_context=server_ssl_context)


@pytest.mark.parametrize("verify_kind", ["ca-path", "ssl-context"])
def test_verified_https_reuses_connection(
    tls_server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
    ca_pem_path: str,
    client_ssl_context: ssl.SSLContext,
    verify_kind: str,
) -> None:
    verify = ca_pem_path if verify_kind == "ca-path" else client_ssl_context
    client = make_client(verify=verify)
    responses = [client.get(f"{tls_server.url}/{i}") for i in range(3)]

    assert tls_server.url.startswith("https://127.0.0.1:")
    assert [r.content for r in responses] == [b"/0", b"/1", b"/2"]
    assert [r.reused for r in responses] == [False, True, True]
    assert tls_server.requests_per_connection() == [3]
    assert events.summary() == [OPENED, REUSED, REUSED]
    assert {e.origin for e in events.snapshot()} == {tls_server.origin}
    assert set(client.pool_stats().per_host) == {tls_server.origin}


def test_default_verify_rejects_private_ca(
    tls_server: ScriptedServer,
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    with pytest.raises(rawkeep.TLSError):
        client.get(tls_server.url)
    assert tls_server.requests == []
    assert events.count("ConnectionOpened") == 0
    stats = client.pool_stats()
    assert (stats.active, stats.idle) == (0, 0)


def test_verify_false_accepts_any_certificate(
    tls_server: ScriptedServer, make_client: Callable[..., rawkeep.Client]
) -> None:
    client = make_client(verify=False)
    assert client.get(f"{tls_server.url}/x").content == b"/x"
    assert client.get(f"{tls_server.url}/y").reused


def test_hostname_mismatch_is_rejected(
    tls_ca: trustme.CA,
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    ca_pem_path: str,
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("other.test").configure_cert(context)
    server = start_keepalive_server(ssl_context=context)
    client = make_client(verify=ca_pem_path)
    with pytest.raises(rawkeep.TLSError):
        client.get(server.url)
    assert server.requests == []
    assert client.pool_stats().active == 0


def test_client_certificate_is_presented(
    tls_ca: trustme.CA,
    server_ssl_context: ssl.SSLContext,
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    ca_pem_path: str,
    tmp_path: Path,
) -> None:
    server_ssl_context.verify_mode = ssl.CERT_REQUIRED
    tls_ca.configure_trust(server_ssl_context)
    server = start_keepalive_server(ssl_context=server_ssl_context)
    identity = tmp_path / "client.pem"
    tls_ca.issue_cert("client.test").private_key_and_cert_chain_pem.write_to_path(str(identity))

    client = make_client(verify=ca_pem_path, cert=str(identity))
    assert client.get(f"{server.url}/mtls").content == b"/mtls"
    assert server.accepted == 1


def test_stale_tls_connection_is_discarded(
    server_ssl_context: ssl.SSLContext,
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
    ca_pem_path: str,
) -> None:
    server = start_keepalive_server(ssl_context=server_ssl_context, idle_close_after=0.1)
    client = make_client(verify=ca_pem_path)
    client.get(server.url)
    assert server.wait_for_closed(0)
    time.sleep(0.05)  # let the FIN land in the client's socket
    assert client.get(server.url).status == 200
    assert events.summary() == [OPENED, ("StaleConnectionDiscarded", None), OPENED]


def test_tls_keep_alive_race_is_retried(
    server_ssl_context: ssl.SSLContext,
    start_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
    ca_pem_path: str,
) -> None:
    server = start_server(
        faults.per_connection(
            faults.serve_then(1, faults.close_without_response), faults.keep_serving
        ),
        ssl_context=server_ssl_context,
    )
    client = make_client(verify=ca_pem_path)
    client.get(f"{server.url}/first")
    assert client.get(f"{server.url}/second").content == b"ok"
    assert server.requests_per_connection() == [2, 1]
    assert events.count("RequestRetried") == 1


def test_tls_unread_large_body_closes_small_is_drained(
    server_ssl_context: ssl.SSLContext,
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
    ca_pem_path: str,
) -> None:
    def respond(request: ReceivedRequest) -> Reply:
        size = 1024 * 1024 if request.target == "/big" else 1024
        return Reply(body=b"b" * size)

    server = start_keepalive_server(ssl_context=server_ssl_context, respond=respond)
    client = make_client(verify=ca_pem_path)
    with client.stream("GET", f"{server.url}/small"):
        pass
    with client.stream("GET", f"{server.url}/big"):
        pass
    assert events.summary() == [OPENED, REUSED, ("ConnectionClosed", "unread_body")]
    assert client.pool_stats().active == 0


def test_ca_path_trusts_only_that_bundle(ca_pem_path: str) -> None:
    from rawkeep._socket import make_ssl_context

    context = make_ssl_context(ca_pem_path)
    (only,) = context.get_ca_certs()
    assert only["subject"] == only["issuer"]  # the trustme root, and nothing else
    assert context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
