"""Lifecycle events: frozen keyword-only dataclasses, delivery and logging."""

from __future__ import annotations

import dataclasses
import json
import logging
import typing
from typing import Any

import pytest

import rawkeep
from rawkeep._events import (
    CloseReason,
    ConnectionClosed,
    ConnectionExpired,
    ConnectionOpened,
    ConnectionReused,
    Emitter,
    Event,
    ExpiryReason,
    RequestRetried,
    StaleConnectionDiscarded,
    describe,
)

COMMON: dict[str, Any] = {
    "connection_id": 1,
    "origin": "http://127.0.0.1:8080",
    "time": 1_700_000_000.25,
}


def examples() -> list[Event]:
    return [
        ConnectionOpened(**COMMON, tls_version=None, connect_time=0.0012),
        ConnectionOpened(**COMMON, tls_version="TLSv1.3", connect_time=0.5),
        ConnectionReused(**COMMON, idle_for=1.5, responses=3),
        ConnectionExpired(**COMMON, reason="idle_timeout"),
        StaleConnectionDiscarded(**COMMON),
        ConnectionClosed(**COMMON, reason="client_closed"),
        RequestRetried(
            **COMMON, method="GET", url="http://127.0.0.1:8080/a", attempt=1, error="x"
        ),
    ]


EXAMPLES = examples()
IDS = [f"{type(e).__name__}-{i}" for i, e in enumerate(EXAMPLES)]
EVENT_CLASSES = [
    ConnectionOpened,
    ConnectionReused,
    ConnectionExpired,
    StaleConnectionDiscarded,
    ConnectionClosed,
    RequestRetried,
]


@pytest.mark.parametrize("cls", EVENT_CLASSES)
def test_public_and_under_one_base(cls: type[Event]) -> None:
    assert getattr(rawkeep, cls.__name__) is cls
    assert cls.__bases__ == (Event,)
    assert rawkeep.Event is Event


@pytest.mark.parametrize("event", EXAMPLES, ids=IDS)
def test_common_fields(event: Event) -> None:
    assert event.connection_id == 1
    assert event.origin == "http://127.0.0.1:8080"
    assert event.time == 1_700_000_000.25


@pytest.mark.parametrize("event", EXAMPLES, ids=IDS)
def test_frozen(event: Event) -> None:
    for field in dataclasses.fields(event):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(event, field.name, getattr(event, field.name))
    # A new attribute is refused too. CPython 3.11's generated frozen
    # __setattr__ calls super() with the class as it was before slots=True
    # rebuilt it, so on a subclass this surfaces as TypeError, not
    # FrozenInstanceError; either way the event is unchanged.
    with pytest.raises((AttributeError, TypeError)):
        event.extra = 1  # type: ignore[attr-defined]
    assert not hasattr(event, "extra")
    with pytest.raises(dataclasses.FrozenInstanceError):
        del event.origin


@pytest.mark.parametrize("event", EXAMPLES, ids=IDS)
def test_slots(event: Event) -> None:
    assert not hasattr(event, "__dict__")
    assert "__slots__" in vars(type(event))


@pytest.mark.parametrize("event", EXAMPLES, ids=IDS)
def test_keyword_only(event: Event) -> None:
    cls = type(event)
    values = [getattr(event, f.name) for f in dataclasses.fields(event)]
    with pytest.raises(TypeError):
        cls(*values)  # type: ignore[call-arg]
    # ...while the same values by keyword build an equal event.
    again = cls(**{f.name: getattr(event, f.name) for f in dataclasses.fields(event)})
    assert again == event


@pytest.mark.parametrize("cls", [Event, *EVENT_CLASSES])
def test_missing_fields_are_refused(cls: type[Event]) -> None:
    with pytest.raises(TypeError):
        cls(connection_id=1, origin="http://h:80")  # type: ignore[call-arg]


def test_events_compare_by_value_and_hash() -> None:
    a = ConnectionExpired(**COMMON, reason="max_age")
    b = ConnectionExpired(**COMMON, reason="max_age")
    c = ConnectionExpired(**COMMON, reason="max_requests")
    assert a == b
    assert hash(a) == hash(b)
    assert a != c


def test_to_dict() -> None:
    event = ConnectionExpired(**COMMON, reason="server_keep_alive")
    assert event.to_dict() == {
        "event": "ConnectionExpired",
        "connection_id": 1,
        "origin": "http://127.0.0.1:8080",
        "time": 1_700_000_000.25,
        "reason": "server_keep_alive",
    }


@pytest.mark.parametrize("event", EXAMPLES, ids=IDS)
def test_to_dict_is_plain_data(event: Event) -> None:
    data = event.to_dict()
    assert data["event"] == type(event).__name__
    assert set(data) == {"event"} | {f.name for f in dataclasses.fields(event)}
    for field in dataclasses.fields(event):
        assert data[field.name] == getattr(event, field.name)
    assert json.loads(json.dumps(data)) == data


