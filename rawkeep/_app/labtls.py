"""A certificate for ``rawkeep serve --tls``, made by the ``openssl`` command.

rawkeep depends on h11 alone at run time, and the standard library can use
certificates but not make them. So the lab asks the ``openssl`` command,
present on most systems that have Python's ``ssl``, for a throw-away CA and
a server certificate signed by it, valid for ``127.0.0.1``, ``::1`` and
``localhost`` for a week. Both go into a directory the caller owns (and
removes); a client trusts the server by ``verify="<dir>/ca.pem"``.

A CA and a leaf, not one self-signed certificate: Python 3.13 verifies with
``VERIFY_X509_STRICT``, which wants a CA certificate to say it is one (and a
leaf to name its issuer's key) as public CAs' certificates do.
"""

from __future__ import annotations

import secrets
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Certificate", "CertificateError", "make_certificate"]

#: Longest the ``openssl`` commands may take together, in seconds.
OPENSSL_TIMEOUT: Final = 30.0
#: Days the certificates are valid.
VALID_DAYS: Final = 7

#: The ``openssl req`` configuration: the extensions of each certificate,
#: given here so that the system's openssl.cnf adds nothing of its own.
_CONFIG: Final = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = rawkeep serve
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, IP:::1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""
#: A P-256 key: made in milliseconds, where RSA takes a noticeable moment.
_NEW_KEY: Final = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")


class CertificateError(Exception):
    """No certificate could be made: ``openssl`` is missing or failed."""


@dataclass(frozen=True, kw_only=True)
class Certificate:
    """The files of one lab certificate."""

    #: The CA to trust (``verify=``, ``--cacert``).
    ca: Path
    #: The server's certificate, and its private key.
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context that presents this certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_certificate(directory: Path) -> Certificate:
    """Make a CA and a server certificate for loopback in ``directory``.

    Raises:
        CertificateError: there is no ``openssl`` command, or it failed.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise CertificateError(
            "--tls needs the openssl command to make a certificate, and none is on PATH"
            " (install OpenSSL, e.g. apt-get install openssl)"
        )
    config = directory / "openssl.cnf"
    config.write_text(_CONFIG, encoding="ascii")
    made = Certificate(
        ca=directory / "ca.pem", cert=directory / "cert.pem", key=directory / "key.pem"
    )
    ca_key, request = directory / "ca-key.pem", directory / "cert.csr"
    common = ("-config", str(config), "-days", str(VALID_DAYS))
    ca = ("-extensions", "ca", "-subj", "/CN=rawkeep serve CA")
    _run(
        openssl,
        "req",
        "-x509",
        *common,
        *ca,
        *_NEW_KEY,
        "-keyout",
        str(ca_key),
        "-out",
        str(made.ca),
    )
    leaf = ("-subj", "/CN=127.0.0.1", "-keyout", str(made.key), "-out", str(request))
    _run(openssl, "req", "-new", "-config", str(config), *_NEW_KEY, *leaf)
    signer = ("-CA", str(made.ca), "-CAkey", str(ca_key), "-set_serial", str(secrets.randbits(63)))
    extensions = ("-extfile", str(config), "-extensions", "leaf")
    signed = ("-days", str(VALID_DAYS), "-out", str(made.cert))
    _run(openssl, "x509", "-req", "-in", str(request), *signer, *extensions, *signed)
    return made


def _run(*command: str) -> None:
    """Run one ``openssl`` command.

    Raises:
        CertificateError: it failed, or took longer than ``OPENSSL_TIMEOUT``.
    """
    try:
        subprocess.run(command, capture_output=True, check=True, timeout=OPENSSL_TIMEOUT)
    except subprocess.CalledProcessError as exc:
        said = exc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CertificateError(
            f"openssl {command[1]} failed: {said[-1] if said else exc}"
        ) from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CertificateError(f"openssl {command[1]} failed: {exc}") from exc
