"""International host names: a non-ASCII host as the ASCII form that names the same domain.

A non-ASCII host name is sent as its ASCII form ("xn--" labels). There are
two standards for that form, and they disagree on some names. See the
notes below; ``idna_host`` is the one entry point, and ASCII hosts never
reach it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from ._exceptions import InvalidURL

__all__ = ["idna_host"]


# -- international host names ----------------------------------------------
#
# A non-ASCII host name is sent as its ASCII form ("xn--" labels). There are
# two standards for that form, and they disagree on some names: IDNA 2003
# (Python's "idna" codec) maps "faß.de" to "fass.de" and a final sigma to
# the other sigma, and deletes zero-width joiners, while IDNA 2008 with UTS 46 (browsers, httpx,
# urllib3) keeps them: "faß.de" is "xn--fa-hia.de", a different domain that
# may have a different owner. rawkeep uses IDNA 2008 + UTS 46
# (non-transitional) through the ``idna`` package when it is installed.
# Without it, a label is encoded only when the two standards are certain to
# give the same ASCII form, and refused otherwise (``_idna2003_is_safe``).

# What IDNA accepts as label separators: the full stop and its ideographic,
# fullwidth and halfwidth forms (UTS 46 maps all four to ".").
_DOTS = re.compile("[.\u3002\uff0e\uff61]")

# UTS 46 deviation characters: IDNA 2003 maps them (sharp s to "ss", final
# sigma to sigma) or deletes them (the joiners); IDNA 2008 keeps them.
_DEVIATIONS: Final = frozenset("\u00df\u03c2\u200c\u200d")

# The general categories IDNA 2008 builds its repertoire from (RFC 5892
# section 2.1, less Lu: an upper-case letter never survives lower-casing).
_LETTERS_MARKS_DIGITS: Final = frozenset({"Ll", "Lo", "Lm", "Mn", "Mc", "Nd"})

# Letters and marks IDNA 2008 disallows although their category is allowed:
# the exceptions of RFC 5892 section 2.6, old Hangul jamo (2.9), the
# ignorable blocks (2.4), and default-ignorable code points (2.3), which
# UTS 46 deletes and IDNA 2003 kept.
_IDNA2008_DISALLOWED: Final = (
    (0x0640, 0x0640),  # ARABIC TATWEEL
    (0x07FA, 0x07FA),  # NKO LAJANYALAN
    (0x302E, 0x302F),  # HANGUL SINGLE/DOUBLE DOT TONE MARK
    (0x3031, 0x3035),  # VERTICAL KANA REPEAT MARKS
    (0x303B, 0x303B),  # VERTICAL IDEOGRAPHIC ITERATION MARK
    (0x1100, 0x11FF),  # Hangul Jamo
    (0xA960, 0xA97F),  # Hangul Jamo Extended-A
    (0xD7B0, 0xD7FF),  # Hangul Jamo Extended-B
    (0x20D0, 0x20FF),  # Combining Diacritical Marks for Symbols
    (0x1D100, 0x1D24F),  # Musical Symbols, Ancient Greek Musical Notation
    (0x034F, 0x034F),  # COMBINING GRAPHEME JOINER
    (0x17B4, 0x17B5),  # KHMER VOWEL INHERENT AQ, AA
    (0x180B, 0x180F),  # MONGOLIAN FREE VARIATION SELECTORS
    (0x3164, 0x3164),  # HANGUL FILLER
    (0xFE00, 0xFE0F),  # VARIATION SELECTORS
    (0xFFA0, 0xFFA0),  # HALFWIDTH HANGUL FILLER
    (0xE0100, 0xE01EF),  # VARIATION SELECTORS SUPPLEMENT
)

# RFC 5893 (the Bidi Rule): the directions allowed in a right-to-left and in
# a left-to-right label, and those its last character (marks aside) may have.
_RTL_DIRECTIONS: Final = frozenset({"R", "AL", "AN", "EN", "ES", "CS", "ET", "ON", "BN", "NSM"})
_RTL_ENDINGS: Final = frozenset({"R", "AL", "EN", "AN"})
_LTR_DIRECTIONS: Final = frozenset({"L", "EN", "ES", "CS", "ET", "ON", "BN", "NSM"})
_LTR_ENDINGS: Final = frozenset({"L", "EN"})


def idna_host(text: str) -> str:
    """The ASCII form of a host name with non-ASCII characters.

    ASCII labels are lower-cased as in an all-ASCII name; each other label
    is encoded with IDNA 2008 + UTS 46, or refused.
    """
    try:
        import idna  # optional: only international names pay for the import
    except ImportError:
        encode = _encode_label_idna2003
    else:

        def encode(label: str, host: str) -> str:
            try:
                encoded = idna.encode(label, uts46=True, std3_rules=True, transitional=False)
            except UnicodeError as exc:  # idna.IDNAError is a UnicodeError
                raise InvalidURL(
                    f"host {host!r} is not a valid international domain name ({exc});"
                    " check its spelling, or give its ASCII (xn--) form"
                ) from exc
            return encoded.decode("ascii")

    labels = [
        label.lower() if label.isascii() else encode(label, text) for label in _DOTS.split(text)
    ]
    if any("." in label for label in labels):
        # UTS 46 maps a few characters to text with a dot ("⒈" is "1."):
        # one label must not turn into two.
        raise InvalidURL(f"host {text!r} has a character that stands for a dot")
    return ".".join(labels)


def _encode_label_idna2003(label: str, host: str) -> str:
    """``label`` (not ASCII) encoded without the ``idna`` package: with
    Python's IDNA 2003 codec, when that gives what IDNA 2008 would."""
    from encodings.idna import nameprep

    try:
        prepared = nameprep(label)
    except UnicodeError:
        prepared = None
    if prepared is None or not _idna2003_is_safe(label, prepared):
        raise InvalidURL(
            f"host {host!r} can't be encoded safely without the 'idna' package:"
            f" IDNA 2008 (which browsers use) may give the label {label!r} another"
            " ASCII form than the IDNA 2003 built into Python, or refuse it. Install"
            " the package (pip install idna), or write the host in its ASCII (xn--) form"
        )
    if prepared.isascii():
        return prepared
    return "xn--" + prepared.encode("punycode").decode("ascii")


