"""``URL``, ``Origin`` and ``merge_params``: what a URL string turns into.

Everything that decides where bytes go (scheme, host, port) must either be
parsed exactly or refused with ``InvalidURL``; the request target must be
valid origin-form (RFC 9112 section 3.2.1) without double-encoding.

Most cases are tables checked in one test each (``{input: expected}``
compared as a whole, so a failure shows every wrong row at once); the
suite's per-test fixture teardown makes hundreds of tiny tests slow.
"""

from __future__ import annotations

from typing import cast

import pytest

from rawkeep import InvalidURL, RawkeepError
from rawkeep._url import URL, Origin, merge_params


def accepted(texts: list[str]) -> list[str]:
    """The texts that URL() does not refuse with InvalidURL."""
    result = []
    for text in texts:
        try:
            URL(text)
        except InvalidURL:
            continue
        result.append(text)
    return result


def targets(texts: list[str]) -> dict[str, str]:
    return {text: URL(text).target for text in texts}


# -- scheme, host, port -------------------------------------------------------


def test_default_ports() -> None:
    expected = {
        "http://example.org/": Origin("http", "example.org", 80),
        "https://example.org/": Origin("https", "example.org", 443),
        "http://example.org": Origin("http", "example.org", 80),
        "https://example.org?q=1": Origin("https", "example.org", 443),
        # An empty port is the default (RFC 3986 section 3.2.3).
        "http://example.org:/": Origin("http", "example.org", 80),
        "https://example.org:/": Origin("https", "example.org", 443),
    }
    assert {text: URL(text).origin for text in expected} == expected
    for text in expected:
        url = URL(text)
        assert (url.scheme, url.host, url.port) == tuple(url.origin)
        assert url.origin.host_header == "example.org"


def test_explicit_ports() -> None:
    expected = {
        "http://example.org:8080/": (8080, "example.org:8080"),
        "https://example.org:8443/": (8443, "example.org:8443"),
        # The other scheme's default port is not the default here.
        "https://example.org:80/": (80, "example.org:80"),
        "http://example.org:443/": (443, "example.org:443"),
        # Spelling out the default port changes nothing.
        "http://example.org:80/": (80, "example.org"),
        "https://example.org:443/": (443, "example.org"),
        "http://example.org:1/": (1, "example.org:1"),
        "http://example.org:65535/": (65535, "example.org:65535"),
        "http://example.org:0080/": (80, "example.org"),
    }
    actual = {t: (URL(t).port, URL(t).origin.host_header) for t in expected}
    assert actual == expected


def test_default_port_is_left_out_of_str() -> None:
    assert str(URL("http://example.org:80/a")) == "http://example.org/a"
    assert str(URL("https://example.org:8443/a")) == "https://example.org:8443/a"


def test_scheme_is_case_insensitive() -> None:
    for scheme in ["HTTP", "Http", "hTTp", "HTTPS", "HttpS"]:
        url = URL(f"{scheme}://example.org/")
        assert url.scheme == scheme.lower()
        assert url.origin == URL(f"{scheme.lower()}://example.org/").origin


def test_host_is_lower_cased() -> None:
    for host in ["EXAMPLE.ORG", "Example.Org", "eXaMpLe.oRg", "example.org"]:
        url = URL(f"http://{host}/")
        assert url.host == "example.org"
        assert str(url.origin) == "http://example.org:80"


def test_host_keeps_underscores_and_trailing_dot() -> None:
    assert URL("http://my_host.internal/").host == "my_host.internal"
    assert URL("http://example.org./").host == "example.org."


def test_idna_hosts() -> None:
    expected = {
        "http://bücher.example/": "xn--bcher-kva.example",
        "http://BÜCHER.example/": "xn--bcher-kva.example",
        "http://例え.テスト/": "xn--r8jz45g.xn--zckzah",
        "https://münchen.de:8443/": "xn--mnchen-3ya.de",
    }
    assert {text: URL(text).host for text in expected} == expected
    url = URL("http://bücher.example:8080/")
    assert str(url.origin) == "http://xn--bcher-kva.example:8080"
    assert url.origin.host_header == "xn--bcher-kva.example:8080"


def test_idna_host_with_upper_case_ascii_label() -> None:
    expected = {
        "http://Bücher.EXAMPLE/": "xn--bcher-kva.example",
        "http://EXAMPLE.bücher.de/": "example.xn--bcher-kva.de",
        "http://Bücher.Ex/": "xn--bcher-kva.ex",
    }
    assert {text: URL(text).host for text in expected} == expected


