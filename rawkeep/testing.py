"""A real HTTP/1.1 server on loopback for testing code that uses rawkeep.

Import it explicitly (``from rawkeep.testing import LocalServer``); ``import
rawkeep`` does not load it. ``LocalServer`` runs your handler behind the lab
server of ``rawkeep serve``: a listener on 127.0.0.1 and a thread per
connection, started in milliseconds, no network needed. Your code under test
gets ``server.url`` and runs the real client against it.

Why a server and not a mock transport: rawkeep's pool and connections *are*
its transport. A mock in their place would answer every request on a
connection that is never opened, reused, expired or lost, so the events,
``pool_stats()``, retries and keep-alive rules your code meets in production
would not run at all. Here they do, and the server's keep-alive behaviour is
yours to script (``Behaviour``: idle timeout, a request limit, HTTP/1.0, a
hang-up on the n-th request), which no mock can show.

Theory of operation. The handler runs in the connection's thread, through
``_answer``: whatever it raises (or a value that is not a valid ``Reply``) is
kept and answered with a 500 whose body is the exception's repr, and
``stop()`` raises the first one again once the threads are gone, so a broken
handler can't let a test pass unnoticed. Each request is recorded as it is
read, before it is answered, so by the time the client has a response its
request is in ``requests``.
"""

from __future__ import annotations

import re
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeAlias

from ._app.labbehaviour import Behaviour
from ._app.labroutes import Reply, ServerRequest, respond
from ._app.labserver import LabServer, loopback_family
from ._app.labtls import CertificateError, make_certificate

if TYPE_CHECKING:
    import ssl
    from types import TracebackType

__all__ = [
    "LocalServer",
    "Reply",
    "ServerRequest",
    "Behaviour",
    "Handler",
    "Routes",
    "CertificateError",
]

#: A handler: the reply to one request. It runs in the server's threads.
Handler: TypeAlias = Callable[[ServerRequest], Reply]
#: Routes: ``"/path"`` or ``"METHOD /path"`` to a reply or a handler. A
#: dict mixing replies and functions needs this annotation for a type checker
#: (alone, it infers ``dict[str, object]``).
Routes: TypeAlias = Mapping[str, Reply | Handler]

#: A route key: an optional method in capitals, then a path with no query.
_ROUTE_KEY: Final = re.compile(r"(?:(?P<method>[A-Z][A-Z_-]*) )?(?P<path>/[^\s?#]*)")


