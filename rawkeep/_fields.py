"""Query parameters and form fields: the values callers give, as text.

``params=`` and ``data=`` (and the plain fields beside ``files=``) take the
same values and encode them the same way, httpx's way: a list or tuple
repeats its key once per item, ``True``/``False`` are ``true``/``false``,
``None`` is the empty string (requests drops such a key; httpx sends it
empty), numbers are ``str()``. Anything else is refused with a
``TypeError`` naming the key, before any I/O: ``str()`` of a dict or an
object would send its Python repr, which no server means to receive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = ["FieldValue", "field_pairs", "named_items"]

#: One value of a query parameter or form field: a scalar, or a list or
#: tuple of them for a key repeated once per item (httpx's encoding:
#: ``True`` -> ``true``, ``False`` -> ``false``, ``None`` -> empty).
#: (Typed as a ``Sequence``, as httpx types it, so that a ``list[str]``
#: passes; at run time a list or a tuple.)
FieldValue: TypeAlias = (
    "str | int | float | bool | Sequence[str | int | float | bool | None] | None"
)


def field_pairs(fields: object, what: str) -> list[tuple[str, str]]:
    """``(name, text)`` pairs of ``params=`` or ``data=``, as httpx encodes
    them: a list or tuple value gives its key once per item (an empty one
    none), ``True``/``False`` are ``true``/``false``, ``None`` is the empty
    string, numbers are ``str()``. Any other value (a dict, a set, bytes,
    an object) is refused rather than sent as its Python repr.

    Raises:
        TypeError: ``fields`` is not a mapping or pairs, a name is not a
            str, or a value of the wrong type (the message names the key).
    """
    pairs: list[tuple[str, str]] = []
    for key, value in named_items(fields, what, "value"):
        if isinstance(value, list | tuple):
            pairs.extend((key, _field_text(key, one, what)) for one in value)
        else:
            pairs.append((key, _field_text(key, value, what)))
    return pairs


def named_items(given: object, what: str, noun: str) -> Iterator[tuple[str, object]]:
    """The ``(name, value)`` items of a mapping or of a list of pairs, as
    ``params=``, ``data=`` and ``files=`` take them, each name checked.

    Raises:
        TypeError: ``given`` is neither, an item is not a pair, or a name is
            not a str (``what`` names the keyword, ``noun`` the value).
    """
    if isinstance(given, Mapping):
        items: Iterable[object] = given.items()
    elif isinstance(given, str | bytes | bytearray) or not isinstance(given, Iterable):
        raise TypeError(f"{what}= takes a dict or a list of (name, {noun}) pairs, not {given!r}")
    else:
        items = given
    for item in items:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise TypeError(f"{what}= pairs must be (name, {noun}), not {item!r}")
        name, value = item
        if not isinstance(name, str):
            raise TypeError(f"{what}= names must be str, not {name!r}")
        yield name, value


def _field_text(key: str, value: object, what: str) -> str:
    """One scalar value as text (see ``field_pairs``)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise TypeError(
        f"{what}= value for {key!r} must be a str, int, float, bool or None, or a list or"
        f" tuple of them (sent as a repeated key), not {type(value).__name__}: {value!r}"
    )
