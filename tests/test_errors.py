"""Every failure surfaces as its typed rawkeep error, and leaks nothing.

After each failure the pool must have no active connection left: a leaked
slot would starve later requests. Timeouts are checked against generous
upper bounds only (a 0.2 s timeout must fire well within 2 s).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest
from servers import faults
from servers.scripted import render_response

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.recorder import EventRecorder
    from servers.scripted import ScriptedServer, ServerConnection

pytestmark = pytest.mark.both_clients

OPENED = ("ConnectionOpened", None)
CLOSED_BY_ERROR = ("ConnectionClosed", "error")


def assert_pool_clean(client: rawkeep.Client) -> None:
    stats = client.pool_stats()
    assert stats.active == 0
    assert stats.opened - stats.closed == stats.idle


@pytest.mark.parametrize(
    "script",
    [
        faults.close_without_response,
        faults.reset_after_request,
        faults.truncated_body,
        faults.truncated_head,
        faults.garbage,
        faults.endless_headers,
        faults.reset_mid_body,
    ],
)
def test_malformed_or_truncated_response_raises_remote_protocol_error(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
    script: faults.Script,
) -> None:
    server = start_server(script)
    with pytest.raises(rawkeep.RemoteProtocolError) as info:
        client.get(server.url)

    assert isinstance(info.value, rawkeep.RawkeepError)
    assert server.accepted == 1
    assert events.summary() == [OPENED, CLOSED_BY_ERROR]
    assert_pool_clean(client)


@pytest.mark.parametrize("script", [faults.truncated_body, faults.reset_mid_body])
def test_truncated_body_raises_while_streaming(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    script: faults.Script,
) -> None:
    server = start_server(script)
    with (
        client.stream("GET", server.url) as response,
        pytest.raises(rawkeep.RemoteProtocolError),
    ):
        response.read()
    assert_pool_clean(client)


def test_stalled_server_raises_read_timeout(
    start_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    server = start_server(faults.stall)
    client = make_client(timeout=rawkeep.Timeout(connect=5.0, read=0.2, write=5.0))
    started = time.monotonic()
    with pytest.raises(rawkeep.ReadTimeout) as info:
        client.get(server.url)
    assert time.monotonic() - started < 2.0
    assert isinstance(info.value, rawkeep.TimeoutError)
    assert server.wait_for_peer_closed(0)
    assert_pool_clean(client)


def test_stall_mid_body_raises_read_timeout(
    start_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    server = start_server(faults.stall_mid_body)
    client = make_client(timeout=rawkeep.Timeout(connect=5.0, read=0.2, write=5.0))
    started = time.monotonic()
    with pytest.raises(rawkeep.ReadTimeout):
        client.get(server.url)
    assert time.monotonic() - started < 2.0
    assert_pool_clean(client)


def test_per_request_timeout_overrides_client_default(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
) -> None:
    server = start_server(faults.stall)
    started = time.monotonic()
    with pytest.raises(rawkeep.ReadTimeout):
        client.get(server.url, timeout=0.2)
    assert time.monotonic() - started < 2.0
    assert_pool_clean(client)


def test_refused_port_raises_connect_error(
    refused_url: str, client: rawkeep.Client, events: EventRecorder
) -> None:
    with pytest.raises(rawkeep.ConnectError):
        client.get(refused_url)
    assert events.summary() == []
    stats = client.pool_stats()
    assert (stats.opened, stats.active, stats.idle) == (0, 0, 0)


def test_full_backlog_raises_connect_timeout(
    never_accepting_listener: str, make_client: Callable[..., rawkeep.Client]
) -> None:
    client = make_client(timeout=rawkeep.Timeout(connect=0.2, read=5.0, write=5.0))
    started = time.monotonic()
    with pytest.raises(rawkeep.ConnectTimeout) as info:
        client.get(never_accepting_listener)
    assert time.monotonic() - started < 2.0
    assert isinstance(info.value, rawkeep.TimeoutError)
    assert_pool_clean(client)


def test_server_not_reading_upload_raises_write_timeout(
    start_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    server = start_server(faults.never_read)
    client = make_client(timeout=rawkeep.Timeout(connect=5.0, read=5.0, write=0.3))
    body = bytes(64 * 1024 * 1024)  # far more than both socket buffers hold
    started = time.monotonic()
    with pytest.raises(rawkeep.WriteTimeout) as info:
        client.put(server.url, content=body)
    assert time.monotonic() - started < 5.0
    assert isinstance(info.value, rawkeep.TimeoutError)
    assert server.total_bytes_received() == 0  # the server never read
    assert_pool_clean(client)


def test_busy_pool_raises_pool_timeout(
    server: ScriptedServer, make_client: Callable[..., rawkeep.Client]
) -> None:
    client = make_client(
        max_connections_per_host=1,
        timeout=rawkeep.Timeout(connect=5.0, read=5.0, write=5.0, pool=0.2),
    )
    with client.stream("GET", f"{server.url}/held") as held:
        started = time.monotonic()
        with pytest.raises(rawkeep.PoolTimeout) as info:
            client.get(f"{server.url}/waiting")
        assert time.monotonic() - started < 2.0
        assert isinstance(info.value, rawkeep.TimeoutError)
        assert client.pool_stats().active == 1
        held.read()
    # The waiting request never reached the server; the slot is free again.
    assert [r.target for r in server.requests] == ["/held"]
    assert client.get(f"{server.url}/after").reused
    assert_pool_clean(client)


def test_global_limit_busy_raises_pool_timeout(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    first, second = start_keepalive_server(), start_keepalive_server()
    client = make_client(
        max_connections=1,
        timeout=rawkeep.Timeout(connect=5.0, read=5.0, write=5.0, pool=0.2),
    )
    with client.stream("GET", first.url) as held:
        with pytest.raises(rawkeep.PoolTimeout):
            client.get(second.url)
        held.read()
    assert second.accepted == 0
    assert_pool_clean(client)


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET", {"X-Evil": "a\r\nInjected: yes"}),
        ("GET", {"X-Evil": "a\nInjected: yes"}),
        ("GET", {"X-Evil": "a\rb"}),
        ("GET", {"Bad Name": "x"}),
        ("GET", {"Bad:Name": "x"}),
        ("GET", {"": "x"}),
        ("GET\r\nX-Injected: yes", {}),
        ("GE T", {}),
    ],
)
def test_invalid_request_raises_local_protocol_error_and_sends_nothing(
    server: ScriptedServer,
    client: rawkeep.Client,
    events: EventRecorder,
    method: str,
    headers: dict[str, str],
) -> None:
    with pytest.raises(rawkeep.LocalProtocolError):
        client.request(method, f"{server.url}/bad", headers=headers)
    assert_pool_clean(client)

    # Accepts are FIFO: had the bad request opened a connection, it would be
    # connection 0. Instead connection 0 starts with the good request.
    assert client.get(f"{server.url}/good").content == b"/good"
    assert server.accepted == 1
    assert server.raw(0).startswith(b"GET /good HTTP/1.1\r\n")
    assert [r.target for r in server.requests] == ["/good"]
    assert events.summary() == [OPENED]


@pytest.mark.parametrize(
    "url",
    [
        "",
        "not a url",
        "127.0.0.1/no-scheme",
        "ftp://127.0.0.1/file",
        "http://",
        "http:///path-only",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1:-1/",
        "http://127.0.0.1:port/",
        "http://[::1/",
        "http://127.0.0.1\r\n/",
    ],
)
def test_bad_url_raises_invalid_url(
    url: str, make_client: Callable[..., rawkeep.Client], events: EventRecorder
) -> None:
    client = make_client(timeout=0.5)
    with pytest.raises(rawkeep.InvalidURL):
        client.get(url)
    assert events.summary() == []
    assert client.pool_stats().opened == 0


def test_closed_client_raises_client_closed(
    server: ScriptedServer, make_client: Callable[..., rawkeep.Client]
) -> None:
    client = make_client()
    client.close()
    with pytest.raises(rawkeep.ClientClosed):
        client.get(server.url)
    with pytest.raises(rawkeep.ClientClosed):
        client.request("DELETE", server.url)
    with pytest.raises(rawkeep.ClientClosed), client.stream("GET", server.url):
        pass
    assert server.accepted == 0
    client.close()  # closing twice is allowed


def test_raise_for_status(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
) -> None:
    from servers.h11server import Reply

    def respond(request: Any) -> Reply:
        status = int(request.target.strip("/"))
        return Reply(status=status, body=b"status")

    server = start_keepalive_server(respond=respond)
    client.get(f"{server.url}/200").raise_for_status()
    client.get(f"{server.url}/302").raise_for_status()
    for status in (404, 500):
        response = client.get(f"{server.url}/{status}")
        assert response.status == status
        with pytest.raises(rawkeep.HTTPStatusError):
            response.raise_for_status()
    # Error statuses are normal responses for the connection: all reused.
    assert server.accepted == 1


def test_pool_recovers_after_each_kind_of_failure(
    start_server: Callable[..., ScriptedServer],
    server: ScriptedServer,
    make_client: Callable[..., rawkeep.Client],
) -> None:
    client = make_client(timeout=rawkeep.Timeout(connect=5.0, read=0.2, write=5.0))
    for script in (faults.garbage, faults.stall, faults.truncated_body):
        bad = start_server(script)
        with pytest.raises((rawkeep.RemoteProtocolError, rawkeep.ReadTimeout)):
            client.get(bad.url)
        assert client.get(f"{server.url}/ok").content == b"/ok"
    assert server.accepted == 1
    assert_pool_clean(client)


def test_connect_error_names_the_origin(refused_url: str, client: rawkeep.Client) -> None:
    with pytest.raises(rawkeep.ConnectError) as info:
        client.get(refused_url + "/x")
    assert info.value.origin == refused_url


def test_client_level_host_header_replaces_the_urls(
    server: ScriptedServer, make_client: Callable[..., rawkeep.Client]
) -> None:
    client = make_client(headers={"host": "virtual.test"})
    client.get(server.url)
    assert server.requests[0].header_all("host") == [b"virtual.test"]


@pytest.mark.parametrize("limit", [4096, 64 * 1024])
def test_endless_header_block_stops_at_max_header_size(
    start_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    limit: int,
) -> None:
    server = start_server(faults.endless_headers)
    client = make_client(max_header_size=limit)
    with pytest.raises(rawkeep.RemoteProtocolError, match=f"max_header_size={limit}"):
        client.get(server.url)
    assert_pool_clean(client)


def test_a_large_head_within_max_header_size_is_fine(
    start_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    big_value = "v" * 100_000

    def handler(conn: ServerConnection) -> None:
        if conn.read_request() is not None:
            conn.send(render_response(200, b"ok", [("X-Big", big_value)]))
            conn.wait_for_peer_close()

    server = start_server(handler)
    client = make_client(max_header_size=256 * 1024)
    assert client.get(server.url).headers["x-big"] == big_value