class LocalServer:
    """An HTTP/1.1 server on loopback that answers with your handler.

    Use it as a context manager (or ``start()`` and ``stop()``); give your
    code ``url``. It serves both ``rawkeep.Client`` and
    ``rawkeep.AsyncClient``: it runs in its own threads, never on your
    event loop.

    Args:
        handler: what answers each request: a callable taking a
            ``ServerRequest`` and returning a ``Reply``; or a mapping from
            ``"/path"`` or ``"METHOD /path"`` (the method in capitals) to a
            ``Reply`` or such a callable, where a request whose method and
            path match no key gets a 404 (a key with a method wins over one
            without); or None for the lab's paths (those of ``rawkeep
            serve``: ``/json``, ``/echo``, ``/status/CODE``, ...). It runs in
            the server's threads, several at once when requests come on
            several connections.
        behaviour: how the server treats connections (``Behaviour``: idle
            timeout, request limit, HTTP/1.0, hang-up, ...); by default it
            keeps them open.
        tls: serve https with a certificate from a CA made for this server
            (by the ``openssl`` command); trust it with
            ``verify=server.ca_file``.
        host: the loopback address to listen on (``"::1"`` for IPv6).

    Raises:
        TypeError: ``handler`` is neither callable, a mapping nor None; a
            route key is not a string or a route's value is neither a
            ``Reply`` nor callable; ``behaviour`` is not a ``Behaviour``.
        ValueError: a route key is not ``"/path"`` or ``"METHOD /path"``;
            ``host`` is not a loopback IP address.
    """

    def __init__(
        self,
        handler: Handler | Routes | None = None,
        *,
        behaviour: Behaviour | None = None,
        tls: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        loopback_family(host)
        if behaviour is not None and not isinstance(behaviour, Behaviour):
            raise TypeError(f"behaviour must be a Behaviour, not {type(behaviour).__name__}")
        self._handler = _handler(handler)
        self._behaviour = behaviour or Behaviour()
        self._tls = tls
        self._host = host
        self._lock = threading.Lock()
        self._requests: list[ServerRequest] = []
        self._errors: list[Exception] = []
        self._lab: LabServer | None = None
        self._certificates: tempfile.TemporaryDirectory[str] | None = None
        self._ca_file: str | None = None
        self._stopped = False

    # -- what a test reads --------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:40123`` (no trailing slash).

        Raises:
            RuntimeError: the server was not started.
        """
        return self._running().url

    @property
    def ca_file(self) -> str:
        """The CA certificate file (PEM) to trust: ``verify=server.ca_file``.

        Raises:
            RuntimeError: the server was made without ``tls=True``, or was
                not started.
        """
        self._running()
        if self._ca_file is None:
            raise RuntimeError("this LocalServer serves http; ca_file needs tls=True")
        return self._ca_file

    @property
    def requests(self) -> list[ServerRequest]:
        """Every request received so far, in the order read (a new list).

        A request is recorded as soon as it is read, before it is answered,
        so it is here once the client has its response; a request the
        server hung up on (``Behaviour(hang_up_on_request=N)``) is here too.
        """
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return 0 if self._lab is None else self._lab.accepted

    @property
    def errors(self) -> list[Exception]:
        """What the handler raised so far, in order (a new list)."""
        with self._lock:
            return list(self._errors)

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "new" if self._lab is None else "running"
        where = f" {self._lab.url}" if self._lab is not None else ""
        return f"<LocalServer{where} {state}>"

    # -- start and stop -----------------------------------------------------------------

    def start(self) -> None:
        """Listen on a free port and serve in background threads.

        Raises:
            RuntimeError: it was started before.
            CertificateError: ``tls=True`` and no certificate could be made
                (no ``openssl`` command, or it failed).
            OSError: the address can't be bound.
        """
        if self._lab is not None or self._stopped:
            raise RuntimeError("a LocalServer starts once")
        context = self._make_certificate() if self._tls else None
        lab = LabServer(
            self._behaviour,
            host=self._host,
            ssl_context=context,
            responder=self._answer,
            on_request=self._record,
        )
        try:
            lab.start()
        except BaseException:
            self._remove_certificate()
            raise
        self._lab = lab

    def stop(self) -> None:
        """Stop the threads, close every socket, then raise what the handler raised.

        A second call does nothing.

        Raises:
            Exception: the first exception the handler raised (or the
                ``TypeError`` or ``ValueError`` for a value that was not a
                valid ``Reply``), now that everything is closed.
        """
        if self._close():
            self._raise_first_error()

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.stop()
            return
        # The block's own exception goes on; the handler's is noted on it.
        if self._close() and self._errors and hasattr(exc, "add_note"):
            exc.add_note(f"the LocalServer's handler raised: {self._errors[0]!r}")

    # -- inside -------------------------------------------------------------------------

    def _running(self) -> LabServer:
        if self._lab is None:
            raise RuntimeError("the LocalServer is not started: use `with` or start()")
        return self._lab

    def _close(self) -> bool:
        """Stop and clean up; whether this call did it (not an earlier one)."""
        if self._stopped:
            return False
        self._stopped = True
        try:
            if self._lab is not None:
                self._lab.stop()
        finally:
            self._remove_certificate()
        return True

    def _raise_first_error(self) -> None:
        with self._lock:
            errors = list(self._errors)
        if not errors:
            return
        first = errors[0]
        if len(errors) > 1 and hasattr(first, "add_note"):
            first.add_note(f"the handler raised {len(errors)} times; see LocalServer.errors")
        raise first

    def _record(self, request: ServerRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _answer(self, request: ServerRequest) -> Reply:
        """The handler's reply; a 500 that says why when it raised or returned junk."""
        try:
            reply = self._handler(request)
            _check_reply(reply)
        except Exception as exc:
            with self._lock:
                self._errors.append(exc)
            return Reply.text(f"{exc!r}\n", status=500)
        return reply

    def _make_certificate(self) -> ssl.SSLContext:
        self._certificates = tempfile.TemporaryDirectory(prefix="rawkeep-testing-")
        try:
            certificate = make_certificate(Path(self._certificates.name))
            context = certificate.server_context()
        except BaseException:
            self._remove_certificate()
            raise
        self._ca_file = str(certificate.ca)
        return context

    def _remove_certificate(self) -> None:
        if self._certificates is not None:
            self._certificates.cleanup()
            self._certificates = None


def _handler(handler: Handler | Routes | None) -> Handler:
    """The callable behind ``handler``.

    Raises:
        TypeError, ValueError: as ``LocalServer`` says.
    """
    if handler is None:
        return respond
    if isinstance(handler, Mapping):
        return _Router(handler)
    if callable(handler):
        return handler
    raise TypeError(f"handler must be callable, a mapping or None, not {type(handler).__name__}")


class _Router:
    """Routes: the reply (or handler) of the key matching method and path."""

    def __init__(self, routes: Routes) -> None:
        self._table: dict[tuple[str | None, str], Reply | Handler] = {}
        for key, value in routes.items():
            if not isinstance(key, str):
                raise TypeError(f"a route key must be a string, not {type(key).__name__}")
            match = _ROUTE_KEY.fullmatch(key)
            if match is None:
                raise ValueError(f"a route key is '/path' or 'METHOD /path', not {key!r}")
            if not (isinstance(value, Reply) or callable(value)):
                raise TypeError(
                    f"the route {key!r} must map to a Reply or a callable,"
                    f" not {type(value).__name__}"
                )
            self._table[(match["method"], match["path"])] = value

    def __call__(self, request: ServerRequest) -> Reply:
        path = request.path
        answer = self._table.get((request.method, path))
        if answer is None:
            answer = self._table.get((None, path))
        if answer is None:
            return Reply.text(f"no route for {request.method} {path}\n", status=404)
        return answer if isinstance(answer, Reply) else answer(request)


def _check_reply(reply: object) -> None:
    """Raise if ``reply`` is not a ``Reply`` the server can send.

    Raises:
        TypeError: not a ``Reply``, or a field of the wrong type.
        ValueError: a status that is not a final one (200 to 599).
    """
    if not isinstance(reply, Reply):
        raise TypeError(f"the handler returned {type(reply).__name__}, not a Reply")
    # Typed, but a handler's code is not always type-checked: look.
    status: object = reply.status
    body: object = reply.body
    headers: object = reply.headers
    if not isinstance(status, int) or not 200 <= status <= 599:
        raise ValueError(f"Reply.status must be from 200 to 599, not {status!r}")
    if not isinstance(body, tuple) or not all(isinstance(piece, bytes) for piece in body):
        raise TypeError(f"Reply.body must be a tuple of bytes, e.g. body=(b'data',), not {body!r}")
    if not isinstance(headers, tuple) or not all(map(_is_field, headers)):
        raise TypeError(f"Reply.headers must be a tuple of (name, value) strings, not {headers!r}")


def _is_field(field: object) -> bool:
    return (
        isinstance(field, tuple)
        and len(field) == 2
        and all(isinstance(part, str) for part in field)
    )
