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
from typing import TYPE_CHECKING, NamedTuple

import h11

from ._auth import basic_auth_header, userinfo_credentials
from ._exceptions import (
    ConnectTimeout,
    InvalidURL,
    ProxyError,
    ReadTimeout,
    RemoteProtocolError,
    WriteTimeout,
)
from ._url import URL, Origin, _redact

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._socket import Stream

__all__ = ["Proxy", "ProxyConfig", "open_tunnel"]


class Proxy(NamedTuple):
    """One proxy: where it is and the ``Proxy-Authorization`` it needs.

    ``repr`` and ``str`` show the origin only, never the credentials.
    """

    origin: Origin
    authorization: str | None

    def __str__(self) -> str:
        return str(self.origin)

    def __repr__(self) -> str:
        return f"Proxy({str(self.origin)!r})"

    @classmethod
    def parse(cls, url: str) -> Proxy:
        """Parse ``http://[user:password@]host:port``.

        Raises:
            InvalidURL: not an http:// URL (https and SOCKS proxies are not
                supported), or otherwise unusable.
        """
        if "://" not in url:
            raise InvalidURL(f"proxy URL needs a scheme, like http://{_redact(url)}")
        try:
            parsed = URL(url)
        except InvalidURL as exc:
            # Say which URL: a proxy URL often comes from the environment.
            raise InvalidURL(f"unusable proxy URL: {exc.message}") from exc
        if parsed.scheme != "http":
            raise InvalidURL(f"only http:// proxies are supported, not {parsed.scheme}://")
        credentials = userinfo_credentials(parsed.userinfo)
        authorization = None if credentials is None else basic_auth_header(credentials)
        return cls(parsed.origin, authorization)


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


def open_tunnel(stream: Stream, proxy: Proxy, target: Origin, timeout: float | None) -> None:
    """Ask the proxy for a tunnel to ``target`` with ``CONNECT``.

    On return the stream carries raw bytes to the target (TLS comes next).

    Raises:
        ProxyError: the proxy answered with a status other than 2xx (its
            status is in ``.status``), or broke the exchange.
        ConnectTimeout: the proxy did not answer within ``timeout``.
    """
    host = f"[{target.host}]" if ":" in target.host else target.host
    authority = f"{host}:{target.port}"  # RFC 9110 section 9.3.6: always host:port
    headers = [("Host", authority)]
    if proxy.authorization is not None:
        headers.append(("Proxy-Authorization", proxy.authorization))
    try:
        return _connect_exchange(stream, proxy, authority, headers, target, timeout)
    except (ReadTimeout, WriteTimeout) as exc:
        # Part of opening the connection: the connect timeout's business.
        raise ConnectTimeout(f"proxy {proxy} did not open the tunnel within {timeout} s") from exc


def _connect_exchange(
    stream: Stream,
    proxy: Proxy,
    authority: str,
    headers: list[tuple[str, str]],
    target: Origin,
    timeout: float | None,
) -> None:
    conn = h11.Connection(h11.CLIENT)
    stream.send_all(
        conn.send(h11.Request(method="CONNECT", target=authority, headers=headers)), timeout
    )
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProxyError(f"proxy {proxy} broke the CONNECT exchange: {exc}") from exc
        if event is h11.NEED_DATA:
            try:
                # A proxy says nothing after its answer until the client
                # speaks (TLS starts with our hello), so this reads no
                # byte that belongs to the tunnel.
                data = stream.recv(16 * 1024, timeout)
            except RemoteProtocolError as exc:
                raise ProxyError(f"proxy {proxy} dropped the CONNECT: {exc}") from exc
            conn.receive_data(data)
            continue
        if type(event) is h11.Response:
            break
    if not 200 <= event.status_code < 300:
        raise ProxyError(
            f"proxy {proxy} refused CONNECT {authority}: {event.status_code}"
            f" {event.reason.decode('latin-1')}",
            status=event.status_code,
            origin=str(target),
        )
