"""Opening connections: direct TCP, a Unix socket, a forward proxy, a CONNECT tunnel, TLS.

A route (target origin, and the proxy if any) is reached in one of five
ways, decided here and nowhere else:

=====================  =============================================
direct http            TCP to the target
direct https           TCP to the target, then TLS (one deadline)
``uds=``               the Unix socket; TLS over it for https
http via a proxy       TCP to the proxy; requests in absolute form
https via a proxy      TCP to the proxy, ``CONNECT``, then TLS to the
                       target inside the tunnel
=====================  =============================================

``Connector`` holds what opening needs (the proxy configuration, the Unix
socket path, the TLS settings and the one SSL context built from them) and
turns a route into a ``Plan`` without I/O. ``open_stream`` carries a plan
out with blocking sockets (``_aio_connect.open_stream`` with asyncio, the
same steps); the connect timeout bounds each step, and the steps are short
and sequential. Errors come from ``_socket`` / ``_aio_socket``, which map
OS and TLS errors; what a failure means at this level (it was the proxy,
the proxy dropped or stalled the CONNECT) is decided by the functions
below that both shells call.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NamedTuple

from ._exceptions import (
    ConnectError,
    ConnectTimeout,
    ProxyError,
    RawkeepError,
    ReadTimeout,
    RemoteProtocolError,
    WriteTimeout,
    with_context,
)
from ._proxy import Proxy, ProxyConfig, Tunnel
from ._resolve import HostTable
from ._tcp import DEFAULT_TCP_KEEPALIVE, check_keepalive
from ._url import Route

if TYPE_CHECKING:
    import ssl
    from collections.abc import Mapping

    from ._resolve import ResolveInput
    from ._socket import CertInput, Stream, VerifyInput
    from ._url import Origin

__all__ = ["Connector", "Plan", "open_stream", "proxy_unreachable", "tunnel_failed"]

#: How much of the proxy's answer to a CONNECT each read asks for.
TUNNEL_READ_SIZE = 16 * 1024


class Plan(NamedTuple):
    """How one route is reached (see the module docstring)."""

    #: Where the TCP connection goes: the target, or the proxy.
    host: str
    port: int
    #: A Unix socket path instead of TCP.
    uds: str | None
    #: The proxy to ask for a tunnel first (https via a proxy).
    tunnel: Proxy | None
    #: The proxy the TCP connection goes to, if any (for error messages).
    proxy: Proxy | None
    #: The name TLS verifies, or None for plain http.
    tls_host: str | None
    #: IP literals to connect to instead of looking ``host`` up (from
    #: ``resolve=``), or None.
    addresses: tuple[str, ...] | None = None


class Connector:
    """Decides how each route is reached, and holds what opening needs.

    Args:
        verify: ``True``, ``False``, a CA bundle path or an ``SSLContext``.
        cert: client certificate path, or ``(cert, key)``.
        proxy: one proxy URL for every request.
        environ: read proxy variables from it (``trust_env=True``).
        uds: path of a Unix socket to send every request over.
        tcp_keepalive: seconds of silence before TCP keepalive probes on
            each TCP connection; None: keepalive off (see ``_tcp``).
        resolve: ``host[:port]`` -> IP addresses dialed instead of looking
            the host up (see ``_resolve``); applies to the host dialed, the
            proxy's when there is one.

    Raises:
        ValueError, TypeError: ``uds`` with a proxy, or not a path; ``verify``
            or ``cert`` of the wrong type; ``tcp_keepalive`` not a positive
            number; a ``resolve`` entry that can't be used.
        InvalidURL: the proxy URL can't be used.
        TLSError: the CA bundle (``verify`` path), the certificate or the
            key (``cert``) can't be loaded: missing, unreadable, not PEM.
    """

    def __init__(
        self,
        *,
        verify: VerifyInput,
        cert: CertInput,
        proxy: str | None,
        environ: Mapping[str, str] | None,
        uds: str | os.PathLike[str] | None,
        tcp_keepalive: float | None = DEFAULT_TCP_KEEPALIVE,
        resolve: ResolveInput | None = None,
    ) -> None:
        if uds is not None and (proxy is not None or environ is not None):
            raise ValueError("uds= sends every request over a local socket: no proxy with it")
        if uds is not None and not isinstance(uds, str | os.PathLike):
            raise TypeError(f"uds must be a path, not {uds!r}")
        if not isinstance(verify, bool | str):
            import ssl  # the caller passed an object: ssl is loaded already

            if not isinstance(verify, ssl.SSLContext):
                raise TypeError(f"verify must be a bool, a path or an SSLContext, not {verify!r}")
        self._uds = None if uds is None else os.fspath(uds)
        self._proxies = ProxyConfig(proxy, environ)
        self._verify = verify
        self._cert = cert
        self._ssl_context: ssl.SSLContext | None = None
        if isinstance(verify, str) or cert is not None:
            # Files the caller named are read now: a missing or unreadable
            # CA bundle, certificate or key is a mistake in the program,
            # said at construction rather than at the first https request
            # (which may come hours later, or only in production).
            self._ssl_context = _load_ssl_context(verify, cert)
        self.tcp_keepalive = check_keepalive(tcp_keepalive)
        #: ``resolve=``: the addresses dialed instead of asking the resolver.
        self._hosts = HostTable(resolve)

    def route(self, origin: Origin) -> Route:
        """The pool key for requests to ``origin``: the proxy is chosen here,
        once per request, and travels with the route."""
        proxy = None if self._uds is not None else self._proxies.for_origin(origin)
        return Route(origin) if proxy is None else Route(origin, proxy)

    def plan(self, route: Route) -> Plan:
        """How to reach ``route``, without I/O."""
        origin, proxy = route
        tls_host = origin.host if origin.scheme == "https" else None
        if proxy is None:
            known = self._hosts.addresses(origin.host, origin.port)
            return Plan(origin.host, origin.port, self._uds, None, None, tls_host, known)
        tunnel = proxy if tls_host is not None else None
        host, port = proxy.origin.host, proxy.origin.port
        known = self._hosts.addresses(host, port)
        return Plan(host, port, None, tunnel, proxy, tls_host, known)

    def tls_context(self, plan: Plan) -> ssl.SSLContext | None:
        """The context to start TLS with on ``plan``'s stream; None for plain http."""
        return None if plan.tls_host is None else self.ssl_context()

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context every https connection shares.

        Built on the first https connection when only ``verify=True`` or
        ``False`` asks for it: loading the system trust store costs
        milliseconds that plain-http users should not pay. A race between
        two first connections builds it twice, harmlessly. (With a CA
        bundle path or ``cert``, it was built when the client was made.)
        """
        if self._ssl_context is None:
            self._ssl_context = _load_ssl_context(self._verify, self._cert)
        return self._ssl_context


def _load_ssl_context(verify: VerifyInput, cert: CertInput) -> ssl.SSLContext:
    from ._socket import make_ssl_context

    return make_ssl_context(verify, cert)


def open_stream(connector: Connector, route: Route, timeout: float | None) -> Stream:
    """Carry out ``connector.plan(route)`` with blocking sockets.

    Raises:
        ConnectError, ConnectTimeout: the target or socket could not be
            reached, or the proxy not in time.
        TLSError: the handshake failed or the certificate did not verify.
        ProxyError: the proxy could not be reached, or refused or broke the
            tunnel.
        (Each with the route's origin as ``origin``.)
    """
    try:
        return _open(connector, route, timeout)
    except RawkeepError as exc:
        with_context(exc, origin=str(route.origin))
        raise


def _open(connector: Connector, route: Route, timeout: float | None) -> Stream:
    # Imported here, on the first connection: ``socket`` (and ``select``)
    # cost an import of rawkeep about 2.5 ms that only I/O needs.
    from ._socket import connect, connect_unix

    plan = connector.plan(route)
    context = connector.tls_context(plan)
    if plan.uds is None and plan.proxy is None:
        return connect(
            plan.host,
            plan.port,
            timeout=timeout,
            ssl_context=context,
            server_hostname=plan.tls_host,
            tcp_keepalive=connector.tcp_keepalive,
            addresses=plan.addresses,
        )
    if plan.uds is not None:
        stream = connect_unix(plan.uds, timeout=timeout)
    else:
        stream = _connect_proxy(plan, timeout, connector.tcp_keepalive)
    try:
        if plan.tunnel is not None:
            _open_tunnel(stream, Tunnel(plan.tunnel, route.origin), timeout)
    except BaseException:
        stream.close()
        raise
    if context is not None and plan.tls_host is not None:
        stream = stream.start_tls(context, plan.tls_host, timeout)
    return stream


def _connect_proxy(plan: Plan, timeout: float | None, tcp_keepalive: float | None) -> Stream:
    from ._socket import connect

    try:
        return connect(
            plan.host,
            plan.port,
            timeout=timeout,
            tcp_keepalive=tcp_keepalive,
            addresses=plan.addresses,
        )
    except (ConnectTimeout, ConnectError) as exc:
        raise proxy_unreachable(plan, exc) from exc


def proxy_unreachable(plan: Plan, exc: ConnectError | ConnectTimeout) -> RawkeepError:
    """The error for ``exc``, met connecting to ``plan``'s proxy, saying it
    was the proxy: a refused, unreachable or unresolvable proxy is a
    ``ProxyError`` (the target was never tried; a program, or the command
    line's exit status, should not take it for the target's failure); a
    connect that timed out stays a ``ConnectTimeout``, as every timeout is
    one of the four."""
    message = exc.message
    for start in ("could not connect to ", "connect to "):
        if message.startswith(start):
            message = f"{start}proxy {message[len(start) :]}"
            break
    else:
        message = f"could not connect to proxy {plan.proxy}: {message}"
    if isinstance(exc, ConnectTimeout):
        return ConnectTimeout(message)
    return ProxyError(message)


def tunnel_failed(
    tunnel: Tunnel, exc: RemoteProtocolError | ReadTimeout | WriteTimeout, timeout: float | None
) -> RawkeepError:
    """The error for ``exc``, met during the CONNECT exchange: a lost
    connection is the proxy's doing (``ProxyError``); a read or write that
    timed out is part of opening the connection, the connect timeout's
    business (``ConnectTimeout``)."""
    if isinstance(exc, RemoteProtocolError):
        return ProxyError(f"proxy {tunnel.proxy} dropped the CONNECT: {exc}")
    return ConnectTimeout(f"proxy {tunnel.proxy} did not open the tunnel within {timeout} s")


def _open_tunnel(stream: Stream, tunnel: Tunnel, timeout: float | None) -> None:
    """The CONNECT exchange over ``stream``; on return it carries raw bytes
    to the target (TLS comes next).

    Raises:
        ProxyError: the proxy refused or broke the exchange.
        ConnectTimeout: the proxy did not answer within ``timeout``.
    """
    try:
        stream.send_all(tunnel.request, timeout)
        while True:
            try:
                data = stream.recv(TUNNEL_READ_SIZE, timeout)
            except RemoteProtocolError as exc:
                raise tunnel_failed(tunnel, exc, timeout) from exc
            if tunnel.feed(data):
                return
    except (ReadTimeout, WriteTimeout) as exc:
        raise tunnel_failed(tunnel, exc, timeout) from exc
