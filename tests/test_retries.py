"""The keep-alive race and retries (RFC 9112 section 9.3.1).

The scripted server answers the first request on a connection, then takes
the next request off the wire and closes (or resets) without answering: the
client's reused connection fails before any response byte. Idempotent
requests with a replayable body are retried once on a fresh connection;
everything else surfaces as an error, and the server's ledger proves that a
POST was never sent twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from servers import faults

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from servers.recorder import EventRecorder
    from servers.scripted import ScriptedServer

pytestmark = pytest.mark.both_clients

OPENED = ("ConnectionOpened", None)
REUSED = ("ConnectionReused", None)
CLOSED_BY_ERROR = ("ConnectionClosed", "error")
STALE = ("StaleConnectionDiscarded", None)


def race_server(
    start_server: Callable[..., ScriptedServer],
    fault: faults.Script = faults.close_without_response,
) -> ScriptedServer:
    """First connection: answer once, then `fault`; later ones: keep serving."""
    return start_server(faults.per_connection(faults.serve_then(1, fault), faults.keep_serving))


def body_chunks() -> Iterator[bytes]:
    yield b"not "
    yield b"replayable"


@pytest.mark.parametrize("fault", [faults.close_without_response, faults.reset_after_request])
@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("GET", {}),
        ("HEAD", {}),
        ("OPTIONS", {}),
        ("TRACE", {}),
        ("DELETE", {}),
        ("PUT", {"content": b"bytes body"}),
        ("PUT", {"content": "text body"}),
        ("PUT", {"json": {"a": [1, 2]}}),
        ("PUT", {"data": {"a": "1", "b": "two"}}),
    ],
)
def test_idempotent_request_is_retried_on_fresh_connection(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
    fault: faults.Script,
    method: str,
    kwargs: dict[str, Any],
) -> None:
    server = race_server(start_server, fault)
    client.get(f"{server.url}/first")

    response = client.request(method, f"{server.url}/second", **kwargs)

    assert response.status == 200
    assert not response.reused
    assert server.requests_per_connection() == [2, 1]
    lost, replayed = server.requests[1], server.requests[2]
    assert (lost.method, lost.target) == (method, "/second")
    assert (replayed.method, replayed.target) == (method, "/second")
    assert replayed.body == lost.body
    assert replayed.header("content-type") == lost.header("content-type")
    (retried,) = events.of_type("RequestRetried")
    assert (retried.method, retried.url, retried.attempt) == (
        method,
        f"{server.url}/second",
        1,
    )
    assert isinstance(retried.error, str)
    stories = list(events.by_connection().values())
    assert stories == [[OPENED, REUSED, CLOSED_BY_ERROR], [OPENED]]
    stats = client.pool_stats()
    assert (stats.opened, stats.closed, stats.idle, stats.active) == (2, 1, 1, 0)


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("POST", {"content": b"payload"}),
        ("POST", {}),
        ("PATCH", {"json": {"op": "add"}}),
        # Idempotent, but a generator can't be replayed.
        ("PUT", {"content": body_chunks()}),
    ],
)
def test_non_retryable_request_fails_and_is_sent_once(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
    method: str,
    kwargs: dict[str, Any],
) -> None:
    server = race_server(start_server)
    client.get(f"{server.url}/first")

    with pytest.raises(rawkeep.RemoteProtocolError):
        client.request(method, f"{server.url}/second", **kwargs)

    sent = [r for r in server.requests if r.method == method]
    assert len(sent) == 1
    if "content" in kwargs and isinstance(kwargs["content"], bytes):
        assert sent[0].body == kwargs["content"]
    assert server.accepted == 1
    assert events.count("RequestRetried") == 0
    assert list(events.by_connection().values()) == [[OPENED, REUSED, CLOSED_BY_ERROR]]
    assert client.pool_stats().active == 0


def test_post_body_reaches_server_exactly_once(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
) -> None:
    server = race_server(start_server)
    client.get(f"{server.url}/first")
    with pytest.raises(rawkeep.RemoteProtocolError):
        client.post(f"{server.url}/order", content=b"buy 1 share")
    # A later request works and the POST was still received only once.
    assert client.get(f"{server.url}/after").status == 200
    bodies = [r.body for r in server.requests if r.method == "POST"]
    assert bodies == [b"buy 1 share"]


def test_retries_zero_disables_retry(
    start_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
) -> None:
    server = race_server(start_server)
    client = make_client(retries=0)
    client.get(f"{server.url}/first")

    with pytest.raises(rawkeep.RemoteProtocolError):
        client.get(f"{server.url}/second")

    assert server.requests_per_connection() == [2]
    assert events.count("RequestRetried") == 0
    assert client.pool_stats().active == 0


def test_failed_retry_is_not_retried_again(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    server = start_server(
        faults.per_connection(
            faults.serve_then(1, faults.close_without_response),
            faults.close_without_response,
        )
    )
    client.get(f"{server.url}/first")

    with pytest.raises(rawkeep.RemoteProtocolError):
        client.get(f"{server.url}/second")

    assert server.requests_per_connection() == [2, 1]
    assert events.count("RequestRetried") == 1
    assert client.pool_stats().active == 0


def test_failure_on_fresh_connection_is_not_retried(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    server = start_server(faults.close_without_response)
    with pytest.raises(rawkeep.RemoteProtocolError):
        client.get(server.url)
    assert server.accepted == 1
    assert events.summary() == [OPENED, CLOSED_BY_ERROR]


def test_read_timeout_is_not_retried(
    start_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
) -> None:
    server = race_server(start_server, faults.stall)
    client = make_client(timeout=rawkeep.Timeout(connect=5.0, read=0.3, write=5.0))
    client.get(f"{server.url}/first")

    with pytest.raises(rawkeep.ReadTimeout):
        client.get(f"{server.url}/second")

    assert server.requests_per_connection() == [2]
    assert events.count("RequestRetried") == 0
    assert client.pool_stats().active == 0


def test_failure_after_response_bytes_is_not_retried(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    server = race_server(start_server, faults.truncated_head)
    client.get(f"{server.url}/first")

    with pytest.raises(rawkeep.RemoteProtocolError):
        client.get(f"{server.url}/second")

    assert server.requests_per_connection() == [2]
    assert events.count("RequestRetried") == 0


def test_keep_alive_race_window_never_surfaces(
    start_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    # Every connection is closed by the server right after its response,
    # without "Connection: close": the next request finds the connection
    # either already dead (stale, discarded) or dying (fails, retried).
    # Closes the moment a connection goes idle are no idle timer's: the pool
    # learns no limit from them.
    server = start_server(faults.answer_then_close)
    for i in range(20):
        assert client.get(f"{server.url}/{i}").content == b"ok"

    assert server.accepted == 20
    assert server.requests_per_connection() == [1] * 20
    assert [r.target for r in server.requests] == [f"/{i}" for i in range(20)]
    stories = list(events.by_connection().values())
    assert len(stories) == 20
    for story in stories[:-1]:
        assert story in ([OPENED, STALE], [OPENED, REUSED, CLOSED_BY_ERROR])
    assert stories[-1] == [OPENED]
    assert events.count("RequestRetried") == sum(
        story == [OPENED, REUSED, CLOSED_BY_ERROR] for story in stories
    )
    assert events.of_type("IdleLimitLearned") == []
    assert client.pool_stats().active == 0