def test_invalid_idna_hosts() -> None:
    hosts = [
        "ü" * 64 + ".example",  # label longer than 63 octets
        "a\u00a0b.example",  # no-break space
        "a\u3000b.example",  # ideographic space
    ]
    assert accepted([f"http://{host}/" for host in hosts]) == []


def test_ipv6_literals() -> None:
    expected = {
        "http://[::1]:8080/": ("::1", "http://[::1]:8080", "[::1]:8080"),
        "http://[::1]/": ("::1", "http://[::1]:80", "[::1]"),
        "https://[::1]/": ("::1", "https://[::1]:443", "[::1]"),
        "http://[::1]:/": ("::1", "http://[::1]:80", "[::1]"),
        "http://[2001:DB8:0:0:0:0:0:1]:81/": (
            "2001:db8::1",
            "http://[2001:db8::1]:81",
            "[2001:db8::1]:81",
        ),
        # IPv4-mapped: the dotted form of RFC 5952 section 5, on every Python.
        "http://[::FFFF:7f00:1]/": (
            "::ffff:127.0.0.1",
            "http://[::ffff:127.0.0.1]:80",
            "[::ffff:127.0.0.1]",
        ),
    }
    actual = {
        text: (URL(text).host, str(URL(text).origin), URL(text).origin.host_header)
        for text in expected
    }
    assert actual == expected


def test_ipv6_text_form_is_rfc5952_on_every_python() -> None:
    # Python 3.13's ipaddress writes IPv4-mapped addresses dotted and older
    # versions in hex; rawkeep's host must not depend on the interpreter.
    expected = {
        "::ffff:7f00:1": "::ffff:127.0.0.1",
        "::FFFF:127.0.0.1": "::ffff:127.0.0.1",
        "0:0:0:0:0:ffff:0a00:0001": "::ffff:10.0.0.1",
        "0000:0000:0000:0000:0000:FFFF:0000:0000": "::ffff:0.0.0.0",
        "::ffff:ffff:ffff": "::ffff:255.255.255.255",
        # Only IPv4-mapped addresses are written dotted.
        "::7f00:1": "::7f00:1",
        "::ffff:0:7f00:1": "::ffff:0:7f00:1",
        "64:ff9b::7f00:1": "64:ff9b::7f00:1",
        "::1": "::1",
        "::": "::",
        "1::": "1::",
        # The longest run of zero groups is "::", the first of equal runs,
        # and a single zero group is not shortened (RFC 5952 section 4.2).
        "1:0:0:1:0:0:0:1": "1:0:0:1::1",
        "1:0:0:0:1:0:0:1": "1::1:0:0:1",
        "0:0:1:0:0:0:0:0": "0:0:1::",
        "2001:db8:0:1:1:1:1:1": "2001:db8:0:1:1:1:1:1",
        "2001:0DB8:0000:0000:0000:0000:0002:0001": "2001:db8::2:1",
        "fe80:0:0:0:0:0:0:0": "fe80::",
    }
    actual = {text: URL(f"http://[{text}]:8080/").host for text in expected}
    assert actual == expected
    url = URL("http://[::ffff:7f00:1]:8080/a")
    assert str(url) == "http://[::ffff:127.0.0.1]:8080/a"
    assert URL(str(url)).origin == url.origin


def test_ipv6_str_round_trips() -> None:
    url = URL("http://[::1]:8080/a?b=c")
    assert str(url) == "http://[::1]:8080/a?b=c"
    assert URL(str(url)).origin == url.origin


def test_ipv4() -> None:
    expected = {
        "http://127.0.0.1:8080/": Origin("http", "127.0.0.1", 8080),
        "http://127.0.0.1/": Origin("http", "127.0.0.1", 80),
        "https://10.0.0.255/": Origin("https", "10.0.0.255", 443),
        "http://0.0.0.0/": Origin("http", "0.0.0.0", 80),
        "http://255.255.255.255/": Origin("http", "255.255.255.255", 80),
    }
    assert {text: URL(text).origin for text in expected} == expected
    assert str(URL("http://127.0.0.1:8080/").origin) == "http://127.0.0.1:8080"


# -- the request target -------------------------------------------------------


def test_request_target() -> None:
    expected = {
        "http://h": "/",
        "http://h/": "/",
        "http://h?x=1": "/?x=1",
        "http://h/?": "/",
        "http://h/a/b": "/a/b",
        "http://h/a/b/": "/a/b/",
        "http://h/a/b?x=1&y=2": "/a/b?x=1&y=2",
        "http://h/a?x=1#frag": "/a?x=1",
        "http://h/#frag": "/",
        "http://h#frag": "/",
        "http://h/a#f?x=1": "/a",
        "http://h/a?b?c=d/e": "/a?b?c=d/e",
        "http://h//double//slash": "//double//slash",
    }
    assert targets(list(expected)) == expected


