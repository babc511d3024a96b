"""Real third-party servers, started on free 127.0.0.1 ports for one test each.

Each fixture writes the server's configuration (and, for the Python servers,
a tiny application) into the test's temporary directory, starts it with
`servers.processes.ServerProcess`, and stops it by pid at teardown. Every
server answers ``GET /anything`` with the request target as the body, and
logs each request with a key that identifies its TCP connection:

============== ============================================================
server         connection key in its own log
============== ============================================================
nginx          ``$connection`` (nginx's connection serial number), plus
               ``$connection_requests``; ``stub_status`` "accepts" counter
gunicorn       the client's port (``%({REMOTE_PORT}e)s`` in the access log)
uvicorn        the client's port (its access log prints ``host:port``)
http.server    a serial number per accepted connection (the handler logs it)
Apache httpd   the client's port, plus ``%k`` (requests before it on the
               connection) and the request's ``Connection`` header
============== ============================================================

The port is a connection key only for a sequential client (the requests of
one connection are consecutive); the tests are sequential.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from servers.processes import ServerProcess, free_port

from .keepalive_model import Policy

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import trustme

#: Debian installs nginx in /usr/sbin, which a non-root PATH may lack.
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")

#: Seconds to wait for a server's log to show every request.
LOG_TIMEOUT = 5.0


@dataclass(frozen=True)
class Served:
    """One request as a server logged it."""

    target: str
    connection: str
    #: The request's position on its connection (1-based), when logged.
    position: int | None = None
    #: Its ``Connection`` header as the server saw it ("-": none), when logged.
    connection_header: str | None = None


@dataclass
class InteropServer:
    """A running server, what it promises, and how to read its log."""

    name: str
    url: str
    policy: Policy
    process: ServerProcess
    read_log: Callable[[], list[Served]]
    #: For https: the CA bundle to verify it with, and the TLS versions
    #: its configuration allows.
    verify: str | bool = True
    tls_versions: frozenset[str] = frozenset()
    #: nginx only: its connection counter and its "client closed" log.
    accepts: Callable[[], int] | None = None
    client_closed: Callable[[], set[str]] | None = None

    def wait_for_log(self, count: int, prefix: str) -> list[Served]:
        """The logged requests whose target starts with `prefix`, once there
        are `count` of them (or whatever is there after LOG_TIMEOUT)."""
        deadline = time.monotonic() + LOG_TIMEOUT
        while True:
            served = [s for s in self.read_log() if s.target.startswith(prefix)]
            if len(served) >= count or time.monotonic() > deadline:
                return served
            time.sleep(0.02)


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


@pytest.fixture
def servers_stack() -> Iterator[contextlib.ExitStack]:
    """Stops every server a test started, last started first."""
    with contextlib.ExitStack() as stack:
        yield stack


# -- nginx -----------------------------------------------------------------------

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    log_format conn '$connection $connection_requests $request_uri $status';
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port}{ssl};
        {tls}
        keepalive_timeout {keepalive_timeout};
        keepalive_requests {keepalive_requests};
        access_log {dir}/access.log conn;
        location / {{
            default_type text/plain;
            return 200 "$request_uri";
        }}
    }}
    server {{
        listen 127.0.0.1:{status_port};
        access_log {dir}/status.log conn;
        location = /status {{ stub_status; }}
    }}
}}
"""

_CLIENT_CLOSED = re.compile(r"\*(\d+) client \S+ closed keepalive connection")
_ACCEPTS = re.compile(rb"server accepts handled requests\s+(\d+)")


