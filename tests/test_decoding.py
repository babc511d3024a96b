"""Content decoding: gzip, deflate (zlib and raw), stacked codings, corrupt data."""

from __future__ import annotations

import gzip
import zlib
from typing import TYPE_CHECKING

import pytest
from servers.h11server import Reply

import rawkeep
from rawkeep._decoders import accept_encoding

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.scripted import ReceivedRequest, ScriptedServer

PLAIN = b"".join(b"line %d of a body that compresses well\n" % i for i in range(5000))


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def serving(body: bytes, encoding: str, *, chunked: bool = False) -> Callable[..., Reply]:
    def respond(request: ReceivedRequest) -> Reply:
        return Reply(body=body, headers=[("Content-Encoding", encoding)], chunked=chunked)

    return respond


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        ("gzip", gzip.compress(PLAIN)),
        ("x-gzip", gzip.compress(PLAIN)),
        ("deflate", zlib.compress(PLAIN)),
        ("deflate", raw_deflate(PLAIN)),
        ("GZip", gzip.compress(PLAIN)),
        ("identity", PLAIN),
        ("deflate, gzip", gzip.compress(zlib.compress(PLAIN))),
    ],
)
@pytest.mark.parametrize("chunked", [False, True])
def test_whole_body_is_decoded(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    encoding: str,
    encoded: bytes,
    chunked: bool,
) -> None:
    server = start_keepalive_server(respond=serving(encoded, encoding, chunked=chunked))
    response = client.get(server.url)
    assert response.content == PLAIN
    # The connection is still good for the next request.
    assert client.get(server.url).content == PLAIN
    assert server.accepted == 1


def test_streamed_decoding_and_raw(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    encoded = gzip.compress(PLAIN)
    server = start_keepalive_server(respond=serving(encoded, "gzip", chunked=True))
    with client.stream("GET", server.url) as response:
        pieces = list(response.iter_bytes(chunk_size=1000))
    assert b"".join(pieces) == PLAIN
    assert all(len(piece) == 1000 for piece in pieces[:-1])
    with client.stream("GET", server.url) as response:
        assert b"".join(response.iter_raw()) == encoded
    assert client.pool_stats().reused == 1


def test_iter_raw_after_read_of_encoded_body_is_refused(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_keepalive_server(respond=serving(gzip.compress(PLAIN), "gzip"))
    response = client.get(server.url)
    with pytest.raises(RuntimeError, match="iter_raw"):
        list(response.iter_raw())


def test_corrupt_gzip_raises_decoding_error_and_closes(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    corrupt = bytearray(gzip.compress(PLAIN))
    corrupt[20:40] = b"\xff" * 20
    server = start_keepalive_server(respond=serving(bytes(corrupt), "gzip"))
    with pytest.raises(rawkeep.DecodingError, match="gzip"):
        client.get(server.url)
    stats = client.pool_stats()
    assert stats.active == 0
    assert stats.idle + stats.closed == 1


def test_unknown_coding_is_passed_through(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_keepalive_server(respond=serving(b"opaque", "x-custom"))
    assert client.get(server.url).content == b"opaque"


def test_accept_encoding_advertises_what_can_be_decoded(
    server: ScriptedServer, client: rawkeep.Client
) -> None:
    client.get(server.url)
    (request,) = server.requests
    advertised = request.header("accept-encoding")
    assert advertised == accept_encoding().encode()
    codings = advertised.decode().split(", ")
    assert codings[:2] == ["gzip", "deflate"]
    for optional, modules in (("br", ("brotli", "brotlicffi")), ("zstd", ("zstandard",))):
        importable = any(_importable(name) for name in modules)
        if not importable and optional == "zstd":
            importable = _importable("compression.zstd")
        assert (optional in codings) == importable


def _importable(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def test_decompression_bomb_is_stopped_by_max_decoded_size(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # ~64 KiB that inflate to 64 MiB
    assert len(bomb) < 128 * 1024
    server = start_keepalive_server(respond=serving(bomb, "gzip"))
    client = make_client(max_decoded_size=1024 * 1024)
    with pytest.raises(rawkeep.DecodingError, match="max_decoded_size"):
        client.get(server.url)
    assert client.pool_stats().active == 0
    # Under the limit, the same client decodes normally.
    small = start_keepalive_server(respond=serving(gzip.compress(PLAIN), "gzip"))
    assert client.get(small.url).content == PLAIN


def test_max_decoded_size_counts_streamed_bodies_too(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
) -> None:
    server = start_keepalive_server(respond=serving(gzip.compress(PLAIN), "gzip", chunked=True))
    client = make_client(max_decoded_size=len(PLAIN) - 1)
    with client.stream("GET", server.url) as response, pytest.raises(rawkeep.DecodingError):
        for _ in response.iter_bytes():
            pass
    assert client.pool_stats().active == 0
