"""``Request``: what to send, how it is framed, and whether it can be sent again.

The client turns its arguments into a ``Request`` before any I/O: the URL
parsed, the headers merged and validated by h11, the body normalised into
something sending can loop over. Whether the request may be sent twice
(after the keep-alive race, or for a 307/308 redirect) is decided here too:
bytes always can, a seekable file can (it is rewound), an iterator can't.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping
from typing import IO, TYPE_CHECKING, Any, Final, TypeAlias

import h11

from ._exceptions import LocalProtocolError
from ._fields import field_pairs
from ._file_bodies import file_size, is_file_body, read_blocks, start_of
from ._headers import Headers
from ._multipart import MultipartBody, encode_multipart

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._fields import FieldValue
    from ._headers import HeadersInput
    from ._multipart import FilesInput
    from ._url import URL, Route

__all__ = [
    "Content",
    "FormInput",
    "Request",
    "encode_body",
    "merge_headers",
]

#: What ``content=`` accepts.
Content: TypeAlias = "bytes | str | Iterable[bytes] | AsyncIterable[bytes] | IO[bytes]"
#: Form fields for ``data=``: a mapping, or a list of pairs (typed as a
#: ``Sequence``, not any iterable, so that mypy reads a dict literal of
#: mixed values as the mapping; at run time any iterable of pairs works).
FormInput: TypeAlias = "Mapping[str, FieldValue] | Sequence[tuple[str, FieldValue]]"

# RFC 9110 section 9.2.2: methods whose repetition has the same effect.
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class Request:
    """A request ready to be sent, possibly more than once.

    Built by the client; the body is normalised here so that sending is a
    loop over byte chunks, and replaying (for a retry) is known to be safe:
    bytes always are, a seekable file is (it is rewound), an iterator is not.
    """

    __slots__ = (
        "_file_start",
        "asks_to_close",
        "body",
        "ends_with_head",
        "expects_continue",
        "h11_request",
        "headers",
        "is_retryable",
        "method",
        "route",
        "url",
        "url_text",
        "via_proxy",
    )

    def __init__(
        self,
        method: str,
        url: URL,
        headers: Headers,
        body: bytes | Iterable[bytes] | AsyncIterable[bytes] | IO[bytes] | None,
        route: Route,
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.route = route
        #: The URL as responses and events show it (no credentials).
        self.url_text = str(url)
        self._file_start: int | None = None
        if is_file_body(body):
            self._file_start = start_of(body)
        #: The keep-alive race may send it again (RFC 9112 section 9.3.1):
        #: an idempotent method with a body that can be replayed. Kept, as
        #: the pool asks for every request.
        self.is_retryable = method in IDEMPOTENT_METHODS and self.is_replayable
        #: It goes through a proxy (forwarded, or through a tunnel). Kept, as
        #: the client asks for every request.
        self.via_proxy = route.proxy is not None
        # A forward proxy gets http:// targets in absolute form; everything
        # else (direct, or inside a CONNECT tunnel) in origin form.
        proxied = self.via_proxy and url.scheme == "http"
        target = url.absolute_target if proxied else url.target
        self.h11_request = _to_h11(method, target, headers)
        #: The headers ask for ``Expect: 100-continue`` and there is a body.
        self.expects_continue = _expects_continue(body, headers)
        #: Nothing follows the head: no body, no chunked framing.
        self.ends_with_head = (body is None or body == b"") and "transfer-encoding" not in headers
        #: The request says ``Connection: close`` (RFC 9112 section 9.6).
        self.asks_to_close = any(
            token.strip().lower() == "close"
            for value in headers.get_all("connection")
            for token in value.split(",")
        )

    def follow(self, method: str, url: URL, headers: Headers, route: Route) -> Request:
        """The request that follows a redirect: same body if the method is
        kept, none if it changed (a file body is rewound to where it began)."""
        body = self.body if method == self.method else None
        follow = Request(method, url, headers, body if not is_file_body(body) else None, route)
        if is_file_body(body):
            follow.body = body
            follow._file_start = self._file_start
            follow.is_retryable = follow.is_idempotent and follow.is_replayable
            follow.expects_continue = _expects_continue(body, headers)
            follow.ends_with_head = False
        return follow

    @property
    def is_replayable(self) -> bool:
        """Whether the body can be sent again (for a retry)."""
        body = self.body
        if body is None or isinstance(body, bytes):
            return True
        if isinstance(body, MultipartBody):
            return body.is_replayable
        return self._file_start is not None

    @property
    def is_idempotent(self) -> bool:
        return self.method in IDEMPOTENT_METHODS

    def body_chunks(self) -> bytes | Iterable[bytes] | AsyncIterable[bytes] | None:
        """The body for one attempt; a file is rewound to where it started."""
        body = self.body
        if body is None or isinstance(body, bytes):
            return body
        if is_file_body(body):
            if self._file_start is not None:
                body.seek(self._file_start)
            return read_blocks(body)
        return body


def _expects_continue(body: object, headers: Headers) -> bool:
    return body is not None and headers.get("expect", "").strip().lower() == "100-continue"


def _to_h11(method: str, target: str, headers: Headers) -> h11.Request:
    # h11 validates the method, the target and every header (token names, no
    # CR/LF/NUL in values, framing headers) when the event is built, so a bad
    # request is refused here, before a connection is even taken.
    try:
        return h11.Request(method=method, target=target, headers=headers.raw())
    except h11.LocalProtocolError as exc:
        raise LocalProtocolError(f"invalid request: {exc}") from exc
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"header names and values must be Latin-1: {exc}") from exc


def merge_headers(base: Headers, extra: HeadersInput | None) -> Headers:
    """``base`` with ``extra`` on top: a name in ``extra`` replaces every
    value of that name in ``base``. Modifies and returns ``base``."""
    if extra is not None:
        own = Headers(extra)
        for name in own:
            base.pop(name, None)
        for name, value in own.items():
            base.add(name, value)
    return base


def encode_body(
    method: str,
    headers: Headers,
    content: Content | None,
    json: Any,
    data: FormInput | None,
    files: FilesInput | None = None,
) -> bytes | Iterable[bytes] | AsyncIterable[bytes] | IO[bytes] | None:
    """Normalise the body and set its framing and type headers.

    Framing: a known length gets Content-Length; an iterable, or a file of
    unknown size, goes chunked. A caller's own Content-Length is kept (and
    checked against a bytes body); Content-Length with Transfer-Encoding is
    refused (RFC 9112 section 6.3: the combination is how requests are
    smuggled).
    """
    _check_content(content)
    _check_one_body(content, json, data, files)
    body: bytes | Iterable[bytes] | AsyncIterable[bytes] | IO[bytes] | None
    if files:  # as in httpx, an empty files= is no files: data= is then a plain form
        body = encode_multipart(headers, files, data)
    elif json is not None:
        import json as json_module

        body = json_module.dumps(json, separators=(",", ":"), ensure_ascii=False).encode()
        headers.setdefault("Content-Type", "application/json")
    elif data is not None:
        body = _encode_form(data)
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif isinstance(content, str):
        body = content.encode()
    elif content is None or isinstance(content, bytes):
        body = content
    elif isinstance(content, bytearray | memoryview):
        body = bytes(content)
    elif _is_stream(content):
        body = content
    else:
        raise TypeError(
            "content must be bytes, str, an iterable of bytes, an async iterable of bytes"
            f" (AsyncClient) or a binary file, not {content!r}"
        )
    _set_framing(method, headers, body)
    return body


def _check_one_body(content: object, json: object, data: object, files: object) -> None:
    """Refuse two bodies at once (``data=`` beside ``files=`` is one: the
    form's plain fields).

    Raises:
        TypeError: naming the arguments given together.
    """
    given = [
        name
        for name, value in (("content", content), ("json", json), ("data", data), ("files", files))
        if value is not None and not (name == "data" and files is not None)
    ]
    if len(given) > 1:
        raise TypeError(
            f"give at most one of content, json, data and files (data= may go with files=),"
            f" not {' and '.join(given)}"
        )


def _check_content(content: object) -> None:
    """Refuse, before any I/O, the ``content=`` a newcomer means as JSON or
    a form (a dict, a list of numbers).

    Raises:
        TypeError: with where such a body goes instead.
    """
    if isinstance(content, Mapping):
        raise TypeError(
            "content must be bytes, str, an iterable of bytes or a binary file, not a"
            f" {type(content).__name__}: send it as JSON with json=, or as a form with data="
        )
    if isinstance(content, list | tuple) and not all(
        isinstance(part, bytes | bytearray | memoryview) for part in content
    ):
        raise TypeError(
            "content given as a list or tuple must hold bytes only; send other values"
            " as JSON with json=, or as a form with data="
        )


def _encode_form(data: FormInput) -> bytes:
    """``data=`` as ``application/x-www-form-urlencoded`` (values encoded
    as for ``params=``: see ``field_pairs``).

    Raises:
        TypeError: ``data`` is a string (an encoded body goes in
            ``content=``), or a name or value of the wrong type.
    """
    from urllib.parse import urlencode

    given: object = data
    if isinstance(given, str | bytes | bytearray):
        raise TypeError(
            "data= takes a form: a dict or a list of (name, value) pairs;"
            " send a body that is already encoded with content="
        )
    return urlencode(field_pairs(data, "data")).encode("ascii")


def _is_stream(content: object) -> bool:
    """A file, an iterable of bytes, or an async one (from AsyncClient only:
    see ``RequestFactory``)."""
    return (
        hasattr(content, "read") or isinstance(content, Iterable) or hasattr(content, "__aiter__")
    )


def _set_framing(
    method: str,
    headers: Headers,
    body: bytes | Iterable[bytes] | AsyncIterable[bytes] | IO[bytes] | None,
) -> None:
    has_length = "content-length" in headers
    if has_length and "transfer-encoding" in headers:
        raise LocalProtocolError("Content-Length and Transfer-Encoding together are refused")
    if "transfer-encoding" in headers:
        return
    if isinstance(body, bytes):
        if has_length:
            if headers["content-length"] != str(len(body)):
                raise LocalProtocolError(
                    f"Content-Length {headers['content-length']} does not match "
                    f"the {len(body)}-byte body"
                )
            return
        headers["Content-Length"] = str(len(body))
    elif body is None:
        # RFC 9110 section 8.6: a request without a body but with a method
        # that expects one should say Content-Length: 0.
        if method in ("POST", "PUT", "PATCH") and not has_length:
            headers["Content-Length"] = "0"
        elif has_length and headers["content-length"].strip() != "0":
            raise LocalProtocolError(
                f"Content-Length {headers['content-length']} announced, but there is no body"
            )
    elif not has_length:
        size = body.size if isinstance(body, MultipartBody) else None
        if is_file_body(body):
            size = file_size(body)
        if size is None:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(size)
