"""``RequestSent`` and ``ResponseReceived``: each request as written and each
final head as read, in the order they happened, on both clients."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from servers.h11server import Reply

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.recorder import EventRecorder
    from servers.scripted import ReceivedRequest, ScriptedServer

pytestmark = pytest.mark.both_clients


def hops(request: ReceivedRequest) -> Reply:
    if request.target == "/start":
        return Reply(status=302, headers=[("Location", "/end")])
    return Reply(body=b"done", headers=[("X-Seen", "yes")])


def test_each_request_and_head_as_it_went_over_the_wire(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    events: EventRecorder,
) -> None:
    server = start_keepalive_server(respond=hops)
    client = make_client(follow_redirects=True, auth=("ann", "s3cret"), exchange_events=True)

    assert client.get(f"{server.url}/start", headers={"X-Mine": "1"}).content == b"done"

    sent = [e for e in events.exchange if isinstance(e, rawkeep.RequestSent)]
    heads = [e for e in events.exchange if isinstance(e, rawkeep.ResponseReceived)]
    pair = [rawkeep.RequestSent, rawkeep.ResponseReceived]
    assert [type(e) for e in events.exchange] == pair * 2
    assert [(e.method, e.target) for e in sent] == [("GET", "/start"), ("GET", "/end")]
    # The headers as the server read them, in its order and case, but for
    # the credentials, which events never carry.
    for event, received in zip(sent, server.requests, strict=True):
        wire = [(n.decode(), v.decode()) for n, v in received.headers]
        assert [n.lower() for n, _ in event.headers] == [n for n, _ in wire]
        assert dict(event.headers)["Authorization"] == "Basic ***"
        assert [(n.lower(), v) for n, v in event.headers if n != "Authorization"] == [
            (n, v) for n, v in wire if n != "authorization"
        ]
    assert [(e.status, e.reason, e.http_version) for e in heads] == [
        (302, "Found", "HTTP/1.1"),
        (200, "OK", "HTTP/1.1"),
    ]
    assert ("X-Seen", "yes") in heads[1].headers
    assert {e.connection_id for e in events.exchange} == {0}


def test_only_when_asked_for(
    server: ScriptedServer, make_client: Callable[..., rawkeep.Client], events: EventRecorder
) -> None:
    make_client().get(server.url)
    assert events.exchange == []
    assert events.names() == ["ConnectionOpened"]
