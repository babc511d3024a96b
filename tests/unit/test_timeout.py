"""``Timeout``: four per-phase limits in seconds, ``None`` meaning no limit."""

from __future__ import annotations

import math
from typing import cast

import pytest

import rawkeep
from rawkeep import Timeout
from rawkeep._timeout import DEFAULT_TIMEOUT, to_timeout

PHASES = ("connect", "read", "write", "pool")


def limits(timeout: Timeout) -> tuple[float | None, ...]:
    return tuple(getattr(timeout, phase) for phase in PHASES)


def test_is_the_public_class() -> None:
    assert rawkeep.Timeout is Timeout


def test_no_arguments_means_no_limits() -> None:
    assert limits(Timeout()) == (None, None, None, None)
    assert limits(Timeout(None)) == (None, None, None, None)


@pytest.mark.parametrize("value", [5.0, 5, 0, 0.0, 0.001, 86400])
def test_single_number_sets_all_four(value: float) -> None:
    timeout = Timeout(value)
    assert limits(timeout) == (value,) * 4
    for phase in PHASES:
        assert isinstance(getattr(timeout, phase), float)


@pytest.mark.parametrize("phase", PHASES)
def test_keyword_overrides_one_phase(phase: str) -> None:
    timeout = Timeout(5.0, **{phase: 1.0})
    for other in PHASES:
        assert getattr(timeout, other) == (1.0 if other == phase else 5.0)


@pytest.mark.parametrize("phase", PHASES)
def test_keyword_alone_leaves_others_unlimited(phase: str) -> None:
    timeout = Timeout(**{phase: 2})
    for other in PHASES:
        assert getattr(timeout, other) == (2.0 if other == phase else None)


def test_all_keywords() -> None:
    timeout = Timeout(connect=1, read=2, write=3, pool=4)
    assert limits(timeout) == (1.0, 2.0, 3.0, 4.0)


def test_keywords_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Timeout(1.0, 2.0)  # type: ignore[call-arg]


BAD_TYPES: list[object] = ["5", b"5", [1], (1,), {}, True, False, object(), 1j]


def test_bad_types_raise_type_error() -> None:
    for value in BAD_TYPES:
        with pytest.raises(TypeError):
            Timeout(cast("float", value))
        for phase in PHASES:
            with pytest.raises(TypeError):
                Timeout(**{phase: cast("float", value)})


BAD_VALUES = [-1, -0.001, -1e-300, math.inf, -math.inf, math.nan]


def test_negative_or_non_finite_raise_value_error() -> None:
    for value in BAD_VALUES:
        with pytest.raises(ValueError, match="finite"):
            Timeout(value)
        for phase in PHASES:
            with pytest.raises(ValueError, match="finite"):
                Timeout(**{phase: value})


def test_huge_int_raises_value_error() -> None:
    with pytest.raises(ValueError, match="finite"):
        Timeout(10**400)


def test_equality_and_hash() -> None:
    a = Timeout(5)
    b = Timeout(5.0)
    c = Timeout(connect=5, read=5, write=5, pool=5)
    assert a == b == c
    assert hash(a) == hash(b) == hash(c)
    assert len({a, b, c}) == 1
    assert {a: "x"}[c] == "x"


@pytest.mark.parametrize(
    "other",
    [Timeout(6), Timeout(5, pool=1), Timeout(connect=5), Timeout(), Timeout(5, read=0)],
    ids=repr,
)
def test_inequality(other: Timeout) -> None:
    assert Timeout(5) != other


def test_not_equal_to_other_types() -> None:
    assert Timeout(5) != 5
    assert Timeout(5) != 5.0
    assert Timeout() != None  # noqa: E711
    assert Timeout(5) != (5.0, 5.0, 5.0, 5.0)


def test_to_timeout() -> None:
    timeout = Timeout(connect=1)
    assert to_timeout(timeout) is timeout
    assert to_timeout(3) == Timeout(3)
    assert to_timeout(None) == Timeout()


def test_default_timeout_is_bounded() -> None:
    # A dead peer must never hang a program forever.
    for value in limits(DEFAULT_TIMEOUT):
        assert value is not None
        assert 0 < value < math.inf
