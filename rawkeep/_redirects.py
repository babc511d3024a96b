"""Following redirects: which status codes, what the next request looks like.

RFC 9110 section 15.4 with the behaviour every browser has:

* 301 and 302 turn a POST (any method but GET and HEAD) into a GET without
  body; 303 does so for every method but HEAD.
* 307 and 308 repeat the request exactly, method and body. A body that can't
  be sent twice (an iterator) makes the redirect fail loudly: sending the
  request again without its body would be silently wrong.
* The ``Location`` may be relative, scheme-relative or absolute. A control
  character in it (TAB, CR, LF, any other C0 character or DEL) is fatal:
  ``urljoin``, like the WHATWG URL parser, would delete some of them and
  follow ``/a<TAB>b`` as ``/ab``, a URL the server never sent.
* Leaving the origin (scheme, host or port changes, https -> http included)
  drops ``Authorization``, ``Proxy-Authorization`` and ``Cookie``: secrets
  given for one server must not reach another. Cookies for the new origin
  come from the cookie jar, if the client has one.

Each hop goes through the pool like any request, so a redirect to the same
origin reuses the connection the redirect response came over.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final
from urllib.parse import urljoin

from ._auth import basic_auth_header, userinfo_credentials
from ._exceptions import InvalidURL, LocalProtocolError, RemoteProtocolError
from ._url import URL, _redact

if TYPE_CHECKING:
    from ._headers import Headers
    from ._models import Response
    from ._request import Request

__all__ = ["REDIRECT_STATUSES", "is_redirect", "plan_redirect"]

REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})

#: Headers that describe a body, dropped when a redirect drops the body.
_BODY_HEADERS: Final = (
    "Content-Length",
    "Transfer-Encoding",
    "Content-Type",
    "Content-Encoding",
)

#: Headers never carried to another origin.
_SECRET_HEADERS: Final = ("Authorization", "Proxy-Authorization", "Cookie")

#: C0 controls and DEL: refused in a ``Location`` before ``urljoin`` sees it.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def is_redirect(response: Response) -> bool:
    """A redirect status with a ``Location`` to go to."""
    return response.status in REDIRECT_STATUSES and "location" in response.headers


def plan_redirect(request: Request, response: Response) -> tuple[str, URL, Headers]:
    """Method, URL and headers of the request that follows ``response``.

    The body is ``request``'s when the method is kept, none otherwise.

    Raises:
        RemoteProtocolError: the ``Location`` is not a usable URL.
        LocalProtocolError: a 307/308 needs a body that can't be replayed.
    """
    url = _next_url(request.url, response.headers["location"])
    method = request.method
    headers = request.headers.copy()
    if _drops_body(response.status, method):
        method = "GET"
        for name in _BODY_HEADERS:
            headers.pop(name, None)
    elif request.body is not None and not request.is_replayable:
        raise LocalProtocolError(
            f"can't follow the {response.status} redirect to {url}: the request"
            " body was an iterator and can't be sent again (use bytes or a"
            " seekable file)"
        )
    if url.origin != request.url.origin:
        for name in _SECRET_HEADERS:
            headers.pop(name, None)
    headers["Host"] = url.origin.host_header
    credentials = userinfo_credentials(url.userinfo)
    if credentials is not None:
        headers["Authorization"] = basic_auth_header(credentials)
    return method, url, headers


def _drops_body(status: int, method: str) -> bool:
    if status == 303:
        return method != "HEAD"
    return status in (301, 302) and method not in ("GET", "HEAD")


def _next_url(current: URL, location: str) -> URL:
    shown = _redact(location)  # the Location's own credentials stay out of messages
    control = _CONTROL.search(location)
    if control is not None:
        raise RemoteProtocolError(
            f"redirect not followed: its Location {shown!r} contains the control"
            f" character {control.group()!r}, which a URL can't contain (the"
            " server must percent-encode it)"
        )
    # Servers do send raw spaces in Location; browsers encode them, so do we.
    # Nothing else is removed or changed before urljoin.
    try:
        target = urljoin(str(current), location.strip(" ").replace(" ", "%20"))
    except ValueError as exc:  # e.g. an unbalanced "[" in the host
        raise RemoteProtocolError(
            f"redirect not followed: its Location {shown!r} is not a usable URL: {exc}"
        ) from exc
    try:
        return URL(target)
    except InvalidURL as exc:
        raise RemoteProtocolError(
            f"redirect not followed: its Location {shown!r} is not a usable URL: {exc}"
        ) from exc
