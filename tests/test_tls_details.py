"""ConnectionOpened.tls against a real TLS server, on both clients: what the
handshake agreed and the server's certificate, once per new connection."""

from __future__ import annotations

import ssl
import time
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from servers.h11server import Reply

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable

    import trustme
    from servers.recorder import EventRecorder
    from servers.scripted import ReceivedRequest, ScriptedServer

pytestmark = pytest.mark.both_clients

#: The common name put in the test server's certificate.
SERVER_CN = "rawkeep test server"


@pytest.fixture(scope="module")
def named_cert(tls_ca: trustme.CA) -> trustme.LeafCert:
    """A certificate for 127.0.0.1 and localhost with a common name."""
    return tls_ca.issue_cert("127.0.0.1", "localhost", common_name=SERVER_CN)


@pytest.fixture
def tls_server(
    named_cert: trustme.LeafCert, start_keepalive_server: Callable[..., ScriptedServer]
) -> ScriptedServer:
    """A keep-alive HTTPS server that agrees to http/1.1 by ALPN."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    named_cert.configure_cert(context)
    context.set_alpn_protocols(["http/1.1"])
    return start_keepalive_server(ssl_context=context)


def ca_name(ca: trustme.CA) -> str:
    """The CA's subject as curl prints it, read with ``cryptography``
    (trustme's CA names its organization, then its unit)."""
    subject = x509.load_pem_x509_certificate(ca.cert_pem.bytes()).subject
    org = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    unit = subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value
    return f"O={org!s}; OU={unit!s}"


def opened(events: EventRecorder) -> list[rawkeep.ConnectionOpened]:
    return [e for e in events.snapshot() if isinstance(e, rawkeep.ConnectionOpened)]


def test_verified_connection_tells_its_certificate(
    tls_server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
    ca_pem_path: str,
    tls_ca: trustme.CA,
) -> None:
    client = make_client(verify=ca_pem_path)
    assert [client.get(f"{tls_server.url}/{i}").reused for i in range(2)] == [False, True]

    (event,) = opened(events)  # the reuse read nothing again
    tls = event.tls
    assert isinstance(tls, rawkeep.TLSDetails)
    assert tls.version == event.tls_version
    assert tls.version.startswith("TLSv1.")
    assert tls.cipher
    assert tls.cipher_bits is not None
    assert tls.cipher_bits >= 128
    assert tls.alpn == "http/1.1"
    assert tls.verified is True
    assert tls.subject is not None
    assert tls.subject.endswith(f"; CN={SERVER_CN}")
    assert tls.issuer == ca_name(tls_ca)
    assert set(tls.subject_alt_names) == {"DNS:localhost", "IP Address:127.0.0.1"}
    assert tls.not_before is not None
    assert tls.not_after is not None
    assert ssl.cert_time_to_seconds(tls.not_before) < time.time()
    assert ssl.cert_time_to_seconds(tls.not_after) > time.time()


def test_unverified_connection_says_so(
    tls_server: ScriptedServer, make_client: Callable[..., rawkeep.Client], events: EventRecorder
) -> None:
    client = make_client(verify=False)
    assert client.get(f"{tls_server.url}/k").content == b"/k"

    (event,) = opened(events)
    tls = event.tls
    assert tls is not None
    assert tls.verified is False
    assert tls.version.startswith("TLSv1.")
    assert tls.cipher
    assert (tls.subject, tls.issuer, tls.not_before, tls.not_after) == (None, None, None, None)
    assert tls.subject_alt_names == ()


def test_each_redirect_hop_has_its_own(
    tls_server: ScriptedServer,
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
    ca_pem_path: str,
) -> None:
    def to_https(request: ReceivedRequest) -> Reply:
        return Reply(status=302, headers=[("Location", f"{tls_server.url}/landed")])

    plain = start_keepalive_server(respond=to_https)
    client = make_client(verify=ca_pem_path, follow_redirects=True)
    response = client.get(f"{plain.url}/start")

    assert response.content == b"/landed"
    first, second = opened(events)
    assert (first.origin, first.tls_version, first.tls) == (plain.origin, None, None)
    assert second.origin == tls_server.origin
    assert second.tls is not None
    assert second.tls.verified is True
    assert second.tls.subject is not None
    assert second.tls.subject.endswith(f"CN={SERVER_CN}")
