"""The ``rawkeep`` command: fetch URLs over one client and tell the connection story.

``rawkeep [options] URL [URL ...]`` sends every URL through one ``Client``, so
a second URL on the same origin reuses the first one's connection; ``-v`` shows
that happening, one plain line per lifecycle event (``_story.Story``). ``rawkeep
demo`` runs the self-contained walkthrough in ``_demo``.

Shape of a run: parse the arguments, check everything that can be checked
before any I/O (URLs, headers, ``@file`` bodies, output names), then fetch the
URLs in order and stop at the first error. Each class of error has its own exit
code (``ExitCode``) and prints one line; ``--debug`` adds the traceback. Bodies
are streamed to their destination as they arrive, never held whole in memory.

``rawkeep/__init__.py`` does not import this module: ``import rawkeep`` stays
free of argparse and json.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import os
import sys
import time
import traceback
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Final, NoReturn, TypedDict
from urllib.parse import unquote

from .._client import Client
from .._exceptions import (
    ConnectError,
    ConnectTimeout,
    DecodingError,
    InvalidURL,
    LocalProtocolError,
    ProxyError,
    RawkeepError,
    RemoteProtocolError,
    TimeoutError,
    TLSError,
    TooManyRedirects,
)
from .._timeout import Timeout
from .._url import URL
from .._version import __version__
from .story import Progress, Story, Trace

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._events import (
        Event,
    )
    from .._models import Response

__all__ = ["ExitCode", "build_parser", "main"]


class ExitCode(enum.IntEnum):
    """The command's exit status, one per class of failure (docs/cli.md)."""

    #: Every URL fetched (and, with --fail, every status below 400).
    OK = 0
    #: Any other error, or a bug in rawkeep itself.
    ERROR = 1
    #: Bad command line or input: unknown option, bad -H, unreadable @file,
    #: a request that can't be sent as valid HTTP/1.1.
    USAGE = 2
    #: A URL can't be used (no http:// or https://, bad host or port).
    INVALID_URL = 3
    #: The TCP connection could not be opened, or connecting timed out.
    CONNECT = 4
    #: The TLS handshake failed or the certificate did not verify.
    TLS = 5
    #: A read, write or pool timeout passed (see --timeout).
    TIMEOUT = 6
    #: The server broke HTTP: malformed, truncated, closed mid-exchange, or a
    #: body that does not decode per its Content-Encoding.
    PROTOCOL = 7
    #: --fail was given and a response had a status of 400 or more.
    HTTP_STATUS = 8
    #: A feature rawkeep does not have yet (the library said NotImplementedError).
    NOT_AVAILABLE = 9
    #: The body or the trace could not be written (-o, -O, --trace, stdout).
    OUTPUT = 10
    #: More redirects than --max-redirs with -L.
    REDIRECTS = 11
    #: The proxy refused the request, asked for credentials (407), or could
    #: not reach the target.
    PROXY = 12
    #: Interrupted with Ctrl-C.
    INTERRUPTED = 130


