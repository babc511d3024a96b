"""Fuzzing the response side: generated and mutated responses over a real socket.

One replay server serves every example (see `servers.replay`). Valid
responses must be read exactly (status, reason, headers, decoded body) and
the connection reused exactly when the keep-alive rules allow; mutated ones
must give a response or a ``RawkeepError``, quickly, leaking nothing
(`harness.exchange` checks that part for every example).

Failures found while building this suite are kept as explicit regression
cases in ``test_fuzz_corpus.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypothesis import given
from hypothesis import strategies as st

from .harness import exchange, fuzz_settings
from .strategies import mutated, responses

if TYPE_CHECKING:
    from servers.replay import ReplayBook
    from servers.scripted import ScriptedServer

    from .strategies import GeneratedResponse


def as_parsed(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Headers as h11 hands them over: Transfer-Encoding's value lower-cased."""
    return [
        (name, value.lower() if name.lower() == "transfer-encoding" else value)
        for name, value in headers
    ]


@fuzz_settings(150)
@given(generated=responses(), streamed=st.booleans())
def test_valid_responses_are_read_exactly_and_reused_by_the_rules(
    fuzz_server: ScriptedServer, book: ReplayBook, generated: GeneratedResponse, streamed: bool
) -> None:
    outcome = exchange(
        fuzz_server,
        book,
        generated.wire,
        close=generated.close_after,
        method=generated.method,
        streamed=streamed,
    )
    assert outcome.error is None, outcome.error
    first, second = outcome.responses
    for response, body in zip(outcome.responses, outcome.bodies, strict=True):
        assert response.status == generated.status
        assert response.reason == generated.reason
        assert response.http_version == generated.http_version
        assert list(response.headers.items()) == as_parsed(generated.headers)
        assert body == generated.body
    assert second.reused is generated.reusable
    assert (second.connection_id == first.connection_id) is generated.reusable
    assert outcome.events.count("RequestRetried") == 0


@fuzz_settings(250)
@given(generated=responses(), data=st.data())
def test_mutated_responses_give_a_response_or_a_rawkeep_error(
    fuzz_server: ScriptedServer,
    book: ReplayBook,
    generated: GeneratedResponse,
    data: st.DataObject,
) -> None:
    wire = data.draw(mutated(generated.wire), label="wire")
    # Mostly the server closes after its bytes (a fast end for the client);
    # sometimes it waits, so the client must give up on its read timeout.
    close = data.draw(st.sampled_from([True, True, True, False]), label="close")
    streamed = data.draw(st.booleans(), label="streamed")
    exchange(fuzz_server, book, wire, close=close, method=generated.method, streamed=streamed)


@fuzz_settings(100)
@given(wire=st.binary(max_size=300), close=st.sampled_from([True, True, True, False]))
def test_arbitrary_bytes_give_a_response_or_a_rawkeep_error(
    fuzz_server: ScriptedServer, book: ReplayBook, wire: bytes, close: bool
) -> None:
    exchange(fuzz_server, book, wire, close=close)
