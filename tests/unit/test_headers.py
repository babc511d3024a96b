"""``Headers``: a case-insensitive, ordered, multi-valued mapping."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import cast

import pytest

import rawkeep
from rawkeep import Headers


def sample() -> Headers:
    return Headers(
        [
            ("Content-Type", "text/plain"),
            ("Set-Cookie", "a=1"),
            ("X-Trace", "t"),
            ("set-cookie", "b=2"),
        ]
    )


def test_is_the_public_class_and_a_mutable_mapping() -> None:
    assert rawkeep.Headers is Headers
    assert isinstance(Headers(), MutableMapping)


# -- lookup -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Content-Type", "content-type", "CONTENT-TYPE", "cOnTeNt-TyPe"])
def test_lookup_is_case_insensitive(name: str) -> None:
    h = sample()
    assert h[name] == "text/plain"
    assert h.get(name) == "text/plain"
    assert h.get_all(name) == ["text/plain"]
    assert name in h


def test_missing_name() -> None:
    h = sample()
    with pytest.raises(KeyError):
        h["X-Missing"]
    assert h.get("X-Missing") is None
    assert h.get("X-Missing", "default") == "default"
    assert h.get_all("X-Missing") == []
    assert "X-Missing" not in h


def test_contains_non_str_is_false() -> None:
    h = Headers({"1": "one"})
    others: list[object] = [1, None, b"1", ("1", "one")]
    for other in others:
        assert other not in h
    assert "1" in h


def test_multi_values() -> None:
    h = sample()
    assert h.get_all("SET-COOKIE") == ["a=1", "b=2"]
    assert h["Set-Cookie"] == "a=1, b=2"
    assert h.get("set-cookie") == "a=1, b=2"


def test_empty_value_is_a_value() -> None:
    h = Headers([("X-Empty", "")])
    assert "x-empty" in h
    assert h["x-empty"] == ""
    assert h.get_all("X-Empty") == [""]


# -- order, iteration, len ----------------------------------------------------


def test_items_keep_order_case_and_repeats() -> None:
    assert sample().items() == [
        ("Content-Type", "text/plain"),
        ("Set-Cookie", "a=1"),
        ("X-Trace", "t"),
        ("set-cookie", "b=2"),
    ]


def test_iteration_yields_distinct_names_in_first_seen_order() -> None:
    h = sample()
    assert list(h) == ["Content-Type", "Set-Cookie", "X-Trace"]
    assert list(h.keys()) == ["Content-Type", "Set-Cookie", "X-Trace"]
    assert len(h) == 3


def test_values_and_dict_join_repeats() -> None:
    h = sample()
    assert list(h.values()) == ["text/plain", "a=1, b=2", "t"]
    assert dict(h) == {
        "Content-Type": "text/plain",
        "Set-Cookie": "a=1, b=2",
        "X-Trace": "t",
    }


def test_len_counts_distinct_names() -> None:
    assert len(Headers()) == 0
    assert len(Headers([("A", "1"), ("a", "2"), ("A", "3")])) == 1
    assert len(Headers([("A", "1"), ("B", "2")])) == 2


# -- mutation -----------------------------------------------------------------


def test_add_appends_and_keeps_existing_values() -> None:
    h = Headers([("Accept", "text/html")])
    h.add("X-New", "1")
    h.add("ACCEPT", "application/json")
    assert h.items() == [
        ("Accept", "text/html"),
        ("X-New", "1"),
        ("ACCEPT", "application/json"),
    ]
    assert h["accept"] == "text/html, application/json"


def test_setitem_replaces_all_values_at_the_first_position() -> None:
    h = Headers([("A", "1"), ("B", "2"), ("a", "3"), ("C", "4"), ("A", "5")])
    h["a"] = "x"
    assert [(n.lower(), v) for n, v in h.items()] == [
        ("a", "x"),
        ("b", "2"),
        ("c", "4"),
    ]
    assert h.get_all("A") == ["x"]
    assert len(h) == 3


def test_setitem_new_name_appends() -> None:
    h = Headers([("A", "1")])
    h["B"] = "2"
    assert h.items() == [("A", "1"), ("B", "2")]


def test_setitem_keeps_case_of_new_name() -> None:
    h = Headers()
    h["X-Custom-Name"] = "v"
    assert list(h) == ["X-Custom-Name"]
    assert h.raw() == [(b"X-Custom-Name", b"v")]


def test_delitem_removes_every_value() -> None:
    h = sample()
    del h["SET-COOKIE"]
    assert h.items() == [("Content-Type", "text/plain"), ("X-Trace", "t")]
    assert "set-cookie" not in h
    assert h.get_all("Set-Cookie") == []


def test_delitem_missing_raises_key_error() -> None:
    h = sample()
    with pytest.raises(KeyError):
        del h["X-Missing"]
    assert len(h) == 3


def test_mutable_mapping_helpers() -> None:
    h = Headers([("A", "1"), ("a", "2"), ("B", "3")])
    assert h.pop("A") == "1, 2"
    assert "a" not in h
    h.update({"b": "4", "C": "5"})
    assert h.get_all("B") == ["4"]
    assert h["c"] == "5"
    assert h.setdefault("C", "ignored") == "5"
    h.clear()
    assert len(h) == 0
    assert h.items() == []


# -- construction -------------------------------------------------------------


def test_from_dict() -> None:
    h = Headers({"Host": "example.org", "Accept": "*/*"})
    assert h.items() == [("Host", "example.org"), ("Accept", "*/*")]


def test_from_pairs() -> None:
    h = Headers([("A", "1"), ("a", "2")])
    assert h.get_all("A") == ["1", "2"]
    assert Headers((("A", "1"),)).items() == [("A", "1")]
    assert Headers(iter([("A", "1")])).items() == [("A", "1")]


def test_from_bytes_pairs_decodes_latin_1() -> None:
    h = Headers([(b"Content-Type", b"text/plain"), (b"X-Name", b"caf\xe9")])
    assert h.items() == [("Content-Type", "text/plain"), ("X-Name", "café")]
    assert h["x-name"] == "café"


def test_from_headers_is_an_independent_copy() -> None:
    original = sample()
    copy = Headers(original)
    assert copy == original
    assert copy.items() == original.items()
    copy.add("X-More", "1")
    copy["Content-Type"] = "text/html"
    assert "X-More" not in original
    assert original["content-type"] == "text/plain"


def test_copy_is_independent() -> None:
    original = sample()
    copy = original.copy()
    del copy["set-cookie"]
    assert original.get_all("set-cookie") == ["a=1", "b=2"]


def test_empty_construction() -> None:
    assert Headers().items() == []
    assert Headers(None).items() == []
    assert Headers({}).items() == []
    assert Headers([]).items() == []


@pytest.mark.parametrize(
    "pairs",
    [[("A", 1)], [(1, "a")], [("A", None)], [(None, "a")], [("A", ["x"])]],
)
def test_construction_refuses_other_types(pairs: list[tuple[object, object]]) -> None:
    with pytest.raises(TypeError):
        Headers(cast("list[tuple[str, str]]", pairs))


# -- raw, equality, repr ------------------------------------------------------


def test_raw_is_latin_1_bytes_in_order() -> None:
    h = Headers([("Content-Type", "text/plain"), ("X-Name", "café"), ("x-name", "b")])
    assert h.raw() == [
        (b"Content-Type", b"text/plain"),
        (b"X-Name", b"caf\xe9"),
        (b"x-name", b"b"),
    ]


def test_raw_round_trips() -> None:
    h = Headers([("A", "\xff\x80 x"), ("B", "")])
    again = Headers(h.raw())
    assert again.items() == h.items()


def test_from_raw_builds_from_h11_items() -> None:
    h = Headers._from_raw([(b"content-length", b"3"), (b"x-y", b"\xe9")])
    assert h.items() == [("content-length", "3"), ("x-y", "é")]
    assert h["Content-Length"] == "3"


def test_equality_ignores_order_and_name_case() -> None:
    a = Headers([("A", "1"), ("B", "2")])
    assert a == Headers([("b", "2"), ("a", "1")])
    assert a == Headers([("A", "1"), ("B", "2")])


@pytest.mark.parametrize(
    "other",
    [
        [("A", "x")],  # value differs in case: values are case-sensitive
        [("A", "1"), ("A", "1")],  # a repeat counts
        [("A", "1"), ("B", "")],
        [("B", "1")],
        [],
    ],
)
def test_inequality(other: list[tuple[str, str]]) -> None:
    assert Headers([("A", "1")]) != Headers(other)


def test_equality_with_a_plain_mapping() -> None:
    assert Headers([("Content-Type", "a")]) == {"content-type": "a"}
    assert Headers([("Content-Type", "a")]) != {"content-type": "b"}


def test_equality_with_other_types() -> None:
    h = Headers([("A", "1")])
    assert h != [("A", "1")]
    assert h != "A: 1"
    assert h != 1
    assert h != None  # noqa: E711


def test_equality_with_a_mapping_of_non_str_values_is_false() -> None:
    assert Headers([("A", "1")]) != {"A": 1}


def test_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(Headers())


def test_repr_hides_credentials() -> None:
    h = Headers(
        [
            ("Authorization", "Bearer SECRET-TOKEN-1"),
            ("proxy-authorization", "Basic SECRET-PROXY-2"),
            ("COOKIE", "session=SECRET-COOKIE-3"),
            ("Accept", "text/plain-VISIBLE"),
        ]
    )
    text = repr(h)
    assert "SECRET" not in text
    for name in ("Authorization", "proxy-authorization", "COOKIE", "Accept"):
        assert name in text
    assert "text/plain-VISIBLE" in text
    # The values themselves are untouched.
    assert h["authorization"] == "Bearer SECRET-TOKEN-1"


def test_repr_shows_other_values() -> None:
    assert "text/html" in repr(Headers({"Content-Type": "text/html"}))
