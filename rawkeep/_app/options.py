"""The command line of ``rawkeep``: its parser, and every check made before any I/O.

``make_plan`` turns the parsed arguments into a ``Plan``: the URLs checked,
the headers parsed, the body read from its ``@file``, the ``-O`` file names
made safe and the ``Client`` keywords chosen. A mistake found here is a
``UsageError`` (or the library's ``InvalidURL``) before a socket is opened.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from http.cookiejar import CookieJar, LoadError, MozillaCookieJar
from typing import TYPE_CHECKING, Final, NoReturn, TypedDict
from urllib.parse import unquote

from .._exceptions import InvalidURL
from .._resolve import HostTable
from .._timeout import DEFAULT_TIMEOUT, Timeout
from .._url import URL
from .._version import __version__
from .form import FormError, FormPart, check_form, parse_form
from .proxyenv import proxy_environ
from .writeout import WriteOut

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ClientOptions", "Plan", "UsageError", "build_parser", "make_plan"]


_EPILOG: Final = """\
exit codes:
  0   success
  1   other error
  2   bad command line or input (option, -H, @file, invalid request)
  3   invalid URL
  4   could not connect (refused, unreachable, DNS, connect timeout)
  5   TLS handshake or certificate verification failed
  6   read, write or pool timeout, or -m passed
  7   protocol error (closed, reset, malformed or undecodable response)
  8   HTTP status >= 400 with --fail
  9   feature not available yet
  10  could not write the output or the trace
  11  too many redirects (-L)
  12  proxy error (refused, 407, target unreachable)
  130 interrupted