_EPILOG: Final = """\
exit codes:
  0   success
  1   other error
  2   bad command line or input (option, -H, @file, invalid request)
  3   invalid URL
  4   could not connect (refused, unreachable, DNS, connect timeout)
  5   TLS handshake or certificate verification failed
  6   read, write or pool timeout
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


class _UsageError(Exception):
    """Bad command line or input: ``ExitCode.USAGE``."""


class _HTTPStatus(Exception):
    """--fail and a status >= 400: ``ExitCode.HTTP_STATUS``."""


class _OutputError(Exception):
    """A body, head or trace could not be written: ``ExitCode.OUTPUT``."""


# -- the command line -----------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage block on an error; with this many
    # options, one line and a hint to --help read better (main prints them).
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


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
    add = parser.add_argument_group("request").add_argument
    add("-X", "--request", metavar="METHOD", help="method (default GET; POST with a body)")
    add("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
        help="add a request header (repeatable)")  # fmt: skip
    add("-d", "--data", metavar="DATA", help="request body; @FILE reads a file, @- stdin")
    add("--json", metavar="DATA", help="JSON request body (@FILE too); sets Content-Type")
    add("-u", "--user", metavar="USER:PASSWORD", help="Basic authentication")
    add("-L", "--location", action="store_true", help="follow redirects")
    add("--max-redirs", type=_count, default=20, metavar="N", help="with -L (default 20)")
    add("--compressed", action="store_true", help="accepted; decoding is always on")
    add("--repeat", type=_count, default=1, metavar="N", help="send the URL list N times")
    add("-f", "--fail", action="store_true", help="exit 8 on a status >= 400, body unwritten")
    add = parser.add_argument_group("connections").add_argument
    add("-k", "--insecure", action="store_true", help="do not verify TLS certificates")
    add("--cacert", metavar="PATH", help="verify TLS certificates against this CA bundle")
    add("--timeout", type=_seconds, metavar="S", help="limit of each connect/read/write wait")
    add("--idle-timeout", type=_seconds, metavar="S", help="keep idle connections S s (30)")
    add("--max-per-host", type=_count, metavar="N", help="open connections per origin (10)")
    add("--proxy", metavar="URL", help="send through this HTTP proxy (CONNECT for https)")
    add("--unix-socket", metavar="PATH", help="send every request over this Unix socket")
    add = parser.add_argument_group("output").add_argument
    add("-o", "--output", metavar="FILE", help="write the bodies to FILE, not stdout")
    add("-O", "--remote-name", action="store_true", help="name files after the URL paths")
    add("-i", "--include", action="store_true", help="write each response head too")
    add("-v", "--verbose", action="store_true", help="tell the connection story on stderr")
    add("--trace", metavar="FILE", help="write every event to FILE as JSON lines")
    add("-s", "--silent", action="store_true", help="no progress bar, no error message")
    add("--debug", action="store_true", help="show the traceback of an error")
    add("--version", action="version", version=f"rawkeep {__version__}")
    return parser


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
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


class _ClientOptions(TypedDict, total=False):
    """The ``Client`` keywords the options set; the others keep their defaults."""

    follow_redirects: bool
    max_redirects: int
    auth: tuple[str, str]
    timeout: Timeout
    idle_timeout: float
    max_connections_per_host: int
    verify: bool | str
    proxy: str
    uds: str


@dataclass(frozen=True, kw_only=True)
class _Plan:
    """What to send, and how the client is set up; all checked."""

    urls: list[str]
    method: str
    headers: list[tuple[str, str]]
    body: bytes | None
    file_names: list[str]  # with -O: one per URL
    client_options: _ClientOptions


def _make_plan(args: argparse.Namespace) -> _Plan:
    """Check the arguments and read the @file body, before any I/O.

    Raises:
        _UsageError, InvalidURL.
    """
    for url in args.urls:
        if "://" not in url:
            if url == "demo":
                raise InvalidURL("'demo' is not a URL; to run the demo: rawkeep demo")
            raise InvalidURL(f"{url!r} has no scheme; try http://{url}")
        URL(url)  # raises InvalidURL
    if args.output is not None and args.remote_name:
        raise _UsageError("give -o or -O, not both")
    if args.data is not None and args.json is not None:
        raise _UsageError("give -d or --json, not both")
    if args.proxy is not None and args.unix_socket is not None:
        raise _UsageError("give --proxy or --unix-socket, not both")
    if args.cacert is not None and not os.access(args.cacert, os.R_OK):
        raise _UsageError(f"can't read the --cacert file {args.cacert!r}")
    headers = [_parse_header(text) for text in args.header]
    body = _read_body(args, headers)
    return _Plan(
        urls=list(args.urls),
        method=args.request or ("POST" if body is not None else "GET"),
        headers=headers,
        body=body,
        file_names=[_remote_name(url) for url in args.urls] if args.remote_name else [],
        client_options=_client_options(args),
    )


def _parse_header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name or name != name.strip():
        raise _UsageError(f"bad -H {text!r}: expected 'Name: value'")
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
        return _read_data(args.data, "-d")
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
        raise _UsageError(f"can't read the {option} file {path!r}: {exc.strerror}") from exc


def _remote_name(url: str) -> str:
    """-O: the file name the URL's last path segment gives, if it is safe."""
    name = unquote(URL(url).path.rsplit("/", 1)[-1])
    # A name that would leave the current directory is refused, not cleaned up.
    if name in ("", ".", "..") or any(char in name for char in "/\\\0"):
        raise _UsageError(f"-O can't take a file name from {url!r}; use -o FILE")
    return name