def test_expiry_reasons_match_api_md() -> None:
    assert set(typing.get_args(ExpiryReason)) == {
        "idle_timeout",
        "server_keep_alive",
        "max_requests",
        "max_age",
    }


def test_close_reasons_are_distinct_from_expiry_reasons() -> None:
    close = set(typing.get_args(CloseReason))
    assert close
    assert "client_closed" in close
    assert not close & set(typing.get_args(ExpiryReason))


# -- describe -----------------------------------------------------------------


@pytest.mark.parametrize("event", EXAMPLES, ids=IDS)
def test_describe_is_one_short_line(event: Event) -> None:
    line = describe(event)
    assert line
    assert "\n" not in line
    assert "\r" not in line
    assert line == line.strip()
    assert len(line) < 200
    assert line.startswith(f"{type(event).__name__} #1 http://127.0.0.1:8080")


@pytest.mark.parametrize(
    ("event", "parts"),
    [
        (ConnectionOpened(**COMMON, tls_version=None, connect_time=0.0012), ["1.2 ms"]),
        (
            ConnectionOpened(**COMMON, tls_version="TLSv1.3", connect_time=0.5),
            ["TLSv1.3", "500.0 ms"],
        ),
        (ConnectionReused(**COMMON, idle_for=1.5, responses=3), ["1.500 s", "3"]),
        (ConnectionExpired(**COMMON, reason="max_age"), ["reason=max_age"]),
        (ConnectionClosed(**COMMON, reason="http_1_0"), ["reason=http_1_0"]),
        (
            RequestRetried(
                **COMMON,
                method="PUT",
                url="http://127.0.0.1:8080/x",
                attempt=2,
                error="peer closed",
            ),
            ["PUT", "http://127.0.0.1:8080/x", "attempt 2", "peer closed"],
        ),
    ],
)
def test_describe_says_what_matters(event: Event, parts: list[str]) -> None:
    line = describe(event)
    for part in parts:
        assert part in line


def test_describe_distinguishes_connections() -> None:
    one = describe(StaleConnectionDiscarded(**COMMON))
    two = describe(StaleConnectionDiscarded(**{**COMMON, "connection_id": 2}))
    assert one != two


def test_describe_stays_one_line_for_multi_line_errors() -> None:
    event = RequestRetried(
        **COMMON, method="GET", url="http://h/", attempt=1, error="first\nsecond"
    )
    assert "\n" not in describe(event)


# -- Emitter ------------------------------------------------------------------


def test_emitter_calls_the_callback() -> None:
    received: list[Event] = []
    emitter = Emitter(received.append)
    for event in EXAMPLES:
        emitter.emit(event)
    assert received == EXAMPLES


def test_emitter_enabled(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rawkeep")
    assert not Emitter(None).enabled
    assert Emitter(lambda event: None).enabled
    caplog.set_level(logging.DEBUG, logger="rawkeep")
    assert Emitter(None).enabled


def test_events_are_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="rawkeep")
    emitter = Emitter(None)
    for event in EXAMPLES:
        emitter.emit(event)
    records = [r for r in caplog.records if r.name == "rawkeep"]
    assert [r.levelno for r in records] == [logging.DEBUG] * len(EXAMPLES)
    assert [r.getMessage() for r in records] == [describe(e) for e in EXAMPLES]


def test_events_are_logged_with_a_callback_too(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="rawkeep")
    received: list[Event] = []
    Emitter(received.append).emit(EXAMPLES[0])
    assert received == [EXAMPLES[0]]
    assert [r.getMessage() for r in caplog.records if r.name == "rawkeep"] == [
        describe(EXAMPLES[0])
    ]


def test_nothing_logged_above_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rawkeep")
    received: list[Event] = []
    Emitter(received.append).emit(EXAMPLES[0])
    assert received == [EXAMPLES[0]]
    assert [r for r in caplog.records if r.name == "rawkeep"] == []


class CallbackFailed(Exception):
    pass


def test_raising_callback_does_not_propagate(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="rawkeep")
    calls: list[Event] = []

    def callback(event: Event) -> None:
        calls.append(event)
        raise CallbackFailed("boom")

    emitter = Emitter(callback)
    emitter.emit(EXAMPLES[0])  # must not raise
    emitter.emit(EXAMPLES[1])
    assert calls == EXAMPLES[:2]

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    for record in errors:
        assert record.name == "rawkeep"
        assert record.exc_info is not None
        assert record.exc_info[0] is CallbackFailed


def test_raising_callback_is_logged_even_without_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="rawkeep")

    def callback(event: Event) -> None:
        raise CallbackFailed("boom")

    Emitter(callback).emit(EXAMPLES[0])
    assert [(r.name, r.levelno) for r in caplog.records] == [("rawkeep", logging.ERROR)]
