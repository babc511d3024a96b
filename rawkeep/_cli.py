"""The ``rawkeep`` command: fetch URLs over one client and tell the connection story.

``rawkeep [options] URL [URL ...]`` sends every URL through one ``Client``,
so a second URL on the same origin reuses the first one's connection; ``-v``
shows that happening, one plain line per lifecycle event. ``rawkeep demo``
runs the self-contained walkthrough in ``_demo``.

Shape of a run: parse the arguments, check everything that can be checked
before any I/O (URLs, headers, ``@file`` bodies, output names), then fetch
the URLs in order and stop at the first error. Each error class has its own
exit code (``ExitCode``) and prints one line; ``--debug`` adds the traceback.
Bodies are streamed to their destination as they arrive, never held whole.

Nothing here is imported by ``rawkeep/__init__.py``: ``import rawkeep``
stays free of argparse and json.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Final, NoReturn
from urllib.parse import unquote

from ._client import Client
from ._events import (
    ConnectionClosed,
    ConnectionExpired,
    ConnectionOpened,
    ConnectionReused,
    Event,
    RequestRetried,
    StaleConnectionDiscarded,
)
from ._exceptions import (
    ConnectError,
    ConnectTimeout,
    InvalidURL,
    LocalProtocolError,
    RawkeepError,
    RemoteProtocolError,
    TimeoutError,
    TLSError,
)
from ._headers import parse_keep_alive
from ._timeout import Timeout
from ._url import URL
from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._models import Response

__all__ = ["ExitCode", "Story", "fetch", "main"]


class ExitCode(enum.IntEnum):
    """The command's exit status, one per class of failure (see docs/cli.md)."""

    #: Every URL fetched (and, with --fail, every status below 400).
    OK = 0
    #: Any other rawkeep error, or a bug in rawkeep itself.
    ERROR = 1
    #: Bad command line or input: unknown option, bad -H, unreadable @file,
    #: a request that can't be sent as valid HTTP/1.1.
    USAGE = 2
    #: A URL can't be used (no http:// or https:// scheme, bad host or port).
    INVALID_URL = 3
    #: The TCP connection could not be opened, or connecting timed out.
    CONNECT = 4
    #: The TLS handshake failed or the certificate did not verify.
    TLS = 5
    #: A read, write or pool timeout passed (see --timeout).
    TIMEOUT = 6
    #: The server broke HTTP: malformed, truncated, or closed mid-exchange.
    PROTOCOL = 7
    #: --fail was given and a response had a status of 400 or more.
    HTTP_STATUS = 8
    #: An option whose feature rawkeep does not have yet.
    NOT_AVAILABLE = 9
    #: The body or trace could not be written (-o, -O, --trace, stdout).
    OUTPUT = 10
    #: Interrupted with Ctrl-C.
    INTERRUPTED = 130


#: Bodies this large (bytes, known or received so far) get a progress bar
#: on a terminal; smaller ones finish before a bar would be worth seeing.
PROGRESS_THRESHOLD: Final = 4 * 1024 * 1024
#: Seconds between progress bar redraws.
PROGRESS_INTERVAL: Final = 0.1

# Options that are accepted, so the command line stays stable, but refused
# until the library has the feature. TODO(#4): wire each one up.
_NOT_AVAILABLE: Final = {
    "location": "-L/--location (following redirects)",
    "proxy": "--proxy (HTTP proxies)",
    "user": "-u/--user (authentication)",
    "compressed": "--compressed (content decoding)",
}

_EXIT_CODES_HELP: Final = """\
exit codes:
  0   success
  1   other error (or a bug in rawkeep)
  2   bad command line or input (option, -H, @file, invalid request)
  3   invalid URL
  4   could not connect (refused, unreachable, DNS, connect timeout)
  5   TLS handshake or certificate failure
  6   read, write or pool timeout
  7   protocol error (server closed, reset or sent a malformed response)
  8   HTTP status >= 400 with --fail
  9   option not available yet
  10  could not write the output or the trace
  130 interrupted

rawkeep stops at the first error. Run `rawkeep demo` for a walkthrough of
keep-alive against a built-in local server; see docs/cli.md.
"""


