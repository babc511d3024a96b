"""Plain sockets: timeouts kept by the kernel, and the idle probe.

On Linux a plain connection's socket stays blocking and carries its read
and write timeouts as SO_RCVTIMEO / SO_SNDTIMEO (one system call per read
or write instead of a poll() before each). These tests pin down that every
timeout still means what the docs say: a bound on each wait, changed per
call, None for "wait forever", 0 for "never wait". The idle probe
(TCP_INFO on Linux TCP, poll() elsewhere) must see exactly what poll() sees:
unread bytes, a FIN, a reset.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
import time
from typing import TYPE_CHECKING

import pytest

import rawkeep
from rawkeep._socket import Stream, connect, connect_unix

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="kernel timeouts are Linux-only")


@pytest.fixture
def pair() -> Iterator[tuple[Stream, socket.socket]]:
    """A rawkeep stream connected to a plain server-side socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    stream = connect("127.0.0.1", listener.getsockname()[1], timeout=5.0)
    peer, _ = listener.accept()
    listener.close()
    try:
        yield stream, peer
    finally:
        stream.close()
        peer.close()


def _kernel_timeout(stream: Stream, option: int) -> float:
    raw = stream._sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("@ll"))
    seconds, micros = struct.unpack("@ll", raw)
    return seconds + micros / 1e6


def _send_later(peer: socket.socket, data: bytes, delay: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay), peer.sendall(data)))
    thread.start()
    return thread


@linux_only
def test_plain_socket_is_blocking_with_timeouts_in_the_kernel(
    pair: tuple[Stream, socket.socket],
) -> None:
    stream, peer = pair
    assert stream._sock.gettimeout() is None  # no poll() before each call
    stream.send_all(b"x", 2.5)
    peer.sendall(b"y")
    assert stream.recv(10, 1.25) == b"y"
    # The kernel keeps them in clock ticks (a few ms each).
    assert _kernel_timeout(stream, socket.SO_SNDTIMEO) == pytest.approx(2.5, abs=0.02)
    assert _kernel_timeout(stream, socket.SO_RCVTIMEO) == pytest.approx(1.25, abs=0.02)
    assert peer.recv(10) == b"x"


def test_read_timeout_bounds_each_wait(pair: tuple[Stream, socket.socket]) -> None:
    stream, _ = pair
    started = time.monotonic()
    with pytest.raises(rawkeep.ReadTimeout, match=r"read timed out after 0\.2 s"):
        stream.recv(10, 0.2)
    assert 0.15 < time.monotonic() - started < 2.0


def test_none_after_a_timeout_waits_as_long_as_it_takes(
    pair: tuple[Stream, socket.socket],
) -> None:
    stream, peer = pair
    with pytest.raises(rawkeep.ReadTimeout):
        stream.recv(10, 0.05)
    sender = _send_later(peer, b"late", 0.4)  # longer than the earlier timeout
    started = time.monotonic()
    assert stream.recv(10, None) == b"late"
    assert time.monotonic() - started >= 0.3
    sender.join(5)


def test_read_and_write_timeouts_are_kept_apart(pair: tuple[Stream, socket.socket]) -> None:
    stream, peer = pair
    stream.send_all(b"ping", 0.05)  # a short write timeout must not cut the read
    sender = _send_later(peer, b"pong", 0.3)
    assert stream.recv(10, 5.0) == b"pong"
    sender.join(5)


def test_zero_read_timeout_never_waits(pair: tuple[Stream, socket.socket]) -> None:
    stream, peer = pair
    started = time.monotonic()
    with pytest.raises(rawkeep.ReadTimeout):
        stream.recv(10, 0)
    assert time.monotonic() - started < 0.1
    peer.sendall(b"ready")
    deadline = time.monotonic() + 5
    while not stream.is_readable() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.recv(10, 0) == b"ready"


def test_zero_write_timeout_fails_at_once_on_a_full_buffer(
    pair: tuple[Stream, socket.socket],
) -> None:
    stream, _ = pair  # the peer never reads
    started = time.monotonic()
    with pytest.raises(rawkeep.WriteTimeout):
        stream.send_all(bytes(64 * 1024 * 1024), 0)
    assert time.monotonic() - started < 1.0


def test_write_timeout_bounds_a_stalled_send(pair: tuple[Stream, socket.socket]) -> None:
    stream, _ = pair
    started = time.monotonic()
    with pytest.raises(rawkeep.WriteTimeout, match=r"write timed out after 0\.2 s"):
        stream.send_all(bytes(64 * 1024 * 1024), 0.2)
    assert 0.15 < time.monotonic() - started < 3.0


