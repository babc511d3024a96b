"""Decompression bombs against a real server: streaming stays bounded.

A body of a few KB, gzip inside gzip (``Content-Encoding: gzip, gzip``),
inflates to hundreds of MiB. Whatever the server does with it (one write,
chunks of one byte, chunks cut at seeded random places), ``iter_bytes()``
must hand it over in pieces of at most 64 KiB (docs/decoding.md), all of
it, while the memory of the process stays flat; ``max_decoded_size`` must
still stop it, after handing over what fits.

The memory is measured in a child process (``VmHWM``, the peak resident
set, from ``/proc/self/status``), so that nothing the test process did
before, such as building the bomb, blurs the figure. The child also runs
under an address-space limit, so a client that held the expansion whole
fails quickly instead of taking gigabytes from the machine.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from servers.scripted import MAX_WAIT

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.scripted import ScriptedServer, ServerConnection

    StartServer = Callable[..., ScriptedServer]

pytestmark = pytest.mark.both_clients

#: The largest piece ``iter_bytes()`` may yield from a compressed body
#: (``rawkeep._decoders.PIECE_SIZE``, documented in docs/decoding.md).
PIECE_BOUND = 64 * 1024

MIB = 1024 * 1024

#: What the bombs of the fast tests inflate to.
EXPANDED = 256 * MIB

#: The process under measurement may grow by at most this much while it
#: streams a bomb (a bounded decoder needs a few MiB; holding the expansion
#: would need hundreds).
RSS_GROWTH_LIMIT = 24 * MIB

#: Address space of the measured child: its interpreter and rawkeep take
#: about 100 MiB, leaving far less than any expansion here.
CHILD_ADDRESS_SPACE = 768 * MIB

#: Seconds for the child to stream its bomb (it takes a few here).
CHILD_TIMEOUT = 60.0

ROOT = Path(rawkeep.__file__).resolve().parent.parent


@functools.cache
def gzip_in_gzip(size: int) -> bytes:
    """``size`` zero bytes, gzipped, gzipped again: a few KB.

    Built without ever holding ``size`` bytes: after a full flush, deflate
    starts afresh, so every further MiB of zeros compresses to the same
    bytes, which are repeated; the gzip trailer (CRC-32 and length) is
    written by hand. zlib checks both when the body is inflated.
    """
    assert size % MIB == 0
    assert size >= 2 * MIB
    block = bytes(MIB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(size // MIB):
        crc = zlib.crc32(block, crc)
    final_empty_block = b"\x03\x00"
    inner = (
        first
        + again * (size // MIB - 1)
        + final_empty_block
        + struct.pack("<II", crc, size & 0xFFFFFFFF)
    )
    return gzip.compress(inner, 9)


def _split(body: bytes, how: str) -> list[bytes]:
    if how == "whole":
        return [body]
    if how == "one-byte chunks":
        return [body[i : i + 1] for i in range(len(body))]
    rng = random.Random(20261125)  # "random chunks": seeded, so repeatable
    pieces = []
    start = 0
    while start < len(body):
        end = start + rng.randint(1, 97)
        pieces.append(body[start:end])
        start = end
    return pieces


def bomb_server(body: bytes, how: str = "whole") -> Callable[[ServerConnection], None]:
    """A keep-alive script answering every request with the bomb, sent with
    Content-Length (``whole``) or as chunks cut as ``how`` says: each chunk
    reaches the decoders as a piece of its own."""
    pieces = _split(body, how)
    head = "HTTP/1.1 200 OK\r\nContent-Encoding: gzip, gzip\r\n"
    if how == "whole":
        response = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    else:
        framed = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
        response = f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + framed + b"0\r\n\r\n"

    def handle(conn: ServerConnection) -> None:
        while conn.wait_readable(MAX_WAIT):
            if conn.read_request() is None:
                return
            conn.respond(response)

    return handle


@pytest.mark.parametrize("how", ["whole", "one-byte chunks", "random chunks"])
def test_gzip_in_gzip_bomb_streams_in_bounded_pieces(
    start_server: StartServer, client: rawkeep.Client, how: str
) -> None:
    bomb = gzip_in_gzip(EXPANDED)
    assert len(bomb) < 2048
    server = start_server(bomb_server(bomb, how))
    total = largest = pieces = 0
    with client.stream("GET", server.url) as response:
        for piece in response.iter_bytes():
            largest = max(largest, len(piece))
            total += len(piece)
            pieces += 1
            if pieces % 512 == 0:  # a sample: all zeros, as compressed
                assert piece.count(0) == len(piece)
    assert largest <= PIECE_BOUND
    assert total == EXPANDED
    assert pieces >= EXPANDED // PIECE_BOUND
    # Read to its end, the connection is reused; left early, it is drained
    # (a few KB of the body were left), and reused again.
    for _ in range(2):
        with client.stream("GET", server.url) as response:
            first = next(iter(response.iter_bytes()))
            assert 0 < len(first) <= PIECE_BOUND
    assert server.accepted == 1


def test_max_decoded_size_stops_the_bomb_after_handing_over_what_fits(
    start_server: StartServer, make_client: Callable[..., rawkeep.Client]
) -> None:
    limit = 8 * MIB
    server = start_server(bomb_server(gzip_in_gzip(EXPANDED)))
    client = make_client(max_decoded_size=limit)
    sizes: list[int] = []  # of the pieces received before the error
    with (
        client.stream("GET", server.url) as response,
        pytest.raises(rawkeep.DecodingError, match="max_decoded_size"),
    ):
        sizes.extend(map(len, response.iter_bytes()))
    # Everything up to the limit, less at most the one step that crossed it.
    assert limit - MIB <= sum(sizes) <= limit
    assert max(sizes) <= PIECE_BOUND
    assert client.pool_stats().active == 0
    # Read whole, the same bomb is refused the same way; the client goes on.
    with pytest.raises(rawkeep.DecodingError, match="max_decoded_size"):
        client.get(server.url)
    stats = client.pool_stats()
    assert stats.active == 0
    assert stats.opened - stats.closed == stats.idle


# -- memory, measured in a child process ---------------------------------------------

CHILD = r"""
import json, resource, sys
import rawkeep