class _UsageError(Exception):
    """Bad command line or input; exits with ``ExitCode.USAGE``."""


class _OutputError(Exception):
    """A body, head or trace could not be written; ``ExitCode.OUTPUT``."""


class _NotAvailable(Exception):
    """An option whose feature does not exist yet; ``ExitCode.NOT_AVAILABLE``."""


class _HTTPStatus(Exception):
    """--fail and a status >= 400; ``ExitCode.HTTP_STATUS``."""


# -- the command line ------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage block on an error; one line and a hint
    # to --help reads better for a command with this many options.
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``rawkeep [options] URL [URL ...]``."""
    parser = _Parser(
        prog="rawkeep",
        usage="rawkeep [options] URL [URL ...]\n       rawkeep demo",
        description="Fetch URLs over one keep-alive connection pool; "
        "-v shows how connections are opened, reused and retired.",
        epilog=_EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("urls", nargs="+", metavar="URL", help="http:// or https://")
    _add_request_options(parser.add_argument_group("request"))
    _add_connection_options(parser.add_argument_group("connections"))
    _add_output_options(parser.add_argument_group("output"))
    _add_unavailable_options(parser.add_argument_group("not available yet"))
    parser.add_argument("--version", action="version", version=__version__)
    return parser


def _add_request_options(group: argparse._ArgumentGroup) -> None:
    add = group.add_argument
    add("-X", "--request", metavar="METHOD", help="method (default GET, POST with data)")
    add("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
        help="add a request header (repeatable)")  # fmt: skip
    add("-d", "--data", metavar="DATA", help="request body; @FILE reads a file, @- stdin")
    add("--json", metavar="DATA", help="JSON body (@FILE too), sets Content-Type")
    add("--repeat", type=_positive_int, default=1, metavar="N",
        help="send the whole URL list N times (default 1)")  # fmt: skip
    add("--fail", "-f", action="store_true",
        help="exit 8 on an HTTP status >= 400 (its body is not written)")  # fmt: skip


def _add_connection_options(group: argparse._ArgumentGroup) -> None:
    add = group.add_argument
    add("-k", "--insecure", action="store_true", help="do not verify TLS certificates")
    add("--cacert", metavar="PATH", help="verify TLS against this CA bundle")
    add("--timeout", type=_seconds, metavar="S",
        help="limit for each of connect, read, write and pool waits")  # fmt: skip
    add("--idle-timeout", type=_seconds, metavar="S",
        help="seconds an idle connection is kept for reuse (default 30)")  # fmt: skip
    add("--max-per-host", type=_positive_int, metavar="N",
        help="most open connections per origin (default 10)")  # fmt: skip


def _add_output_options(group: argparse._ArgumentGroup) -> None:
    add = group.add_argument
    add("-o", "--output", metavar="FILE", help="write bodies to FILE, not stdout")
    add("-O", "--remote-name", action="store_true",
        help="write each body to a file named like the URL's last path segment")  # fmt: skip
    add("-i", "--include", action="store_true", help="write the response head too")
    add("-v", "--verbose", action="store_true",
        help="tell the connection story on stderr")  # fmt: skip
    add("--trace", metavar="FILE", help="write every event to FILE as JSON lines")
    add("-s", "--silent", action="store_true",
        help="no progress bar, no error messages (the exit code still tells)")  # fmt: skip
    add("--debug", action="store_true", help="print tracebacks of errors")


def _add_unavailable_options(group: argparse._ArgumentGroup) -> None:
    add = group.add_argument
    add("-L", "--location", action="store_true", help=argparse.SUPPRESS)
    add("--proxy", metavar="URL", help=argparse.SUPPRESS)
    add("-u", "--user", metavar="USER:PASSWORD", help=argparse.SUPPRESS)
    add("--compressed", action="store_true", help=argparse.SUPPRESS)
    group.description = ", ".join(_NOT_AVAILABLE.values()) + f": exit {9}"


def _positive_int(text: str) -> int:
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
        raise argparse.ArgumentTypeError(f"must be >= 0 and finite, got {text}")
    return value


# -- checking the input before any I/O -------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Plan:
    """What to send, where the bodies go, and how the client is set up."""

    urls: list[str]
    method: str
    headers: list[tuple[str, str]]
    body: bytes | None
    file_names: list[str | None]  # -O: one name per URL
    client_options: dict[str, object] = field(default_factory=dict)


def _make_plan(args: argparse.Namespace) -> _Plan:
    """Check the arguments and read @files.

    Raises:
        _NotAvailable, _UsageError, InvalidURL.
    """
    for name, words in _NOT_AVAILABLE.items():
        if getattr(args, name):
            raise _NotAvailable(f"{words} is not available yet in rawkeep")
    for url in args.urls:
        if "://" not in url:
            raise InvalidURL(
                f"{url!r} is not a URL: give a scheme, e.g. http://{url}"
                + ("; to run the demo, `rawkeep demo` comes first" if url == "demo" else "")
            )
        URL(url)  # raises InvalidURL before anything is sent
    if args.output and args.remote_name:
        raise _UsageError("give -o or -O, not both")
    if args.data is not None and args.json is not None:
        raise _UsageError("give -d or --json, not both")
    if args.cacert is not None and not os.access(args.cacert, os.R_OK):
        raise _UsageError(f"can't read --cacert file {args.cacert!r}")
    headers = [_parse_header(text) for text in args.header]
    body = _read_body(args, headers)
    method = args.request or ("POST" if body is not None else "GET")
    return _Plan(
        urls=list(args.urls),
        method=method,
        headers=headers,
        body=body,
        file_names=[_remote_name(u) for u in args.urls] if args.remote_name else [],
        client_options=_client_options(args),
    )


def _parse_header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip() or name != name.strip():
        raise _UsageError(f"bad -H {text!r}: expected 'Name: value'")
    return name, value.strip()


def _read_body(args: argparse.Namespace, headers: list[tuple[str, str]]) -> bytes | None:
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
        raise _UsageError(f"can't read {option} file {path!r}: {exc.strerror}") from exc


def _remote_name(url: str) -> str:
    """-O: the file name the URL's last path segment gives, checked for safety."""
    name = unquote(URL(url).path.rsplit("/", 1)[-1])
    # A name that could leave the current directory or hide as a dot file
    # of the directory itself is refused rather than cleaned up.
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise _UsageError(f"can't take a file name from {url!r} for -O; use -o FILE")
    return name


