"""Property tests for ``Headers`` against a reference model.

The model is the obvious one: a list of ``(name, value)`` pairs in the order
they were written, looked up by ``name.lower()``.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from rawkeep import Headers

BASE_NAMES = ["a", "b", "set-cookie", "content-type", "x-trace-id"]


@st.composite
def names(draw: st.DrawFn) -> str:
    """A name from a small set, in random case, so that names collide."""
    base = draw(st.sampled_from(BASE_NAMES))
    flags = draw(st.lists(st.booleans(), min_size=len(base), max_size=len(base)))
    return "".join(c.upper() if up else c for c, up in zip(base, flags, strict=True))


# Latin-1 only: the range raw() can encode.
VALUES = st.text(st.characters(max_codepoint=0xFF), max_size=6)
PAIRS = st.lists(st.tuples(names(), VALUES), max_size=8)


def model_get_all(model: list[tuple[str, str]], name: str) -> list[str]:
    return [v for n, v in model if n.lower() == name.lower()]


def model_names(model: list[tuple[str, str]]) -> list[str]:
    """Distinct names in first-seen order, as first written."""
    seen: dict[str, str] = {}
    for name, _ in model:
        seen.setdefault(name.lower(), name)
    return list(seen.values())


class HeadersMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.headers = Headers()
        self.model: list[tuple[str, str]] = []

    @rule(name=names(), value=VALUES)
    def add(self, name: str, value: str) -> None:
        self.headers.add(name, value)
        self.model.append((name, value))

    @rule(name=names(), value=VALUES)
    def set_item(self, name: str, value: str) -> None:
        self.headers[name] = value
        key = name.lower()
        first = next((i for i, (n, _) in enumerate(self.model) if n.lower() == key), None)
        if first is None:
            self.model.append((name, value))
            return
        self.model = [
            (name, value) if i == first else (n, v)
            for i, (n, v) in enumerate(self.model)
            if i == first or n.lower() != key
        ]

    @rule(name=names())
    def del_item(self, name: str) -> None:
        present = bool(model_get_all(self.model, name))
        try:
            del self.headers[name]
        except KeyError:
            assert not present
        else:
            assert present
        self.model = [(n, v) for n, v in self.model if n.lower() != name.lower()]

    @precondition(lambda self: len(self.model) < 30)
    @rule(pairs=PAIRS)
    def copy_is_independent(self, pairs: list[tuple[str, str]]) -> None:
        # A copy is independent: changing it leaves the original alone.
        copy = Headers(self.headers)
        for name, value in pairs:
            copy.add(name, value)
        assert self.headers.items() == self.model

    @rule(name=names())
    def lookup(self, name: str) -> None:
        values = model_get_all(self.model, name)
        assert self.headers.get_all(name) == values
        assert (name in self.headers) == bool(values)
        if values:
            assert self.headers[name] == ", ".join(values)
            assert self.headers.get(name) == ", ".join(values)
        else:
            assert self.headers.get(name, "absent") == "absent"

    @invariant()
    def same_pairs(self) -> None:
        assert self.headers.items() == self.model

    @invariant()
    def same_names(self) -> None:
        assert list(self.headers) == model_names(self.model)
        assert len(self.headers) == len(model_names(self.model))

    @invariant()
    def same_raw(self) -> None:
        assert self.headers.raw() == [
            (n.encode("latin-1"), v.encode("latin-1")) for n, v in self.model
        ]

    @invariant()
    def equal_to_a_rebuild(self) -> None:
        assert self.headers == Headers(self.model)
        assert self.headers == Headers(list(reversed(self.model)))


HeadersMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestHeadersMachine = HeadersMachine.TestCase


@settings(max_examples=150, deadline=None)
@given(PAIRS)
def test_construction_keeps_pairs(pairs: list[tuple[str, str]]) -> None:
    headers = Headers(pairs)
    assert headers.items() == pairs
    raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in pairs]
    assert Headers(raw).items() == pairs
    assert Headers(headers.raw()) == headers


@settings(max_examples=150, deadline=None)
@given(PAIRS.flatmap(lambda pairs: st.tuples(st.just(pairs), st.permutations(pairs))))
def test_equality_ignores_order(
    pairs_and_shuffled: tuple[list[tuple[str, str]], list[tuple[str, str]]],
) -> None:
    pairs, shuffled = pairs_and_shuffled
    assert Headers(pairs) == Headers(shuffled)
    swapped = [(n.swapcase(), v) for n, v in shuffled]
    assert Headers(pairs) == Headers(swapped)


@settings(max_examples=150, deadline=None)
@given(PAIRS, names(), VALUES)
def test_add_then_inequality(pairs: list[tuple[str, str]], name: str, value: str) -> None:
    headers = Headers(pairs)
    more = Headers(headers)
    more.add(name, value)
    assert more != headers
    assert more.get_all(name)[-1] == value
