"""Loopback addresses that behave one way at the TCP level, for dial tests."""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["refusing"]


@contextlib.contextmanager
def refusing(host: str, port: int) -> Iterator[str]:
    """``host:port`` bound, not listening: connects are refused at once.
    Yields ``host``. Skips the test where the address can't be bound (a
    taken port; 127.0.0.2 is loopback on Linux only)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            pytest.skip(f"{host} port {port} can't be bound here: {exc}")
        yield host
