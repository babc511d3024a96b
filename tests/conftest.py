"""Shared fixtures: loopback servers, a trustme CA, an event recorder.

Everything here talks to 127.0.0.1 only. A session-wide guard makes any
attempt to connect elsewhere (or to resolve a non-loopback name) fail loudly
instead of reaching the network.
"""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import select
import socket
import ssl
from typing import TYPE_CHECKING, Any

import pytest
import trustme
from dual import DualClient, LoopThread
from servers.h11server import keepalive_server
from servers.recorder import EventRecorder
from servers.scripted import ScriptedServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from servers.scripted import ConcurrencyGauge, ServerConnection

    import rawkeep

    Handler = Callable[[ServerConnection], None]


# -- loopback guard ------------------------------------------------------------

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", ""})


def _is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _check_address(sock: socket.socket, address: Any) -> None:
    if sock.family == getattr(socket, "AF_UNIX", None):
        return
    host = address[0] if isinstance(address, tuple) else address
    if not _is_loopback(host):
        raise AssertionError(f"test tried to connect to non-loopback {address!r}")


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    """Refuse connects and name look-ups that would leave 127.0.0.1 / ::1."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        _check_address(self, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check_address(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, f"tests resolve no {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket.socket, "connect_ex", connect_ex)
        patch.setattr(socket, "getaddrinfo", getaddrinfo)
        yield


# -- servers -------------------------------------------------------------------


@pytest.fixture
def start_server() -> Iterator[Callable[..., ScriptedServer]]:
    """Start a `ScriptedServer(handler, **kw)`; stopped at teardown."""
    with contextlib.ExitStack() as stack:

        def start(handler: Handler, **kwargs: Any) -> ScriptedServer:
            return stack.enter_context(ScriptedServer(handler, **kwargs))

        yield start


@pytest.fixture
def start_keepalive_server() -> Iterator[Callable[..., ScriptedServer]]:
    """Start a keep-alive server with `KeepAliveOptions` knobs as keywords."""
    with contextlib.ExitStack() as stack:

        def start(
            *,
            ssl_context: ssl.SSLContext | None = None,
            open_gauge: ConcurrencyGauge | None = None,
            in_flight: ConcurrencyGauge | None = None,
            **knobs: Any,
        ) -> ScriptedServer:
            server = keepalive_server(
                ssl_context=ssl_context,
                open_gauge=open_gauge,
                in_flight=in_flight,
                **knobs,
            )
            return stack.enter_context(server)

        yield start


@pytest.fixture
def server(start_keepalive_server: Callable[..., ScriptedServer]) -> ScriptedServer:
    """A plain keep-alive server echoing each request's token."""
    return start_keepalive_server()


# -- TLS -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_server_cert(tls_ca: trustme.CA) -> trustme.LeafCert:
    """A server certificate for 127.0.0.1 and localhost, signed by `tls_ca`."""
    return tls_ca.issue_cert("127.0.0.1", "localhost")


