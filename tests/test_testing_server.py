"""``rawkeep.testing.LocalServer``: the test double users run their code against.

Each test runs the real client (``Client`` and ``AsyncClient`` through
``dual``) against a ``LocalServer`` on 127.0.0.1 and checks both sides: what
the client saw (responses, events, ``pool_stats()``) and what the server
recorded (``requests``, ``connections``, ``errors``).
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import rawkeep
from rawkeep.testing import Behaviour, LocalServer, Reply, Routes, ServerRequest

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.recorder import EventRecorder

pytestmark = pytest.mark.both_clients


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- handlers ------------------------------------------------------------------------------


def test_routes_answer_by_method_and_path(make_client: Callable[..., rawkeep.Client]) -> None:
    def create(request: ServerRequest) -> Reply:
        return Reply.json({"created": request.json()}, status=201, headers={"Location": "/u/7"})

    routes: Routes = {
        "/users": Reply.json([{"id": 1}]),
        "POST /users": create,
        "/text": Reply.text("plain\n"),
    }
    with LocalServer(routes) as server:
        client = make_client(base_url=server.url)
        listed = client.get("/users?page=2")
        created = client.post("/users", json={"name": "ada"})
        missing = client.delete("/nowhere")
        text = client.put("/text")  # a key without a method answers any method
    assert (listed.status, listed.json()) == (200, [{"id": 1}])
    assert listed.headers["content-type"] == "application/json"
    assert (created.status, created.json()) == (201, {"created": {"name": "ada"}})
    assert created.headers["location"] == "/u/7"
    assert (missing.status, missing.text) == (404, "no route for DELETE /nowhere\n")
    assert (text.status, text.text) == (200, "plain\n")
    seen = [(r.method, r.target, r.path, r.query) for r in server.requests]
    assert seen == [
        ("GET", "/users?page=2", "/users", {"page": "2"}),
        ("POST", "/users", "/users", {}),
        ("DELETE", "/nowhere", "/nowhere", {}),
        ("PUT", "/text", "/text", {}),
    ]
    assert server.errors == []


def test_a_callable_handler_sees_the_whole_request(
    make_client: Callable[..., rawkeep.Client],
) -> None:
    def handler(request: ServerRequest) -> Reply:
        return Reply.text(f"{request.method} {request.path} token={request.header('X-TOKEN')}")

    with LocalServer(handler) as server:
        client = make_client()
        response = client.post(
            server.url + "/orders?x=1", content=b"raw body", headers={"x-token": "abc"}
        )
    assert response.text == "POST /orders token=abc"
    (request,) = server.requests
    assert request.body == b"raw body"
    assert request.http_version == "1.1"
    assert request.header("Content-Length") == "8"
    assert request.header("x-missing") is None
    assert ("x-token", "abc") in request.headers  # as sent: names' case kept
    assert (request.connection, request.number) == (0, 1)


def test_no_handler_serves_the_lab_paths(make_client: Callable[..., rawkeep.Client]) -> None:
    with LocalServer() as server:
        client = make_client()
        assert client.get(server.url + "/json").json() == {"connection": 0, "request": 1}
        assert client.get(server.url + "/status/418").status == 418


# -- keep-alive, seen from both sides ----------------------------------------------------


def test_records_show_reuse_from_the_server_side(
    make_client: Callable[..., rawkeep.Client], events: EventRecorder
) -> None:
    with LocalServer({"/": Reply.text("ok")}) as server:
        client = make_client()
        for _ in range(3):
            assert client.get(server.url + "/").status == 200
        assert server.connections == 1
    assert [(r.connection, r.number) for r in server.requests] == [(0, 1), (0, 2), (0, 3)]
    assert events.count("ConnectionReused") == 2
    stats = client.pool_stats()
    assert (stats.opened, stats.reused) == (1, 2)


def test_close_after_one_gives_a_connection_per_request(
    make_client: Callable[..., rawkeep.Client], events: EventRecorder
) -> None:
    behaviour = Behaviour(close_after=1)
    with LocalServer({"/": Reply.text("ok")}, behaviour=behaviour) as server:
        client = make_client()
        responses = [client.get(server.url + "/") for _ in range(3)]
        assert server.connections == 3
    assert [r.headers.get("connection") for r in responses] == ["close"] * 3
    assert [(r.connection, r.number) for r in server.requests] == [(0, 1), (1, 1), (2, 1)]
    stats = client.pool_stats()
    assert (stats.opened, stats.reused, stats.closed) == (3, 0, 3)
    assert events.count("ConnectionReused") == 0


def test_a_hang_up_is_recorded_and_the_client_retries(
    make_client: Callable[..., rawkeep.Client], events: EventRecorder
) -> None:
    """The keep-alive race on demand: the second request on a connection is
    read and not answered; the client sends it again on a new connection."""
    with LocalServer({"/": Reply.text("ok")}, behaviour=Behaviour(hang_up_on_request=2)) as server:
        client = make_client()
        assert client.get(server.url + "/").status == 200
        assert client.get(server.url + "/").status == 200
    assert [(r.connection, r.number) for r in server.requests] == [(0, 1), (0, 2), (1, 1)]
    assert events.count("RequestRetried") == 1


# -- a broken handler fails the test -------------------------------------------------------


def test_a_raising_handler_gets_500_and_is_raised_at_exit(
    make_client: Callable[..., rawkeep.Client],
) -> None:
    def broken(request: ServerRequest) -> Reply:
        raise KeyError("user_id")

    client = make_client()
    statuses = []

    def a_test() -> None:
        with LocalServer({"/": broken}) as server:
            response = client.get(server.url + "/")
            assert response.text == "KeyError('user_id')\n"
            assert [type(e) for e in server.errors] == [KeyError]
            # The server goes on serving after a handler's failure.
            statuses.extend([response.status, client.get(server.url + "/").status])

    with pytest.raises(KeyError, match="user_id"):
        a_test()
    assert statuses == [500, 500]


def test_stop_raises_the_first_error_once() -> None:
    server = LocalServer(lambda request: Reply(status=600))
    server.start()
    with rawkeep.Client() as client:
        assert client.get(server.url + "/").status == 500
    with pytest.raises(ValueError, match="from 200 to 599, not 600"):
        server.stop()
    server.stop()  # already stopped: nothing again


def test_the_blocks_own_exception_wins(make_client: Callable[..., rawkeep.Client]) -> None:
    client = make_client()
    with pytest.raises(AssertionError) as raised, LocalServer(lambda r: 1 // 0) as server:  # type: ignore[arg-type, return-value]
        assert client.get(server.url + "/").status == 200
    assert isinstance(server.errors[0], ZeroDivisionError)
    if sys.version_info >= (3, 11):
        assert "ZeroDivisionError" in str(raised.value.__notes__)


@pytest.mark.parametrize(
    ("returned", "error"),
    [
        ("not a reply", "the handler returned str, not a Reply"),
        (None, "the handler returned NoneType, not a Reply"),
        (Reply(body=b"data"), "Reply.body must be a tuple of bytes"),  # type: ignore[arg-type]
        (Reply(headers=(("a", 1),)), "Reply.headers must be a tuple"),  # type: ignore[arg-type]
    ],
)
def test_a_non_reply_gets_500_and_a_type_error_at_exit(
    make_client: Callable[..., rawkeep.Client], returned: object, error: str
) -> None:
    client = make_client()
    server = LocalServer(lambda request: returned)  # type: ignore[arg-type, return-value]
    server.start()
    response = client.get(server.url + "/")
    with pytest.raises(TypeError, match=error):
        server.stop()
    assert response.status == 500
    assert response.text.startswith("TypeError(")


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["10.0.0.1", "0.0.0.0", "localhost", "example.org"])
def test_a_host_off_loopback_is_a_value_error(host: str) -> None:
    with pytest.raises(ValueError, match=r"does not appear|loopback only"):
        LocalServer(host=host)


@pytest.mark.parametrize(
    ("handler", "error", "match"),
    [
        ({1: Reply()}, TypeError, "a route key must be a string, not int"),
        ({b"/x": Reply()}, TypeError, "a route key must be a string, not bytes"),
        ({"/x": "text"}, TypeError, "must map to a Reply or a callable, not str"),
        ({"users": Reply()}, ValueError, "'/path' or 'METHOD /path'"),
        ({"get /users": Reply()}, ValueError, "'/path' or 'METHOD /path'"),
        ({"/users?id=1": Reply()}, ValueError, "'/path' or 'METHOD /path'"),
        ({"GET  /users": Reply()}, ValueError, "'/path' or 'METHOD /path'"),
        (42, TypeError, "handler must be callable, a mapping or None, not int"),
    ],
)
def test_bad_handlers_are_refused_at_construction(
    handler: object, error: type[Exception], match: str
) -> None:
    threads = threading.enumerate()
    with pytest.raises(error, match=match):
        LocalServer(handler)  # type: ignore[arg-type]
    assert threading.enumerate() == threads


def test_bad_behaviour_and_misuse() -> None:
    with pytest.raises(TypeError, match="behaviour must be a Behaviour, not dict"):
        LocalServer(behaviour={"close_after": 1})  # type: ignore[arg-type]
    server = LocalServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    with server:
        with pytest.raises(RuntimeError, match="starts once"):
            server.start()
        with pytest.raises(RuntimeError, match="needs tls=True"):
            _ = server.ca_file
    with pytest.raises(RuntimeError, match="starts once"):
        server.start()


# -- nothing left behind -------------------------------------------------------------------


def test_stop_leaves_no_thread_and_no_socket(
    make_client: Callable[..., rawkeep.Client],
) -> None:
    client = make_client()  # its loop thread (async) exists before the count
    gc.collect()
    threads, fds = set(threading.enumerate()), open_fds()
    with LocalServer({"/": Reply.text("ok")}) as server:
        for _ in range(2):
            client.get(server.url + "/")  # a keep-alive connection stays open
        with rawkeep.Client() as other:
            other.get(server.url + "/")
        assert set(threading.enumerate()) - threads  # acceptor and connection threads
    # The server stopped while the client still holds an idle connection.
    assert set(threading.enumerate()) == threads
    client.close()
    gc.collect()
    assert open_fds() == fds


def test_requests_is_a_snapshot() -> None:
    with LocalServer() as server, rawkeep.Client() as client:
        client.get(server.url + "/")
        records = server.requests
        records.clear()
        assert len(server.requests) == 1


# -- https ---------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="tls=True needs the openssl command")
def test_tls_with_the_servers_ca(make_client: Callable[..., rawkeep.Client]) -> None:
    with LocalServer({"/": Reply.text("secret")}, tls=True) as server:
        ca_file = Path(server.ca_file)
        assert server.url.startswith("https://127.0.0.1:")
        client = make_client(verify=server.ca_file)
        assert client.get(server.url + "/").text == "secret"
        with pytest.raises(rawkeep.TLSError):
            make_client().get(server.url + "/")  # the system's CAs don't trust it
    assert not ca_file.exists()  # the certificates go with the server
