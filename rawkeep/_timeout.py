"""``Timeout``: the four per-operation time limits, and the "not given" sentinel."""

from __future__ import annotations

import enum
from typing import Final, TypeAlias, final

__all__ = [
    "DEFAULT_TIMEOUT",
    "USE_CLIENT_DEFAULT",
    "Timeout",
    "TimeoutInput",
    "UseClientDefault",
]


@final
class Timeout:
    """Time limits in seconds for each phase of a request; ``None`` is no limit.

    Args:
        timeout: sets all four at once (``Timeout(5.0)``); the keywords
            then override single phases.
        connect: TCP connect plus TLS handshake.
        read: each wait for response bytes (not the whole response).
        write: each wait for the server to accept request bytes.
        pool: the wait for a free connection when the pool limits are reached.

    Raises:
        ValueError: a limit is negative or not finite.
        TypeError: a limit is not a number.
    """

    __slots__ = ("connect", "pool", "read", "write")

    connect: float | None
    read: float | None
    write: float | None
    pool: float | None

    def __init__(
        self,
        timeout: float | None = None,
        *,
        connect: float | None = None,
        read: float | None = None,
        write: float | None = None,
        pool: float | None = None,
    ) -> None:
        # Timeout(5.0) sets all four; Timeout(connect=2) sets one and leaves
        # the others unlimited; Timeout(5.0, connect=2) mixes the two. A
        # keyword given as None falls back to the first argument.
        base = check_seconds("timeout", timeout)
        self.connect = base if connect is None else check_seconds("timeout connect", connect)
        self.read = base if read is None else check_seconds("timeout read", read)
        self.write = base if write is None else check_seconds("timeout write", write)
        self.pool = base if pool is None else check_seconds("timeout pool", pool)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Timeout):
            return NotImplemented
        return self._astuple() == other._astuple()

    def __hash__(self) -> int:
        return hash(self._astuple())

    def _astuple(self) -> tuple[float | None, ...]:
        return (self.connect, self.read, self.write, self.pool)

    def __repr__(self) -> str:
        return (
            f"Timeout(connect={self.connect}, read={self.read}, "
            f"write={self.write}, pool={self.pool})"
        )


def check_seconds(label: str, value: object) -> float | None:
    """``value`` as seconds (None passes through).

    Raises:
        TypeError: not a number (bool is not a number here).
        ValueError: negative, infinite, NaN, or too large for a float.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{label} must be a number of seconds or None, not {value!r}")
    try:
        seconds = float(value)
    except OverflowError:
        raise ValueError(
            f"{label} must be finite and >= 0, got an int too large for a float"
        ) from None
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"{label} must be finite and >= 0, got {value!r}")
    return seconds


class UseClientDefault(enum.Enum):
    """The type of ``USE_CLIENT_DEFAULT``.

    Per-request options need three states: "use the client's setting",
    "no limit" (``None``) and a value. ``None`` is taken, so "not given" is
    this one-member enum, which type checkers can tell apart from ``None``.
    """

    #: The per-request option was not given; the client's value applies.
    USE_CLIENT_DEFAULT = "use-client-default"


USE_CLIENT_DEFAULT: Final = UseClientDefault.USE_CLIENT_DEFAULT

#: What ``timeout=`` accepts: a Timeout, one number for all phases, or None.
TimeoutInput: TypeAlias = "Timeout | float | None"

#: The client's default: generous enough for slow servers, bounded so that a
#: dead peer never hangs a program forever.
DEFAULT_TIMEOUT: Final = Timeout(connect=10.0, read=30.0, write=30.0, pool=30.0)


def to_timeout(value: TimeoutInput) -> Timeout:
    """Normalise ``timeout=`` input."""
    if isinstance(value, Timeout):
        return value
    return Timeout(value)
