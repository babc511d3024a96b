"""The ``rawkeep`` command: fetch URLs over one client and tell the connection story.

``rawkeep [options] URL [URL ...]`` sends every URL through one ``Client``, so
a second URL on the same origin reuses the first one's connection; ``-v`` shows
that happening, one plain line per lifecycle event (``story.Story``). ``rawkeep
demo`` runs the self-contained walkthrough in ``demo``; ``rawkeep serve``, the
lab server in ``serve``.

Shape of a run: parse the arguments and check everything that can be checked
before any I/O (``options``), then fetch the URLs in order and stop at the
first error. Each class of error has its own exit code (``ExitCode``) and
prints one line; ``--debug`` adds the traceback. Bodies are streamed to their
destination as they arrive, never held whole in memory.

``rawkeep/__init__.py`` does not import this package: ``import rawkeep`` stays
free of argparse and json.
"""

from __future__ import annotations

import contextlib
import sys
import time
import traceback
from typing import IO, TYPE_CHECKING, Final

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
from .exitcodes import ExitCode, silence_stdout
from .form import FormError, open_form
from .options import UsageError, build_parser, make_plan
from .proxyenv import proxy_environment
from .story import Progress, Story, Trace
from .transfer import (
    RETRY_STATUSES,
    TransferTimeout,
    is_transient,
    retry_delay,
    time_limit,
)
from .writeout import Facts, FactsLog

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from .._events import Event
    from .._models import Response
    from .options import Plan

__all__ = ["main"]


class _HTTPStatus(Exception):
    """--fail and a status >= 400: ``ExitCode.HTTP_STATUS``."""


class _OutputError(Exception):
    """A body, head or trace could not be written: ``ExitCode.OUTPUT``."""


#: curl's words, for the same habit.
_BINARY_REFUSED: Final = (
    'Binary output can mess up your terminal. Use "--output -" to tell rawkeep'
    ' to output it to your terminal anyway, or consider "--output <FILE>" to'
    " save to a file."
)


class _Run:
    """One run of the command: the client, the story and the outputs."""

    def __init__(self, args: argparse.Namespace, plan: Plan) -> None:
        """Set up the client (no I/O yet).

        Raises:
            InvalidURL: a proxy URL can't be used.
        """
        self.args = args
        self.plan = plan
        idle_timeout = 30.0 if args.idle_timeout is None else args.idle_timeout
        self.story = (
            Story(sys.stderr, idle_timeout=idle_timeout, exchange=True) if args.verbose else None
        )
        self.trace: Trace | None = None  # set once its file is open
        self.facts = FactsLog()
        self.show_progress = sys.stderr.isatty() and not (args.silent or args.verbose)
        # Events are only built when someone listens: -v, --trace or -w.
        listening = args.verbose or args.trace is not None or plan.write_out is not None
        environ: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if plan.proxy_environ is not None:
            environ = proxy_environment(plan.proxy_environ)
        with environ:
            self.client = Client(
                on_event=self._on_event if listening else None,
                exchange_events=args.verbose,
                **plan.client_options,
            )

    def _on_event(self, event: Event) -> None:
        for listener in (self.facts, self.story, self.trace):
            if listener is not None:
                listener(event)

    def fetch_all(self, output: IO[bytes] | None) -> None:
        """Every URL, --repeat times; bodies to ``output``, or to -O files."""
        started = time.perf_counter()
        if self.story is not None:  # curl tells of its --resolve entries first too
            for key, addresses in self.plan.client_options.get("resolve", {}).items():
                self.story.say(f"* {key} resolved by --resolve to {', '.join(addresses)}")
        try:
            for _ in range(self.args.repeat):
                for index, url in enumerate(self.plan.urls):
                    self._transfer(url, output, index)
        finally:
            self.client.close()
            if self.story is not None:
                self.story.summary(self.client, time.perf_counter() - started)
            self._save_cookies()

    def _transfer(self, url: str, output: IO[bytes] | None, index: int) -> None:
        """One URL, tried again by --retry; the -w line after it."""
        attempt = 0
        while True:
            facts = self.facts.start(self.plan.method, url)
            facts.num_retries = attempt
            last = attempt >= self.plan.retry
            try:
                with time_limit(self.plan.max_time):
                    again = self._fetch_one(url, output, index, last)
            except Exception as exc:
                if last or facts.wrote or not is_transient(exc):
                    self._write_out(facts)
                    raise
                again, what = None, str(exc)
            else:
                if again is None:
                    self._write_out(facts)
                    return
                what = f"HTTP {again.status} {again.reason}".rstrip()
            delay = retry_delay(attempt, self.plan.retry_delay, again)
            self._warn(f"{what}; retrying in {delay:g} s ({self.plan.retry - attempt} left)")
            time.sleep(delay)
            attempt += 1

    def _fetch_one(
        self, url: str, output: IO[bytes] | None, index: int, last: bool
    ) -> Response | None:
        """Send, and write the response; a response to retry, unwritten."""
        plan, story, facts = self.plan, self.story, self.facts.facts
        assert facts is not None
        if story is not None:
            story.request(plan.method, url)
        with (
            open_form(plan.form) as files,
            self.client.stream(
                plan.method, url, headers=plan.headers, content=plan.body, files=files
            ) as response,
        ):
            _note_head(facts, response)
            if story is not None:
                story.response(response)
            if not last and response.status in RETRY_STATUSES:
                return response
            if self.args.fail and response.status >= 400:
                raise _HTTPStatus(f"{response.status} {response.reason} from {response.url}")
            if output is not None:
                size = self._write_response(response, output)
            else:
                with _open_output(plan.file_names[index]) as file:
                    size = self._write_response(response, file)
            if story is not None:
                story.body_done(response, size)
        facts.ended_at = time.time()
        return None

    def _write_response(self, response: Response, output: IO[bytes]) -> int:
        """Write the head (with -i or -I), then the body as it arrives; its size."""
        facts = self.facts.facts
        assert facts is not None
        if self.args.include or self.args.head:
            facts.wrote = True
            for hop in [*response.history, response]:
                _write(output, _head_bytes(hop))
        progress = None
        if self.show_progress:
            length = response.headers.get("content-length", "")
            progress = Progress(sys.stderr, int(length) if length.isdigit() else None)
        guard = output is sys.stdout.buffer and self.args.output != "-" and _is_terminal(output)
        try:
            for chunk in response.iter_bytes():
                if guard:
                    if _looks_binary(response, chunk):
                        raise _OutputError(_BINARY_REFUSED)
                    guard = False
                _write(output, chunk)
                facts.wrote = True
                facts.size_download += len(chunk)
                if progress is not None:
                    progress.update(facts.size_download)
        except BaseException:  # Ctrl-C, or an error: its message starts a line
            if progress is not None:
                progress.end_line()
            raise
        if progress is not None:
            progress.finish(facts.size_download)
        _write(output, None)  # each body shows as soon as its response ends
        return facts.size_download

    def _write_out(self, facts: Facts) -> None:
        if self.plan.write_out is None:
            return
        if facts.ended_at is None:
            facts.ended_at = time.time()
        _write(sys.stdout.buffer, self.plan.write_out.render(facts).encode())
        _write(sys.stdout.buffer, None)

    def _save_cookies(self) -> None:
        jar, path = self.plan.cookie_jar, self.args.cookie_jar
        if jar is not None and path is not None:
            try:
                jar.save(path, ignore_discard=True)
            except OSError as exc:
                raise _OutputError(f"can't write the -c file {path!r}: {exc.strerror}") from exc

    def _warn(self, line: str) -> None:
        if not self.args.silent:
            _say(f"rawkeep: warning: {line}")


