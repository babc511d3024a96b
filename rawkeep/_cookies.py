"""Cookies through a standard ``http.cookiejar.CookieJar``.

``CookieJar`` was written for ``urllib.request``: it reads the request and
response through a handful of methods of those classes. The two adapters
here offer exactly those methods over rawkeep's ``Request`` and
``Response``, so any ``CookieJar`` (with its policy, or a ``FileCookieJar``)
works unchanged. Cookies are applied to every request, redirects included,
and every response (redirects included) updates the jar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from http.cookiejar import CookieJar

    from ._headers import Headers
    from ._url import URL

__all__ = ["apply_cookies", "store_cookies"]


class _JarRequest:
    """The ``urllib.request.Request`` methods that ``CookieJar`` calls."""

    def __init__(self, url: URL, headers: Headers) -> None:
        self._headers = headers
        self._url = str(url)
        self.type = url.scheme
        self.host = url.origin.host_header
        self.origin_req_host = url.host
        self.unverifiable = False
        self.cookie: str | None = None

    def get_full_url(self) -> str:
        return self._url

    def has_header(self, name: str) -> bool:
        return name in self._headers

    def get_header(self, name: str, default: str | None = None) -> str | None:
        return self._headers.get(name, default)

    def add_unredirected_header(self, name: str, value: str) -> None:
        # CookieJar only ever adds "Cookie" this way.
        self.cookie = value


class _JarResponse:
    """``response.info()`` for ``CookieJar.extract_cookies``."""

    def __init__(self, headers: Headers) -> None:
        self._headers = headers

    def info(self) -> _JarResponse:
        return self

    def get_all(self, name: str, default: list[str] | None = None) -> list[str] | None:
        return self._headers.get_all(name) or default


def apply_cookies(jar: CookieJar, url: URL, headers: Headers) -> str | None:
    """The ``Cookie`` header value the jar has for this request, if any."""
    adapter = _JarRequest(url, headers)
    jar.add_cookie_header(adapter)  # type: ignore[arg-type]
    return adapter.cookie


def store_cookies(
    jar: CookieJar, url: URL, request_headers: Headers, response_headers: Headers
) -> None:
    """Let the jar take the ``Set-Cookie`` headers of a response."""
    if "set-cookie" in response_headers or "set-cookie2" in response_headers:
        jar.extract_cookies(
            _JarResponse(response_headers),  # type: ignore[arg-type]
            _JarRequest(url, request_headers),  # type: ignore[arg-type]
        )
