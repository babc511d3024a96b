"""Proxies from the environment, as curl reads them.

The library reads the proxy variables itself (``Client(trust_env=True)``,
``rawkeep._proxy.ProxyConfig``): which variable serves which scheme, the
``NO_PROXY`` matching. The command only decides *which* variables it sees,
with curl's rules:

- ``http_proxy`` is read in lower case only: curl ignores ``HTTP_PROXY``
  (a CGI program's ``HTTP_PROXY`` can come from a request's ``Proxy:``
  header, "httpoxy");
- ``https_proxy``, ``all_proxy`` and ``no_proxy`` in either case, lower
  case first;
- ``-x URL`` is the proxy for every scheme, over the variables; ``no_proxy``
  still exempts hosts from it, as in curl;
- ``--noproxy LIST`` replaces ``no_proxy``.

``proxy_environ`` makes that view before any I/O; ``proxy_environment``
shows it to the library while the client is made (the variables are read
then, once) and puts the real ones back.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator, Mapping

__all__ = ["proxy_environ", "proxy_environment"]

#: Every variable the library may read (``_proxy.ProxyConfig``).
_VARIABLES: Final = tuple(
    case(f"{name}_proxy") for name in ("http", "https", "all", "no") for case in (str, str.upper)
)


def proxy_environ(environ: Mapping[str, str], args: argparse.Namespace) -> dict[str, str]:
    """The proxy variables the client should see, by curl's rules."""

    def get(name: str) -> str:
        return environ.get(name) or environ.get(name.upper()) or ""

    view = {
        "http_proxy": environ.get("http_proxy", ""),  # never HTTP_PROXY
        "https_proxy": get("https_proxy"),
        "all_proxy": get("all_proxy"),
        "no_proxy": get("no_proxy"),
    }
    if args.proxy is not None:
        # curl takes "host:port" for "http://host:port".
        proxy = args.proxy if "://" in args.proxy else f"http://{args.proxy}"
        view["http_proxy"] = view["https_proxy"] = proxy
    if args.noproxy is not None:
        view["no_proxy"] = args.noproxy
    return {name: value for name, value in view.items() if value}


@contextlib.contextmanager
def proxy_environment(view: Mapping[str, str]) -> Iterator[None]:
    """``os.environ``'s proxy variables are ``view``'s inside the block.

    The command is single-threaded while it makes its client, and the
    library reads the variables only then.
    """
    saved = {name: os.environ.pop(name) for name in _VARIABLES if name in os.environ}
    os.environ.update(view)
    try:
        yield
    finally:
        for name in _VARIABLES:
            os.environ.pop(name, None)
        os.environ.update(saved)
