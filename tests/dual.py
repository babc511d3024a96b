"""An ``AsyncClient`` behind the blocking ``Client``'s interface, for tests.

The behaviour tests are written once, against ``rawkeep.Client``'s calls.
``DualClient`` lets the same test body drive a ``rawkeep.AsyncClient``: each
call becomes a coroutine run on a private event loop in a background thread
(``LoopThread``), waited for within ``CALL_TIMEOUT``, and whatever it raised
is raised again in the test's thread, unchanged. Responses come back as
``DualResponse``, whose body methods (``read``, ``iter_bytes``,
``iter_raw``, ``iter_text``, ``iter_lines``, ``close``, ``content``...) go
through the awaited ones (``aread``, ``aiter_bytes``, ``aiter_raw``,
``aiter_text``, ``aiter_lines``, ``aclose``) on that loop, and
whose other attributes are the real response's.

Streaming keeps its meaning: ``iter_bytes()`` advances the async iterator
one piece per step, and leaving the loop early closes the async iterator
(``aclose``) on the loop, as breaking out of ``Client``'s iterator closes it.

Several test threads may call at once: each call is its own task, so they
share the client as tasks of one loop do.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import TYPE_CHECKING, Any, TypeVar

import rawkeep

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Iterator
    from types import TracebackType

__all__ = ["CALL_TIMEOUT", "DualClient", "DualResponse", "LoopThread"]

T = TypeVar("T")

#: Longest wait for one call on the loop before the test fails.
CALL_TIMEOUT = 60.0

#: At teardown, how long tasks still on the loop may take to finish (the
#: finalizers of abandoned async generators run as tasks) before they count
#: as leaked.
SETTLE_TIMEOUT = 5.0


async def _outcome(awaitable: Awaitable[T]) -> tuple[bool, Any]:
    """``(True, result)`` or ``(False, exception)``: the task itself never
    fails, so a ``KeyboardInterrupt`` reaches the test, not the loop."""
    try:
        return True, await awaitable
    except BaseException as exc:
        return False, exc


class LoopThread:
    """A private event loop running in a daemon thread until ``stop()``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._stopped = False
        self._thread = threading.Thread(target=self._main, name="dual-client-loop", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            asyncio.set_event_loop(None)

    @property
    def on_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    @property
    def stopped(self) -> bool:
        return self._stopped

    def run(self, awaitable: Awaitable[T], timeout: float = CALL_TIMEOUT) -> T:
        """Run ``awaitable`` on the loop; its result, or its exception raised.

        Raises:
            AssertionError: it did not finish within ``timeout`` (it is
                cancelled).
        """
        if self._stopped:
            raise RuntimeError("the loop of this DualClient was stopped")
        if self.on_loop_thread:
            raise RuntimeError("a blocking call on the loop's own thread would never return")
        future = asyncio.run_coroutine_threadsafe(_outcome(awaitable), self.loop)
        try:
            ok, value = future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise AssertionError(f"the AsyncClient call took more than {timeout} s") from None
        except BaseException:
            future.cancel()  # the test was interrupted (pytest-timeout, Ctrl-C)
            raise
        if ok:
            return value  # type: ignore[no-any-return]
        try:
            raise value
        finally:
            del value  # no cycle through this frame

    def stop(self) -> list[str]:
        """Let the tasks left on the loop finish, close the async generators
        and the default executor, stop the loop, join its thread, close it.

        Returns:
            the tasks still running after ``SETTLE_TIMEOUT`` (cancelled):
            leaks.
        """
        if self._stopped:
            return []
        leaked = self.run(self._settle())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(CALL_TIMEOUT)
        self._stopped = True
        if self._thread.is_alive():
            leaked.append(f"the loop thread still runs after {CALL_TIMEOUT} s")
        else:
            self.loop.close()
        return leaked

    async def _settle(self) -> list[str]:
        here = asyncio.current_task()
        leaked: list[str] = []
        for _ in range(3):  # a finished task may have started another
            tasks = [task for task in asyncio.all_tasks() if task is not here]
            if not tasks:
                break
            _, pending = await asyncio.wait(tasks, timeout=SETTLE_TIMEOUT)
            for task in pending:
                leaked.append(repr(task))
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=SETTLE_TIMEOUT)
        await self.loop.shutdown_asyncgens()
        await self.loop.shutdown_default_executor()
        return leaked


