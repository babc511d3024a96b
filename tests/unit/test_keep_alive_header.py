"""``parse_keep_alive``: the lenient, cautious ``Keep-Alive`` header parser.

Cases are tables compared as a whole (``{header: expected}``), so a failure
shows every wrong row at once.
"""

from __future__ import annotations

from rawkeep._headers import KeepAlive, parse_keep_alive


def parse_each(values: list[str]) -> dict[str, KeepAlive]:
    """Each header value parsed on its own."""
    return {value: parse_keep_alive([value]) for value in values}


def test_basic() -> None:
    expected = {
        "timeout=5, max=100": KeepAlive(5.0, 100),
        "timeout=5": KeepAlive(5.0, None),
        "max=100": KeepAlive(None, 100),
        "timeout=2.5": KeepAlive(2.5, None),
        "timeout=0, max=0": KeepAlive(0.0, 0),
        "": KeepAlive(None, None),
        ",": KeepAlive(None, None),
    }
    assert parse_each(list(expected)) == expected
    assert parse_keep_alive([]) == KeepAlive(None, None)


def test_fields_and_types() -> None:
    result = parse_keep_alive(["timeout=5, max=100"])
    assert result.timeout == 5.0
    assert result.max == 100
    assert isinstance(result.timeout, float)
    assert type(result.max) is int


def test_accepts_any_iterable() -> None:
    assert parse_keep_alive(v for v in ["timeout=7"]) == KeepAlive(7.0, None)
    assert parse_keep_alive(("max=3",)) == KeepAlive(None, 3)


def test_spacing_case_quotes_and_order() -> None:
    values = [
        "timeout=5,max=100",
        "  timeout = 5 ,  max =  100  ",
        "timeout=5 , max=100",
        "\ttimeout=5,\tmax=100\t",
        "Timeout=5, Max=100",
        "TIMEOUT=5, MAX=100",
        'timeout="5", max="100"',
        'timeout = " 5 " , max = "100"',
        "max=100, timeout=5",
        "timeout=5.0, max=100",
    ]
    assert parse_each(values) == dict.fromkeys(values, KeepAlive(5.0, 100))


def test_unknown_parameters_are_ignored() -> None:
    values = [
        "foo=bar, timeout=5, baz, max=100",
        "timeout=5, max=100, extension",
        "x-timeout=1, timeout=5, x-max=1, max=100",
        "timeout=5, , max=100,",
    ]
    assert parse_each(values) == dict.fromkeys(values, KeepAlive(5.0, 100))


def test_missing_values_are_absent() -> None:
    values = ["timeout, max", "timeout=, max=", 'timeout="", max=""', "timeout =  , max = "]
    assert parse_each(values) == dict.fromkeys(values, KeepAlive(None, None))


UNUSABLE = [
    "-1",
    "-0.5",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e400",  # overflows to inf
    "abc",
    "5s",
    "five",
    "0x10",
    "5 6",
    "--5",
    "=5",
]


def test_unusable_numbers_are_ignored() -> None:
    values = [f"{name}={raw}" for raw in UNUSABLE for name in ("timeout", "max")]
    assert parse_each(values) == dict.fromkeys(values, KeepAlive(None, None))


def test_unusable_value_never_hides_a_usable_sibling() -> None:
    expected = {}
    for raw in UNUSABLE:
        expected[f"timeout={raw}, max=4"] = KeepAlive(None, 4)
        expected[f"max={raw}, timeout=4"] = KeepAlive(4.0, None)
    assert parse_each(list(expected)) == expected


def test_non_integer_max_is_ignored() -> None:
    values = [f"timeout=5, max={raw}" for raw in ["1.5", "0.1", "99.9"]]
    assert parse_each(values) == dict.fromkeys(values, KeepAlive(5.0, None))


def test_repeats_smallest_wins() -> None:
    cases: list[tuple[list[str], KeepAlive]] = [
        (["timeout=5, timeout=3"], KeepAlive(3.0, None)),
        (["timeout=3, timeout=5"], KeepAlive(3.0, None)),
        (["timeout=3", "timeout=5"], KeepAlive(3.0, None)),
        (["timeout=5", "timeout=3"], KeepAlive(3.0, None)),
        (["max=10", "max=4, max=7"], KeepAlive(None, 4)),
        (["max=0", "max=10"], KeepAlive(None, 0)),
        (["timeout=10, max=1", "timeout=2, max=50"], KeepAlive(2.0, 1)),
        (["timeout=abc, timeout=4"], KeepAlive(4.0, None)),
        (["timeout=4, timeout=-1"], KeepAlive(4.0, None)),
        (["max=9, max=1.5"], KeepAlive(None, 9)),
    ]
    actual = [(values, parse_keep_alive(values)) for values, _ in cases]
    assert actual == cases