def _nginx_accepts(port: int) -> int:
    """nginx's own count of accepted connections (this query's included)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/status")
        body = conn.getresponse().read()
    finally:
        conn.close()
    match = _ACCEPTS.search(body)
    assert match is not None, body
    return int(match.group(1))


@pytest.fixture
def start_nginx(
    tmp_path: Path,
    servers_stack: contextlib.ExitStack,
    tls_server_cert: trustme.LeafCert,
    ca_pem_path: str,
) -> Callable[..., InteropServer]:
    """Start nginx: ``start_nginx(tls=..., keepalive_timeout="1s", keepalive_requests=1000)``."""
    if NGINX is None:
        pytest.skip("nginx is not installed (apt-get install nginx; .ci/run installs it)")
    assert NGINX is not None
    serials = itertools.count()

    def start(
        *,
        tls: bool,
        keepalive_timeout: str = "1s",
        keepalive_requests: int = 1000,
        ssl_protocols: str | None = None,
    ) -> InteropServer:
        workdir = tmp_path / f"nginx-{next(serials)}"
        workdir.mkdir()
        tls_lines = ""
        if tls:
            cert, key = workdir / "cert.pem", workdir / "key.pem"
            tls_server_cert.cert_chain_pems[0].write_to_path(str(cert))
            tls_server_cert.private_key_pem.write_to_path(str(key))
            tls_lines = f"ssl_certificate {cert}; ssl_certificate_key {key};"
            if ssl_protocols is not None:
                tls_lines += f" ssl_protocols {ssl_protocols};"
        port, status_port = free_port(), free_port()
        config = workdir / "nginx.conf"
        config.write_text(
            NGINX_CONF.format(
                dir=workdir,
                port=port,
                ssl=" ssl" if tls else "",
                tls=tls_lines,
                keepalive_timeout=keepalive_timeout,
                keepalive_requests=keepalive_requests,
                status_port=status_port,
            )
        )
        process = ServerProcess(
            "nginx", [NGINX, "-p", str(workdir), "-c", str(config)], port=port, workdir=workdir
        )
        servers_stack.enter_context(process)
        timeouts = [float(part.rstrip("s")) for part in keepalive_timeout.split()]

        def read_log() -> list[Served]:
            served = []
            for line in _lines(workdir / "access.log"):
                connection, position, target, _status = line.split(" ")
                served.append(Served(target, connection, int(position)))
            return served

        def client_closed() -> set[str]:
            # Connections of stub_status queries are nginx's too: left out.
            status = {line.split(" ")[0] for line in _lines(workdir / "status.log")}
            return {
                match.group(1)
                for line in _lines(workdir / "error.log")
                if (match := _CLIENT_CLOSED.search(line)) and match.group(1) not in status
            }

        return InteropServer(
            name="nginx",
            url=f"{'https' if tls else 'http'}://127.0.0.1:{port}",
            policy=Policy(
                idle_timeout=timeouts[0],
                max_requests=keepalive_requests,
                advertised_timeout=timeouts[1] if len(timeouts) > 1 else None,
            ),
            process=process,
            read_log=read_log,
            verify=ca_pem_path if tls else True,
            # nginx's default protocols: up to TLS 1.2 before 1.23.4, 1.3 since.
            tls_versions=frozenset(
                (ssl_protocols or "TLSv1.2 TLSv1.3").split() if tls else ["None"]
            ),
            accepts=lambda: _nginx_accepts(status_port),
            client_closed=client_closed,
        )

    return start


# -- gunicorn --------------------------------------------------------------------

WSGI_APP = '''\
"""Answers every request with its target."""


def app(environ, start_response):
    query = environ.get("QUERY_STRING")
    body = (environ["PATH_INFO"] + ("?" + query if query else "")).encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

_GUNICORN_LINE = re.compile(r"^GET (\S+) HTTP/1\.1 (\d+) 200$")


@pytest.fixture
def start_gunicorn(
    tmp_path: Path, servers_stack: contextlib.ExitStack
) -> Callable[..., InteropServer]:
    """Start gunicorn: ``start_gunicorn(worker="sync")`` or ``worker="gthread"``."""
    pytest.importorskip("gunicorn")

    def start(*, worker: str, keep_alive: int = 1) -> InteropServer:
        workdir = tmp_path / f"gunicorn-{worker}"
        workdir.mkdir()
        (workdir / "wsgi_app.py").write_text(WSGI_APP)
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--worker-class",
            worker,
            # More than one thread would silently turn "sync" into "gthread".
            "--threads",
            "2" if worker == "gthread" else "1",
            "--keep-alive",
            str(keep_alive),
            "--no-control-socket",
            "--worker-tmp-dir",
            str(workdir),
            "--access-logfile",
            str(workdir / "access.log"),
            "--access-logformat",
            "%(r)s %({REMOTE_PORT}e)s %(s)s",
            "--error-logfile",
            str(workdir / "error.log"),
            "--chdir",
            str(workdir),
            "wsgi_app:app",
        ]
        process = ServerProcess(f"gunicorn-{worker}", argv, port=port, workdir=workdir)
        servers_stack.enter_context(process)

        def read_log() -> list[Served]:
            served = []
            for line in _lines(workdir / "access.log"):
                match = _GUNICORN_LINE.match(line)
                assert match is not None, line
                served.append(Served(match.group(1), match.group(2)))
            return served

        # The sync worker answers every request with Connection: close
        # (gunicorn docs, "sync": no keep-alive); gthread keeps connections
        # for --keep-alive seconds.
        policy = (
            Policy(close_every_response=True)
            if worker == "sync"
            else Policy(idle_timeout=float(keep_alive))
        )
        return InteropServer(
            name=f"gunicorn-{worker}",
            url=f"http://127.0.0.1:{port}",
            policy=policy,
            process=process,
            read_log=read_log,
        )

    return start


# -- uvicorn ---------------------------------------------------------------------

ASGI_APP = '''\
"""Answers every request with its target."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    query = scope["query_string"].decode("latin-1")
    body = (scope["raw_path"].decode("latin-1").split("?")[0] + ("?" + query if query else ""))
    body = body.encode("latin-1")
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
'''

_UVICORN_LINE = re.compile(r'127\.0\.0\.1:(\d+) - "GET (\S+) HTTP/1\.1" 200')


@pytest.fixture
def start_uvicorn(
    tmp_path: Path, servers_stack: contextlib.ExitStack
) -> Callable[..., InteropServer]:
    """Start uvicorn: ``start_uvicorn(http="h11")`` or ``http="httptools"``."""
    pytest.importorskip("uvicorn")

    def start(*, http: str, keep_alive: int = 1) -> InteropServer:
        if http == "httptools":
            pytest.importorskip("httptools")
        workdir = tmp_path / f"uvicorn-{http}"
        workdir.mkdir()
        (workdir / "asgi_app.py").write_text(ASGI_APP)
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--http",
            http,
            "--loop",
            "asyncio",
            "--lifespan",
            "off",
            "--timeout-keep-alive",
            str(keep_alive),
            "--no-use-colors",
            "--app-dir",
            str(workdir),
            "asgi_app:app",
        ]
        process = ServerProcess(f"uvicorn-{http}", argv, port=port, workdir=workdir)
        servers_stack.enter_context(process)

        def read_log() -> list[Served]:
            # uvicorn's access log goes to stdout, its other messages to stderr.
            return [
                Served(match.group(2), match.group(1))
                for line in _lines(process.stdout_path)
                if (match := _UVICORN_LINE.search(line))
            ]

        return InteropServer(
            name=f"uvicorn-{http}",
            url=f"http://127.0.0.1:{port}",
            policy=Policy(idle_timeout=float(keep_alive)),
            process=process,
            read_log=read_log,
        )

    return start


# -- the standard library's http.server ------------------------------------------------

STDLIB_SERVER = '''\
"""http.server answering every GET with its target; logs one line per request:
"<connection serial> <position on the connection> <client port> <target>"."""

