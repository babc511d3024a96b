"""rawkeep against servers it did not write: nginx, gunicorn, uvicorn, http.server.

For each server: 200 sequential GETs in four bursts, separated by idle pauses
longer than the server's keep-alive timeout (servers are configured with
1 s). Every body must echo its request's target, no request may fail or be
retried, and the TCP connections must be exactly what the server's
documented keep-alive policy implies (`keepalive_model.predict`), counted
twice, independently:

* by the server: its access log's per-connection key (nginx's
  ``$connection``, the client port, a serial) and, for nginx, its
  ``stub_status`` "accepts" counter;
* by rawkeep: ``response.connection_id``, ``PoolStats`` and the events
  (opened, found stale, expired, closed and why).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from servers.figures import record
from servers.scripted import wait_for

from .keepalive_model import Policy, Prediction, Schedule, predict, run_schedule, runs

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.recorder import EventRecorder

    import rawkeep

    from .conftest import InteropServer, Served

pytestmark = [pytest.mark.both_clients, pytest.mark.interop]

#: (fixture suffix, keyword arguments): one real server configuration each.
CASES = [
    pytest.param(("nginx", {"tls": False}), id="nginx-http-keepalive_timeout_1s"),
    pytest.param(
        ("nginx", {"tls": True, "ssl_protocols": "TLSv1.3"}),
        id="nginx-https-TLSv1.3-keepalive_timeout_1s",
    ),
    pytest.param(
        ("nginx", {"tls": False, "keepalive_requests": 3}), id="nginx-http-keepalive_requests_3"
    ),
    pytest.param(
        ("nginx", {"tls": True, "keepalive_requests": 3}),
        id="nginx-https-default_protocols-keepalive_requests_3",
    ),
    pytest.param(("gunicorn", {"worker": "sync"}), id="gunicorn-sync"),
    pytest.param(("gunicorn", {"worker": "gthread"}), id="gunicorn-gthread-keep_alive_1"),
    pytest.param(("uvicorn", {"http": "h11"}), id="uvicorn-h11-timeout_keep_alive_1"),
    pytest.param(("uvicorn", {"http": "httptools"}), id="uvicorn-httptools-timeout_keep_alive_1"),
    pytest.param(("apache", {}), id="apache-event-KeepAliveTimeout_1"),
    pytest.param(
        ("apache", {"max_keep_alive_requests": 2}), id="apache-event-MaxKeepAliveRequests_2"
    ),
    pytest.param(("stdlib", {"protocol": "HTTP/1.0"}), id="http.server-HTTP/1.0"),
    pytest.param(("stdlib", {"protocol": "HTTP/1.1"}), id="http.server-HTTP/1.1-timeout_1"),
]

#: Seconds an idle pause lasts beyond the server's idle timeout: the server's
#: close (FIN) must have reached the client before it sends again.
PAUSE_MARGIN = 0.5


@pytest.fixture(params=CASES)
def interop_server(request: pytest.FixtureRequest) -> InteropServer:
    kind, kwargs = request.param
    start: Callable[..., InteropServer] = request.getfixturevalue(f"start_{kind}")
    return start(**kwargs)


def pause_for(policy: Policy) -> float:
    if policy.idle_timeout is None:
        return 0.2  # no keep-alive at all: any pause is longer than its timeout
    return policy.idle_timeout + PAUSE_MARGIN


def positions(prediction: Prediction) -> list[int]:
    """Each request's 1-based position on its connection, as predicted."""
    return [i + 1 for count in prediction.requests_per_connection for i in range(count)]


def assert_client_story(
    client: rawkeep.Client, events: EventRecorder, prediction: Prediction, requests: int
) -> None:
    """rawkeep's own account matches the prediction (before client.close())."""
    stats = client.pool_stats()
    assert stats.opened == prediction.connections
    assert stats.reused == requests - prediction.connections
    assert stats.active == 0
    assert stats.idle == (1 if prediction.open_at_end else 0)
    assert stats.opened - stats.closed == stats.idle
    summary = Counter(events.summary())
    assert summary[("ConnectionOpened", None)] == prediction.connections
    assert summary[("ConnectionReused", None)] == requests - prediction.connections
    assert summary[("StaleConnectionDiscarded", None)] == prediction.stale
    assert summary[("ConnectionExpired", "server_keep_alive")] == prediction.expired
    closed_by_response = (
        summary[("ConnectionClosed", "connection_close")]
        + summary[("ConnectionClosed", "http_1_0")]
    )
    assert closed_by_response == prediction.closed_by_response
    assert events.count("RequestRetried") == 0
    allowed = {
        ("ConnectionOpened", None),
        ("ConnectionReused", None),
        ("StaleConnectionDiscarded", None),
        ("ConnectionExpired", "server_keep_alive"),
        ("ConnectionClosed", "connection_close"),
        ("ConnectionClosed", "http_1_0"),
    }
    assert set(summary) <= allowed, summary


def assert_server_story(
    server: InteropServer, served: list[Served], targets: list[str], prediction: Prediction
) -> list[str]:
    """The server's log matches the prediction; returns its connection keys."""
    assert [s.target for s in served] == targets
    assert runs([s.connection for s in served]) == prediction.requests_per_connection
    if all(s.position is not None for s in served):
        assert [s.position for s in served] == positions(prediction)
    keys: list[str] = []
    for s in served:
        if not keys or keys[-1] != s.connection:
            keys.append(s.connection)
    return keys


