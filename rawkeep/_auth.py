"""Basic authentication (RFC 7617): from ``auth=`` or from URL userinfo.

Credentials are turned into an ``Authorization`` header here and nowhere
else. They never appear in ``str(url)``, events, log lines, exception
messages or ``Headers`` reprs (which mask the header), and the redirect
logic drops the header whenever a redirect leaves the origin.
"""

from __future__ import annotations

import binascii
from typing import TypeAlias
from urllib.parse import unquote

__all__ = ["AuthInput", "basic_auth_header", "userinfo_credentials"]

#: What ``auth=`` accepts: a (user, password) pair for Basic authentication.
AuthInput: TypeAlias = "tuple[str, str]"


def basic_auth_header(auth: AuthInput) -> str:
    """The ``Authorization`` value for Basic auth, user and password as UTF-8.

    Raises:
        TypeError: ``auth`` is not a pair of strings.
        ValueError: the user name contains a colon (RFC 7617 section 2
            forbids it: the first colon separates user from password).
    """
    given: object = auth  # checked at run time: callers may pass anything
    if not (
        isinstance(given, tuple) and len(given) == 2 and all(isinstance(p, str) for p in given)
    ):
        raise TypeError("auth must be a (user, password) pair of str")
    user, password = auth
    if ":" in user:
        raise ValueError("a Basic auth user name can't contain ':'")
    # binascii, not base64: the same encoding without importing a module.
    token = binascii.b2a_base64(f"{user}:{password}".encode(), newline=False).decode("ascii")
    return f"Basic {token}"


def userinfo_credentials(userinfo: str) -> AuthInput | None:
    """``user:password`` from a URL's userinfo, percent-decoded; None if empty."""
    if not userinfo:
        return None
    user, _, password = userinfo.partition(":")
    return unquote(user), unquote(password)