def _client_options(args: argparse.Namespace) -> dict[str, object]:
    options: dict[str, object] = {"retries": 1}
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
    return options


# -- the connection story -------------------------------------------------------------

_CLOSE_WORDS: Final = {
    "client_closed": "the client was closed",
    "connection_close": "Connection: close, no more requests on it",
    "http_1_0": "the response was HTTP/1.0, which is never reused",
    "error": "after an error on it",
    "unread_body": "its response was closed with body left unread",
    "pool_full": "evicted to make room (pool full)",
}

#: Response headers that decide a connection's fate, shown by -v.
_STORY_HEADERS: Final = ("connection", "keep-alive", "content-length", "transfer-encoding")


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.1f} s"


class Story:
    """Tells a client's connection story, one plain line per step.

    Pass it as ``on_event``; call ``request``, ``response`` and ``body_done``
    around each exchange. The request line is held back until the event
    saying which connection carries it, so it is printed after that line.

    Args:
        stream: where the lines go.
        indent: put before every line (the demo indents its stories).
        idle_timeout: the client's, to explain an idle expiry.
    """

    def __init__(
        self, stream: IO[str], *, indent: str = "", idle_timeout: float | None = 30.0
    ) -> None:
        self._stream = stream
        self._indent = indent
        self._idle_timeout = idle_timeout
        self._pending: str | None = None  # the request line not yet printed
        self._last: str | None = None  # the last one printed, for a retry
        self._keep_alive: dict[int, str] = {}  # connection id -> last Keep-Alive
        self._closed: set[int] = set()
        self.requests = 0
        self.responses = 0
        self.retries = 0

    def say(self, line: str) -> None:
        self._stream.write(f"{self._indent}{line}\n")
        self._stream.flush()

    def request(self, method: str, url: str) -> None:
        self.requests += 1
        self._pending = f"> {method} {URL(url).target} HTTP/1.1"

    def __call__(self, event: Event) -> None:
        if isinstance(event, RequestRetried):
            self.retries += 1
            self._pending = self._last  # the same request goes out again
        self.say(f"* {self.describe(event)}")
        if isinstance(event, ConnectionOpened | ConnectionReused):
            self._flush_request()
        if isinstance(event, ConnectionClosed | ConnectionExpired):
            self._closed.add(event.connection_id)

    def _flush_request(self) -> None:
        if self._pending is not None:
            self.say(self._pending)
            self._last, self._pending = self._pending, None

    def describe(self, event: Event) -> str:
        """The plain-words line for one event (without the ``* ``)."""
        cid = event.connection_id
        if isinstance(event, ConnectionOpened):
            tls = f", {event.tls_version}" if event.tls_version else ""
            return (
                f"connected to {event.origin} as connection #{cid}"
                f" in {_duration(event.connect_time)}{tls}"
            )
        if isinstance(event, ConnectionReused):
            return (
                f"reusing connection #{cid} (idle {_duration(event.idle_for)},"
                f" response {event.responses + 1} on it)"
            )
        if isinstance(event, ConnectionExpired):
            return f"connection #{cid} retired: {self._expiry_words(event)}"
        if isinstance(event, StaleConnectionDiscarded):
            return f"stale connection #{cid} discarded (closed by the server while idle)"
        if isinstance(event, ConnectionClosed):
            return f"connection #{cid} closed: {_CLOSE_WORDS[event.reason]}"
        if isinstance(event, RequestRetried):
            return (
                f"retrying {event.method} on a new connection (attempt"
                f" {event.attempt}: {event.error} on #{cid})"
            )
        return type(event).__name__

    def _expiry_words(self, event: ConnectionExpired) -> str:
        if event.reason == "idle_timeout":
            limit = self._idle_timeout
            tail = f" ({_duration(limit)})" if limit is not None else ""
            return f"idle longer than the client's idle timeout{tail}"
        if event.reason == "server_keep_alive":
            header = self._keep_alive.get(event.connection_id)
            if header is None:
                return "the server's Keep-Alive limit"
            timeout, max_ = parse_keep_alive([header])
            if max_ == 0:
                return f"server Keep-Alive max reached (Keep-Alive: {header})"
            return f"server Keep-Alive timeout {timeout:g} s (Keep-Alive: {header})"
        if event.reason == "max_requests":
            return "served its maximum number of requests"
        return "older than the maximum connection age"

    def response(self, response: Response) -> None:
        self._flush_request()
        self.responses += 1
        self.say(f"< {response.http_version} {response.status} {response.reason}")
        for name, value in response.headers.items():
            if name.lower() in _STORY_HEADERS:
                self.say(f"< {name}: {value}")
        keep_alive = response.headers.get("keep-alive")
        if keep_alive is not None:
            self._keep_alive[response.connection_id] = keep_alive

    def body_done(self, response: Response, size: int) -> None:
        if response.connection_id in self._closed:
            self.say(f"* body done ({size} bytes)")
        else:
            self.say(
                f"* body done ({size} bytes);"
                f" connection #{response.connection_id} kept alive for reuse"
            )

    def summary(self, client: Client, elapsed: float) -> None:
        stats = client.pool_stats()
        ratio = stats.reused / self.responses if self.responses else 0.0
        opened = "connection" if stats.opened == 1 else "connections"
        self.say(
            f"* summary: {self.requests} requests, {stats.opened} {opened} opened,"
            f" {stats.reused} of {self.responses} responses on a reused connection"
            f" (reuse ratio {ratio:.0%}), {self.retries} retried,"
            f" {_duration(elapsed)} in total"
        )