def test_200_requests_with_idle_pauses(
    interop_server: InteropServer,
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
    request: pytest.FixtureRequest,
) -> None:
    server = interop_server
    schedule = Schedule(pause=pause_for(server.policy))
    prediction = predict(server.policy, schedule)
    tag = "run"
    accepts_before = server.accepts() if server.accepts is not None else 0

    client = make_client(verify=server.verify)
    run = run_schedule(client, server.url, schedule, tag)

    # rawkeep's witness: connection ids, reuse flags, stats, events.
    assert run.bodies_ok == schedule.requests
    assert runs(list(run.connection_ids)) == prediction.requests_per_connection
    assert run.reused == [position > 1 for position in positions(prediction)]
    assert_client_story(client, events, prediction, schedule.requests)
    versions = sorted({str(e.tls_version) for e in events.of_type("ConnectionOpened")})
    if server.tls_versions:
        assert set(versions) <= server.tls_versions, versions
    client.close()

    # The server's witness: its own log, and nginx's own connection counter.
    served = server.wait_for_log(schedule.requests, f"/{tag}/")
    keys = assert_server_story(server, served, run.targets, prediction)
    figures: dict[str, Any] = {
        "requests": schedule.requests,
        "pauses": len(schedule.pause_after),
        "pause_s": schedule.pause,
        "connections_predicted": prediction.connections,
        "connections_server_log": len(keys),
        "connections_rawkeep": client.pool_stats().opened,
        "stale": prediction.stale,
        "closed_by_response": prediction.closed_by_response,
        "errors": 0,
        "tls": versions,
    }
    if server.accepts is not None:
        # This query's own connection is counted too.
        figures["connections_server_counter"] = server.accepts() - accepts_before - 1
        assert figures["connections_server_counter"] == prediction.connections
    if server.client_closed is not None:
        # nginx logs (at info) each idle keep-alive connection the *client*
        # closed; the ones it timed out itself it closes silently.
        expected = {keys[i] for i in prediction.closed_by_client}
        closed = server.client_closed
        wait_for(lambda: closed() >= expected, timeout=3.0)
        assert closed() == expected
    record("interop", request.node.callspec.id, figures)


def test_nginx_keep_alive_header_retires_connections_before_nginx_does(
    start_nginx: Callable[..., InteropServer],
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
) -> None:
    # "keepalive_timeout 1s 1s": nginx closes idle connections after 1 s and
    # says so with "Keep-Alive: timeout=1". rawkeep stops reusing after
    # 1 s less its margin (0.25 s), so pauses of 0.85 s fall in between:
    # nginx would still take the connection, rawkeep retires it anyway.
    server = start_nginx(tls=False, keepalive_timeout="1s 1s")
    schedule = Schedule(pause=0.85)
    prediction = predict(server.policy, schedule)
    assert (prediction.expired, prediction.stale) == (3, 0)

    probe = make_client()
    assert probe.get(server.url + "/probe").headers.get("keep-alive") == "timeout=1"
    probe.close()
    events.clear()
    client = make_client()
    run = run_schedule(client, server.url, schedule, "ka")

    assert runs(list(run.connection_ids)) == prediction.requests_per_connection
    assert_client_story(client, events, prediction, schedule.requests)
    expired = events.of_type("ConnectionExpired")
    assert [e.reason for e in expired] == ["server_keep_alive"] * 3
    client.close()

    served = server.wait_for_log(schedule.requests, "/ka/")
    keys = assert_server_story(server, served, run.targets, prediction)
    # Every connection was closed by the client, none by nginx: the three
    # retired at the pauses, the last one (and the probe's) by close().
    probe_keys = {s.connection for s in server.read_log() if s.target == "/probe"}
    expected = set(keys) | probe_keys
    assert len(expected) == prediction.connections + 1
    assert server.client_closed is not None
    closed = server.client_closed
    wait_for(lambda: closed() >= expected, timeout=3.0)
    assert closed() == expected
    record(
        "interop",
        "nginx-http-keepalive_timeout_1s_1s (Keep-Alive: timeout=1)",
        {
            "requests": schedule.requests,
            "pauses": len(schedule.pause_after),
            "pause_s": schedule.pause,
            "connections_server_log": len(keys),
            "connections_rawkeep": client.pool_stats().opened,
            "expired_server_keep_alive": len(expired),
            "stale": 0,
            "errors": 0,
        },
    )


def test_apache_announces_its_limits_to_the_first_request(
    start_apache: Callable[..., InteropServer],
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
) -> None:
    # Apache sends "Keep-Alive: timeout, max" only to a request carrying
    # "Connection: keep-alive", which rawkeep puts on a connection's first
    # request. Told its 1 s, rawkeep retires the connection idle for 0.9 s
    # itself (past 1 s less the 0.25 s margin) instead of probing one that
    # Apache may be closing.
    server = start_apache(keep_alive_timeout=1, max_keep_alive_requests=5)
    client = make_client()
    first = client.get(server.url + "/first")
    again = client.get(server.url + "/again")
    assert first.headers.get("keep-alive") == "timeout=1, max=5"
    assert again.reused
    assert again.headers.get("keep-alive") is None  # not asked on a reused connection
    time.sleep(0.9)
    after = client.get(server.url + "/after")
    assert not after.reused
    assert [e.reason for e in events.of_type("ConnectionExpired")] == ["server_keep_alive"]
    assert events.count("StaleConnectionDiscarded") == 0
    # A caller's own Connection header is left alone: no token added.
    client.get(server.url + "/own", headers={"Connection": "close"})
    client.close()
    served = server.wait_for_log(4, "/")
    assert [(s.target, s.connection_header) for s in served] == [
        ("/first", "keep-alive"),
        ("/again", "-"),
        ("/after", "keep-alive"),
        ("/own", "close"),
    ]
    assert runs([s.connection for s in served]) == [2, 2]