def _idna2003_is_safe(label: str, prepared: str) -> bool:
    """Whether IDNA 2003 and IDNA 2008 + UTS 46 give ``label`` the same
    ASCII form. ``prepared`` is ``label`` after IDNA 2003's nameprep.

    Conservative: True only when nameprep changed nothing but letter case,
    so both standards encode the characters as given, and every character
    is one IDNA 2008 allows where it stands. Some names IDNA 2008 accepts
    are refused here; none is encoded differently.
    """
    if not _DEVIATIONS.isdisjoint(label):
        return False
    # Nameprep (Unicode 3.2) did no more than lower-case it...
    if prepared != unicodedata.normalize("NFC", label.lower()):
        return False
    # ...and today's NFKC with case folding (what UTS 46 maps by) does nothing.
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", prepared).casefold())
    if folded != prepared:
        return False
    old = unicodedata.ucd_3_2_0
    for char in prepared:
        code = ord(char)
        if char != "-" and (
            unicodedata.category(char) not in _LETTERS_MARKS_DIGITS
            or old.category(char) == "Cn"  # newer than nameprep's Unicode 3.2
            or any(low <= code <= high for low, high in _IDNA2008_DISALLOWED)
        ):
            return False
    if (
        unicodedata.category(prepared[0]).startswith("M")  # RFC 5891 section 4.2.3.2
        or prepared.startswith("-")
        or prepared.endswith("-")
        or prepared[2:4] == "--"  # RFC 5891 section 4.2.3.1
    ):
        return False
    # RFC 5892 appendix A.8 and A.9: the two sets of Arabic-Indic digits
    # don't mix in one label.
    if any("\u0660" <= c <= "\u0669" for c in prepared) and any(
        "\u06f0" <= c <= "\u06f9" for c in prepared
    ):
        return False
    return _bidi_rule(prepared)


def _bidi_rule(label: str) -> bool:
    """RFC 5893 section 2, for a label with right-to-left characters."""
    directions = [unicodedata.bidirectional(char) for char in label]
    if {"R", "AL", "AN"}.isdisjoint(directions):
        return True
    if directions[0] in ("R", "AL"):
        allowed, endings = _RTL_DIRECTIONS, _RTL_ENDINGS
        if "EN" in directions and "AN" in directions:
            return False
    elif directions[0] == "L":
        allowed, endings = _LTR_DIRECTIONS, _LTR_ENDINGS
    else:
        return False
    last = next((d for d in reversed(directions) if d != "NSM"), "")
    return allowed.issuperset(directions) and last in endings