import itertools
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, PROTOCOL, IDLE, LOG = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
SERIALS = itertools.count(1)
LOCK = threading.Lock()
OUT = open(LOG, "a", buffering=1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = PROTOCOL
    # StreamRequestHandler applies this to the socket: an HTTP/1.1 connection
    # idle this long makes handle_one_request time out and close it.
    timeout = IDLE or None
    # Headers and body go out in two writes: without TCP_NODELAY the second
    # waits for the client's delayed ACK (40 ms a response on Linux).
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        with LOCK:
            self.serial = next(SERIALS)
        self.served = 0

    def do_GET(self):
        # Logged before answering: the client sends its next request (maybe
        # on a new connection, handled by another thread) only after the
        # answer, so the log stays in request order.
        self.served += 1
        with LOCK:
            OUT.write(f"{self.serial} {self.served} {self.client_address[1]} {self.path}\\n")
        body = self.path.encode("latin-1")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass  # the ledger above is the access log


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
'''


@pytest.fixture
def start_stdlib(
    tmp_path: Path, servers_stack: contextlib.ExitStack
) -> Callable[..., InteropServer]:
    """Start http.server: ``start_stdlib(protocol="HTTP/1.0")`` or ``"HTTP/1.1"``."""

    def start(*, protocol: str, idle_timeout: float = 1.0) -> InteropServer:
        workdir = tmp_path / f"stdlib-{protocol.replace('/', '')}"
        workdir.mkdir()
        script = workdir / "stdlib_server.py"
        script.write_text(STDLIB_SERVER)
        log = workdir / "access.log"
        port = free_port()
        timeout = idle_timeout if protocol == "HTTP/1.1" else 0.0
        argv = [sys.executable, str(script), str(port), protocol, str(timeout), str(log)]
        process = ServerProcess("http.server", argv, port=port, workdir=workdir)
        servers_stack.enter_context(process)

        def read_log() -> list[Served]:
            served = []
            for line in _lines(log):
                serial, position, _port, target = line.split(" ")
                served.append(Served(target, serial, int(position)))
            return served

        # HTTP/1.0: BaseHTTPRequestHandler closes after every response (and
        # says HTTP/1.0, which rawkeep never reuses). HTTP/1.1: persistent
        # until the socket timeout above.
        policy = (
            Policy(http10=True) if protocol == "HTTP/1.0" else Policy(idle_timeout=idle_timeout)
        )
        return InteropServer(
            name=f"http.server-{protocol}",
            url=f"http://127.0.0.1:{port}",
            policy=policy,
            process=process,
            read_log=read_log,
        )

    return start


# -- Apache httpd ----------------------------------------------------------------

#: Debian installs apache2 in /usr/sbin, with its modules in /usr/lib/apache2.
APACHE = shutil.which("apache2") or shutil.which("apache2", path="/usr/sbin:/sbin")
APACHE_MODULES = Path("/usr/lib/apache2/modules")

APACHE_CONF = """\
ServerRoot "{dir}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {dir}/httpd.pid
DefaultRuntimeDir {dir}
ErrorLog {dir}/error.log
LogLevel warn
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule lua_module {modules}/mod_lua.so
{user}
KeepAlive On
KeepAliveTimeout {keep_alive_timeout}
MaxKeepAliveRequests {max_keep_alive_requests}
LogFormat "%{{remote}}p %k %U%q %>s %{{Connection}}i" conn
CustomLog {dir}/access.log conn
DocumentRoot {dir}
<Directory {dir}>
    Require all granted
</Directory>
LuaMapHandler ^/ {dir}/echo.lua handle
"""

#: Answers every request with its target (a POST's body is read first).
APACHE_LUA = """\
function handle(r)
  r.content_type = "text/plain"
  if r.method == "POST" then r:requestbody() end
  r:puts(r.unparsed_uri)
  return apache2.OK
end
"""


@pytest.fixture
def start_apache(servers_stack: contextlib.ExitStack) -> Callable[..., InteropServer]:
    """Start Apache httpd (event MPM):
    ``start_apache(keep_alive_timeout=1, max_keep_alive_requests=100)``.

    Its log keys a connection by the client's port, with ``%k`` (the
    keep-alive requests before this one on the connection) as position.
    """
    if APACHE is None or not (APACHE_MODULES / "mod_lua.so").exists():
        pytest.skip("Apache httpd is not installed (apt-get install apache2; .ci/run does)")
    assert APACHE is not None
    serials = itertools.count()

    def start(*, keep_alive_timeout: int = 1, max_keep_alive_requests: int = 100) -> InteropServer:
        # Started as root, Apache's workers run as nobody, and read the
        # handler from this directory: not under the test's private tmp_path.
        workdir = Path(tempfile.mkdtemp(prefix=f"rawkeep-apache-{next(serials)}-"))
        servers_stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        workdir.chmod(0o755)
        (workdir / "echo.lua").write_text(APACHE_LUA)
        port = free_port()
        root = os.geteuid() == 0
        config = workdir / "httpd.conf"
        config.write_text(
            APACHE_CONF.format(
                dir=workdir,
                port=port,
                modules=APACHE_MODULES,
                user="User nobody\nGroup nogroup" if root else "",
                keep_alive_timeout=keep_alive_timeout,
                max_keep_alive_requests=max_keep_alive_requests,
            )
        )
        argv = [APACHE, "-f", str(config), "-DFOREGROUND"]
        process = ServerProcess("apache", argv, port=port, workdir=workdir)
        servers_stack.enter_context(process)

        def read_log() -> list[Served]:
            served = []
            for line in _lines(workdir / "access.log"):
                client_port, before, target, _status, header = line.split(" ", 4)
                served.append(Served(target, client_port, int(before) + 1, header))
            return served

        # Apache announces "Keep-Alive: timeout=T, max=M" to a request that
        # carries "Connection: keep-alive" (rawkeep's first request on each
        # connection), and closes after the M+1-th response: M *further*
        # requests after the announcing one.
        return InteropServer(
            name="apache",
            url=f"http://127.0.0.1:{port}",
            policy=Policy(
                idle_timeout=keep_alive_timeout,
                max_requests=max_keep_alive_requests + 1,
                advertised_timeout=keep_alive_timeout,
            ),
            process=process,
            read_log=read_log,
        )

    return start