def test_reset_while_reading_is_a_remote_protocol_error(
    pair: tuple[Stream, socket.socket],
) -> None:
    stream, peer = pair
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()  # RST
    with pytest.raises(rawkeep.RemoteProtocolError, match="connection lost while reading"):
        stream.recv(10, 1.0)


@pytest.mark.parametrize("timeout", [1e-9, 1e12])
def test_extreme_timeouts_are_accepted(pair: tuple[Stream, socket.socket], timeout: float) -> None:
    stream, peer = pair
    peer.sendall(b"data")
    assert stream.recv(10, timeout) == b"data"


# -- the idle probe -------------------------------------------------------------


def _settle(predicate: Callable[[], bool]) -> bool:
    """Wait (up to 5 s) for something the peer did to reach this socket."""
    deadline = time.monotonic() + 5
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_probe_sees_nothing_on_a_quiet_connection(pair: tuple[Stream, socket.socket]) -> None:
    stream, peer = pair
    stream.send_all(b"request", 1.0)
    peer.sendall(b"answer")
    assert stream.recv(6, 1.0) == b"answer"  # everything that came was read
    assert not stream.is_readable()


def test_probe_sees_bytes_nobody_read(pair: tuple[Stream, socket.socket]) -> None:
    stream, peer = pair
    peer.sendall(b"unasked")
    assert _settle(stream.is_readable)
    assert stream.recv(3, 1.0) == b"una"
    assert stream.is_readable()  # four bytes still wait
    assert stream.recv(10, 1.0) == b"sked"
    assert not stream.is_readable()


def test_probe_sees_the_peer_close(pair: tuple[Stream, socket.socket]) -> None:
    stream, peer = pair
    peer.close()  # FIN
    assert _settle(stream.is_readable)
    assert stream.recv(10, 1.0) == b""


def test_probe_sees_a_reset(pair: tuple[Stream, socket.socket]) -> None:
    stream, peer = pair
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()  # RST
    assert _settle(stream.is_readable)


def test_probe_of_a_closed_stream_says_readable(pair: tuple[Stream, socket.socket]) -> None:
    stream, _ = pair
    stream.close()
    assert stream.is_readable()


@linux_only
def test_plain_tcp_probe_is_tcp_info(pair: tuple[Stream, socket.socket]) -> None:
    stream, peer = pair
    assert stream._tcp_probe  # getsockopt: no GIL release, unlike poll()
    peer.sendall(b"xy")
    assert _settle(stream.is_readable)
    assert stream._tcp_probe  # the kernel had the byte count: no fallback


def test_unix_socket_probe_uses_poll(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    stream = connect_unix(path, timeout=5.0)
    peer, _ = listener.accept()
    try:
        assert not stream._tcp_probe
        assert not stream.is_readable()
        peer.sendall(b"z")
        assert _settle(stream.is_readable)
    finally:
        stream.close()
        peer.close()
        listener.close()


@linux_only
def test_probe_falls_back_to_poll_when_tcp_info_disagrees(
    pair: tuple[Stream, socket.socket],
) -> None:
    stream, peer = pair
    peer.sendall(b"abc")
    assert stream.recv(3, 1.0) == b"abc"
    stream._received = 0  # as if the kernel's count could not be trusted
    assert not stream.is_readable()  # poll() was asked, and said no
    assert not stream._tcp_probe  # ...so poll() answers from now on
    peer.close()
    assert _settle(stream.is_readable)


def test_write_timeout_bounds_the_whole_write_against_a_trickling_peer(
    pair: tuple[Stream, socket.socket],
) -> None:
    # The peer takes 64 KiB every 50 ms: every single send makes progress,
    # but 16 MiB would take seconds. The limit is for the whole write.
    stream, peer = pair
    done = threading.Event()

    def trickle() -> None:
        peer.settimeout(5.0)
        with contextlib.suppress(OSError):
            while not done.is_set():
                if not peer.recv(64 * 1024):
                    return
                time.sleep(0.05)

    reader = threading.Thread(target=trickle)
    reader.start()
    started = time.monotonic()
    try:
        with pytest.raises(rawkeep.WriteTimeout):
            stream.send_all(bytes(16 * 1024 * 1024), 0.5)
        assert time.monotonic() - started < 2.0
    finally:
        done.set()
        stream.close()
        reader.join(10)


def test_a_write_that_fits_is_not_slowed_by_its_timeout(
    pair: tuple[Stream, socket.socket],
) -> None:
    stream, peer = pair
    received = bytearray()

    def drain() -> None:
        peer.settimeout(5.0)
        while len(received) < 4 * 1024 * 1024:
            received.extend(peer.recv(1024 * 1024))

    reader = threading.Thread(target=drain)
    reader.start()
    stream.send_all(bytes(range(256)) * 16384, 5.0)  # 4 MiB, more than one send
    reader.join(10)
    assert bytes(received) == bytes(range(256)) * 16384
