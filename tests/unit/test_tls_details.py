"""TLSDetails: read from what ``ssl`` gives, formatted as curl prints it."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import pytest

import rawkeep
from rawkeep._app.story import Story, tls_lines
from rawkeep._events import ConnectionOpened, describe
from rawkeep._tls_details import TLSDetails, format_name, read_tls_details

#: A certificate as ``getpeercert()`` gives it once verified (the shape of
#: CPython's ``_ssl._decode_certificate``): names are tuples of relative
#: names, each a tuple of (attribute, value) pairs.
VERIFIED_CERT: dict[str, Any] = {
    "subject": (
        (("countryName", "FR"),),
        (("organizationName", "Example; Labs"),),
        (("commonName", "localhost"),),
    ),
    "issuer": ((("organizationName", "rawkeep tests"),), (("commonName", "rawkeep test CA"),)),
    "version": 3,
    "serialNumber": "01",
    "notBefore": "Jan  5 09:34:43 2026 GMT",
    "notAfter": "Jan  5 09:34:43 2027 GMT",
    "subjectAltName": (("DNS", "localhost"), ("IP Address", "127.0.0.1")),
}

OPENED: dict[str, Any] = {
    "connection_id": 3,
    "origin": "https://127.0.0.1:8443",
    "time": 1_700_000_000.5,
    "tls_version": "TLSv1.3",
    "connect_time": 0.004,
}


class Handshake:
    """Plain values behind the four methods ``read_tls_details`` reads of
    ``ssl.SSLSocket`` / ``ssl.SSLObject``."""

    def __init__(self, cert: object, *, alpn: str | None = "http/1.1") -> None:
        self._cert = cert
        self._alpn = alpn

    def version(self) -> str | None:
        return "TLSv1.3"

    def cipher(self) -> tuple[str, str, int] | None:
        return ("TLS_AES_256_GCM_SHA384", "TLSv1.3", 256)

    def getpeercert(self) -> object:
        return self._cert

    def selected_alpn_protocol(self) -> str | None:
        return self._alpn


def verified() -> TLSDetails:
    return read_tls_details(Handshake(VERIFIED_CERT))


# -- format_name ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ([[("commonName", "localhost")]], "CN=localhost"),
        (
            [
                [("countryName", "US")],
                [("organizationName", "DigiCert Inc")],
                [("commonName", "x")],
            ],
            "C=US; O=DigiCert Inc; CN=x",
        ),
        (
            [
                [("stateOrProvinceName", "CA")],
                [("localityName", "SF")],
                [("domainComponent", "org")],
            ],
            "ST=CA; L=SF; DC=org",
        ),
        # A multi-valued relative name is joined by "+", as OpenSSL prints it.
        ([[("organizationalUnitName", "a"), ("commonName", "b")]], "OU=a+CN=b"),
        # Attributes without a short name are kept as given.
        ([[("emailAddress", "ops@example.com")]], "emailAddress=ops@example.com"),
        ([], ""),
    ],
)
def test_format_name(name: list[list[tuple[str, str]]], expected: str) -> None:
    assert format_name(name) == expected


# -- read_tls_details -------------------------------------------------------------


def test_a_verified_certificate_is_read_whole() -> None:
    assert verified() == TLSDetails(
        version="TLSv1.3",
        cipher="TLS_AES_256_GCM_SHA384",
        cipher_bits=256,
        alpn="http/1.1",
        verified=True,
        subject="C=FR; O=Example; Labs; CN=localhost",
        issuer="O=rawkeep tests; CN=rawkeep test CA",
        subject_alt_names=("DNS:localhost", "IP Address:127.0.0.1"),
        not_before="Jan  5 09:34:43 2026 GMT",
        not_after="Jan  5 09:34:43 2027 GMT",
    )


@pytest.mark.parametrize("cert", [{}, None], ids=["verify-off", "no-certificate"])
def test_an_unverified_certificate_shows_nothing(cert: object) -> None:
    details = read_tls_details(Handshake(cert, alpn=None))
    assert details.verified is False
    assert (details.subject, details.issuer, details.not_before, details.not_after) == (
        None,
        None,
        None,
        None,
    )
    assert details.subject_alt_names == ()
    assert (details.version, details.cipher, details.alpn) == (
        "TLSv1.3",
        "TLS_AES_256_GCM_SHA384",
        None,
    )


def test_unexpected_shapes_are_dropped_not_raised() -> None:
    odd = {"subject": "CN=x", "issuer": ((("commonName", 7),),), "subjectAltName": (("DNS",),)}
    details = read_tls_details(Handshake(odd))
    assert (details.subject, details.issuer, details.subject_alt_names) == (None, "", ())


def test_details_are_frozen_and_public() -> None:
    details = verified()
    assert rawkeep.TLSDetails is TLSDetails
    with pytest.raises(dataclasses.FrozenInstanceError):
        details.cipher = "NULL"  # type: ignore[misc]


# -- the event, its log line, its JSON ------------------------------------------------


def test_connection_opened_carries_them_and_defaults_to_none() -> None:
    assert ConnectionOpened(**OPENED).tls is None
    details = verified()
    assert ConnectionOpened(**OPENED, tls=details).tls is details


def test_to_dict_nests_them_as_plain_data() -> None:
    data = ConnectionOpened(**OPENED, tls=verified()).to_dict()
    assert data["tls"] == dataclasses.asdict(verified())
    assert data["tls"]["subject"] == "C=FR; O=Example; Labs; CN=localhost"
    json.dumps(data)  # a --trace line


def test_log_line_names_version_and_cipher() -> None:
    line = describe(ConnectionOpened(**OPENED, tls=verified()))
    assert (
        line
        == "ConnectionOpened #3 https://127.0.0.1:8443 TLSv1.3 TLS_AES_256_GCM_SHA384 in 4.0 ms"
    )
    unverified = read_tls_details(Handshake({}))
    line = describe(ConnectionOpened(**OPENED, tls=unverified))
    assert line.endswith(" TLSv1.3 TLS_AES_256_GCM_SHA384 unverified in 4.0 ms")


# -- rawkeep -v's lines --------------------------------------------------------------


def test_tls_lines_for_a_verified_certificate() -> None:
    assert tls_lines(verified()) == [
        "TLS connection using TLSv1.3 / TLS_AES_256_GCM_SHA384 (256 bits)",
        "ALPN: server accepted http/1.1",
        "Server certificate:",
        " subject: C=FR; O=Example; Labs; CN=localhost",
        " start date: Jan  5 09:34:43 2026 GMT",
        " expire date: Jan  5 09:34:43 2027 GMT",
        " subjectAltName: DNS:localhost, IP Address:127.0.0.1",
        " issuer: O=rawkeep tests; CN=rawkeep test CA",
        " certificate verified",
    ]


def test_tls_lines_for_an_unverified_certificate() -> None:
    details = read_tls_details(Handshake({}, alpn=None))
    assert tls_lines(details) == [
        "TLS connection using TLSv1.3 / TLS_AES_256_GCM_SHA384 (256 bits)",
        "server certificate not verified: details not shown",
    ]


def test_story_tells_them_after_the_connect_line(capsys: pytest.CaptureFixture[str]) -> None:
    story = Story(sys.stdout, exchange=True)
    story(ConnectionOpened(**OPENED, tls=verified()))
    story(ConnectionOpened(**{**OPENED, "tls_version": None, "connection_id": 4}))
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith("* connected to https://127.0.0.1:8443 as connection #3 in ")
    assert said[1:-1] == [f"* {line}" for line in tls_lines(verified())]
    # A connection without TLS details gets its one line only.
    assert said[-1].startswith("* connected to https://127.0.0.1:8443 as connection #4 in ")