def peak():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no VmHWM")

url, limit = sys.argv[1], int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
result = {"largest": 0, "total": 0, "error": None}
with rawkeep.Client(timeout=30) as client:
    client.get(url + "/warm-up").read()  # the code paths in place, one socket idle
    result["before"] = peak()
    try:
        with client.stream("GET", url) as response:
            for piece in response.iter_bytes():
                result["largest"] = max(result["largest"], len(piece))
                result["total"] += len(piece)
                del piece
    except BaseException as exc:
        result["error"] = repr(exc)[:300]
    result["after"] = peak()
print(json.dumps(result))
"""


def stream_in_child(start_server: StartServer, size: int) -> dict[str, Any]:
    """Stream a ``size`` bomb in a fresh process; what it saw and its peaks."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc/self/status (Linux) to read the peak resident set")
    bomb = gzip_in_gzip(size)
    warm_up = gzip.compress(b"warm")

    def handle(conn: ServerConnection) -> None:
        while conn.wait_readable(MAX_WAIT):
            request = conn.read_request()
            if request is None:
                return
            body = warm_up if request.target == "/warm-up" else bomb
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n"
            coding = "gzip" if body is warm_up else "gzip, gzip"
            conn.respond(f"{head}Content-Encoding: {coding}\r\n\r\n".encode() + body)

    server = start_server(handle)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, server.url, str(CHILD_ADDRESS_SPACE)],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    result["growth"] = result["after"] - result["before"]
    return result


def test_memory_stays_flat_while_a_bomb_streams(start_server: StartServer) -> None:
    result = stream_in_child(start_server, EXPANDED)
    assert result["growth"] < RSS_GROWTH_LIMIT, result
    assert result["error"] is None
    assert result["total"] == EXPANDED
    assert result["largest"] <= PIECE_BOUND


@pytest.mark.slow
def test_a_2_kb_body_inflating_to_1_gib_streams_in_flat_memory(
    start_server: StartServer,
) -> None:
    """The case of the report: a body of about 2 KB, gzip inside gzip, that
    inflates to 1 GiB (a few seconds of inflating)."""
    size = 1024 * MIB
    assert len(gzip_in_gzip(size)) < 3000
    result = stream_in_child(start_server, size)
    assert result["error"] is None
    assert result["total"] == size
    assert result["largest"] <= PIECE_BOUND
    assert result["growth"] < RSS_GROWTH_LIMIT, result
