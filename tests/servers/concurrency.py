"""Run a worker in several threads at once, bounded in time, errors collected."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


def run_in_threads(
    count: int, worker: Callable[[int], None], timeout: float = 30.0
) -> list[BaseException]:
    """Run ``worker(i)`` for i in range(count), each in its own thread.

    A barrier releases all threads together so they really contend. Returns
    the exceptions raised by workers (caught, so pytest's thread-exception
    hook stays quiet), plus one for each thread still running at `timeout`.
    """
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(count, timeout=timeout)

    def run(index: int) -> None:
        try:
            barrier.wait()
            worker(index)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(i,), name=f"worker-{i}", daemon=True)
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    alive = [thread.name for thread in threads if thread.is_alive()]
    if alive:
        errors.append(AssertionError(f"threads still running after {timeout} s: {alive}"))
    return errors
