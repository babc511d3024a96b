"""One transfer of the ``rawkeep`` command: a URL, as curl counts it.

A transfer is one URL on the command line with everything it takes: the
redirects of ``-L``, the library's own keep-alive race retries, the body.
Around it, as curl does:

- ``-m``/``--max-time``: a limit on the whole transfer, not on each wait
  (``--timeout`` bounds each connect, read and write). On Unix it is a
  real-time timer (``signal.setitimer``) whose handler raises
  ``MaxTimeExceeded`` wherever the transfer is, even in the middle of a
  read: the client closes the connection it held (it does so for any
  exception) and the transfer ends with a timeout. Where there is no such
  timer (Windows, or not the main thread) each wait is bounded by the
  limit instead.
- ``--retry N``: a transient failure (a timeout, ``-m`` included, a
  connect error, or a 408, 429, 500, 502, 503 or 504 status) is tried
  again, up to N times, after 1 s, then 2, 4, 8 and 10 s at most, or the
  server's ``Retry-After`` (seconds, at most 10 s), or ``--retry-delay``.
  Only while nothing of the transfer has been written: a body cut short is
  not tried again.
- ``-w``: the line of facts after the transfer, failed or not.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import TYPE_CHECKING, Final

from .._exceptions import ConnectError, TimeoutError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType

    from .._models import Response

__all__ = [
    "RETRY_STATUSES",
    "MaxTimeExceeded",
    "TransferTimeout",
    "is_transient",
    "retry_delay",
    "time_limit",
]

#: The statuses curl's --retry treats as transient.
RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
#: Seconds before the first retry; each next one waits twice as long...
RETRY_FIRST_DELAY: Final = 1.0
#: ...up to this (curl goes on to 10 minutes; a command line waits less).
RETRY_MAX_DELAY: Final = 10.0


class MaxTimeExceeded(BaseException):
    """Raised by the -m timer's handler inside the transfer.

    A ``BaseException``, like ``KeyboardInterrupt``, so that nothing on the
    way mistakes it for an error it may swallow or retry (the client hands
    exceptions of ``on_event`` callbacks to the log)."""


class TransferTimeout(Exception):
    """-m: the transfer took longer than allowed (``ExitCode.TIMEOUT``)."""


def is_transient(exc: Exception) -> bool:
    """Whether --retry tries ``exc`` again."""
    return isinstance(exc, TimeoutError | ConnectError | TransferTimeout)


def retry_delay(attempt: int, fixed: float | None, response: Response | None) -> float:
    """Seconds to wait before retry ``attempt + 1``."""
    if response is not None:
        after = response.headers.get("retry-after", "")
        if after.isascii() and after.isdigit():
            return min(float(after), RETRY_MAX_DELAY)
    if fixed is not None:
        return fixed
    return min(RETRY_FIRST_DELAY * 2.0**attempt, RETRY_MAX_DELAY)


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise ``TransferTimeout`` if the block runs longer than ``seconds``."""
    if (
        seconds is None
        or not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    armed = True

    def expire(signum: int, frame: FrameType | None) -> None:
        if armed:
            raise MaxTimeExceeded

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except MaxTimeExceeded:
        raise TransferTimeout(f"the transfer took longer than --max-time {seconds:g} s") from None
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