@pytest.fixture
def server_ssl_context(tls_server_cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_server_cert.configure_cert(context)
    return context


@pytest.fixture(scope="session")
def ca_pem_path(tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("ca") / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def client_ssl_context(tls_ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    tls_ca.configure_trust(context)
    return context


# -- clients and events ------------------------------------------------------


@pytest.fixture
def events() -> EventRecorder:
    return EventRecorder()


#: Generous default for every phase: tests that exercise a timeout set their own.
DEFAULT_TEST_TIMEOUT = 5.0


#: The clients a ``both_clients`` test runs on (see ``pytest_generate_tests``).
CLIENT_KINDS = ("sync", "async")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each test of a ``both_clients`` module that uses ``make_client``
    (or ``client``) once per client kind: ``test_x[sync]``, ``test_x[async]``.

    ``sync_only(reason)`` skips the async run; ``async_xfail(reason=...)``
    makes it a strict xfail (a known AsyncClient bug, kept visible);
    ``strict=False`` for a bug that shows only on some runs.
    """
    definition = metafunc.definition
    if "client_kind" not in metafunc.fixturenames:
        return
    if definition.get_closest_marker("both_clients") is None:
        return
    marks: list[pytest.MarkDecorator] = []
    sync_only = definition.get_closest_marker("sync_only")
    if sync_only is not None:
        reason = sync_only.args[0] if sync_only.args else sync_only.kwargs.get("reason", "")
        marks.append(pytest.mark.skip(reason=f"sync only: {reason}"))
    bug = definition.get_closest_marker("async_xfail")
    if bug is not None:
        strict = bug.kwargs.get("strict", True)
        marks.append(pytest.mark.xfail(strict=strict, reason=bug.kwargs["reason"]))
    metafunc.parametrize(
        "client_kind",
        [pytest.param("sync"), pytest.param("async", marks=marks)],
        indirect=True,
    )


@pytest.fixture
def client_kind(request: pytest.FixtureRequest) -> str:
    """Which client ``make_client`` builds: "sync" (``rawkeep.Client``)
    unless the test's module opted in with ``pytest.mark.both_clients``."""
    kind: str = getattr(request, "param", "sync")
    assert kind in CLIENT_KINDS
    return kind


@pytest.fixture
def make_client(
    events: EventRecorder, client_kind: str
) -> Iterator[Callable[..., rawkeep.Client]]:
    """Create clients (events recorded, 5 s timeouts by default); closed after.

    For ``client_kind == "async"`` each is a ``dual.DualClient``: an
    ``AsyncClient`` on a private loop, called like a ``Client``.
    """
    import rawkeep

    clients: list[Any] = []
    # Started before the test body, so that its descriptors (the selector,
    # the self-pipe) are there before any the test counts.
    runner = LoopThread() if client_kind == "async" else None

    def make(**kwargs: Any) -> rawkeep.Client:
        kwargs.setdefault("on_event", events)
        kwargs.setdefault("timeout", DEFAULT_TEST_TIMEOUT)
        client: Any = rawkeep.Client(**kwargs) if runner is None else DualClient(runner, **kwargs)
        clients.append(client)
        return client  # type: ignore[no-any-return]

    yield make
    try:
        for client in clients:
            client.close()
    finally:
        clients.clear()
        if runner is not None:
            gc.collect()  # abandoned async iterators are closed while the loop runs
            leaked = runner.stop()
            assert not leaked, f"tasks left on the AsyncClient's loop: {leaked}"
    # A socket leaked by the client warns when collected: collect now so the
    # ResourceWarning (an error under filterwarnings) fails *this* test.
    gc.collect()


@pytest.fixture
def client(make_client: Callable[..., rawkeep.Client]) -> rawkeep.Client:
    return make_client()


# -- unusual listeners -----------------------------------------------------------


@pytest.fixture
def never_accepting_listener() -> Iterator[str]:
    """URL of a listener whose accept queue is full: connects to it hang.

    The listener has backlog 0 and is never accepted from; filler
    connections fill its queue until one stops completing. Linux then drops
    further SYNs, so a client's connect waits for its own timeout. This keeps
    connect-timeout tests on loopback instead of using an unroutable address.
    """
    sockets: list[socket.socket] = []
    try:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sockets.append(listener)
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(16):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(filler)
            filler.setblocking(False)
            filler.connect_ex(address)
            _, writable, _ = select.select([], [filler], [], 0.3)
            if not writable:
                break  # this connect hangs: the queue is full
            if filler.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                pytest.skip("filling the accept queue made connects fail, not hang")
        else:
            pytest.skip("connects to a full-backlog loopback listener do not hang here")
        yield f"http://127.0.0.1:{address[1]}"
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """URL of a port that is bound but not listening: connects are refused.

    Keeping the port bound stops any other process from taking it meanwhile.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
