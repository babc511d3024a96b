"""An unsolicited 408 on a reused connection: the request is repeated.

Node, Apache and others answer ``408 Request Timeout`` on an idle
connection they are about to close; a request sent just then gets it.
RFC 9110 section 15.5.9: the server did not receive a complete request, and
the client may repeat it. rawkeep repeats any request whose body can be
sent again (a POST too), once per retry, on a fresh connection; a 408 on a
fresh connection, or with nothing left to repeat with, is the caller's.

The server here reads the second request of each connection and answers
it with 408 and ``Connection: close``: the moment, made deterministic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from servers.faults import MAX_WAIT, ok
from servers.scripted import render_response

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from servers.recorder import EventRecorder
    from servers.scripted import ScriptedServer, ServerConnection

    import rawkeep

pytestmark = pytest.mark.both_clients

TIMED_OUT = render_response(408, b"timed out\n", [("Connection", "close")])


def timeout_on_second(conn: ServerConnection) -> None:
    """Answer the first request, then 408 and close on the second."""
    if not ok(conn):
        return
    if conn.read_request(timeout=MAX_WAIT) is not None:
        conn.respond(TIMED_OUT)
    conn.close()


def timeout_on_first(conn: ServerConnection) -> None:
    if conn.read_request(timeout=MAX_WAIT) is not None:
        conn.respond(TIMED_OUT)
    conn.close()


def test_a_get_is_repeated_on_a_fresh_connection(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client, events: EventRecorder
) -> None:
    server = start_server(timeout_on_second)
    client.get(f"{server.url}/a")
    response = client.get(f"{server.url}/b")

    assert (response.status, response.reused, response.content) == (200, False, b"ok")
    assert [(r.connection, r.target) for r in server.requests] == [(0, "/a"), (0, "/b"), (1, "/b")]
    [retried] = events.of_type("RequestRetried")
    assert "408" in retried.error
    assert client.pool_stats().active == 0


def test_a_post_with_a_body_in_memory_is_repeated(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_server(timeout_on_second)
    client.get(f"{server.url}/a")
    response = client.post(f"{server.url}/order", content=b"one pizza")

    assert response.status == 200
    posts = [r for r in server.requests if r.method == "POST"]
    assert [(r.connection, r.body) for r in posts] == [(0, b"one pizza"), (1, b"one pizza")]


def test_a_body_that_cant_be_sent_again_gets_the_408(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_server(timeout_on_second)
    client.get(f"{server.url}/a")

    def pieces() -> Iterator[bytes]:
        yield b"one "
        yield b"pizza"

    response = client.post(f"{server.url}/order", content=pieces())
    assert response.status == 408
    assert server.accepted == 1


def test_a_408_on_a_fresh_connection_is_the_answer(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client, events: EventRecorder
) -> None:
    server = start_server(timeout_on_first)
    response = client.get(f"{server.url}/a")
    assert (response.status, response.reused) == (408, False)
    assert server.accepted == 1
    assert events.count("RequestRetried") == 0


def test_with_retries_0_the_408_is_the_answer(
    start_server: Callable[..., ScriptedServer], make_client: Callable[..., rawkeep.Client]
) -> None:
    server = start_server(timeout_on_second)
    client = make_client(retries=0)
    client.get(f"{server.url}/a")
    response = client.get(f"{server.url}/b")
    assert (response.status, response.reused) == (408, True)
    assert server.accepted == 1
    assert client.pool_stats().active == 0
