"""HTTP forward proxies: configuration, NO_PROXY, and CONNECT tunnels.

Two ways through a forward proxy (RFC 9112 section 3.2.2; RFC 9110 section
9.3.6):

* an ``http://`` target: the request goes to the proxy with its target in
  absolute form (``GET http://example.org/a HTTP/1.1``) and the proxy
  forwards it. The proxy sees everything; ``Proxy-Authorization`` rides on
  each request.
* an ``https://`` target: ``CONNECT example.org:443`` asks the proxy for a
  byte tunnel, then TLS runs end to end inside it, verified against the
  *target's* name. The proxy sees only the tunnel; ``Proxy-Authorization``
  is sent on the CONNECT alone, never inside the tunnel.

Either way the pool keys connections by target *and* proxy, so a kept-alive
connection through one proxy is never used to talk directly, or through
another proxy.

Environment variables (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``,
``NO_PROXY``, lower case first) are read only when the client is created
with ``trust_env=True``: no hidden global behaviour by default.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

import h11

from ._exceptions import ProxyError
from ._url import Origin, Proxy

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Proxy", "ProxyConfig", "Tunnel"]


class ProxyConfig:
    """Which proxy, if any, each origin goes through.

    Args:
        proxy: one proxy URL for every request (``NO_PROXY`` is not applied
            to an explicit proxy).
        environ: when given (``trust_env=True``), read the proxy variables
            from it; used only if ``proxy`` is None.
    """

    def __init__(self, proxy: str | None, environ: Mapping[str, str] | None) -> None:
        self._by_scheme: dict[str, Proxy] = {}
        self._no_proxy: list[str] = []
        if proxy is not None:
            if not isinstance(proxy, str):
                raise TypeError(f"proxy must be a URL string, not {proxy!r}")
            self._by_scheme = dict.fromkeys(("http", "https"), Proxy.parse(proxy))
        elif environ is not None:
            self._read_environ(environ)

    def _read_environ(self, environ: Mapping[str, str]) -> None:
        def get(name: str) -> str:
            return (environ.get(name.lower()) or environ.get(name.upper()) or "").strip()

        fallback = get("all_proxy")
        for scheme in ("http", "https"):
            value = get(f"{scheme}_proxy") or fallback
            # HTTP_PROXY (upper case) in a CGI program can come from a client's
            # "Proxy:" request header ("httpoxy"); only trust the lower case.
            if scheme == "http" and "REQUEST_METHOD" in environ:
                value = environ.get("http_proxy", "").strip() or fallback
            if value:
                self._by_scheme[scheme] = Proxy.parse(value)
        self._no_proxy = [
            entry.strip().lower() for entry in get("no_proxy").replace(" ", ",").split(",")
        ]
        self._no_proxy = [entry for entry in self._no_proxy if entry]

    def for_origin(self, origin: Origin) -> Proxy | None:
        """The proxy for ``origin``, or None to connect directly."""
        proxy = self._by_scheme.get(origin.scheme)
        if proxy is None or _bypassed(origin, self._no_proxy):
            return None
        return proxy


def _bypassed(origin: Origin, no_proxy: list[str]) -> bool:
    """Whether ``NO_PROXY`` entries exempt ``origin``: "*", a host or
    domain suffix (".example.org" or "example.org"), "host:port", or an IP
    address or network ("10.0.0.0/8")."""
    host = origin.host
    for entry in no_proxy:
        if entry == "*":
            return True
        name, port = entry, None
        if not entry.startswith("[") and entry.count(":") == 1:
            name, _, port_text = entry.partition(":")
            # isascii: str.isdigit() is also true for "²", which int() refuses.
            port = int(port_text) if port_text.isascii() and port_text.isdigit() else None
        name = name.strip("[]").lstrip(".")
        if port is not None and port != origin.port:
            continue
        if host == name or host.endswith("." + name) or _in_network(host, name):
            return True
    return False


def _in_network(host: str, entry: str) -> bool:
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False


class Tunnel:
    """The ``CONNECT`` exchange that asks ``proxy`` for a byte tunnel to
    ``target``, without I/O: ``request`` is what to send; ``feed`` takes
    what the proxy answers until the tunnel is open.

    A proxy says nothing after its answer until the client speaks (TLS
    starts with our hello), so the reads that complete the answer take no
    byte that belongs to the tunnel.
    """

    __slots__ = ("_h11", "authority", "proxy", "request", "target")

    def __init__(self, proxy: Proxy, target: Origin) -> None:
        self.proxy = proxy
        self.target = target
        host = f"[{target.host}]" if ":" in target.host else target.host
        #: RFC 9110 section 9.3.6: always host:port.
        self.authority = f"{host}:{target.port}"
        headers = [("Host", self.authority)]
        if proxy.authorization is not None:
            headers.append(("Proxy-Authorization", proxy.authorization))
        self._h11 = h11.Connection(h11.CLIENT)
        self.request = self._h11.send(
            h11.Request(method="CONNECT", target=self.authority, headers=headers)
        )

    def feed(self, data: bytes) -> bool:
        """Bytes from the proxy (b"": it closed); True once the tunnel is open.

        Raises:
            ProxyError: the proxy refused (its status is in ``.status``) or
                broke the exchange.
        """
        conn = self._h11
        conn.receive_data(data)
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise ProxyError(f"proxy {self.proxy} broke the CONNECT exchange: {exc}") from exc
            if event is h11.NEED_DATA:
                return False
            if type(event) is h11.Response:
                break
        if not 200 <= event.status_code < 300:
            raise ProxyError(
                f"proxy {self.proxy} refused CONNECT {self.authority}: {event.status_code}"
                f" {event.reason.decode('latin-1')}",
                status=event.status_code,
                origin=str(self.target),
            )
        return True
