"""Opening connections with asyncio: the twin of ``_connect.open_stream``.

The same ``Plan`` from the same ``Connector``, carried out with
``_aio_socket`` instead of blocking sockets, step for step: TCP (or the
Unix socket), the CONNECT exchange when the plan has a tunnel, then TLS.
Everything that is a decision rather than I/O (the plan, the TLS context,
what a failure at the proxy or in the CONNECT means) is ``_connect``'s,
called from both shells.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._connect import TUNNEL_READ_SIZE, proxy_unreachable, tunnel_failed
from ._exceptions import (
    ConnectError,
    ConnectTimeout,
    RawkeepError,
    ReadTimeout,
    RemoteProtocolError,
    WriteTimeout,
    with_context,
)
from ._proxy import Tunnel

if TYPE_CHECKING:
    from ._aio_socket import AsyncStream
    from ._connect import Connector, Plan
    from ._url import Route

__all__ = ["open_stream"]


async def open_stream(connector: Connector, route: Route, timeout: float | None) -> AsyncStream:
    """Carry out ``connector.plan(route)`` on the running event loop.

    Raises:
        ConnectError, ConnectTimeout: the target or socket could not be
            reached, or the proxy not in time.
        TLSError: the handshake failed or the certificate did not verify.
        ProxyError: the proxy could not be reached, or refused or broke the
            tunnel.
        (Each with the route's origin as ``origin``.)
    """
    try:
        return await _open(connector, route, timeout)
    except RawkeepError as exc:
        with_context(exc, origin=str(route.origin))
        raise


async def _open(connector: Connector, route: Route, timeout: float | None) -> AsyncStream:
    # Imported on the first connection, as _connect imports _socket.
    from ._aio_socket import connect, connect_unix

    plan = connector.plan(route)
    context = connector.tls_context(plan)
    if plan.uds is None and plan.proxy is None:
        return await connect(
            plan.host,
            plan.port,
            timeout=timeout,
            ssl_context=context,
            server_hostname=plan.tls_host,
            tcp_keepalive=connector.tcp_keepalive,
            addresses=plan.addresses,
        )
    if plan.uds is not None:
        stream = await connect_unix(plan.uds, timeout=timeout)
    else:
        stream = await _connect_proxy(plan, timeout, connector.tcp_keepalive)
    try:
        if plan.tunnel is not None:
            await _open_tunnel(stream, Tunnel(plan.tunnel, route.origin), timeout)
    except BaseException:
        stream.close()
        raise
    if context is not None and plan.tls_host is not None:
        stream = await stream.start_tls(context, plan.tls_host, timeout)
    return stream


async def _connect_proxy(
    plan: Plan, timeout: float | None, tcp_keepalive: float | None
) -> AsyncStream:
    from ._aio_socket import connect

    try:
        return await connect(
            plan.host,
            plan.port,
            timeout=timeout,
            tcp_keepalive=tcp_keepalive,
            addresses=plan.addresses,
        )
    except (ConnectTimeout, ConnectError) as exc:
        raise proxy_unreachable(plan, exc) from exc


async def _open_tunnel(stream: AsyncStream, tunnel: Tunnel, timeout: float | None) -> None:
    """The CONNECT exchange over ``stream``; on return it carries raw bytes
    to the target (TLS comes next).

    Raises:
        ProxyError: the proxy refused or broke the exchange.
        ConnectTimeout: the proxy did not answer within ``timeout``.
    """
    try:
        await stream.send_all(tunnel.request, timeout)
        while True:
            try:
                data = await stream.recv(TUNNEL_READ_SIZE, timeout)
            except RemoteProtocolError as exc:
                raise tunnel_failed(tunnel, exc, timeout) from exc
            if tunnel.feed(data):
                return
    except (ReadTimeout, WriteTimeout) as exc:
        raise tunnel_failed(tunnel, exc, timeout) from exc
