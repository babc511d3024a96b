"""Building requests: URL, headers, auth, cookies, body, route; all before any I/O.

One ``RequestFactory`` per client turns a caller's arguments into a
``Request`` ready for the wire, and the request that follows a redirect.
Every check of the caller's input happens here, so bad input raises before
a connection is taken. The sync and asyncio shells build requests the same
way, through this one object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from ._auth import AuthInput, basic_auth_header, userinfo_credentials
from ._codings import accept_encoding
from ._cookies import apply_cookies, store_cookies
from ._exceptions import LocalProtocolError
from ._headers import Headers, HeadersInput
from ._redirects import plan_redirect
from ._request import Content, FormInput, Request, encode_body, merge_headers
from ._url import URL, BaseURL, QueryParams, Route
from ._version import __version__

if TYPE_CHECKING:
    from http.cookiejar import CookieJar

    from ._connect import Connector
    from ._models import Response
    from ._multipart import FilesInput

__all__ = ["USER_AGENT", "RequestFactory"]

USER_AGENT: Final = f"rawkeep/{__version__}"

#: Prepared requests kept per client (method and URL string as key).
PREPARED_CACHE_SIZE: Final = 256


class RequestFactory:
    """Builds a client's requests (see the module docstring).

    Args:
        headers: the client's default headers.
        auth: the client's ``(user, password)``.
        cookies: a cookie jar applied to requests and updated from responses.
        connector: decides each request's route (and proxy).
        expect_continue_above: ask ``Expect: 100-continue`` for bodies larger
            than this (or of unknown size); checked by the caller.
        base_url: relative request URLs are joined to it (see ``BaseURL``).
        async_bodies: an async iterable may be a body (only the asyncio
            client can send one).
    """

    def __init__(
        self,
        *,
        headers: HeadersInput | None,
        auth: AuthInput | None,
        cookies: CookieJar | None,
        connector: Connector,
        expect_continue_above: int | None,
        async_bodies: bool = False,
        base_url: str | None = None,
    ) -> None:
        builtin = Headers(
            [
                ("User-Agent", USER_AGENT),
                ("Accept", "*/*"),
                ("Accept-Encoding", accept_encoding()),
            ]
        )
        self._headers = merge_headers(builtin, headers)
        self._auth = None if auth is None else basic_auth_header(auth)
        self._cookies = cookies
        #: Responses update a cookie jar.
        self.has_cookie_jar = cookies is not None
        self._connector = connector
        self._expect_above = expect_continue_above
        self._async_bodies = async_bodies
        self._base = None if base_url is None else BaseURL(base_url)
        # Requests with nothing per-request (no headers, body, params or
        # auth; no cookie jar) are the same every time: keep them built.
        # Parsing the URL, merging headers and h11's validation are about a
        # third of the client's own time per request otherwise.
        self._prepared: dict[tuple[str, str], Request] = {}

    def build(
        self,
        method: str,
        url: str,
        params: QueryParams | None,
        headers: HeadersInput | None,
        content: Content | None,
        json: Any,
        data: FormInput | None,
        files: FilesInput | None,
        auth: AuthInput | None,
    ) -> Request:
        """The request for a caller's arguments.

        Raises:
            TypeError, ValueError: an argument of the wrong type or value.
            InvalidURL: the URL can't be used.
            LocalProtocolError: the request can't be sent as valid HTTP.
        """
        if (
            params is None
            and headers is None
            and content is None
            and json is None
            and data is None
            and files is None
            and auth is None
            and self._cookies is None
        ):
            # A request with no per-request parts, from the cache when seen.
            request = self._prepared.get((method, url))
            return self._build_plain(method, url) if request is None else request
        return self._build(method, url, params, headers, content, json, data, files, auth)

    def follow(self, request: Request, response: Response) -> Request:
        """The request that follows ``response``, a redirect to ``request``.

        Raises:
            RemoteProtocolError: the Location can't be followed.
        """
        method, url, headers = plan_redirect(request, response)
        if self._cookies is not None:
            headers.pop("Cookie", None)
            self._add_cookies(headers, url)
        return request.follow(method, url, headers, self._route(url, headers))

    def store_cookies(self, request: Request, response: Response) -> None:
        """Update the cookie jar, if any, from ``response``."""
        if self._cookies is not None:
            store_cookies(self._cookies, request.url, request.headers, response.headers)

    def _build_plain(self, method: str, url: str) -> Request:
        """A request with no per-request parts, built and kept."""
        request = self._build(method, url, None, None, None, None, None, None, None)
        if len(self._prepared) >= PREPARED_CACHE_SIZE:
            self._prepared.clear()  # crude, bounded, and rarely hit
        self._prepared[(method, url)] = request
        return request

    def _build(
        self,
        method: str,
        url: str,
        params: QueryParams | None,
        headers: HeadersInput | None,
        content: Content | None,
        json: Any,
        data: FormInput | None,
        files: FilesInput | None,
        auth: AuthInput | None,
    ) -> Request:
        if not isinstance(method, str):
            raise TypeError(f"method must be a str, not {method!r}")
        # Methods are case-sensitive on the wire (RFC 9110 section 9.1) and
        # every standard one is upper-case: "get" would be answered 501. ASCII
        # only: upper() maps some letters outside it to others ("ﬀ" to "FF"),
        # and a method h11 would refuse must not become one it accepts.
        if method.isascii():
            method = method.upper()
        if method == "CONNECT":
            # A tunnel through a proxy is opened by the pool (proxy=), never
            # as a request: its 2xx would switch the connection to raw bytes.
            raise LocalProtocolError("CONNECT can't be sent as a request; use proxy= for tunnels")
        if self._base is not None:
            url = self._base.join(url)
        parsed = URL(url, params=params)
        merged = Headers([("Host", parsed.origin.host_header)])
        # The client's headers, then the request's, each replacing by name
        # (a Host among them wins over the URL's).
        merged = merge_headers(merge_headers(merged, self._headers), headers)
        self._add_auth(merged, parsed, auth)
        self._add_cookies(merged, parsed)
        route = self._route(parsed, merged)
        body = encode_body(method, merged, content, json, data, files)
        if body is not None and not self._async_bodies and hasattr(body, "__aiter__"):
            raise TypeError("an async iterable body can only be sent by AsyncClient")
        if self._expect_above is not None and "expect" not in merged:
            length = merged.get("content-length")
            size = int(length) if length is not None and length.isdigit() else None
            if (size is None and body is not None) or (
                size is not None and size > self._expect_above
            ):
                # Ask first, send later: a server that will refuse the body
                # (401, 413, 417) says so before it crosses the network.
                merged["Expect"] = "100-continue"
        return Request(method, parsed, merged, body, route)

    def _route(self, url: URL, headers: Headers) -> Route:
        """The pool key for ``url``; adds ``Proxy-Authorization`` to requests
        a proxy forwards (https goes through a tunnel: it stays out)."""
        route = self._connector.route(url.origin)
        proxy = route.proxy
        if (
            proxy is not None
            and url.scheme == "http"
            and proxy.authorization
            and "proxy-authorization" not in headers
        ):
            headers["Proxy-Authorization"] = proxy.authorization
        return route

    def _add_auth(self, headers: Headers, url: URL, auth: AuthInput | None) -> None:
        # An explicit Authorization header wins; then the request's auth=,
        # then credentials in the URL, then the client's auth=.
        if "authorization" in headers:
            return
        credentials = auth or userinfo_credentials(url.userinfo)
        if credentials is not None:
            headers["Authorization"] = basic_auth_header(credentials)
        elif self._auth is not None:
            headers["Authorization"] = self._auth

    def _add_cookies(self, headers: Headers, url: URL) -> None:
        if self._cookies is not None:
            cookie = apply_cookies(self._cookies, url, headers)
            if cookie:
                headers["Cookie"] = cookie
