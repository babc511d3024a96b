"""``rawkeep serve``: the lab server in the foreground, its knobs as options.

The pages of docs/ are written against ``rawkeep serve`` on 127.0.0.1:8080
(and ``--port 8081 --http10``, ``--port 8443 --tls``); the docs tests build
their servers with ``parse`` and ``running`` from here, so what a reader
starts and what the tests check are the same server with the same knobs.

Shape of a run: parse and check every option (a bad value exits 2 before
anything is bound), make the certificate for ``--tls``, bind, print what is
served (address, knobs, paths), log one line per answer until Ctrl-C
(exit 130) or SIGTERM (exit 0), then stop every thread and remove the
certificate's directory. It binds loopback addresses only: the lab has
deliberately hostile knobs and no business on a network.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from .exitcodes import ExitCode
from .labbehaviour import MAX_IDLE, Behaviour
from .labroutes import MAX_REDIRECTS, PATHS
from .labserver import LabServer
from .labtls import CertificateError, make_certificate

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from types import FrameType

    from .labconnection import Exchange

__all__ = ["Lab", "Plan", "main", "parse", "running"]

#: The port of the docs' examples.
DEFAULT_PORT: Final = 8080
#: Longest ``--slow``, in seconds: long enough for any read timeout you try.
MAX_SLOW: Final = 300.0


@dataclass(frozen=True, kw_only=True)
class Plan:
    """A checked command line: what to serve, and how."""

    behaviour: Behaviour
    host: str
    port: int
    tls: bool
    quiet: bool


@dataclass(frozen=True, kw_only=True)
class Lab:
    """A running lab server, and the CA to trust with ``--tls`` (else None)."""

    server: LabServer
    ca: Path | None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rawkeep serve",
        description="Serve the lab: a local HTTP/1.1 server with keep-alive knobs.",
        epilog="Loopback only. Ctrl-C stops it.",
    )
    add = parser.add_argument
    add("--port", type=int, default=DEFAULT_PORT, help="default 8080; 0: any free port")
    add("--host", default="127.0.0.1", help="a loopback address: 127.0.0.1 (default) or ::1")
    add(
        "--idle-timeout",
        type=float,
        metavar="S",
        help=f"close connections idle S s (default {MAX_IDLE:g})",
    )
    add("--max", type=int, metavar="N", help="close a connection after its N-th response")
    add(
        "--keep-alive-header",
        action="store_true",
        help="announce the idle timeout and max in Keep-Alive: timeout=N, max=M",
    )
    add("--http10", action="store_true", help="answer in HTTP/1.0, closing after each response")
    add("--close", action="store_true", help="Connection: close on every response")
    add(
        "--hang-up",
        type=int,
        metavar="N",
        help="read each connection's N-th request, then close without answering",
    )
    add("--slow", type=float, default=0.0, metavar="S", help="wait S s before every answer")
    add("--chunked", action="store_true", help="send every body chunked")
    add(
        "--compress",
        choices=("gzip", "deflate"),
        help="compress bodies when the client accepts it",
    )
    add(
        "--redirects",
        type=int,
        default=0,
        metavar="N",
        help="redirect every request N times first",
    )
    add("--tls", action="store_true", help="serve https, with a certificate made by openssl")
    add("-q", "--quiet", action="store_true", help="no line per answer")
    return parser


def parse(argv: Sequence[str]) -> Plan:
    """The plan of ``rawkeep serve ARGV``.

    Raises:
        SystemExit: 2 with a message on stderr for a bad option or value
            (nothing is bound yet); 0 for ``--help``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return Plan(
            behaviour=_behaviour(args),
            host=_loopback(args.host),
            port=_port(args.port),
            tls=args.tls,
            quiet=args.quiet,
        )
    except ValueError as exc:
        parser.error(str(exc))


def _loopback(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"--host {host}: give an IP address, 127.0.0.1 or ::1") from None
    if not address.is_loopback:
        raise ValueError(
            f"--host {host}: the lab server listens on loopback only (127.0.0.1 or ::1)"
        )
    return host


def _port(port: int) -> int:
    if not 0 <= port <= 65535:
        raise ValueError(f"--port {port}: a port is from 0 to 65535")
    return port


def _behaviour(args: argparse.Namespace) -> Behaviour:
    """The knobs, each checked with its option's name in the message.

    Raises:
        ValueError: a value out of range.
    """
    _check_ranges(args)
    idle, most, announce = args.idle_timeout, args.max, args.keep_alive_header
    announced = MAX_IDLE if idle is None else idle
    if announce and announced != int(announced):
        raise ValueError(f"--idle-timeout {idle:g}: Keep-Alive: timeout= takes whole seconds")
    return Behaviour(
        keep_alive_timeout=int(announced) if announce else None,
        keep_alive_max=most if announce else None,
        drop_idle_after=None if announce else idle,
        close_after=None if announce else most,
        connection_close=args.close,
        hang_up_on_request=args.hang_up,
        http_version="1.0" if args.http10 else "1.1",
        delay=args.slow,
        chunked=args.chunked,
        compress=args.compress,
        redirects=args.redirects,
    )


def _check_ranges(args: argparse.Namespace) -> None:
    """Raises: ValueError, naming the option whose value is out of range."""
    if args.idle_timeout is not None and not 0 < args.idle_timeout <= 24 * 3600:
        raise ValueError(
            f"--idle-timeout {args.idle_timeout:g}: give seconds above 0, at most a day"
        )
    for name, value in (("--max", args.max), ("--hang-up", args.hang_up)):
        if value is not None and value < 1:
            raise ValueError(f"{name} {value}: give a count of at least 1")
    if not 0 <= args.slow <= MAX_SLOW:
        raise ValueError(f"--slow {args.slow:g}: give seconds from 0 to {MAX_SLOW:g}")
    if not 0 <= args.redirects <= MAX_REDIRECTS:
        raise ValueError(f"--redirects {args.redirects}: give 0 to {MAX_REDIRECTS}")