def test_fragment_is_kept_but_never_in_target() -> None:
    url = URL("http://h/a?x=1#part-2")
    assert url.fragment == "part-2"
    assert "#" not in url.target
    assert "part-2" not in url.target
    assert str(url) == "http://h/a?x=1#part-2"


def test_unsafe_path_characters_are_percent_encoded() -> None:
    expected = {
        "/ü": "/%C3%BC",
        "/日本": "/%E6%97%A5%E6%9C%AC",
        '/"': "/%22",
        "/<>": "/%3C%3E",
        "/{x}": "/%7Bx%7D",
        "/a|b": "/a%7Cb",
        "/a\\b": "/a%5Cb",
        "/a^b`c": "/a%5Eb%60c",
        "/[x]": "/%5Bx%5D",
        "/\u2028": "/%E2%80%A8",  # Unicode line separator: allowed, but encoded
        # C1 controls are not refused like C0 ones, but never go out raw.
        "/\x85": "/%C2%85",
        "/\x9f": "/%C2%9F",
    }
    assert {p: URL(f"http://h{p}").target for p in expected} == expected


def test_unsafe_query_characters_are_percent_encoded() -> None:
    expected = {
        "q=ü": "q=%C3%BC",
        'q="<a>"': "q=%22%3Ca%3E%22",
        "q={}|": "q=%7B%7D%7C",
        "a=1&b=2": "a=1&b=2",
        "a=/?:@+,;": "a=/?:@+,;",
    }
    actual = {q: URL(f"http://h/p?{q}").query for q in expected}
    assert actual == expected


def test_safe_characters_are_left_alone() -> None:
    path = "/a-b_c.d~e/f:g@h!i$j&k'l(m)n*o+p,q;r=s"
    assert URL(f"http://h{path}").target == path


def test_existing_escapes_are_kept() -> None:
    kept = ["/a%20b", "/%2F", "/%2f", "/%41%42", "/a?q=%26%3D", "/%C3%BC?x=%C3%BC"]
    assert [URL(f"http://h{t}").target for t in kept] == kept


def test_lone_percent_is_encoded() -> None:
    expected = {
        "/100%": "/100%25",
        "/%": "/%25",
        "/%zz": "/%25zz",
        "/%4": "/%254",
        "/%4g": "/%254g",
        "/%%41": "/%25%41",
        "/p?q=%": "/p?q=%25",
        "/p?q=50%&r=%41": "/p?q=50%25&r=%41",
    }
    assert {t: URL(f"http://h{t}").target for t in expected} == expected


def test_encoding_is_idempotent() -> None:
    for text in ["http://h/ü%zz?q=<%>", "http://h/%41/%", "http://h/a%20b?c=d#e"]:
        once = URL(text)
        twice = URL(str(once))
        assert twice.target == once.target
        assert str(twice) == str(once)


# -- params -------------------------------------------------------------------


def test_params_from_dict() -> None:
    url = URL("http://h/p", params={"a": "1", "b": "x y", "c": "&="})
    assert url.target == "/p?a=1&b=x+y&c=%26%3D"


def test_params_from_pairs_keep_repeats_and_order() -> None:
    url = URL("http://h/", params=[("b", "1"), ("a", "2"), ("b", "3")])
    assert url.target == "/?b=1&a=2&b=3"


def test_params_none_values_are_empty_as_in_httpx() -> None:
    assert URL("http://h/", params={"a": None, "b": "2"}).target == "/?a=&b=2"
    assert URL("http://h/", params=[("a", None)]).target == "/?a="


def test_params_numbers_are_converted() -> None:
    url = URL("http://h/", params={"n": 3, "f": 1.5, "z": 0})
    assert url.target == "/?n=3&f=1.5&z=0"


def test_params_are_appended_after_the_urls_own_query() -> None:
    url = URL("http://h/p?x=1&y=2", params={"z": "3", "x": "4"})
    assert url.target == "/p?x=1&y=2&z=3&x=4"


def test_empty_params_leave_the_query_alone() -> None:
    empty: list[dict[str, list[str]] | list[tuple[str, str]]] = [{}, [], {"a": []}]
    for params in empty:
        assert URL("http://h/p?x=1", params=params).target == "/p?x=1"
        assert URL("http://h/p", params=params).target == "/p"


def test_params_do_not_touch_the_fragment() -> None:
    url = URL("http://h/p#f", params={"a": "1"})
    assert url.target == "/p?a=1"
    assert str(url) == "http://h/p?a=1#f"


