"""A scripted raw-socket HTTP server for tests, running in threads on 127.0.0.1.

Theory of operation: one thread accepts connections; each accepted connection
gets its own handler thread running a *script*, a plain function
``handler(conn) -> None`` that drives a `ServerConnection` step by step
(``read_request``, ``send``, ``sleep``, ``close``, ``reset``). Scripts are how
tests inject faults at exact points of a connection's life (see `faults`),
and the correct keep-alive server (`h11server`) is just another script.

The server keeps a ledger of what crossed the wire, so tests assert on data:
accepted connections, every request (with its connection index), the raw
bytes received per connection, and two concurrency gauges.

Bounded everything: every blocking socket operation polls with a short socket
timeout so that it also notices the server stopping, every wait has an
overall deadline, and teardown joins all threads with a deadline. Every
socket opened here is closed on every path, because the test suite turns the
`ResourceWarning` of a leaked socket into an error.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import h11

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    Handler = Callable[["ServerConnection"], None]

#: Poll granularity (seconds) of every blocking server socket operation; it is
#: how long a handler may take to notice that the server is stopping.
POLL_INTERVAL = 0.05
#: Upper bound (seconds) for any single wait a script asks for.
MAX_WAIT = 30.0
#: Deadline (seconds) for all server threads to finish at teardown.
JOIN_TIMEOUT = 5.0
#: Deadline (seconds) for a server-side TLS handshake.
HANDSHAKE_TIMEOUT = 2.0
#: A request head larger than this is a client bug (h11's own default limit
#: for one event is 16 KiB; this is generous on purpose).
MAX_HEAD_BYTES = 64 * 1024
#: Largest request body the parser accepts (the biggest upload in the suite
#: that is actually read is a few MiB).
MAX_BODY_BYTES = 128 * 1024 * 1024

_REQUEST_LINE = re.compile(
    rb"(?P<method>[!#$%&'*+\-.^_`|~0-9A-Za-z]+) "
    rb"(?P<target>[^\x00-\x20\x7f]+) "
    rb"HTTP/(?P<version>1\.[01])"
)
_HEADER_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class RequestParseError(Exception):
    """The client sent bytes that are not a valid HTTP/1.1 request.

    Deliberately not an `OSError`: the server reports it at teardown as a
    client bug, while I/O errors (peer reset, timeouts) are expected in fault
    tests and only recorded.
    """


class ServerStopping(ConnectionAbortedError):
    """Raised inside a handler thread when the server is shutting down."""


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the server parsed it off the wire."""

    connection: int
    method: str
    target: str
    http_version: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    raw: bytes

    def header(self, name: str) -> bytes | None:
        """Return the first value of header `name` (case-insensitive) or None."""
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[bytes]:
        """Return every value of header `name` (case-insensitive), in order."""
        key = name.lower().encode("ascii")
        return [value for header, value in self.headers if header == key]

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]


class ConcurrencyGauge:
    """Thread-safe counter remembering its maximum; shareable across servers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.maximum = 0

    def enter(self) -> None:
        with self._lock:
            self.current += 1
            self.maximum = max(self.maximum, self.current)

    def leave(self) -> None:
        with self._lock:
            self.current -= 1


@dataclass
class ConnectionRecord:
    """The ledger entry of one accepted connection."""

    index: int
    raw: bytearray = field(default_factory=bytearray)
    requests: list[ReceivedRequest] = field(default_factory=list)
    #: Set when the server saw EOF or RST from the client (the client closed).
    peer_closed: threading.Event = field(default_factory=threading.Event)
    #: Set when the server closed its socket.
    closed: threading.Event = field(default_factory=threading.Event)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass."""
    deadline = time.monotonic() + min(timeout, MAX_WAIT)
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