# -- running -------------------------------------------------------------------------------


@contextlib.contextmanager
def running(plan: Plan, on_exchange: Callable[[Exchange], None] | None = None) -> Iterator[Lab]:
    """Start the lab server of ``plan`` (its certificate too); stop it after.

    Raises:
        CertificateError: ``--tls`` and no certificate could be made.
        OSError: the address can't be bound.
    """
    with contextlib.ExitStack() as stack:
        ca, context = None, None
        if plan.tls:
            directory = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="rawkeep-serve-"))
            )
            certificate = make_certificate(directory)
            ca, context = certificate.ca, certificate.server_context()
        server = LabServer(
            plan.behaviour,
            host=plan.host,
            port=plan.port,
            on_exchange=on_exchange,
            ssl_context=context,
        )
        stack.enter_context(server)
        yield Lab(server=server, ca=ca)


def describe(plan: Plan, lab: Lab) -> str:
    """What ``rawkeep serve`` prints as it starts: address, knobs, paths."""
    server, knobs = lab.server, plan.behaviour
    version = "HTTP/1.0" if knobs.http_version == "1.0" else "HTTP/1.1"
    lines = [f"rawkeep serve: {server.url} ({version})", *_knob_lines(knobs)]
    if lab.ca is not None:
        lines += [
            "  tls: a certificate for 127.0.0.1, ::1 and localhost, from a CA made for this run:",
            f'       verify="{lab.ca}" (rawkeep --cacert {lab.ca})',
        ]
    lines.append("paths:")
    width = max(len(path) for path, _ in PATHS)
    lines += [f"  {path:<{width}}  {what}" for path, what in PATHS]
    lines.append("Ctrl-C stops it.")
    return "\n".join(lines) + "\n"


def _knob_lines(knobs: Behaviour) -> list[str]:
    idle = knobs.idle_limit()
    most = knobs.keep_alive_max or knobs.close_after
    if knobs.keep_alive_timeout is not None:
        told = "announced in Keep-Alive: " + ", ".join(
            f"{name}={value}"
            for name, value in (("timeout", knobs.keep_alive_timeout), ("max", most))
            if value
        )
    else:
        told = "no Keep-Alive header" + (", Connection: close on the last" if most else "")
    lines = [
        f"  keep-alive: idle connections closed after {idle:g} s; "
        + (f"at most {most} requests per connection" if most else "no request limit")
        + f"; {told}"
    ]
    extras = {
        "every response says Connection: close": knobs.connection_close,
        f"hangs up on request {knobs.hang_up_on_request}": knobs.hang_up_on_request,
        f"answers after {knobs.delay:g} s": knobs.delay,
        "every body chunked": knobs.chunked,
        f"bodies compressed with {knobs.compress} when the client accepts it": knobs.compress,
        f"{knobs.redirects} redirects before every answer": knobs.redirects,
    }
    on = [text for text, value in extras.items() if value]
    if on:
        lines.append("  answers: " + "; ".join(on))
    return lines


class _Log:
    """One line per answer, from every connection's thread; quiet once the
    reader of stdout has gone (``rawkeep serve | head``)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.broken = False

    def __call__(self, exchange: Exchange) -> None:
        request = exchange.request
        fate = "closed" if exchange.closed else "kept open"
        line = (
            f"#{request.connection} request {request.number}: {request.method} {request.target}"
            f" -> {exchange.status}, connection {fate}\n"
        )
        self.write(line)

    def write(self, text: str) -> None:
        with self.lock:
            if self.broken:
                return
            try:
                self.out.write(text)
                self.out.flush()
            except (OSError, ValueError):
                self.broken = True


def main(argv: Sequence[str]) -> int:
    """Run ``rawkeep serve ARGV`` until Ctrl-C or SIGTERM; its exit status."""
    try:
        plan = parse(argv)
    except SystemExit as exc:  # a bad option (2), or --help (0)
        return exc.code if isinstance(exc.code, int) else ExitCode.OK
    log = _Log(sys.stdout)
    stopping = _Stopping()
    try:
        with stopping.on_signals(), running(plan, None if plan.quiet else log) as lab:
            log.write(describe(plan, lab))
            while not stopping.event.wait(0.5):
                pass
    except CertificateError as exc:
        return _fail(f"rawkeep serve: error: {exc}")
    except OSError as exc:
        where = f"[{plan.host}]" if ":" in plan.host else plan.host
        return _fail(f"rawkeep serve: can't listen on {where}:{plan.port}: {exc.strerror or exc}")
    sys.stderr.write(f"rawkeep serve: stopped{' (Ctrl-C)' if stopping.interrupted else ''}\n")
    return ExitCode.INTERRUPTED if stopping.interrupted else ExitCode.OK


class _Stopping:
    """Ctrl-C and SIGTERM, turned into an event the main thread waits for.

    A handler that only sets the event, instead of Python's KeyboardInterrupt,
    lets the server stop in order (threads joined, sockets closed, the
    certificate removed) however often Ctrl-C is pressed meanwhile.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.interrupted = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.interrupted = self.interrupted or signum == signal.SIGINT
        self.event.set()

    @contextlib.contextmanager
    def on_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals go to the main thread only: nothing to install
            return
        previous = {
            sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _fail(message: str) -> int:
    sys.stderr.write(message + "\n")
    return ExitCode.ERROR
