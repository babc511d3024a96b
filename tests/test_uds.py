"""Unix domain sockets: every request over one socket file, pooled and kept alive."""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

import pytest

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = [
    pytest.mark.both_clients,
    pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no AF_UNIX here"),
]


class UnixServer:
    """A keep-alive HTTP/1.1 server on a socket file: answers each request
    with its Host header and target, counts connections."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.accepted = 0
        self.requests: list[bytes] = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(8)
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(target=self._accept_loop)
        self._accept_thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            thread = threading.Thread(target=self._serve, args=(sock,))
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        buffer = b""
        with sock:
            sock.settimeout(0.1)
            while not self._stop.is_set():
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                buffer += data
                while b"\r\n\r\n" in buffer:
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    self.requests.append(head)
                    target = head.split(b" ")[1]
                    host = next(
                        line.split(b":", 1)[1].strip()
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"host:")
                    )
                    body = host + b" " + target
                    sock.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                    )

    def close(self) -> None:
        self._stop.set()
        self._accept_thread.join(5)
        for thread in self._threads:
            thread.join(5)
        self._listener.close()


@pytest.fixture
def unix_server(tmp_path: Path) -> Iterator[UnixServer]:
    server = UnixServer(str(tmp_path / "http.sock"))
    try:
        yield server
    finally:
        server.close()


def test_requests_go_over_the_socket_and_are_kept_alive(
    unix_server: UnixServer, make_client: Callable[..., rawkeep.Client]
) -> None:
    client = make_client(uds=unix_server.path)
    bodies = [client.get(f"http://docker.local/v1/items/{i}").content for i in range(3)]
    assert bodies == [b"docker.local /v1/items/%d" % i for i in range(3)]
    assert unix_server.accepted == 1
    stats = client.pool_stats()
    assert (stats.opened, stats.reused) == (1, 2)


def test_missing_socket_is_a_connect_error(
    tmp_path: Path, make_client: Callable[..., rawkeep.Client]
) -> None:
    client = make_client(uds=str(tmp_path / "absent.sock"))
    with pytest.raises(rawkeep.ConnectError, match=r"absent\.sock"):
        client.get("http://localhost/")
    assert client.pool_stats().active == 0


def test_uds_with_a_proxy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="proxy"):
        rawkeep.Client(uds=str(tmp_path / "s"), proxy="http://127.0.0.1:3128")


def test_uds_must_be_a_path() -> None:
    with pytest.raises(TypeError):
        rawkeep.Client(uds=42)  # type: ignore[arg-type]


def test_uds_accepts_path_objects(
    unix_server: UnixServer, make_client: Callable[..., rawkeep.Client]
) -> None:
    from pathlib import Path

    client = make_client(uds=Path(unix_server.path))
    assert client.get("http://x/").content == b"x /"
