"""``resolve=``: a client's own host table, as curl's ``--resolve``.

A name (and, if given, a port) is mapped to IP addresses that are
connected to instead of asking the system resolver; everything else keeps
the name: the URL, the ``Host`` header, the pool key, TLS's SNI and the
certificate check. It is how one tests a new server before DNS points at
it, reaches one backend of several behind a name, or gives a test a name
with several addresses without touching /etc/hosts.

The table is looked up for the host the client *dials*: the origin, or
the proxy's host when the request goes through a proxy (curl applies
``--resolve`` to both too). A ``"host:port"`` entry wins over a
``"host"`` entry, which stands for every port.

The addresses of one entry go to the Happy Eyeballs dialer (``_dial``) in
the order given; the dialer keeps that order within each family and
alternates the families from the first address's (RFC 8305 section 4),
as it does with the resolver's answer. The first to connect wins; one
that refuses hands over at once.

Everything is checked when the client is made, before any I/O: a key
that is not ``host`` or ``host:port`` (an IPv6 address in brackets), a
value that is not an IP address or a non-empty sequence of them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import TypeAlias

from ._exceptions import InvalidURL
from ._url import URL

__all__ = ["HostTable", "ResolveInput"]

#: What ``resolve=`` takes: ``"host:port"`` or ``"host"`` -> one IP
#: address, or a sequence of them in the order to try.
ResolveInput: TypeAlias = "Mapping[str, str | Sequence[str]]"


class HostTable:
    """The checked ``resolve=`` table (see the module docstring).

    Args:
        resolve: the mapping, or None for an empty table.

    Raises:
        TypeError: ``resolve`` is not a mapping, a key is not a str, a value
            is not a str or a sequence of str (each naming the entry).
        ValueError: a key is not ``host`` or ``host:port``, a port is out of
            1..65535, a value is not an IP address or is empty.
    """

    __slots__ = ("_entries",)

    def __init__(self, resolve: ResolveInput | None) -> None:
        #: (host, port or None for any port) -> IP literals, in order.
        self._entries: dict[tuple[str, int | None], tuple[str, ...]] = {}
        if resolve is None:
            return
        if not isinstance(resolve, Mapping):
            raise TypeError(
                f"resolve must be a mapping of 'host:port' to IP addresses, not {resolve!r}"
            )
        for key, value in resolve.items():
            if not isinstance(key, str):
                raise TypeError(f"resolve keys must be str ('host' or 'host:port'), not {key!r}")
            self._entries[_parse_key(key)] = _parse_addresses(key, value)

    def addresses(self, host: str, port: int) -> tuple[str, ...] | None:
        """The addresses to dial for ``host:port``, or None to resolve
        ``host`` as usual. ``host`` as in ``Origin``: lower-case, IPv6
        without brackets."""
        entries = self._entries
        if not entries:
            return None
        found = entries.get((host, port))
        return found if found is not None else entries.get((host, None))


def _parse_key(key: str) -> tuple[str, int | None]:
    """``host`` or ``host:port`` (``[v6]`` or ``[v6]:port``): the host as
    ``Origin`` writes it, and the port or None."""
    host, port_text = key, None
    if key.startswith("["):
        end = key.find("]")
        if end > 0 and key[end + 1 : end + 2] == ":":
            host, port_text = key[: end + 1], key[end + 2 :]
        elif end != len(key) - 1:
            raise ValueError(f"resolve key {key!r}: expected '[IPv6]' or '[IPv6]:port'")
    elif key.count(":") > 1:
        raise ValueError(f"resolve key {key!r}: put an IPv6 address in brackets, '[::1]:443'")
    elif ":" in key:
        host, _, port_text = key.partition(":")
    port = None
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
            raise ValueError(f"resolve key {key!r}: the port must be a number in 1..65535")
        port = int(port_text)
    if not host or any(char in host for char in "/?#@\\"):
        raise ValueError(f"resolve key {key!r}: expected 'host' or 'host:port'")
    try:
        return URL(f"http://{host}/").host, port
    except InvalidURL as exc:
        raise ValueError(f"resolve key {key!r}: {exc}") from None


def _parse_addresses(key: str, value: object) -> tuple[str, ...]:
    """One IP address or a sequence of them, each checked, brackets allowed."""
    if isinstance(value, str):
        value = [value]
    elif not isinstance(value, Sequence) or isinstance(value, bytes | bytearray):
        raise TypeError(
            f"resolve[{key!r}] must be an IP address or a sequence of them, not {value!r}"
        )
    if not value:
        raise ValueError(f"resolve[{key!r}] is empty: give at least one IP address")
    addresses = []
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"resolve[{key!r}]: {item!r} is not a str")
        text = item[1:-1] if item.startswith("[") and item.endswith("]") else item
        try:
            addresses.append(str(ipaddress.ip_address(text)))
        except ValueError:
            raise ValueError(
                f"resolve[{key!r}]: {item!r} is not an IP address (names are not looked up)"
            ) from None
    return tuple(addresses)
