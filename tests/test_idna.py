"""International host names: IDNA 2008 + UTS 46, never IDNA 2003's mapping.

IDNA 2003 (Python's ``"idna"`` codec) and IDNA 2008 (browsers, httpx,
urllib3) give some names different ASCII forms: ``faß.de`` is ``fass.de``
under one and ``xn--fa-hia.de`` under the other, two domains with possibly
different owners. rawkeep encodes with the ``idna`` package when it is
installed; without it, it encodes only the names on which both standards
agree, and refuses the rest with ``InvalidURL``.

The tests without the package make ``import idna`` fail for their duration
(``sys.modules["idna"] = None``).
"""

from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawkeep import InvalidURL
from rawkeep._url import URL

idna = pytest.importorskip("idna")


@pytest.fixture
def without_idna(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "idna", None)


def hosts_of(texts: list[str]) -> dict[str, str]:
    """Each host's Origin.host, or "refused" for InvalidURL."""
    result = {}
    for text in texts:
        try:
            result[text] = URL(f"http://{text}/").host
        except InvalidURL:
            result[text] = "refused"
    return result


# Names whose IDNA 2003 form differs from their IDNA 2008 form.
DIFFERING = {
    "faß.de": "xn--fa-hia.de",  # IDNA 2003: fass.de
    "\u03c2.test": "xn--3xa.test",  # final sigma; IDNA 2003: xn--4xa.test
    "straße.example": "xn--strae-oqa.example",
    # ZWJ after a virama is kept (RFC 5892 appendix A.2); IDNA 2003 drops it.
    "क्\u200dष.in": "xn--11b2ezcw70k.in",
}

# Names both standards encode alike: accepted with or without the package.
AGREED = {
    "bücher.example": "xn--bcher-kva.example",
    "BÜCHER.Example": "xn--bcher-kva.example",
    "bu\u0308cher.example": "xn--bcher-kva.example",  # decomposed ü
    "例え.テスト": "xn--r8jz45g.xn--zckzah",
    "münchen.de:8443": "xn--mnchen-3ya.de",
    "İstanbul.tr": "xn--istanbul-o0e.tr",
    "אב.il": "xn--4dbc.il",
    "my_host.bücher.de": "my_host.xn--bcher-kva.de",  # ASCII labels as before
    "bücher。example": "xn--bcher-kva.example",  # ideographic full stop
    "bücher.example.": "xn--bcher-kva.example.",
    "xn--fa-hia.de": "xn--fa-hia.de",  # the ASCII form passes through
    # What the names above become under IDNA 2003, for contrast.
    "\u03c3.test": "xn--4xa.test",
    "क्ष.in": "xn--11b2ezc.in",
}


def test_names_are_encoded_with_idna_2008() -> None:
    expected = DIFFERING | AGREED
    # UTS 46 maps width and case as browsers do.
    expected |= {
        "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com": "example.com",  # fullwidth
        "\u039f\u0394\u039f\u03a3.gr": "xn--pxavbq.gr",  # capital sigma: a plain sigma
    }
    assert {text: URL(f"http://{text}/").host for text in expected} == expected


def test_names_idna_2008_refuses() -> None:
    texts = [
        "a\u200db.test",  # ZWJ where no virama comes before it
        "a\u200cb.test",  # ZWNJ likewise
        "a\u2488com",  # "⒈", which IDNA 2003 turns into "1." (a1.com)
        "\u2665.com",  # a symbol
        "ü-.de",  # hyphen at the end of a label
        "\u0301a.de",  # starts with a combining mark
        "a\u00a0b.example",  # no-break space
        "ü" * 64 + ".example",  # over 63 octets encoded
    ]
    assert hosts_of(texts) == dict.fromkeys(texts, "refused")


def test_refusal_says_how_to_fix() -> None:
    with pytest.raises(InvalidURL, match="xn--") as info:
        URL("http://a\u200db.test/")
    assert isinstance(info.value.__cause__, UnicodeError)


@pytest.mark.usefixtures("without_idna")
def test_without_the_package_names_are_refused_unless_both_standards_agree() -> None:
    refused = [
        *DIFFERING,
        "\u039f\u0394\u039f\u03a3.gr",  # str.lower() writes a final sigma here
        "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",  # IDNA 2003 maps more than case
        "ex\u00adample.com",  # soft hyphen: deleted by both, but not shown
        "a\u200db.test",
        "a\u2488com",
        "\u2665.com",
        "\u0628\u0660.eg",  # IDNA 2003 and 2008 disagree on the bidi rules
    ]
    expected = dict.fromkeys(refused, "refused") | AGREED
    assert hosts_of(list(expected)) == expected


@pytest.mark.usefixtures("without_idna")
def test_without_the_package_the_message_says_how_to_fix() -> None:
    with pytest.raises(InvalidURL) as info:
        URL("http://faß.de/")
    message = str(info.value)
    assert "faß.de" in message
    assert "pip install idna" in message
    assert "xn--" in message


# Characters around the cases that differ: deviations, case, width and
# compatibility forms, marks, joiners, Greek, Arabic and Hebrew, digits.
ALPHABET = st.sampled_from(
    list("aZ-9üÜßẞİǅⅫ①\u03c2\u03c3\u03a3\u039f\u0131\uff45")
    + list("\u0301\u0308\u00ad\u200c\u200d\u094d\u0915\u0937")
    + list("\u0628\u0660\u06f0\u05d0\u05b4\u0640\u1100\u3164\ufe0f\u2488\u00a0例テ")
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, min_size=1, max_size=6).map("".join))
def test_without_the_package_a_name_is_refused_or_encoded_as_idna_2008(label: str) -> None:
    try:
        expected = idna.encode(label, uts46=True, std3_rules=True).decode("ascii") + ".example"
    except idna.IDNAError:
        expected = "refused"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "idna", None)
        try:
            host = URL(f"http://{label}.example/").host
        except InvalidURL:
            return
    assert host == expected
