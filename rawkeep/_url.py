"""URL parsing: turn a user's URL string into an ``Origin`` and a request target.

Parsing is strict on purpose. Everything that decides *where* bytes go
(scheme, host, port) is validated here, before any I/O, and anything
ambiguous raises ``InvalidURL`` rather than being guessed at: a client that
quietly "fixes" a host name can end up talking to a different server.

The path and query are more forgiving: characters that may not appear raw in
a request target (RFC 9112 section 3.2; RFC 3986 section 2) are
percent-encoded, while existing ``%XX`` escapes are kept as they are, so a
URL that is already encoded is never encoded twice.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Final, NamedTuple, TypeAlias
from urllib.parse import quote, unquote, urlencode

from ._auth import basic_auth_header, userinfo_credentials
from ._exceptions import InvalidURL
from ._fields import field_pairs
from ._idna import idna_host

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ._fields import FieldValue

__all__ = [
    "URL",
    "BaseURL",
    "Origin",
    "QueryParams",
    "Route",
    "merge_params",
]

#: What ``params=`` accepts: a mapping or a list of pairs (see ``FormInput``
#: in ``_request`` for why a ``Sequence``).
QueryParams: TypeAlias = "Mapping[str, FieldValue] | Sequence[tuple[str, FieldValue]]"

DEFAULT_PORTS: Final = {"http": 80, "https": 443}

# Anything at or below 0x20 (controls and space) or DEL, anywhere in the URL.
# Whitespace in a URL is almost always a bug (a pasted newline, a header
# injection attempt); RFC 3986 appendix C suggests stripping it, we refuse.
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")

# scheme "://" authority, then path-abempty, then "?" query, "#" fragment.
_SPLIT = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    r"(?P<authority>[^/?#]*)"
    r"(?P<path>[^?#]*)"
    r"(?:\?(?P<query>[^#]*))?"
    r"(?:#(?P<fragment>.*))?$",
    re.DOTALL,
)

# A registered name after IDNA encoding: LDH labels separated by dots
# (underscores are tolerated: they occur in real internal host names).
_HOSTNAME = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*\.?$")

# Characters left as they are in the path and query: unreserved, sub-delims,
# ":" and "@" (RFC 3986 pchar), "/" and "?" and "%" (existing escapes are
# checked separately). Everything else is percent-encoded as UTF-8.
_PATH_SAFE: Final = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE: Final = _PATH_SAFE + "?"
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
# Userinfo to mask in messages: after "scheme://", after "//" (a
# scheme-relative Location) or at the start of text without either.
_USERINFO = re.compile(r"^((?:[^:/?#]*:)?//)?[^/?#]*@", re.DOTALL)


class Origin(NamedTuple):
    """Where a connection goes: scheme, host and port.

    ``host`` is lower-case ASCII (IDNA-encoded for international names) and
    an IPv6 address is stored without brackets. ``str(origin)`` gives
    ``"http://127.0.0.1:8080"``, the form used in events and ``PoolStats``.
    """

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.scheme}://{_bracket(self.host)}:{self.port}"

    @property
    def host_header(self) -> str:
        """The ``Host`` header value: the port only when it is not the default."""
        host = _bracket(self.host)
        if DEFAULT_PORTS[self.scheme] == self.port:
            return host
        return f"{host}:{self.port}"


class Proxy(NamedTuple):
    """One proxy: where it is and the ``Proxy-Authorization`` it needs.

    ``repr`` and ``str`` show the origin only, never the credentials.
    """

    origin: Origin
    authorization: str | None

    def __str__(self) -> str:
        return str(self.origin)

    def __repr__(self) -> str:
        return f"Proxy({str(self.origin)!r})"

    @classmethod
    def parse(cls, url: str) -> Proxy:
        """Parse ``http://[user:password@]host:port``.

        Raises:
            InvalidURL: not an http:// URL (https and SOCKS proxies are not
                supported), or otherwise unusable.
        """
        if "://" not in url:
            raise InvalidURL(f"proxy URL needs a scheme, like http://{_redact(url)}")
        try:
            parsed = URL(url)
        except InvalidURL as exc:
            # Say which URL: a proxy URL often comes from the environment.
            raise InvalidURL(f"unusable proxy URL: {exc.message}") from exc
        if parsed.scheme != "http":
            raise InvalidURL(f"only http:// proxies are supported, not {parsed.scheme}://")
        credentials = userinfo_credentials(parsed.userinfo)
        authorization = None if credentials is None else basic_auth_header(credentials)
        return cls(parsed.origin, authorization)


class Route(NamedTuple):
    """What a pooled connection is for: a target origin, reached directly
    or through a proxy. The pool key: connections are shared only between
    requests with the same route (the proxy's credentials included).
    """

    origin: Origin
    proxy: Proxy | None = None

    def __str__(self) -> str:
        if self.proxy is None:
            return str(self.origin)
        return f"{self.origin} via {self.proxy}"


class URL:
    """A parsed, validated absolute ``http`` or ``https`` URL.

    Args:
        url: the URL text, e.g. ``"https://example.org:8443/a/b?x=1"``.
        params: extra query parameters, appended after the URL's own.

    Raises:
        InvalidURL: the scheme is not http or https, the host is empty or
            malformed, the port is not a number in 1..65535, or the text
            contains whitespace or control characters.
    """

    __slots__ = ("fragment", "origin", "path", "query", "userinfo")

    origin: Origin
    path: str
    query: str
    fragment: str
    userinfo: str

    def __init__(self, url: str, *, params: QueryParams | None = None) -> None:
        if not isinstance(url, str):
            raise InvalidURL(f"URL must be a str, not {type(url).__name__}")
        if _FORBIDDEN.search(url):
            raise InvalidURL(f"URL contains whitespace or control characters: {_redact(url)!r}")
        match = _SPLIT.match(url)
        if match is None:
            raise InvalidURL(f"not an absolute http(s) URL: {_redact(url)!r}")
        scheme = match["scheme"].lower()
        if scheme not in DEFAULT_PORTS:
            raise InvalidURL(f"unsupported scheme {scheme!r}: only http and https")
        userinfo, host, port = _split_authority(match["authority"], scheme)
        if userinfo:
            _check_userinfo(userinfo)
        self.origin = Origin(scheme, host, port)
        self.userinfo = userinfo
        self.path = _quote(match["path"] or "/", _PATH_SAFE)
        self.query = _quote(match["query"] or "", _QUERY_SAFE)
        if params:
            self.query = merge_params(self.query, params)
        self.fragment = match["fragment"] or ""

    @property
    def target(self) -> str:
        """The request target in origin-form (RFC 9112 section 3.2.1)."""
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def absolute_target(self) -> str:
        """The request target in absolute-form, for a forward proxy
        (RFC 9112 section 3.2.2); never with credentials or fragment."""
        return f"{self.origin.scheme}://{self.origin.host_header}{self.target}"

    @property
    def scheme(self) -> str:
        return self.origin.scheme

    @property
    def host(self) -> str:
        return self.origin.host

    @property
    def port(self) -> int:
        return self.origin.port

    def __str__(self) -> str:
        # Userinfo is left out on purpose: this string appears in events,
        # logs and errors, where a password must never show.
        text = f"{self.origin.scheme}://{self.origin.host_header}{self.target}"
        return f"{text}#{self.fragment}" if self.fragment else text

    def __repr__(self) -> str:
        return f"URL({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, URL):
            return NotImplemented
        return str(self) == str(other) and self.userinfo == other.userinfo

    def __hash__(self) -> int:
        return hash(str(self))


class BaseURL:
    """A client's ``base_url``: what relative request URLs are joined to.

    httpx's rule: the base path is kept and always ends in "/", and a
    relative URL is appended to it with its leading slashes stripped, so
    ``items`` and ``/items`` both go to ``http://h/api/items`` from a base
    of ``http://h/api``. A URL with a scheme (``http://...``) is absolute
    and is used as it is. Unlike httpx, a base URL with a query or a
    fragment is refused: where a relative URL's path would go is unclear.

    Args:
        url: an absolute http or https URL.

    Raises:
        TypeError: ``url`` is not a str.
        InvalidURL: it is not a usable absolute URL, or has a query or
            fragment.
    """

    __slots__ = ("prefix",)

    def __init__(self, url: str) -> None:
        if not isinstance(url, str):
            raise TypeError(f"base_url must be a str, not {url!r}")
        try:
            URL(url)
        except InvalidURL as exc:
            raise InvalidURL(f"unusable base_url: {exc.message}") from exc
        if "?" in url or "#" in url:
            raise InvalidURL(f"base_url can't have a query or fragment: {_redact(url)!r}")
        #: The base URL's text, ending in "/".
        self.prefix = url if url.endswith("/") else url + "/"

    def join(self, url: str) -> str:
        """``url`` joined to the base when it is relative; else as it is."""
        given: object = url
        if not isinstance(given, str) or _SPLIT.match(url):
            return url  # absolute (or not text: URL() says what is wrong)
        return self.prefix + url.lstrip("/")


def merge_params(query: str, params: QueryParams) -> str:
    """Append ``params`` to an encoded query string, form-encoded.

    Raises:
        TypeError: a name is not a str, or a value is not a scalar or a
            list or tuple of scalars (see ``field_pairs``).
        InvalidURL: a name or value has no UTF-8 form (a lone surrogate).
    """
    pairs = field_pairs(params, "params")
    try:
        extra = urlencode(pairs)
    except UnicodeEncodeError:
        raise InvalidURL("query parameters contain characters with no UTF-8 form") from None
    if not extra:
        return query
    return f"{query}&{extra}" if query else extra


def _split_authority(authority: str, scheme: str) -> tuple[str, str, int]:
    userinfo, _, hostport = authority.rpartition("@")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise InvalidURL(f"unterminated IPv6 literal in {hostport!r}")
        host = _ipv6(hostport[1:end])
        rest = hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidURL(f"unexpected text after IPv6 literal: {rest!r}")
        port_text = rest[1:] if rest else None
    else:
        host_text, colon, port_text_raw = hostport.partition(":")
        port_text = port_text_raw if colon else None
        host = _hostname(host_text)
    return userinfo, host, _port(port_text, scheme)


def _check_userinfo(userinfo: str) -> None:
    """Refuse credentials that can't become a Basic ``Authorization``
    header as written (RFC 7617): the check is here so that the request
    URL, a proxy URL and a redirect's ``Location`` all fail as a bad URL.
    The messages never repeat the credentials."""
    if "%" not in userinfo and userinfo.isascii():
        return  # nothing to decode, the usual case
    user, _, password = userinfo.partition(":")
    try:
        userinfo.encode("utf-8")
        user = unquote(user, errors="strict")
        unquote(password, errors="strict")
    except UnicodeError as exc:
        raise InvalidURL(
            "the user name or password in the URL is not UTF-8 text (a lone"
            " surrogate, or %-escapes of bytes that are not UTF-8); escape the"
            " UTF-8 bytes of each character, e.g. %C3%A9 for \u00e9"
        ) from exc
    if ":" in user:
        raise InvalidURL(
            "the user name in the URL contains an escaped ':' (%3A), and Basic"
            " authentication can't carry a user name with a colon (RFC 7617):"
            " a ':' can only be part of the password"
        )


def _ipv6(text: str) -> str:
    if "%" in text:
        raise InvalidURL(f"IPv6 zone identifiers are not supported: {text!r}")
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        raise InvalidURL(f"invalid IPv6 address {text!r}") from None
    return _rfc5952(address)


def _rfc5952(address: ipaddress.IPv6Address) -> str:
    """The canonical text form of RFC 5952 section 4, written out here
    because ``ipaddress`` changed its own between Python versions (3.13
    writes an IPv4-mapped address with a dotted tail, earlier ones in hex).

    Lower-case hex without leading zeros; the longest run of two or more
    zero groups (the first of equal runs) becomes "::"; an IPv4-mapped
    address ends in the dotted IPv4 form (section 5).
    """
    mapped = address.ipv4_mapped
    if mapped is not None:
        return f"::ffff:{mapped}"
    number = int(address)
    groups = [f"{(number >> shift) & 0xFFFF:x}" for shift in range(112, -1, -16)]
    best_start, best_length = -1, 1
    index = 0
    while index < 8:
        end = index
        while end < 8 and groups[end] == "0":
            end += 1
        if end - index > best_length:
            best_start, best_length = index, end - index
        index = max(end, index + 1)
    if best_start < 0:
        return ":".join(groups)
    head = ":".join(groups[:best_start])
    tail = ":".join(groups[best_start + best_length :])
    return f"{head}::{tail}"


def _hostname(text: str) -> str:
    if not text:
        raise InvalidURL("URL has an empty host")
    # ASCII names (nearly all) never reach the IDNA code below.
    host = text.lower() if text.isascii() else idna_host(text)
    if _NUMERIC_LABEL.match(host.rstrip(".").rpartition(".")[2]):
        # A host ending in a number is an IPv4 address or nothing: resolvers
        # read "0x7f.1" or "127.1" as 127.0.0.1, so anything but a plain
        # dotted quad would be ambiguous.
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise InvalidURL(f"invalid IPv4 address {text!r}") from None
    if not _HOSTNAME.match(host) or len(host) > 253:
        raise InvalidURL(f"invalid host name {text!r}")
    return host


def _port(text: str | None, scheme: str) -> int:
    if text is None or text == "":
        # "http://host:/" has an empty port, which RFC 3986 treats as default.
        return DEFAULT_PORTS[scheme]
    if not text.isdigit() or not text.isascii():
        raise InvalidURL(f"port must be a number, got {text!r}")
    port = int(text)
    if not 0 < port < 65536:
        raise InvalidURL(f"port {port} is out of range 1-65535")
    return port


def _quote(text: str, safe: str) -> str:
    # A "%" that does not start a valid escape is itself encoded, so that
    # "100%" becomes "100%25" and existing "%2F" stays as it is.
    if "%" in text:
        text = _BAD_ESCAPE.sub("%25", text)
    try:
        return quote(text, safe=safe)
    except UnicodeEncodeError:
        # Lone surrogates (from surrogateescape-decoded argv or file names)
        # have no UTF-8 form to percent-encode.
        raise InvalidURL(f"URL contains characters with no UTF-8 form: {text!r}") from None


def _redact(url: str) -> str:
    """``url`` with any userinfo masked, for error messages."""
    return _USERINFO.sub(r"\1***@", url)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host
