"""What an OS or TLS error means to rawkeep, without I/O.

The blocking sockets (``_socket``) and the asyncio transports
(``_aio_socket``) meet the same failures in different clothes; both turn
them into rawkeep's errors here, so the two shells raise the same classes
with the same words. Each function returns the error to raise (``raise
connect_failed(...) from exc``): the caller keeps the chain.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from ._exceptions import (
    ConnectError,
    ConnectTimeout,
    RawkeepError,
    ReadTimeout,
    RemoteProtocolError,
    TLSError,
    WriteTimeout,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "attempts_failed",
    "connect_failed",
    "connect_unix_failed",
    "lost_while",
    "read_timed_out",
    "tls_failed",
    "tls_timed_out",
    "write_timed_out",
]


def _reason(exc: OSError) -> object:
    # asyncio words a failed connect "Connect call failed ('127.0.0.1', 1)"
    # where the socket module says "Connection refused": the errno is the
    # same, so its text is taken from the errno when there is one.
    errno = exc.errno
    if isinstance(errno, int) and errno > 0:
        return os.strerror(errno)
    return exc.strerror or exc


def connect_failed(exc: OSError, host: str, port: int, timeout: float | None) -> RawkeepError:
    """A TCP connect to ``host:port`` failed with ``exc``."""
    if isinstance(exc, TimeoutError):
        return ConnectTimeout(f"connect to {host}:{port} timed out after {timeout} s")
    if isinstance(exc, socket.gaierror):
        return ConnectError(f"could not resolve {host!r}: {exc.strerror}")
    return ConnectError(f"could not connect to {host}:{port}: {_reason(exc)}")


def attempts_failed(
    host: str,
    port: int,
    failures: Sequence[tuple[str, OSError]],
    timeout: float | None,
    *,
    timed_out: bool,
) -> RawkeepError:
    """No connect attempt to ``host:port`` succeeded: each failed, or the
    deadline passed (``timed_out``) before one connected. ``failures``
    holds each address tried, in order, with its error (a ``TimeoutError``
    for those the deadline ended). The addresses are named unless the one
    address tried is ``host`` itself (an IP literal)."""
    tried = [address for address, _ in failures]
    named = "" if tried in ([host], []) else f" ({', '.join(tried)})"
    if timed_out:
        return ConnectTimeout(f"connect to {host}:{port}{named} timed out after {timeout} s")
    if not failures:
        return ConnectError(f"could not resolve {host!r}: no address")
    reasons = [str(_reason(exc)) for _, exc in failures]
    if len(set(reasons)) > 1:
        reasons = [f"{address}: {reason}" for address, reason in zip(tried, reasons, strict=True)]
    return ConnectError(
        f"could not connect to {host}:{port}{named}: {'; '.join(dict.fromkeys(reasons))}"
    )


def connect_unix_failed(exc: OSError, path: str, timeout: float | None) -> RawkeepError:
    """A connect to the Unix socket at ``path`` failed with ``exc``."""
    if isinstance(exc, TimeoutError):
        return ConnectTimeout(f"connect to {path} timed out after {timeout} s")
    return ConnectError(f"could not connect to {path}: {_reason(exc)}")


def tls_failed(exc: OSError, server_hostname: str) -> RawkeepError:
    """The TLS handshake with ``server_hostname`` failed with ``exc``: a
    certificate that did not verify, any other TLS failure, a timeout, or
    the connection lost under it."""
    import ssl  # the handshake loaded it already

    if isinstance(exc, ssl.SSLCertVerificationError):
        return TLSError(f"certificate verify failed for {server_hostname}: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        return TLSError(f"TLS handshake with {server_hostname} failed: {exc}")
    if isinstance(exc, TimeoutError):
        return tls_timed_out(server_hostname)
    return ConnectError(f"connection lost during TLS handshake: {exc}")


def tls_timed_out(server_hostname: str) -> ConnectTimeout:
    return ConnectTimeout(f"TLS handshake with {server_hostname} timed out")


def read_timed_out(timeout: float | None) -> ReadTimeout:
    return ReadTimeout(f"read timed out after {timeout} s")


def write_timed_out(timeout: float | None) -> WriteTimeout:
    return WriteTimeout(f"write timed out after {timeout} s")


def lost_while(doing: str, reason: object) -> RemoteProtocolError:
    """The peer went away (reset, broken pipe, TLS alert) while ``doing``
    ("reading" or "sending")."""
    return RemoteProtocolError(f"connection lost while {doing}: {reason}")