def _client_options(args: argparse.Namespace) -> _ClientOptions:
    options: _ClientOptions = {
        "follow_redirects": args.location,
        "max_redirects": args.max_redirs,
    }
    if args.user is not None:
        user, colon, password = args.user.partition(":")
        if not colon:
            raise _UsageError("give -u USER:PASSWORD")
        options["auth"] = (user, password)
    if args.timeout is not None:
        options["timeout"] = Timeout(args.timeout)
    if args.idle_timeout is not None:
        options["idle_timeout"] = args.idle_timeout
    if args.max_per_host is not None:
        options["max_connections_per_host"] = args.max_per_host
    if args.insecure:
        options["verify"] = False
    elif args.cacert is not None:
        options["verify"] = args.cacert
    if args.proxy is not None:
        options["proxy"] = args.proxy
    if args.unix_socket is not None:
        options["uds"] = args.unix_socket
    return options


class _Run:
    """One run of the command: the client, the story and the outputs."""

    def __init__(self, args: argparse.Namespace, plan: _Plan) -> None:
        """Set up the client (no I/O yet).

        Raises:
            InvalidURL: the --proxy URL can't be used.
        """
        self.args = args
        self.plan = plan
        idle_timeout = 30.0 if args.idle_timeout is None else args.idle_timeout
        self.story = Story(sys.stderr, idle_timeout=idle_timeout) if args.verbose else None
        self.trace: Trace | None = None  # set once its file is open
        self.show_progress = sys.stderr.isatty() and not (args.silent or args.verbose)
        # Events are only built when someone listens: -v or --trace.
        listening = args.verbose or args.trace is not None
        self.client = Client(on_event=self._on_event if listening else None, **plan.client_options)

    def _on_event(self, event: Event) -> None:
        for listener in (self.story, self.trace):
            if listener is not None:
                listener(event)

    def fetch_all(self, output: IO[bytes] | None) -> None:
        """Every URL, --repeat times; bodies to ``output``, or to -O files."""
        started = time.perf_counter()
        try:
            for _ in range(self.args.repeat):
                for index, url in enumerate(self.plan.urls):
                    self._fetch_one(self.client, url, output, index)
        finally:
            self.client.close()
            if self.story is not None:
                self.story.summary(self.client, time.perf_counter() - started)

    def _fetch_one(self, client: Client, url: str, output: IO[bytes] | None, index: int) -> None:
        plan, story = self.plan, self.story
        if story is not None:
            story.request(plan.method, url)
        with client.stream(plan.method, url, headers=plan.headers, content=plan.body) as response:
            if story is not None:
                story.response(response)
            if self.args.fail and response.status >= 400:
                raise _HTTPStatus(f"{response.status} {response.reason} from {response.url}")
            if output is not None:
                size = self._write_response(response, output)
            else:
                with _open_output(plan.file_names[index]) as file:
                    size = self._write_response(response, file)
            if story is not None:
                story.body_done(response, size)

    def _write_response(self, response: Response, output: IO[bytes]) -> int:
        """Write the head (with -i), then the body as it arrives; its size."""
        if self.args.include:
            _write(output, _head_bytes(response))
        progress = None
        if self.show_progress:
            length = response.headers.get("content-length", "")
            progress = Progress(sys.stderr, int(length) if length.isdigit() else None)
        size = 0
        for chunk in response.iter_bytes():
            _write(output, chunk)
            size += len(chunk)
            if progress is not None:
                progress.update(size)
        if progress is not None:
            progress.finish(size)
        _write(output, None)  # each body shows as soon as its response ends
        return size


def _head_bytes(response: Response) -> bytes:
    lines = [f"{response.http_version} {response.status} {response.reason}"]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _write(output: IO[bytes], data: bytes | None) -> None:
    """Write ``data``, or flush when it is None."""
    try:
        if data is None:
            output.flush()
        else:
            output.write(data)
    except OSError as exc:
        raise _OutputError(f"can't write the body: {exc.strerror or exc}") from exc


