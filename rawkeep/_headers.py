"""``Headers``, a case-insensitive ordered multi-dict, and the Keep-Alive parser.

Header names compare case-insensitively (RFC 9110 section 5.1) but keep the
case they were given in, so what is sent is what the caller wrote. A name
may repeat; ``h[name]`` joins the values with ", " (RFC 9110 section 5.3),
``get_all`` returns them one by one (needed for ``Set-Cookie``, which must
not be joined).

Values are ``str`` decoded as Latin-1, the one decoding under which every
byte round-trips (RFC 9110 section 5.5 leaves non-ASCII octets "opaque").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import NamedTuple, TypeAlias

__all__ = ["Headers", "HeadersInput", "KeepAlive", "parse_keep_alive"]

#: What ``headers=`` accepts.
HeadersInput: TypeAlias = (
    "Headers | Mapping[str, str] | Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]]"
)


class Headers(MutableMapping[str, str]):
    """Case-insensitive, ordered, multi-valued HTTP headers.

    Args:
        headers: initial headers: another ``Headers``, a mapping, or an
            iterable of ``(name, value)`` pairs (``str`` or ``bytes``).

    Setting ``h[name] = value`` replaces every value of that name; ``add``
    appends one. Iteration yields each distinct name once, in first-seen
    order, as first written; ``items()`` yields every ``(name, value)``
    pair, repeats included.
    """

    __slots__ = ("_items",)

    def __init__(self, headers: HeadersInput | None = None) -> None:
        # (lower-case name, name as given, value)
        self._items: list[tuple[str, str, str]] = []
        if headers is None:
            return
        if isinstance(headers, Headers):
            self._items = list(headers._items)
            return
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in pairs:
            self.add(_text(name), _text(value))

    @classmethod
    def _from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Build from h11's ``raw_items()`` (already validated by h11)."""
        self = cls.__new__(cls)
        items = []
        for name, value in raw:
            text = name.decode("latin-1")
            items.append((text.lower(), text, value.decode("latin-1")))
        self._items = items
        return self

    def add(self, name: str, value: str) -> None:
        """Append a value for ``name``, keeping any existing ones."""
        self._items.append((name.lower(), name, value))

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in order; an empty list when absent."""
        key = name.lower()
        return [value for lower, _, value in self._items if lower == key]

    def __getitem__(self, name: str) -> str:
        values = self.get_all(name)
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __setitem__(self, name: str, value: str) -> None:
        key = name.lower()
        items = self._items
        for index, (lower, _, _) in enumerate(items):
            if lower == key:
                items[index] = (key, name, value)
                self._items = [
                    item for i, item in enumerate(items) if i <= index or item[0] != key
                ]
                return
        items.append((key, name, value))

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        kept = [item for item in self._items if item[0] != key]
        if len(kept) == len(self._items):
            raise KeyError(name)
        self._items = kept

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return any(lower == key for lower, _, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for lower, name, _ in self._items:
            if lower not in seen:
                seen.add(lower)
                yield name

    def __len__(self) -> int:
        return len({lower for lower, _, _ in self._items})

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        """Every ``(name, value)`` pair in order, repeated names included."""
        return [(name, value) for _, name, value in self._items]

    def raw(self) -> list[tuple[bytes, bytes]]:
        """The pairs as Latin-1 bytes, the form sent on the wire."""
        return [
            (name.encode("latin-1"), value.encode("latin-1")) for _, name, value in self._items
        ]

    def copy(self) -> Headers:
        return Headers(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return sorted((k, v) for k, _, v in self._items) == sorted(
                (k, v) for k, _, v in other._items
            )
        if isinstance(other, Mapping):
            try:
                return self == Headers(other)
            except TypeError:
                return False  # values that are not text: not equal to any Headers
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = [
            (name, "[secure]" if lower in _SECRET else value) for lower, name, value in self._items
        ]
        return f"Headers({shown!r})"


# Never shown in reprs: credentials must not leak into logs or tracebacks.
_SECRET = frozenset({"authorization", "proxy-authorization", "cookie"})


def _text(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, str):
        return value
    raise TypeError(f"header names and values must be str or bytes, not {value!r}")


class KeepAlive(NamedTuple):
    """The parameters of a ``Keep-Alive`` response header.

    ``timeout``: seconds the server keeps an idle connection open.
    ``max``: how many more requests the server accepts on this connection.
    Either is ``None`` when absent or unusable.
    """

    timeout: float | None
    max: int | None


def parse_keep_alive(values: Iterable[str]) -> KeepAlive:
    """Parse ``Keep-Alive: timeout=5, max=100`` (RFC 2068 section 19.7.1.1).

    The header was never standardised for HTTP/1.1, so parsing is lenient:
    unknown parameters, quotes around values, odd spacing and repeated
    headers are accepted; a value that is not a non-negative number is
    ignored (treated as absent) rather than trusted. When a parameter
    repeats, the smallest value wins: the cautious reading.
    """
    timeout: float | None = None
    max_: int | None = None
    for value in values:
        for part in value.split(","):
            name, _, raw = part.partition("=")
            name = name.strip().lower()
            raw = raw.strip().strip('"').strip()
            if name == "timeout":
                number = _non_negative(raw)
                if number is not None and (timeout is None or number < timeout):
                    timeout = number
            elif name == "max":
                number = _non_negative(raw)
                if (
                    number is not None
                    and number == int(number)
                    and (max_ is None or number < max_)
                ):
                    max_ = int(number)
    return KeepAlive(timeout, max_)


def _non_negative(text: str) -> float | None:
    if not text or len(text) > 20:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    if number != number or number < 0 or number == float("inf"):
        return None
    return number