def validate_with_h11(raw: bytes) -> tuple[str, str, bytes]:
    """Parse one complete request with h11 as an independent second opinion.

    The scripted parser is small and lenient where it must be; h11 is the
    reference. A request h11 rejects is a client bug and fails the test.
    """
    parser = h11.Connection(h11.SERVER)
    parser.receive_data(raw)
    method = target = ""
    body = bytearray()
    for _ in range(len(raw) + 3):  # each event consumes at least one byte
        event = parser.next_event()
        if isinstance(event, h11.Request):
            method = event.method.decode("ascii")
            target = event.target.decode("ascii")
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return method, target, bytes(body)
        elif event is h11.NEED_DATA:
            break
    raise RequestParseError(f"h11 found no complete request in {raw[:200]!r}")


class ServerConnection:
    """The server side of one accepted connection, driven by a script.

    All methods run in the connection's handler thread except `close`, which
    teardown may also call as a last resort.
    """

    def __init__(
        self, server: ScriptedServer, record: ConnectionRecord, sock: socket.socket
    ) -> None:
        self.server = server
        self.index = record.index
        self.record = record
        self.sock = sock
        self._buffer = bytearray()
        self._current_raw = bytearray()
        self._in_flight = False
        self._closed = False
        self._close_lock = threading.Lock()

    # -- receiving ---------------------------------------------------------

    def _check_running(self) -> None:
        if self.server.stopping.is_set():
            raise ServerStopping("server is stopping")

    def recv_some(self, timeout: float = 5.0) -> bytes:
        """Receive the next bytes (b"" on EOF); TimeoutError after `timeout`."""
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            return data
        return self._recv(time.monotonic() + min(timeout, MAX_WAIT))

    def _recv(self, deadline: float) -> bytes:
        while True:
            self._check_running()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("server read timed out")
            self.sock.settimeout(min(remaining, POLL_INTERVAL))
            try:
                data = self.sock.recv(256 * 1024)
            except TimeoutError:
                continue
            except ConnectionResetError:
                # A client closing with unread bytes in its buffer sends RST,
                # not FIN; either way the client has closed.
                self.record.peer_closed.set()
                raise
            if data:
                with self.server.lock:
                    self.record.raw += data
            else:
                self.record.peer_closed.set()
            return data

    def _fill(self, deadline: float) -> bool:
        """Append received bytes to the buffer; False on EOF."""
        data = self._recv(deadline)
        self._buffer += data
        return bool(data)

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._current_raw += data
        return data

    def _read_exact(self, size: int, deadline: float) -> bytes:
        while len(self._buffer) < size:
            if not self._fill(deadline):
                raise ConnectionAbortedError("peer closed in the middle of a body")
        return self._take(size)

    def _read_line(self, deadline: float) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise RequestParseError("line too long")
            if not self._fill(deadline):
                raise ConnectionAbortedError("peer closed in the middle of a line")
        return self._take(end + 2)[:-2]

    def wait_readable(self, timeout: float) -> bool:
        """Wait until request bytes (or EOF) are available; False on timeout."""
        deadline = time.monotonic() + min(timeout, MAX_WAIT)
        while True:
            self._check_running()
            if self._buffer:
                return True
            # TLS may hold decrypted bytes that select() can't see.
            if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            readable, _, _ = select.select([self.sock], [], [], min(remaining, POLL_INTERVAL))
            if readable:
                return True

    def read_request(self, timeout: float = 5.0) -> ReceivedRequest | None:
        """Read one complete request (head and body); None on EOF before it.

        Raises:
            TimeoutError: no complete request within `timeout` seconds.
            ConnectionAbortedError: the peer closed in the middle of a request.
            RequestParseError: the bytes are not a valid request.
        """
        self.finish_response()
        deadline = time.monotonic() + min(timeout, MAX_WAIT)
        self._current_raw = bytearray()
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise RequestParseError("request head too long")
            if not self._fill(deadline):
                if not self._buffer:
                    return None
                raise ConnectionAbortedError("peer closed in the middle of a head")
        head = self._take(end + 4)
        method, target, version, headers = _parse_head(head)
        body = self._read_body(headers, deadline)
        request = ReceivedRequest(
            connection=self.index,
            method=method,
            target=target,
            http_version=version,
            headers=headers,
            body=body,
            raw=bytes(self._current_raw),
        )
        checked = validate_with_h11(request.raw)
        if checked != (method, target, body):
            raise RequestParseError(f"h11 disagrees: {checked!r}")
        self._in_flight = True
        self.server.in_flight.enter()
        self.server.record_request(self.record, request)
        return request

    def _read_body(self, headers: list[tuple[bytes, bytes]], deadline: float) -> bytes:
        names = [name for name, _ in headers]
        if b"transfer-encoding" in names:
            if b"content-length" in names:
                raise RequestParseError("both Content-Length and Transfer-Encoding")
            codings = b",".join(v for n, v in headers if n == b"transfer-encoding")
            if codings.strip().lower() != b"chunked":
                raise RequestParseError(f"unsupported transfer coding {codings!r}")
            return self._read_chunked(deadline)
        lengths = {v.strip() for n, v in headers if n == b"content-length"}
        if not lengths:
            return b""
        if len(lengths) > 1:
            raise RequestParseError(f"conflicting Content-Length {lengths!r}")
        (length,) = lengths
        if not length.isdigit():
            raise RequestParseError(f"bad Content-Length {length!r}")
        size = int(length)
        if size > MAX_BODY_BYTES:
            raise RequestParseError("request body too large for the test server")
        return self._read_exact(size, deadline)

    def _read_chunked(self, deadline: float) -> bytes:
        body = bytearray()
        while True:
            size_text = self._read_line(deadline).split(b";", 1)[0].strip()
            if not size_text or not re.fullmatch(rb"[0-9A-Fa-f]+", size_text):
                raise RequestParseError(f"bad chunk size {size_text!r}")
            size = int(size_text, 16)
            if size == 0:
                break
            if len(body) + size > MAX_BODY_BYTES:
                raise RequestParseError("chunked body too large for the test server")
            body += self._read_exact(size, deadline)
            if self._read_exact(2, deadline) != b"\r\n":
                raise RequestParseError("chunk not followed by CRLF")
        # Trailer section: header lines up to an empty line; bounded by the
        # head limit inside _read_line and by the deadline.
        while self._read_line(deadline):
            pass
        return bytes(body)

    def wait_for_peer_close(self, timeout: float = MAX_WAIT) -> bool:
        """Read and discard until the client closes; False on timeout."""
        deadline = time.monotonic() + min(timeout, MAX_WAIT)
        self._buffer.clear()
        with contextlib.suppress(TimeoutError):
            while self._recv(deadline):
                pass
            return True
        return False

    # -- sending and closing ----------------------------------------------

    def respond(self, data: bytes) -> None:
        """Answer the current request with `data` (a whole response)."""
        self.finish_response()
        self.send(data)

    def send(self, data: bytes, timeout: float = 10.0) -> None:
        """Send all of `data`; TimeoutError if the client stops reading."""
        deadline = time.monotonic() + min(timeout, MAX_WAIT)
        view = memoryview(data)
        while view:
            self._check_running()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("server send timed out")
            self.sock.settimeout(min(remaining, POLL_INTERVAL))
            try:
                sent = self.sock.send(view)
            except TimeoutError:
                continue
            view = view[sent:]

    def finish_response(self) -> None:
        """End the current request's in-flight span; call it *before* sending.

        Ending the span before the response's first byte leaves is what makes
        it lie strictly inside the client's use of the connection: once the
        client has the response it may reuse or release the connection at
        once, while this thread may not have been scheduled again yet.
        """
        if self._in_flight:
            self._in_flight = False
            self.server.in_flight.leave()

    def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds` (capped); returns early, True, if stopping."""
        return self.server.stopping.wait(min(seconds, MAX_WAIT))

    def close(self) -> None:
        """Close the socket (FIN). Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self.finish_response()
        try:
            self.sock.close()
        finally:
            self.server.open_connections.leave()
            self.record.closed.set()

    def reset(self) -> None:
        """Abort the connection: SO_LINGER with timeout 0 makes close send RST."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    @property
    def is_closed(self) -> bool:
        return self._closed


def _parse_head(head: bytes) -> tuple[str, str, str, list[tuple[bytes, bytes]]]:
    lines = head[:-4].split(b"\r\n")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        raise RequestParseError(f"bad request line {lines[0]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _HEADER_NAME.fullmatch(name):
            raise RequestParseError(f"bad header line {line!r}")
        value = value.strip(b" \t")
        if b"\r" in value or b"\n" in value or b"\x00" in value:
            raise RequestParseError(f"bad header value {line!r}")
        headers.append((name.lower(), value))
    return (
        match["method"].decode("ascii"),
        match["target"].decode("ascii"),
        "HTTP/" + match["version"].decode("ascii"),
        headers,
    )


class ScriptedServer:
    """A threaded server on 127.0.0.1 running `handler` for each connection.

    Use it as a context manager. `ssl_context` (server side) makes it HTTPS.
    `open_gauge` / `in_flight` may be shared between servers to measure
    concurrency across origins.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        ssl_context: ssl.SSLContext | None = None,
        open_gauge: ConcurrencyGauge | None = None,
        in_flight: ConcurrencyGauge | None = None,
    ) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        #: Connections open on the server side (accept .. server close).
        self.open_connections = open_gauge or ConcurrencyGauge()
        #: Requests received and not yet answered: the span from a request
        #: parsed to the start of its response. It lies inside the client's
        #: "active" span of that connection (the request was sent before, the
        #: response is read after), so its maximum is a lower bound of the
        #: client's concurrency that no close or scheduling race can inflate.
        self.in_flight = in_flight or ConcurrencyGauge()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.records: list[ConnectionRecord] = []
        self._requests: list[ReceivedRequest] = []
        self._connections: list[ServerConnection] = []
        self._threads: list[threading.Thread] = []
        #: Non-I/O exceptions raised by handlers: bugs or client protocol
        #: violations. Reported at teardown.
        self.errors: list[BaseException] = []
        #: I/O errors raised by handlers (peer reset, timeouts): expected in
        #: fault tests; kept for debugging.
        self.io_errors: list[OSError] = []
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self.port = 0

    # -- ledger ----------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.origin

    @property
    def accepted(self) -> int:
        """Number of connections accepted so far."""
        with self.lock:
            return len(self.records)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received so far, in order of arrival."""
        with self.lock:
            return list(self._requests)

    @property
    def max_open(self) -> int:
        return self.open_connections.maximum

    @property
    def max_in_flight(self) -> int:
        return self.in_flight.maximum

    def requests_per_connection(self) -> list[int]:
        """How many requests each accepted connection carried, by index."""
        with self.lock:
            return [len(record.requests) for record in self.records]

    def raw(self, index: int) -> bytes:
        """Every byte received on connection `index`."""
        with self.lock:
            return bytes(self.records[index].raw)

    def total_bytes_received(self) -> int:
        with self.lock:
            return sum(len(record.raw) for record in self.records)

    def record(self, index: int) -> ConnectionRecord:
        with self.lock:
            return self.records[index]

    def record_request(self, record: ConnectionRecord, request: ReceivedRequest) -> None:
        with self.lock:
            record.requests.append(request)
            self._requests.append(request)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        return wait_for(lambda: len(self.requests) >= count, timeout)

    def wait_for_accepted(self, count: int, timeout: float = 5.0) -> bool:
        return wait_for(lambda: self.accepted >= count, timeout)

    def wait_for_closed(self, index: int, timeout: float = 5.0) -> bool:
        """Wait until the server has closed its side of connection `index`."""
        if not self.wait_for_accepted(index + 1, timeout):
            return False
        return self.record(index).closed.wait(min(timeout, MAX_WAIT))

    def wait_for_peer_closed(self, index: int, timeout: float = 5.0) -> bool:
        """Wait until the server has seen the client close connection `index`."""
        if not self.wait_for_accepted(index + 1, timeout):
            return False
        return self.record(index).peer_closed.wait(min(timeout, MAX_WAIT))

    # -- life cycle --------------------------------------------------------

    def __enter__(self) -> ScriptedServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        problems = self.stop()
        if exc_type is None and problems:
            raise AssertionError("test server problems:\n" + "\n".join(problems))

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            listener.settimeout(POLL_INTERVAL)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"accept-{self.port}", daemon=True
        )
        self._accept_thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if not self.stopping.is_set():
                    self.io_errors.append(exc)
                return
            try:
                self._start_handler(sock)
            except BaseException as exc:
                sock.close()
                self.errors.append(exc)
                return

    def _start_handler(self, sock: socket.socket) -> None:
        # Small response bodies must not wait for delayed ACKs.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            # wrap_socket detaches `sock`: the SSLSocket owns the descriptor.
            sock = self.ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        with self.lock:
            record = ConnectionRecord(index=len(self.records))
            self.records.append(record)
            conn = ServerConnection(self, record, sock)
            self._connections.append(conn)
        self.open_connections.enter()
        thread = threading.Thread(
            target=self._run_handler,
            args=(conn,),
            name=f"conn-{self.port}-{record.index}",
            daemon=True,
        )
        with self.lock:
            self._threads.append(thread)
        thread.start()

    def _run_handler(self, conn: ServerConnection) -> None:
        try:
            if isinstance(conn.sock, ssl.SSLSocket):
                conn.sock.settimeout(HANDSHAKE_TIMEOUT)
                conn.sock.do_handshake()
            self.handler(conn)
        except OSError as exc:
            self.io_errors.append(exc)
        except BaseException as exc:
            # Caught (not re-raised) so pytest's unhandled-thread-exception
            # hook stays quiet; reported by __exit__ instead.
            self.errors.append(exc)
        finally:
            conn.close()

    def stop(self) -> list[str]:
        """Stop every thread and close every socket; return problems found."""
        self.stopping.set()
        deadline = time.monotonic() + JOIN_TIMEOUT
        problems: list[str] = []
        if self._accept_thread is not None:
            self._accept_thread.join(max(0.0, deadline - time.monotonic()))
        if self._listener is not None:
            self._listener.close()
        with self.lock:
            threads = list(self._threads)
            connections = list(self._connections)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                problems.append(f"thread {thread.name} did not stop in time")
        for conn in connections:
            # Last resort for a handler that did not finish in time.
            with contextlib.suppress(OSError):
                conn.close()
        problems.extend(f"handler error: {exc!r}" for exc in self.errors)
        return problems


def render_response(
    status: int = 200,
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    *,
    http_version: str = "1.1",
    reason: str | None = None,
    chunked: bool = False,
    head: bool = False,
    trailers: list[tuple[str, str]] | None = None,
) -> bytes:
    """Serialize a response; adds Content-Length (or chunked framing, ended
    by `trailers` if given).

    With `head`, the framing headers describe `body` but the body is left out,
    as a response to HEAD must.
    """
    phrase = reason if reason is not None else _REASONS.get(status, "Whatever")
    lines = [f"HTTP/{http_version} {status} {phrase}"]
    given = {name.lower() for name, _ in headers or []}
    lines += [f"{name}: {value}" for name, value in headers or []]
    no_body = status in (204, 304) or 100 <= status < 200
    if not no_body and "content-length" not in given and "transfer-encoding" not in given:
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append(f"Content-Length: {len(body)}")
    out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if head or no_body:
        return out
    if chunked:
        half = len(body) // 2
        pieces = [piece for piece in (body[:half], body[half:]) if piece]
        out += b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
        fields = "".join(f"{name}: {value}\r\n" for name, value in trailers or [])
        return out + b"0\r\n" + fields.encode("latin-1") + b"\r\n"
    return out + body


_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    500: "Internal Server Error",
}
