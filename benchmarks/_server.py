"""The benchmark's server: nginx with its own config, prefix and ports on 127.0.0.1.

One worker process (so the server uses at most one of the machine's cores
and the client keeps the other), keep-alive limits far beyond anything a run
sends (``keepalive_requests`` defaults to 1000 since nginx 1.19.10: a client
would otherwise be made to reconnect mid-run), ``access_log off`` and
``sendfile on``. Locations, on both the http and the https port:

``/small``    200 with the 13-byte body ``Hello, world!`` (``return``: no disk).
``/big.bin``  a 64 MiB static file, generated at start, sent with sendfile.
``/upload``   reads the whole request body, then answers 204. A plain
              ``return 204`` would answer *before* reading the body (nginx
              discards it lazily), and a client that watches for early
              responses would then stop sending. ``mirror_request_body on``
              makes nginx read the body first (it is buffered to a temp file
              in the prefix and dropped); the static handler then fails with
              404, which ``error_page ... =204`` turns into the answer.
``/status``   ``stub_status`` (http only): its ``accepts`` counter tells how
              many TCP connections a client really opened.

The TLS certificate comes from a CA made at start (``trustme`` when it is
installed, else the ``openssl`` command).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["BIG_SIZE", "SMALL_BODY", "Nginx", "make_payload"]

HOST: Final = "127.0.0.1"
SMALL_BODY: Final = b"Hello, world!"
#: Size of the download file and of the upload body.
BIG_SIZE: Final = 64 * 1024 * 1024

_CONFIG: Final = """\
{user}worker_processes 1;
{affinity}error_log {prefix}/error.log error;
pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    log_not_found off;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 100000000;
    keepalive_timeout 3600s;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    default_type application/octet-stream;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate {prefix}/server.pem;
    ssl_certificate_key {prefix}/server.key;

    server {{
        listen {host}:{http_port};
        listen {host}:{https_port} ssl;
        root {prefix}/html;
        location = /small {{ default_type text/plain; return 200 "Hello, world!"; }}
        location = /big.bin {{ }}
        location = /upload {{
            mirror /_mirror;
            mirror_request_body on;
            error_page 404 405 =204 /_empty;
        }}
        location = /_mirror {{ internal; return 204; }}
        location = /_empty {{ internal; return 204; }}
{status}    }}
}}
"""

_STATUS_LOCATION: Final = "        location = /status { stub_status; }\n"


def make_payload(size: int = BIG_SIZE) -> bytes:
    """``size`` bytes of a repeating pattern (cheap to make, not compressible
    by accident: nothing here compresses anyway)."""
    pattern = bytes(range(256)) * 4096  # 1 MiB
    whole, rest = divmod(size, len(pattern))
    return pattern * whole + pattern[:rest]


@dataclass
class Nginx:
    """A private nginx instance; use it as a context manager.

    Attributes:
        http_port, https_port: where it listens on 127.0.0.1.
        ca_path: PEM file of the CA that signed its certificate.
        version: e.g. "1.22.1".
        has_stub_status: whether connection counts are available.
        ca_tool: "auto" (trustme if installed, else the openssl command),
            "trustme" or "openssl"; after ``start``, the one that was used.
        worker_cpu: pin the worker to this CPU (None: let the OS place it).
    """

    binary: str = "nginx"
    http_port: int = 0
    https_port: int = 0
    prefix: Path = field(default_factory=Path)
    ca_path: str = ""
    version: str = "?"
    has_stub_status: bool = False
    ca_tool: str = "auto"
    worker_cpu: int | None = None
    _process: subprocess.Popen[bytes] | None = None
    _tempdir: str | None = None
    _questions: int = 1  # the connection that saw nginx listening

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        path = shutil.which(self.binary) or (
            "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
        )
        if path is None:
            raise RuntimeError("nginx not found: apt-get install nginx (see docs/benchmarks.md)")
        self.binary = path
        info = subprocess.run([path, "-V"], capture_output=True, text=True, check=True).stderr
        match = re.search(r"nginx/(\S+)", info)
        self.version = match.group(1) if match else "?"
        self.has_stub_status = "http_stub_status_module" in info
        self._tempdir = tempfile.mkdtemp(prefix="rawkeep-bench-")
        self.prefix = Path(self._tempdir)
        (self.prefix / "html").mkdir()
        with open(self.prefix / "html" / "big.bin", "wb") as file:
            file.write(make_payload())
        self.ca_path, self.ca_tool = _make_certificates(self.prefix, self.ca_tool)
        for attempt in range(5):
            self.http_port, self.https_port = _free_port(), _free_port()
            self._write_config()
            try:
                self._launch()
                break
            except RuntimeError:
                if attempt == 4:
                    raise
        try:
            self._check_upload_sink()
        except BaseException:
            self.stop()
            raise

    def _check_upload_sink(self) -> None:
        """Half a body, a pause, then the rest: nginx must say nothing until
        the last byte is in (else the upload suite would measure less than
        a whole upload), then answer 204 and keep the connection."""
        size = 4 * 1024 * 1024
        head = f"POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Length: {size}\r\n\r\n"
        with socket.create_connection((HOST, self.http_port), 5) as sock:
            sock.sendall(head.encode() + bytes(size // 2))
            readable, _, _ = select.select([sock], [], [], 0.3)
            if readable:
                raise RuntimeError("nginx answered /upload before the whole body was sent")
            sock.sendall(bytes(size - size // 2))
            answer = sock.recv(4096)
            if not answer.startswith(b"HTTP/1.1 204") or b"keep-alive" not in answer.lower():
                raise RuntimeError(f"unexpected answer from /upload: {answer[:80]!r}")
        self._questions += 1

    def _write_config(self) -> None:
        # As root, nginx switches its worker to "nobody", which could not
        # read our private prefix: keep it root (it only listens on loopback).
        user = "user root;\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
        affinity = (
            "" if self.worker_cpu is None else f"worker_cpu_affinity 1{'0' * self.worker_cpu};\n"
        )
        config = _CONFIG.format(
            user=user,
            affinity=affinity,
            prefix=self.prefix,
            host=HOST,
            http_port=self.http_port,
            https_port=self.https_port,
            status=_STATUS_LOCATION if self.has_stub_status else "",
        )
        (self.prefix / "nginx.conf").write_text(config)

    def _launch(self) -> None:
        command = [
            self.binary,
            "-p",
            str(self.prefix),
            "-c",
            str(self.prefix / "nginx.conf"),
            "-e",
            str(self.prefix / "error.log"),
            "-g",
            "daemon off;",
        ]
        # A session of its own: Ctrl-C reaches the benchmark, which then
        # stops nginx in order (and removes the prefix) in ``stop``.
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                self._process = None
                raise RuntimeError(f"nginx exited at start: {err.strip()}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.http_port), 1):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("nginx did not start listening within 10 s")

    def stop(self) -> None:
        """Stop nginx (fast shutdown) and remove its prefix. Idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if process is not None and process.stderr is not None:
            process.stderr.close()
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def __enter__(self) -> Nginx:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- questions ------------------------------------------------------------

    def url(self, path: str, *, tls: bool = False) -> str:
        if tls:
            return f"https://{HOST}:{self.https_port}{path}"
        return f"http://{HOST}:{self.http_port}{path}"

    def accepts(self) -> int | None:
        """nginx's count of accepted connections so far, less those opened
        by these questions themselves (so that differences count only the
        clients' connections); None without stub_status."""
        if not self.has_stub_status:
            return None
        self._questions += 1
        with socket.create_connection((HOST, self.http_port), 5) as sock:
            sock.sendall(b"GET /status HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        match = re.search(rb"server accepts handled requests\s+(\d+)", data)
        if match is None:
            raise RuntimeError(f"unexpected stub_status answer: {data!r}")
        return int(match.group(1)) - self._questions


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _make_certificates(prefix: Path, tool: str) -> tuple[str, str]:
    """Write server.pem/server.key for 127.0.0.1 and return (CA path, tool)."""
    ca_path = prefix / "ca.pem"
    try:
        if tool == "openssl":
            raise ImportError("openssl asked for")
        import trustme
    except ImportError:
        if tool == "trustme":
            raise
        _openssl_certificates(prefix)
        return str(ca_path), "openssl"
    ca = trustme.CA()
    cert = ca.issue_cert(HOST, "localhost")
    ca.cert_pem.write_to_path(str(ca_path))
    cert.private_key_pem.write_to_path(str(prefix / "server.key"))
    with open(prefix / "server.pem", "wb") as file:
        for blob in cert.cert_chain_pems:
            file.write(blob.bytes())
    return str(ca_path), "trustme"


def _openssl_certificates(prefix: Path) -> None:
    """The same CA and server certificate as trustme's, with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("neither trustme nor the openssl command is available for TLS")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=prefix, check=True, capture_output=True)

    (prefix / "san.cnf").write_text(
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "extendedKeyUsage=serverAuth\n"
    )
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=rawkeep bench CA")  # fmt: skip
    run("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.cnf")  # fmt: skip