def _note_head(facts: Facts, response: Response) -> None:
    facts.first_byte_at = time.time()
    facts.status = response.status
    facts.http_version = response.http_version
    facts.url = response.url
    facts.content_type = response.headers.get("content-type", "")
    facts.num_redirects = len(response.history)


def _is_terminal(output: IO[bytes]) -> bool:
    try:
        return output.isatty()
    except ValueError:  # closed
        return False


#: Media types shown as text on a terminal, besides text/*.
_TEXT_TYPES: Final = frozenset(
    {"application/json", "application/xml", "application/javascript", "image/svg+xml"}
)


def _looks_binary(response: Response, first: bytes) -> bool:
    """curl's test (a NUL byte in the first chunk), and a media type that is
    not text, when the response names one."""
    if b"\0" in first:
        return True
    media = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if not media:
        return False
    text = media.startswith("text/") or media in _TEXT_TYPES
    return not (text or media.endswith(("+json", "+xml")))


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
    if arguments[:1] == ["serve"]:
        from .serve import main as serve_main

        return serve_main(arguments[1:])
    try:
        args = build_parser().parse_intermixed_args(arguments)
        run = _Run(args, make_plan(args))
    except SystemExit as exc:  # --help and --version exit from inside argparse
        return exc.code if isinstance(exc.code, int) else ExitCode.OK
    except (UsageError, InvalidURL) as exc:
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
            if args.output is not None and args.output != "-":
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
        silence_stdout()  # the reader went away (`rawkeep URL | head`): no message
        return code
    if args.debug:
        traceback.print_exception(exc, file=sys.stderr)
    if not args.silent or args.show_error:
        hint = " (--debug shows where)" if code is ExitCode.ERROR and not args.debug else ""
        _say(f"rawkeep: {kind}: {exc}{hint}")
    return code


#: Error classes, most specific first, with their exit code and name.
_ERRORS: Final[list[tuple[type[BaseException], ExitCode, str]]] = [
    (UsageError, ExitCode.USAGE, "error"),
    (FormError, ExitCode.USAGE, "error"),
    (NotImplementedError, ExitCode.NOT_AVAILABLE, "not available yet"),
    (_HTTPStatus, ExitCode.HTTP_STATUS, "HTTP error"),
    (_OutputError, ExitCode.OUTPUT, "output error"),
    (InvalidURL, ExitCode.INVALID_URL, "invalid URL"),
    (ConnectTimeout, ExitCode.CONNECT, "connect timeout"),
    (ConnectError, ExitCode.CONNECT, "connect error"),
    (TLSError, ExitCode.TLS, "TLS error"),
    (TimeoutError, ExitCode.TIMEOUT, "timeout"),
    (TransferTimeout, ExitCode.TIMEOUT, "timeout"),
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