def _open_output(path: str) -> IO[bytes]:
    try:
        return open(path, "wb")
    except OSError as exc:
        raise _OutputError(f"can't write {path!r}: {exc.strerror}") from exc


def _open_trace(path: str) -> IO[str]:
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise _OutputError(f"can't write {path!r}: {exc.strerror}") from exc


# -- main --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status (``ExitCode``).

    Args:
        argv: the arguments without the program name; default ``sys.argv[1:]``.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["demo"]:
        from .demo import main as demo_main

        return demo_main(arguments[1:])
    try:
        args = build_parser().parse_intermixed_args(arguments)
        run = _Run(args, _make_plan(args))
    except SystemExit as exc:  # --help and --version exit from inside argparse
        return exc.code if isinstance(exc.code, int) else ExitCode.OK
    except (_UsageError, InvalidURL) as exc:
        code, kind = _classify(exc)
        _say(f"rawkeep: {kind}: {exc}")
        _say("Try 'rawkeep --help' for more information.")
        return code
    return _run(run)


def _run(run: _Run) -> int:
    args = run.args
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(run.client.close)  # also when an output can't be opened
            if args.trace is not None:
                run.trace = Trace(stack.enter_context(_open_trace(args.trace)))
            output: IO[bytes] | None = sys.stdout.buffer
            if args.output is not None:
                output = stack.enter_context(_open_output(args.output))
            elif args.remote_name:
                output = None
            run.fetch_all(output)
        if run.trace is not None and run.trace.error is not None:
            raise _OutputError(f"can't write the trace: {run.trace.error}")
    except KeyboardInterrupt:
        _say("rawkeep: interrupted")
        return ExitCode.INTERRUPTED
    except Exception as exc:
        return _report(exc, args)
    return ExitCode.OK


def _report(exc: Exception, args: argparse.Namespace) -> int:
    """Print one line for ``exc`` (and its traceback with --debug); its code."""
    code, kind = _classify(exc)
    if isinstance(exc.__cause__, BrokenPipeError):
        # The reader went away (`rawkeep URL | head`): no message. Point stdout
        # at /dev/null so that the interpreter's last flush stays quiet too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return code
    if args.debug:
        traceback.print_exception(exc, file=sys.stderr)
    if not args.silent:
        hint = " (--debug shows where)" if code is ExitCode.ERROR and not args.debug else ""
        _say(f"rawkeep: {kind}: {exc}{hint}")
    return code


#: Error classes, most specific first, with their exit code and name.
_ERRORS: Final[list[tuple[type[BaseException], ExitCode, str]]] = [
    (_UsageError, ExitCode.USAGE, "error"),
    (NotImplementedError, ExitCode.NOT_AVAILABLE, "not available yet"),
    (_HTTPStatus, ExitCode.HTTP_STATUS, "HTTP error"),
    (_OutputError, ExitCode.OUTPUT, "output error"),
    (InvalidURL, ExitCode.INVALID_URL, "invalid URL"),
    (ConnectTimeout, ExitCode.CONNECT, "connect timeout"),
    (ConnectError, ExitCode.CONNECT, "connect error"),
    (TLSError, ExitCode.TLS, "TLS error"),
    (TimeoutError, ExitCode.TIMEOUT, "timeout"),
    (RemoteProtocolError, ExitCode.PROTOCOL, "protocol error"),
    (DecodingError, ExitCode.PROTOCOL, "decoding error"),
    (LocalProtocolError, ExitCode.USAGE, "invalid request"),
    (TooManyRedirects, ExitCode.REDIRECTS, "too many redirects"),
    (ProxyError, ExitCode.PROXY, "proxy error"),
    (RawkeepError, ExitCode.ERROR, "error"),
]


def _classify(exc: BaseException) -> tuple[ExitCode, str]:
    """The exit code and the name of an error's class."""
    for kind, code, name in _ERRORS:
        if isinstance(exc, kind):
            return code, name
    return ExitCode.ERROR, f"internal error ({type(exc).__name__})"


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