# -- fetching ------------------------------------------------------------------------


class _Trace:
    """``--trace``: each event as one JSON object per line, flushed at once
    so that ``tail -f`` sees it live. A write error is kept for the end
    (the client swallows errors raised by ``on_event``)."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self.error: OSError | None = None

    def __call__(self, event: Event) -> None:
        try:
            self._file.write(json.dumps(event.to_dict()) + "\n")
            self._file.flush()
        except OSError as exc:
            self.error = self.error or exc


class _Progress:
    """A one-line progress bar on a terminal, for bodies over a few MB.

    Args:
        stream: a terminal.
        total: the Content-Length, when there is one.
    """

    def __init__(self, stream: IO[str], total: int | None) -> None:
        self._stream = stream
        self._total = total
        self._started = self._drawn_at = time.monotonic()
        self._shown = False

    def update(self, received: int) -> None:
        now = time.monotonic()
        if now - self._drawn_at < PROGRESS_INTERVAL:
            return
        if self._shown or max(received, self._total or 0) >= PROGRESS_THRESHOLD:
            self._draw(received, now)

    def finish(self, received: int) -> None:
        if self._shown:
            self._draw(received, time.monotonic())
            self._stream.write("\n")
            self._stream.flush()

    def _draw(self, received: int, now: float) -> None:
        self._shown = True
        self._drawn_at = now
        rate = received / max(now - self._started, 1e-6)
        line = f"{received / 2**20:8.1f} MiB"
        total = self._total
        if total:
            done = min(received / total, 1.0)
            bar = "#" * int(done * 20)
            line += f" / {total / 2**20:.1f} MiB [{bar:<20}] {done:4.0%}"
        line += f"  {rate / 2**20:.1f} MiB/s"
        if total and rate > 0 and received < total:
            line += f"  ETA {(total - received) / rate:.0f} s"
        # \r goes back to the start of the line, ESC[K clears what is left.
        self._stream.write(f"\r{line}\x1b[K")
        self._stream.flush()


def fetch(
    client: Client,
    story: Story | None,
    method: str,
    url: str,
    **kwargs: object,
) -> Response:
    """Send one request with ``client.stream``, read the body, tell the story.

    For the demo and tests: the body is read into the response. Keyword
    arguments go to ``client.stream``.

    Raises:
        RawkeepError: as ``Client.request`` raises.
    """
    if story is not None:
        story.request(method, url)
    with client.stream(method, url, **kwargs) as response:  # type: ignore[arg-type]
        if story is not None:
            story.response(response)
        body = response.read()
        if story is not None:
            story.body_done(response, len(body))
    return response


class _Run:
    """One run of the command: the client, the outputs and the story."""

    def __init__(self, args: argparse.Namespace, plan: _Plan) -> None:
        self.args = args
        self.plan = plan
        self.story = (
            Story(sys.stderr, idle_timeout=args.idle_timeout or 30.0) if args.verbose else None
        )
        self.trace: _Trace | None = None
        self.show_progress = sys.stderr.isatty() and not args.silent and not args.verbose

    def fetch_all(self, output: IO[bytes] | None) -> None:
        """Every URL, ``--repeat`` times, bodies to ``output`` (or -O files)."""
        listeners = [sink for sink in (self.story, self.trace) if sink is not None]

        def on_event(event: Event) -> None:
            for listener in listeners:
                listener(event)

        started = time.perf_counter()
        client = Client(
            on_event=on_event if listeners else None,
            **self.plan.client_options,  # type: ignore[arg-type]
        )
        try:
            for _ in range(self.args.repeat):
                for index, url in enumerate(self.plan.urls):
                    self._fetch_one(client, index, url, output)
        finally:
            client.close()
            if self.story is not None:
                self.story.summary(client, time.perf_counter() - started)

    def _fetch_one(self, client: Client, index: int, url: str, output: IO[bytes] | None) -> None:
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
        """Write the head (with -i) and the body as it arrives; return its size."""
        if self.args.include:
            _write(output, _head_bytes(response))
        length = response.headers.get("content-length", "")
        progress = (
            _Progress(sys.stderr, int(length) if length.isdigit() else None)
            if self.show_progress
            else None
        )
        size = 0
        for chunk in response.iter_bytes():
            _write(output, chunk)
            size += len(chunk)
            if progress is not None:
                progress.update(size)
        if progress is not None:
            progress.finish(size)
        try:
            output.flush()
        except OSError as exc:
            raise _OutputError(f"can't write the body: {exc}") from exc
        return size


def _head_bytes(response: Response) -> bytes:
    lines = [f"{response.http_version} {response.status} {response.reason}"]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _write(output: IO[bytes], data: bytes) -> None:
    try:
        output.write(data)
    except OSError as exc:
        raise _OutputError(f"can't write the body: {exc}") from exc


def _open_output(path: str | None) -> IO[bytes]:
    if path is None:  # pragma: no cover - -O always names every URL
        raise _OutputError("no output file")
    try:
        return open(path, "wb")  # noqa: SIM115 - closed by the caller's with
    except OSError as exc:
        raise _OutputError(f"can't write {path!r}: {exc.strerror}") from exc


# -- main ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (see ``ExitCode``).

    Args:
        argv: the arguments, without the program name; default ``sys.argv[1:]``.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["demo"]:
        from ._demo import main as demo_main

        return demo_main(arguments[1:])
    try:
        args = build_parser().parse_intermixed_args(arguments)
        plan = _make_plan(args)
    except (_UsageError, InvalidURL, _NotAvailable) as exc:
        code, kind = _classify(exc)
        message = exc.message if isinstance(exc, InvalidURL) else str(exc)
        _say(f"rawkeep: {kind}: {message}")
        if code is not ExitCode.NOT_AVAILABLE:
            _say("Try 'rawkeep --help' for more information.")
        return code
    return _run(args, plan)


def _run(args: argparse.Namespace, plan: _Plan) -> int:
    run = _Run(args, plan)
    try:
        with contextlib.ExitStack() as stack:
            if args.trace is not None:
                run.trace = _Trace(stack.enter_context(_open_text(args.trace)))
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


def _open_text(path: str) -> IO[str]:
    try:
        return open(path, "w", encoding="utf-8")  # noqa: SIM115 - in an ExitStack
    except OSError as exc:
        raise _OutputError(f"can't write {path!r}: {exc.strerror}") from exc


def _report(exc: Exception, args: argparse.Namespace) -> int:
    """Print one line for ``exc`` (and its traceback with --debug); its code."""
    code, kind = _classify(exc)
    if isinstance(exc, _OutputError) and isinstance(exc.__cause__, BrokenPipeError):
        # The reader went away (`rawkeep URL | head`): not worth a message.
        # Point stdout at /dev/null so the interpreter's final flush is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return code
    if args.debug:
        traceback.print_exception(exc, file=sys.stderr)
    if not args.silent:
        message = exc.message if isinstance(exc, RawkeepError) else str(exc)
        hint = "" if args.debug or code != ExitCode.ERROR else " (--debug shows where)"
        _say(f"rawkeep: {kind}: {message}{hint}")
    return code


def _classify(exc: BaseException) -> tuple[ExitCode, str]:
    """The exit code and the words that name an error's class."""
    table: list[tuple[type[BaseException], ExitCode, str]] = [
        (_UsageError, ExitCode.USAGE, "error"),
        (_NotAvailable, ExitCode.NOT_AVAILABLE, "not available yet"),
        (NotImplementedError, ExitCode.NOT_AVAILABLE, "not available yet"),
        (_HTTPStatus, ExitCode.HTTP_STATUS, "HTTP error"),
        (_OutputError, ExitCode.OUTPUT, "output error"),
        (InvalidURL, ExitCode.INVALID_URL, "invalid URL"),
        (ConnectTimeout, ExitCode.CONNECT, "connect timeout"),
        (ConnectError, ExitCode.CONNECT, "could not connect"),
        (TLSError, ExitCode.TLS, "TLS error"),
        (TimeoutError, ExitCode.TIMEOUT, "timeout"),
        (RemoteProtocolError, ExitCode.PROTOCOL, "protocol error"),
        (LocalProtocolError, ExitCode.USAGE, "invalid request"),
        (RawkeepError, ExitCode.ERROR, "error"),
    ]
    for kind, code, words in table:
        if isinstance(exc, kind):
            return code, words
    return ExitCode.ERROR, f"internal error ({type(exc).__name__})"


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
