"""How each route is reached: the connector's plans, without I/O."""

from __future__ import annotations

import socket

import pytest

import rawkeep
from rawkeep._connect import Connector, Plan
from rawkeep._url import URL


def connector(**kwargs: object) -> Connector:
    options: dict[str, object] = {
        "verify": True,
        "cert": None,
        "proxy": None,
        "environ": None,
        "uds": None,
    }
    options.update(kwargs)
    return Connector(**options)  # type: ignore[arg-type]


def plan_for(conn: Connector, url: str) -> Plan:
    return conn.plan(conn.route(URL(url).origin))


def test_direct_http_and_https() -> None:
    direct = connector()
    assert plan_for(direct, "http://a.test:8080/") == Plan("a.test", 8080, None, None, None, None)
    assert plan_for(direct, "https://a.test/") == Plan("a.test", 443, None, None, None, "a.test")


def test_unix_socket_with_tls_for_https() -> None:
    local = connector(uds="/run/app.sock")
    assert plan_for(local, "http://a.test/").uds == "/run/app.sock"
    assert plan_for(local, "https://a.test/").tls_host == "a.test"
    assert local.route(URL("http://a.test/").origin).proxy is None


def test_through_a_proxy_forwarded_or_tunnelled() -> None:
    via = connector(proxy="http://user:pw@proxy.test:3128")
    forwarded = plan_for(via, "http://a.test/")
    assert (forwarded.host, forwarded.port, forwarded.tunnel, forwarded.tls_host) == (
        "proxy.test",
        3128,
        None,
        None,
    )
    assert forwarded.proxy is not None
    assert forwarded.proxy.authorization is not None
    tunnelled = plan_for(via, "https://a.test/")
    assert tunnelled.tunnel is tunnelled.proxy
    assert tunnelled.tls_host == "a.test"  # TLS to the target, inside the tunnel


def test_the_route_carries_the_proxy_chosen_once_and_hides_its_credentials() -> None:
    via = connector(
        environ={"http_proxy": "http://u:secret@proxy.test:3128", "no_proxy": "b.test"}
    )
    route = via.route(URL("http://a.test/").origin)
    assert route.proxy is not None
    assert "secret" not in str(route)
    assert "secret" not in repr(route)
    assert via.route(URL("http://b.test/").origin).proxy is None  # NO_PROXY


def test_bad_options_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="uds"):
        connector(uds="/x.sock", proxy="http://proxy.test:3128")
    with pytest.raises(TypeError, match="verify"):
        connector(verify=3)
    with pytest.raises(rawkeep.InvalidURL):
        connector(proxy="socks5://proxy.test:1080")


def test_a_proxy_that_cannot_be_reached_is_named_as_the_proxy() -> None:
    """Through a real socket: a port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        rawkeep.Client(proxy=f"http://127.0.0.1:{port}", timeout=2.0) as client,
        pytest.raises(rawkeep.ProxyError, match=f"could not connect to proxy 127.0.0.1:{port}"),
    ):
        client.get("http://a.test/")
