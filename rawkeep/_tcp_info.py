"""When did the server's FIN arrive? Linux's ``TCP_INFO`` says.

An idle connection the stale probe finds closed was closed by the server
at some moment before the probe. On Linux the kernel keeps, per socket,
the milliseconds since the last ACK came in (``tcpi_last_ack_recv``); on a
connection idle in the pool, whose requests and responses are all over,
the last segment to arrive with an ACK is the server's FIN. So "when the
FIN arrived" is "now less that", and the server's idle limit is that
moment less when the connection went idle (``_learned``).

Checked here, on Linux: a connection closed by its server 0.5 s after its
last response and probed 1.2 s after it reads state 8 (``CLOSE_WAIT``:
the FIN came, we have not closed) and ``last_ack_recv`` 700 ms; the same
field for data, ``last_data_recv``, reads 1,200 ms (the response). Data
is not used: over TLS the server's ``close_notify`` alert is data that
arrives with the FIN.

Elsewhere (no ``TCP_INFO``), or when the connection was reset rather than
closed, the answer is None and the probe's own moment bounds the limit.
"""

from __future__ import annotations

import socket
import struct
from typing import Final, Protocol

__all__ = ["fin_ago"]

#: ``struct tcp_info``: the state is its first byte; ``tcpi_last_ack_recv``
#: is the unsigned 32-bit field at byte 56 (after 8 bytes of small fields
#: and 12 32-bit ones).
_INFO_SIZE: Final = 104
_LAST_ACK_RECV: Final = 56
#: ``TCP_CLOSE_WAIT`` in Linux's ``tcp_states.h``.
_CLOSE_WAIT: Final = 8
_TCP_INFO: Final = getattr(socket, "TCP_INFO", None)


class _HasSockOpt(Protocol):
    def getsockopt(self, level: int, option: int, buflen: int) -> bytes: ...


def fin_ago(sock: _HasSockOpt | None) -> float | None:
    """Seconds since the server's FIN arrived on ``sock``, which it closed
    (None: not known, see the module docstring)."""
    if _TCP_INFO is None or sock is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _INFO_SIZE)
    except OSError:  # closed already, or not TCP (a Unix socket)
        return None
    if len(info) < _LAST_ACK_RECV + 4 or info[0] != _CLOSE_WAIT:
        return None
    (ago_ms,) = struct.unpack_from("I", info, _LAST_ACK_RECV)
    return float(ago_ms) / 1000
