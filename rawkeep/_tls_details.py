"""What a TLS handshake agreed, kept once per connection.

``curl -v`` tells, for each TLS connection, the protocol version, the
cipher and the server's certificate (subject, issuer, dates, names). The
same facts are read here from the connection's ``ssl`` object once the
handshake is over (``ssl.SSLSocket`` in the blocking shell,
``ssl.SSLObject`` in the asyncio one: both have the four methods read) and
kept as a frozen ``TLSDetails`` on the connection, for
``ConnectionOpened.tls``. A reused connection pays nothing for them.

What ``ssl`` shows of the certificate depends on whether it was verified:
``getpeercert()`` gives its parsed fields only then, and an empty dict with
``verify=False``. The certificate's DER could still be parsed by hand, but
that needs an ASN.1 reader rawkeep does not carry (its one dependency is
h11): an unverified connection's details say so and leave the certificate
fields empty.

This module does not import ``ssl``: it only reads an object that
``ssl`` made, so plain-http programs never pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, final

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["TLSDetails", "format_name", "read_tls_details"]

#: OpenSSL's short names for the attributes ``ssl`` names in full, as
#: curl and ``openssl x509 -subject`` print them (OpenSSL crypto/objects/objects.txt).
_SHORT_NAMES: Final = {
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "commonName": "CN",
    "domainComponent": "DC",
    "userId": "UID",
    "streetAddress": "street",
    "surname": "SN",
    "givenName": "GN",
}


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TLSDetails:
    """What the TLS handshake of one connection agreed, and the server's
    certificate as far as it was verified.

    Attributes:
        version: the protocol version, e.g. ``"TLSv1.3"``.
        cipher: the cipher suite's name, e.g. ``"TLS_AES_256_GCM_SHA384"``.
        cipher_bits: the cipher's secret key length in bits (None: not known).
        alpn: the protocol agreed by ALPN, e.g. ``"http/1.1"`` (None: the
            server chose none).
        verified: the certificate chain was verified against the trusted
            CAs (False with ``verify=False``: then the fields below are
            empty, since ``ssl`` does not parse an unverified certificate).
        subject: the certificate's subject as curl prints it,
            e.g. ``"C=US; O=Example; CN=example.com"`` (None: not shown).
        issuer: the issuer, in the same form (None: not shown).
        subject_alt_names: its subjectAltName entries, each as
            ``"DNS:localhost"`` or ``"IP Address:127.0.0.1"``.
        not_before: the start of its validity, as in the certificate,
            e.g. ``"Jan  5 09:34:43 2025 GMT"`` (``ssl.cert_time_to_seconds``
            reads it); None: not shown.
        not_after: the end of its validity, in the same form.
    """

    version: str
    cipher: str
    cipher_bits: int | None = None
    alpn: str | None = None
    verified: bool
    subject: str | None = None
    issuer: str | None = None
    subject_alt_names: tuple[str, ...] = ()
    not_before: str | None = None
    not_after: str | None = None


class TLSObject(Protocol):
    """What is read of ``ssl.SSLSocket`` or ``ssl.SSLObject``."""

    def version(self) -> str | None: ...

    def cipher(self) -> tuple[str, str, int] | None: ...

    def getpeercert(self) -> object: ...

    def selected_alpn_protocol(self) -> str | None: ...


def read_tls_details(tls: TLSObject) -> TLSDetails:
    """The details of a connection whose handshake is complete."""
    cipher = tls.cipher()
    cert = tls.getpeercert()
    fields = cert if isinstance(cert, dict) else {}
    return TLSDetails(
        version=tls.version() or "unknown",
        cipher=cipher[0] if cipher else "unknown",
        cipher_bits=cipher[2] if cipher else None,
        alpn=tls.selected_alpn_protocol(),
        # ssl parses the certificate only once it was verified (module docstring).
        verified=bool(fields),
        subject=_name_field(fields.get("subject")),
        issuer=_name_field(fields.get("issuer")),
        subject_alt_names=tuple(
            f"{kind}:{value}" for kind, value in _pairs(fields.get("subjectAltName"))
        ),
        not_before=_text_field(fields.get("notBefore")),
        not_after=_text_field(fields.get("notAfter")),
    )


def format_name(name: Iterable[Iterable[tuple[str, str]]]) -> str:
    """A distinguished name as curl prints it: ``"C=US; O=Example; CN=host"``.

    Args:
        name: as ``getpeercert()`` gives a subject or issuer: its relative
            names in certificate order, each a sequence of (attribute,
            value) pairs (several only in a multi-valued one, joined by
            ``+`` as OpenSSL does). Attributes get OpenSSL's short names
            (``commonName`` -> ``CN``); others are kept as given.
    """
    return "; ".join(
        "+".join(f"{_SHORT_NAMES.get(key, key)}={value}" for key, value in rdn) for rdn in name
    )


def _name_field(value: object) -> str | None:
    if not isinstance(value, tuple):
        return None
    return format_name(_pairs(rdn) for rdn in value)


def _pairs(value: object) -> list[tuple[str, str]]:
    """The (str, str) pairs of one of getpeercert's tuples; anything else dropped."""
    if not isinstance(value, tuple):
        return []
    return [
        (pair[0], pair[1])
        for pair in value
        if isinstance(pair, tuple)
        and len(pair) == 2
        and isinstance(pair[0], str)
        and isinstance(pair[1], str)
    ]


def _text_field(value: object) -> str | None:
    return value if isinstance(value, str) else None
