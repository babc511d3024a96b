"""How a command ends: its exit status, and a quiet end when nobody reads.

Both ``rawkeep`` and ``rawkeep demo`` end through here, so the codes are
defined once (docs/cli.md lists them) and neither command imports the other
for them.
"""

from __future__ import annotations

import enum
import os
import sys

__all__ = ["ExitCode", "silence_stdout"]


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
    #: The proxy could not be reached, refused the request or the tunnel,
    #: asked for credentials (407), or could not reach the target.
    PROXY = 12
    #: Interrupted with Ctrl-C.
    INTERRUPTED = 130


def silence_stdout() -> None:
    """Point stdout at /dev/null after its reader went away.

    ``rawkeep URL | head`` closes the pipe early: the command stops without
    a message, and this keeps the interpreter's last flush of stdout from
    printing a BrokenPipeError of its own.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