rawkeep stops at the first error. `rawkeep demo` walks through keep-alive
against a built-in local server. More in docs/cli.md.
"""


class UsageError(Exception):
    """Bad command line or input: ``ExitCode.USAGE``."""


# -- the command line -----------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage block on an error; with this many
    # options, one line and a hint to --help read better (main prints them).
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``rawkeep [options] URL [URL ...]``."""
    parser = _Parser(
        prog="rawkeep",
        usage="rawkeep [options] URL [URL ...]\n       rawkeep demo [STEP ...]",
        description="Fetch URLs in order over one keep-alive connection pool; "
        "-v tells how each connection is opened, reused and retired.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("urls", nargs="+", metavar="URL", help="http:// or https:// URL")
    _add_request_options(parser.add_argument_group("request").add_argument)
    _add_connection_options(parser.add_argument_group("connections").add_argument)
    _add_output_options(parser.add_argument_group("output").add_argument)
    return parser


def _add_request_options(add: Callable[..., object]) -> None:
    """What to send: method, headers, body, cookies, redirects, retries."""
    add("-X", "--request", metavar="METHOD", help="method (default GET; POST with a body)")
    add("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
        help="add a request header (repeatable)")  # fmt: skip
    add("-d", "--data", action="append", metavar="DATA",
        help="request body; @FILE reads a file, @- stdin; repeated: joined by &")  # fmt: skip
    add("-G", "--get", action="store_true", help="put the -d data in the URL's query, GET")
    add("-I", "--head", action="store_true", help="send HEAD; write the response head")
    add("-A", "--user-agent", metavar="NAME", help="the User-Agent header")
    add("-b", "--cookie", metavar="NAME=VALUE|FILE",
        help="send these cookies, or read a Netscape cookie file")  # fmt: skip
    add("-c", "--cookie-jar", metavar="FILE", help="write the cookies to FILE at the end")
    add("--json", metavar="DATA", help="JSON request body (@FILE too); sets Content-Type")
    add("-F", "--form", action="append", metavar="NAME=VALUE|@FILE|<FILE",
        help="a multipart form part (repeatable); ;type= and ;filename= after")  # fmt: skip
    add("-u", "--user", metavar="USER:PASSWORD", help="Basic authentication")
    add("-L", "--location", action="store_true", help="follow redirects")
    add("--max-redirs", type=_count, default=20, metavar="N", help="with -L (default 20)")
    add("--compressed", action="store_true", help="accepted; decoding is always on")
    add("--repeat", type=_count, default=1, metavar="N", help="send the URL list N times")
    add("-f", "--fail", action="store_true", help="exit 8 on a status >= 400, body unwritten")
    add("--retry", type=_whole, default=0, metavar="N",
        help="try a URL N more times after a timeout, connect error, 408/429/5xx")  # fmt: skip
    add("--retry-delay", type=_seconds, metavar="S", help="wait S s between retries (backoff)")


def _add_connection_options(add: Callable[..., object]) -> None:
    """How to connect: TLS, time limits, the pool, proxies, a Unix socket."""
    add("-k", "--insecure", action="store_true", help="do not verify TLS certificates")
    add("--cacert", metavar="PATH", help="verify TLS certificates against this CA bundle")
    add("--timeout", type=_seconds, metavar="S", help="limit of each connect/read/write wait")
    add("--connect-timeout", type=_seconds, metavar="S", help="limit of each connect")
    add("-m", "--max-time", type=_positive_seconds, metavar="S",
        help="limit of each whole transfer (a URL: redirects, retries, body)")  # fmt: skip
    add("--idle-timeout", type=_seconds, metavar="S", help="keep idle connections S s (30)")
    add("--max-per-host", type=_count, metavar="N", help="open connections per origin (10)")
    add("-x", "--proxy", metavar="URL", help="send through this HTTP proxy (CONNECT for https)")
    add("--noproxy", metavar="HOSTS", help="no proxy for these hosts (as no_proxy)")
    add("--unix-socket", metavar="PATH", help="send every request over this Unix socket")
    add("--resolve", action="append", metavar="HOST:PORT:ADDR[,ADDR...]",
        help="connect to HOST:PORT at these addresses (repeatable)")  # fmt: skip


def _add_output_options(add: Callable[..., object]) -> None:
    """Where bodies, heads, the story and errors go."""
    add("-o", "--output", metavar="FILE", help="write the bodies to FILE ('-': stdout)")
    add("-O", "--remote-name", action="store_true", help="name files after the URL paths")
    add("-i", "--include", action="store_true", help="write each response head too")
    add("-v", "--verbose", action="store_true", help="tell the connection story on stderr")
    add("--trace", metavar="FILE", help="write every event to FILE as JSON lines")
    add("-s", "--silent", action="store_true", help="no progress bar, no error message")
    add("-S", "--show-error", action="store_true", help="with -s, still show errors")
    add(
        "-w", "--write-out", metavar="FORMAT", help="after each URL write FORMAT: %%{http_code}..."
    )
    add("--debug", action="store_true", help="show the traceback of an error")
    add("--version", action="version", version=f"rawkeep {__version__}")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _whole(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"not a whole number >= 0: {text!r}")
    return int(text)


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be finite and >= 0, got {text}")
    return value


# -- checking the input before any I/O ---------------------------------------------------------


class ClientOptions(TypedDict, total=False):
    """The ``Client`` keywords the options set; the others keep their defaults."""

    follow_redirects: bool
    max_redirects: int
    auth: tuple[str, str]
    timeout: Timeout
    idle_timeout: float
    max_connections_per_host: int
    verify: bool | str
    uds: str
    cookies: CookieJar
    trust_env: bool
    resolve: dict[str, list[str]]


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What to send, and how the client is set up; all checked."""

    urls: list[str]
    method: str
    headers: list[tuple[str, str]]
    body: bytes | None
    #: The -F parts (the body, made by the library for each request), or None.
    form: list[FormPart] | None
    file_names: list[str]  # with -O: one per URL
    client_options: ClientOptions
    #: The proxy variables the client reads (curl's rules), with -x and
    #: --noproxy in them; None with --unix-socket.
    proxy_environ: dict[str, str] | None
    write_out: WriteOut | None
    cookie_jar: MozillaCookieJar | None  # -b FILE or -c
    max_time: float | None
    retry: int
    retry_delay: float | None


def make_plan(args: argparse.Namespace) -> Plan:
    """Check the arguments and read the @file body, before any I/O.

    Raises:
        UsageError, InvalidURL.
    """
    for url in args.urls:
        _check_url(url)
    _check_conflicts(args)
    headers = [_parse_header(text) for text in args.header]
    given = {name.lower() for name, _ in headers}
    if args.user_agent is not None and "user-agent" not in given:
        headers.append(("User-Agent", args.user_agent))
    jar = _cookies(args, headers, given)
    body = _read_body(args, headers)
    form = _read_form(args.form, headers)
    urls = list(args.urls)
    if args.get and body is not None:  # -G: the data goes in the query, not the body
        urls = [url.split("#")[0] + ("&" if "?" in url else "?") + body.decode() for url in urls]
        urlencoded = ("Content-Type", "application/x-www-form-urlencoded")
        headers[:] = [header for header in headers if header != urlencoded]
        body = None
    default_method = "HEAD" if args.head else "GET" if body is None and form is None else "POST"
    try:
        write_out = None if args.write_out is None else WriteOut.parse(args.write_out)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return Plan(
        urls=urls,
        method=args.request or default_method,
        headers=headers,
        body=body,
        form=form,
        file_names=[_remote_name(url) for url in urls] if args.remote_name else [],
        client_options=_client_options(args, jar),
        proxy_environ=None if args.unix_socket else proxy_environ(os.environ, args),
        write_out=write_out,
        cookie_jar=jar,
        max_time=args.max_time,
        retry=args.retry,
        retry_delay=args.retry_delay,
    )


def _check_url(url: str) -> None:
    if "://" not in url:
        if url == "demo":
            raise InvalidURL("'demo' is not a URL; to run the demo: rawkeep demo")
        raise InvalidURL(f"{url!r} has no scheme; try http://{url}")
    URL(url)  # raises InvalidURL


def _check_conflicts(args: argparse.Namespace) -> None:
    if args.output is not None and args.remote_name:
        raise UsageError("give -o or -O, not both")
    if args.data is not None and args.json is not None:
        raise UsageError("give -d or --json, not both")
    if args.form is not None and (args.data is not None or args.json is not None):
        raise UsageError("give -F or -d/--json, not both: a request has one body")
    if args.form is not None and (args.get or args.head):
        raise UsageError(f"-F sends a body, which {'-G' if args.get else '-I'} can't send")
    if args.head and (args.json is not None or (args.data is not None and not args.get)):
        raise UsageError("-I sends HEAD, which has no body: give -G to put -d in the query")
    if args.get and args.json is not None:
        raise UsageError("-G puts -d data in the query; --json can't go there")
    if args.proxy is not None and args.unix_socket is not None:
        raise UsageError("give --proxy or --unix-socket, not both")
    if args.cacert is not None and not os.access(args.cacert, os.R_OK):
        raise UsageError(f"can't read the --cacert file {args.cacert!r}")
    if args.cookie_jar is not None:
        folder = os.path.dirname(os.path.abspath(args.cookie_jar))
        if not os.access(folder, os.W_OK):
            raise UsageError(f"can't write the -c file {args.cookie_jar!r} in {folder!r}")


def _cookies(
    args: argparse.Namespace, headers: list[tuple[str, str]], given: set[str]
) -> MozillaCookieJar | None:
    """-b and -c as curl reads them: ``-b`` with a ``=`` is the Cookie
    header itself; without, a Netscape cookie file (a missing one is an
    empty jar, so that ``-b FILE -c FILE`` works on the first run). Either
    file turns the jar on: cookies set by responses are sent after."""
    text = args.cookie
    if text is not None and "=" in text:
        if "cookie" not in given:
            headers.append(("Cookie", text))
        text = None
    if text is None and args.cookie_jar is None:
        return None
    jar = MozillaCookieJar()
    if text is not None and os.path.exists(text):
        try:
            jar.load(text, ignore_discard=True)
        except (OSError, LoadError) as exc:
            raise UsageError(f"can't read the -b cookie file {text!r}: {exc}") from exc
    return jar


def _parse_header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name or name != name.strip():
        raise UsageError(f"bad -H {text!r}: expected 'Name: value'")
    return name, value.strip()


def _read_body(args: argparse.Namespace, headers: list[tuple[str, str]]) -> bytes | None:
    """The body of -d or --json, and the Content-Type (and Accept) it implies."""
    given = {name.lower() for name, _ in headers}
    if args.json is not None:
        # As curl does: say what is sent and what is wanted, unless told.
        if "content-type" not in given:
            headers.append(("Content-Type", "application/json"))
        if "accept" not in given:
            headers.append(("Accept", "application/json"))
        return _read_data(args.json, "--json")
    if args.data is not None:
        if "content-type" not in given:
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        return b"&".join(_read_data(text, "-d") for text in args.data)
    return None


def _read_data(text: str, option: str) -> bytes:
    if not text.startswith("@"):
        return text.encode()
    path = text[1:]
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise UsageError(f"can't read the {option} file {path!r}: {exc.strerror}") from exc


def _read_form(texts: list[str] | None, headers: list[tuple[str, str]]) -> list[FormPart] | None:
    """The -F parts, their files checked, and the form checked as the
    library will make it (the Content-Type and its boundary are the
    library's, unless -H gives one)."""
    if texts is None:
        return None
    if sum(text.partition("=")[2].startswith(("@-", "<-")) for text in texts) > 1:
        raise UsageError("stdin can be read once: give @- or <- to one -F only")
    try:
        parts = [parse_form(text) for text in texts]
        check_form(parts, headers)
    except FormError as exc:
        raise UsageError(str(exc)) from None
    return parts


def _resolve(texts: list[str]) -> dict[str, list[str]]:
    """--resolve HOST:PORT:ADDR[,ADDR...], as ``resolve=`` takes it, checked
    by the library's rules (an IPv6 host in brackets; addresses may be)."""
    table: dict[str, list[str]] = {}
    for text in texts:
        bad = UsageError(f"bad --resolve {text!r}: expected HOST:PORT:ADDRESS[,ADDRESS...]")
        if text.startswith("["):
            end = text.find("]") + 1
            host, colon, rest = text[:end], text[end : end + 1], text[end + 1 :]
        else:
            host, colon, rest = text.partition(":")
        port, colon2, addresses = rest.partition(":")
        if not (host and colon == colon2 == ":" and port and addresses):
            raise bad
        key = f"{host}:{port}"
        if key in table:
            raise UsageError(f"--resolve {key} is given twice")
        table[key] = addresses.split(",")
    try:
        HostTable(table)
    except ValueError as exc:
        raise UsageError(f"bad --resolve: {exc}") from None
    return table


def _remote_name(url: str) -> str:
    """-O: the file name the URL's last path segment gives, if it is safe."""
    name = unquote(URL(url).path.rsplit("/", 1)[-1])
    # A name that would leave the current directory is refused, not cleaned up.
    if name in ("", ".", "..") or any(char in name for char in "/\\\0"):
        raise UsageError(f"-O can't take a file name from {url!r}; use -o FILE")
    return name


def _client_options(args: argparse.Namespace, jar: CookieJar | None) -> ClientOptions:
    options: ClientOptions = {
        "follow_redirects": args.location,
        "max_redirects": args.max_redirs,
    }
    if args.user is not None:
        user, colon, password = args.user.partition(":")
        if not colon:
            raise UsageError("give -u USER:PASSWORD")
        options["auth"] = (user, password)
    if args.timeout is not None or args.connect_timeout is not None:
        each = Timeout(args.timeout) if args.timeout is not None else DEFAULT_TIMEOUT
        if args.connect_timeout is not None:
            each = Timeout(
                connect=args.connect_timeout, read=each.read, write=each.write, pool=each.pool
            )
        options["timeout"] = each
    if args.max_time is not None:  # no single wait outlasts the whole transfer
        options["timeout"] = _capped(options.get("timeout", DEFAULT_TIMEOUT), args.max_time)
    if args.idle_timeout is not None:
        options["idle_timeout"] = args.idle_timeout
    if args.max_per_host is not None:
        options["max_connections_per_host"] = args.max_per_host
    if args.insecure:
        options["verify"] = False
    elif args.cacert is not None:
        options["verify"] = args.cacert
    if args.unix_socket is not None:
        options["uds"] = args.unix_socket
    else:
        options["trust_env"] = True  # the proxy variables of ``proxy_environ``
    if jar is not None:
        options["cookies"] = jar
    if args.resolve is not None:
        options["resolve"] = _resolve(args.resolve)
    return options


def _capped(timeout: Timeout, most: float) -> Timeout:
    """``timeout`` with no phase longer than ``most`` seconds."""
    connect, read, write, pool = (
        most if phase is None else min(phase, most)
        for phase in (timeout.connect, timeout.read, timeout.write, timeout.pool)
    )
    return Timeout(connect=connect, read=read, write=write, pool=pool)