def test_merge_params_directly() -> None:
    assert merge_params("", {}) == ""
    assert merge_params("x=1", {}) == "x=1"
    assert merge_params("", {"a": "b"}) == "a=b"
    assert merge_params("x=1", [("y", 2), ("z", None)]) == "x=1&y=2&z="


def test_merge_params_refuses_non_str_names() -> None:
    with pytest.raises(TypeError, match="names must be str"):
        merge_params("", cast("dict[str, str]", {1: "a"}))


# -- userinfo -----------------------------------------------------------------


def test_userinfo_is_never_in_str_or_repr() -> None:
    url = URL("http://alice:s3cret-pw@example.org:8080/p?q=1#f")
    assert url.userinfo == "alice:s3cret-pw"
    assert url.origin == Origin("http", "example.org", 8080)
    for text in (str(url), repr(url), str(url.origin), url.target):
        assert "s3cret-pw" not in text
        assert "alice" not in text
        assert "@" not in text


def test_userinfo_may_contain_at_signs() -> None:
    url = URL("http://user:p@ss@example.org/")
    assert url.userinfo == "user:p@ss"
    assert url.host == "example.org"


def test_no_userinfo() -> None:
    assert URL("http://example.org/").userinfo == ""


def test_userinfo_that_basic_auth_cant_carry_is_an_invalid_url() -> None:
    refused = [
        "http://a%3Ab:s3cret@h/",  # an escaped ':' in the user name
        "http://a%3ab@h/",
        "http://%3A:s3cret@h/",
        "http://u:s3cret%FF@h/",  # %-escapes that are not UTF-8
        "http://u%C3:s3cret@h/",
        "http://u:s3cret\udcff@h/",  # a lone surrogate
        "http://\ud800@h/",
    ]
    assert accepted(refused) == []
    with pytest.raises(InvalidURL, match="%3A") as info:
        URL("http://a%3Ab:s3cret@h/")
    assert "s3cret" not in str(info.value)
    assert "a%3Ab" not in str(info.value)
    with pytest.raises(InvalidURL, match="UTF-8") as info:
        URL("http://u:s3cret%FF@h/")
    assert "s3cret" not in str(info.value)
    # A colon, escaped or not, is fine in the password; so is escaped UTF-8.
    ok = ["http://a:b%3Ac@h/", "http://a:b:c@h/", "http://%C3%A9:%C3%A9@h/", "http://\u00e9:p@h/"]
    assert accepted(ok) == ok


def test_absolute_target_has_no_credentials_or_fragment() -> None:
    url = URL("HTTP://user:pw@Example.org:8080/a%20b?q=1#frag")
    assert url.absolute_target == "http://example.org:8080/a%20b?q=1"
    assert URL("https://[::1]/").absolute_target == "https://[::1]/"


# -- equality -----------------------------------------------------------------


def test_equal_urls() -> None:
    a = URL("HTTP://Example.ORG:80/p?q=1")
    b = URL("http://example.org/p?q=1")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


def test_unequal_urls() -> None:
    base = URL("http://h/p")
    assert base != URL("https://h/p")
    assert base != URL("http://h:81/p")
    assert base != URL("http://h/q")
    assert base != URL("http://u:pw@h/p")
    assert base != "http://h/p"


def test_origin_str_and_host_header() -> None:
    assert str(Origin("http", "127.0.0.1", 8080)) == "http://127.0.0.1:8080"
    assert str(Origin("https", "example.org", 443)) == "https://example.org:443"
    assert Origin("https", "example.org", 443).host_header == "example.org"
    assert Origin("http", "::1", 80).host_header == "[::1]"


# -- invalid URLs -------------------------------------------------------------


def test_invalid_url_is_a_rawkeep_error() -> None:
    with pytest.raises(RawkeepError):
        URL("ftp://example.org/")


def test_other_schemes() -> None:
    texts = [
        "ftp://example.org/",
        "file:///etc/passwd",
        "file://localhost/etc/passwd",
        "ws://example.org/",
        "wss://example.org/",
        "httpx://example.org/",
        "htt://example.org/",
        "gopher://example.org/",
    ]
    assert accepted(texts) == []


def test_missing_scheme() -> None:
    texts = [
        "",
        "example.org",
        "example.org/path",
        "//example.org/",
        "/path",
        "://example.org/",
        "http:/example.org/",
        "http:example.org",
        "http//example.org/",
        "1http://example.org/",
        "mailto:someone@example.org",
        "javascript:alert(1)",
        "localhost:8080",
    ]
    assert accepted(texts) == []