class DualResponse:
    """A ``rawkeep.Response`` from an ``AsyncClient``, read like one from a
    ``Client``: the body methods run their async twins on the loop."""

    def __init__(self, response: rawkeep.Response, runner: LoopThread) -> None:
        self._response = response
        self._runner = runner
        self._history: list[DualResponse] | None = None

    @property
    def wrapped(self) -> rawkeep.Response:
        """The real response."""
        return self._response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)

    def __repr__(self) -> str:
        return repr(self._response)

    @property
    def history(self) -> list[DualResponse]:
        if self._history is None:
            self._history = [DualResponse(r, self._runner) for r in self._response.history]
        return self._history

    # -- the body ---------------------------------------------------------------

    def read(self) -> bytes:
        return self._runner.run(self._response.aread())

    @property
    def content(self) -> bytes:
        return self.read()  # the content once read, as Response.content

    @property
    def text(self) -> str:
        self.read()
        return self._response.text

    def json(self, **kwargs: Any) -> Any:
        self.read()
        return self._response.json(**kwargs)

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        # Called here, not on the loop: the argument and state checks raise
        # at the call, as iter_bytes() does.
        return self._pieces(self._response.aiter_bytes(chunk_size))

    def iter_raw(self, chunk_size: int | None = None) -> Iterator[bytes]:
        return self._pieces(self._response.aiter_raw(chunk_size))

    def iter_text(self) -> Iterator[str]:
        return self._pieces(self._response.aiter_text())

    def iter_lines(self) -> Iterator[str]:
        return self._pieces(self._response.aiter_lines())

    def _pieces(self, pieces: AsyncIterator[T]) -> Iterator[T]:
        """``pieces`` one step at a time; closed early, it is closed on the loop."""
        runner = self._runner
        finished = False
        try:
            while True:
                try:
                    piece = runner.run(anext(pieces))
                except BaseException:
                    finished = True  # exhausted, or failed: it is finished
                    raise
                yield piece
        except StopAsyncIteration:
            return
        finally:
            if not finished:
                _close_iterator(runner, pieces)

    def close(self) -> None:
        self._runner.run(self._response.aclose())

    def __enter__(self) -> DualResponse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def raise_for_status(self) -> DualResponse:
        self._response.raise_for_status()
        return self


def _close_iterator(runner: LoopThread, pieces: AsyncIterator[Any]) -> None:
    aclose = getattr(pieces, "aclose", None)
    if aclose is None or runner.stopped:
        return  # stop() closed every async generator left
    if runner.on_loop_thread:
        # Collected on the loop's thread (a gc pass there): can't wait.
        runner.loop.create_task(aclose())
        return
    runner.run(aclose())


class _StreamContext:
    """``DualClient.stream(...)``: enters and leaves ``AsyncClient.stream``
    on the loop."""

    def __init__(self, client: DualClient, method: str, url: str, kwargs: dict[str, Any]) -> None:
        self._client = client
        self._context = client.wrapped.stream(method, url, **kwargs)

    def __enter__(self) -> DualResponse:
        runner = self._client.runner
        return DualResponse(runner.run(self._context.__aenter__()), runner)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return self._client.runner.run(self._context.__aexit__(exc_type, exc, tb))


class DualClient:
    """A ``rawkeep.AsyncClient`` on ``runner``'s loop, called like a ``Client``.

    Arguments are ``AsyncClient``'s keywords.
    """

    def __init__(self, runner: LoopThread, **kwargs: Any) -> None:
        self.runner = runner
        self.wrapped = rawkeep.AsyncClient(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    def request(self, method: str, url: str, **kwargs: Any) -> DualResponse:
        response = self.runner.run(self.wrapped.request(method, url, **kwargs))
        return DualResponse(response, self.runner)

    def get(self, url: str, **kwargs: Any) -> DualResponse:
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> DualResponse:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> DualResponse:
        return self.request("OPTIONS", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> DualResponse:
        return self.request("DELETE", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> DualResponse:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> DualResponse:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> DualResponse:
        return self.request("PATCH", url, **kwargs)

    def stream(self, method: str, url: str, **kwargs: Any) -> _StreamContext:
        return _StreamContext(self, method, url, kwargs)

    def pool_stats(self) -> rawkeep.PoolStats:
        # On the loop: its books change only there.
        return self.runner.run(_call(self.wrapped.pool_stats))

    def close(self) -> None:
        self.runner.run(self.wrapped.aclose())

    @property
    def is_closed(self) -> bool:
        return self.wrapped.is_closed

    def __enter__(self) -> DualClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _call(function: Any) -> Any:
    return function()