def test_empty_host() -> None:
    texts = [
        "http://",
        "http:///path",
        "https:///",
        "http://:80/",
        "http://:/",
        "http://user@/",
        "http://user:pw@:8080/",
        "http://?q=1",
        "http://#frag",
    ]
    assert accepted(texts) == []


def test_bad_port() -> None:
    ports = [
        "abc",
        "0",
        "00",
        "65536",
        "99999",
        "99999999999999999999",
        "-1",
        "+80",
        "8o",
        "80a",
        "1.5",
        "0x50",
        "80:90",
        "٨٠",  # Arabic-Indic digits: str.isdigit() but not a port
        "\uff18\uff10",  # fullwidth digits
        "²",
    ]
    hosts = ["example.org", "127.0.0.1", "[::1]"]
    texts = [f"http://{host}:{port}/" for host in hosts for port in ports]
    assert accepted(texts) == []


FORBIDDEN_CHARACTERS = [" ", "\t", "\r", "\n", "\x00", "\x7f", "\x0b", "\x0c", "\x1b"]
PLACES = [
    "{c}http://h/",
    "ht{c}tp://h/",
    "http:{c}//h/",
    "http://{c}h/",
    "http://ex{c}ample.org/",
    "http://u{c}ser@h/",
    "http://h:8{c}0/",
    "http://[::1{c}]/",
    "http://h/a{c}b",
    "http://h/p?q={c}",
    "http://h/p?{c}=1",
    "http://h/p#{c}",
    "http://h/{c}",
]


def test_whitespace_and_control_characters_anywhere() -> None:
    texts = [place.format(c=c) for place in PLACES for c in FORBIDDEN_CHARACTERS]
    assert accepted(texts) == []


def test_unterminated_ipv6() -> None:
    texts = ["http://[::1/", "http://[::1", "http://[/", "http://[", "http://[::1:8080/"]
    assert accepted(texts) == []


def test_invalid_ipv6() -> None:
    texts = [
        "http://[]/",
        "http://[::g]/",
        "http://[1:2:3:4:5:6:7:8:9]/",
        "http://[1:2]/",
        "http://[:::1]/",
        "http://[127.0.0.1]/",
        "http://[example.org]/",
        "http://[::1]x/",
        "http://[::1]]/",
        "http://[::1]:80:90/",
        "http://::1/",
        "http://::1:8080/",
    ]
    assert accepted(texts) == []


def test_invalid_ipv4_looking_hosts() -> None:
    hosts = [
        "999.1.1.1",
        "256.0.0.1",
        "1.2.3.256",
        "1.2.3",
        "127.1",
        "1.2.3.4.5",
        "01.2.3.4",
        "2130706433",
        "1..2.3",
        ".1.2.3",
    ]
    assert accepted([f"http://{host}/" for host in hosts]) == []


def test_invalid_host_names() -> None:
    hosts = [
        "-example.org",
        "example-.org",
        "a..b",
        ".example.org",
        ".",
        "exa$mple.org",
        "exa*mple.org",
        "a\\b",
        "a" * 64 + ".org",
        ".".join(["a" * 63] * 4),  # 255 characters: over the 253 limit
        "xn--",
    ]
    assert accepted([f"http://{host}/" for host in hosts]) == []


def test_long_but_valid_host_name() -> None:
    host = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters
    assert URL(f"http://{host}/").host == host


def test_non_str_input() -> None:
    values: list[object] = [b"http://h/", bytearray(b"http://h/"), None, 80, ["http://h/"]]
    for value in values:
        with pytest.raises(InvalidURL):
            URL(cast("str", value))


def test_lone_surrogates_raise_invalid_url() -> None:
    for text in ["http://h/\udcff", "http://h/p?q=\ud800"]:
        with pytest.raises(InvalidURL):
            URL(text)


@pytest.mark.parametrize(
    "url",
    [
        "http://a.0/",
        "http://0x7f.0.0.1/",
        "http://127.1/",
        "http://host.123/",
        "http://1.2.3.4.5/",
    ],
)
def test_hosts_ending_in_a_number_must_be_dotted_quads(url: str) -> None:
    with pytest.raises(InvalidURL, match="IPv4"):
        URL(url)


def test_ipv6_zone_identifiers_are_refused() -> None:
    with pytest.raises(InvalidURL, match="zone"):
        URL("http://[fe80::1%25eth0]:8080/")


@pytest.mark.parametrize(
    "url", ["http://alice:s3cret@ho st/", "http://alice:s3cret@[::1/", "alice:s3cret@host/"]
)
def test_invalid_url_messages_never_show_credentials(url: str) -> None:
    with pytest.raises(InvalidURL) as info:
        URL(url)
    assert "s3cret" not in str(info.value)
