"""Content decoding: gzip, deflate (zlib and raw), stacked codings, corrupt data."""

from __future__ import annotations

import gzip
import importlib
import tracemalloc
import zlib
from typing import TYPE_CHECKING, Any

import pytest
from servers.h11server import Reply

import rawkeep
from rawkeep._codings import accept_encoding
from rawkeep._decoders import BodyDecoder

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.scripted import ReceivedRequest, ScriptedServer

pytestmark = pytest.mark.both_clients

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
    # br only with a module that can bound its output (brotli 1.2 and later).
    bounded_br = any(
        _importable(name)
        and hasattr(importlib.import_module(name).Decompressor, "can_accept_more_data")
        for name in ("brotli", "brotlicffi")
    )
    assert ("br" in codings) == bounded_br
    zstd = _importable("zstandard") or _importable("compression.zstd")
    assert ("zstd" in codings) == zstd


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


# -- bounded pieces, whatever the ratio ------------------------------------------------

#: The largest piece ``iter_bytes()`` may yield from a compressed body
#: (``rawkeep._decoders.PIECE_SIZE``, documented in docs/decoding.md).
PIECE_BOUND = 64 * 1024

MIB = 1024 * 1024

#: What the bombs below inflate to: 16 MiB of zeros, some 16 KiB of gzip.
BOMB_SIZE = 16 * MIB
ZEROS = bytes(BOMB_SIZE)


def streamed_sizes(client: rawkeep.Client, url: str) -> list[int]:
    """The sizes of the pieces ``iter_bytes()`` yields, checking each is zeros."""
    sizes = []
    with client.stream("GET", url) as response:
        for piece in response.iter_bytes():
            assert piece.count(0) == len(piece)
            sizes.append(len(piece))
    return sizes


@pytest.mark.parametrize(
    ("encoding", "make"),
    [
        ("gzip", lambda: gzip.compress(ZEROS)),
        ("deflate", lambda: zlib.compress(ZEROS, 9)),
        ("deflate", lambda: raw_deflate(ZEROS)),
        # Each member, and the junk after the last, read in bounded steps.
        (
            "gzip",
            lambda: gzip.compress(ZEROS[: 4 * MIB]) + gzip.compress(ZEROS[4 * MIB :]) + b"junk",
        ),
        ("deflate, gzip", lambda: gzip.compress(zlib.compress(ZEROS, 9))),
        ("gzip, gzip", lambda: gzip.compress(gzip.compress(ZEROS))),
    ],
    ids=["gzip", "deflate", "raw-deflate", "gzip-members", "deflate-in-gzip", "gzip-in-gzip"],
)
@pytest.mark.parametrize("chunked", [False, True])
def test_pieces_are_bounded_whatever_the_ratio(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    encoding: str,
    make: Callable[[], bytes],
    chunked: bool,
) -> None:
    encoded = make()
    assert len(encoded) < BOMB_SIZE // 500
    server = start_keepalive_server(respond=serving(encoded, encoding, chunked=chunked))
    sizes = streamed_sizes(client, server.url)
    assert sum(sizes) == BOMB_SIZE
    assert max(sizes) <= PIECE_BOUND
    # Read whole, the same body is all there; the connection served both.
    assert client.get(server.url).content == ZEROS
    assert server.accepted == 1


@pytest.mark.parametrize(
    ("encoding", "make"), [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
def test_max_decoded_size_hands_over_what_fits_then_stops(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    encoding: str,
    make: Callable[[bytes], bytes],
) -> None:
    limit = 4 * MIB
    server = start_keepalive_server(respond=serving(make(bytes(64 * MIB)), encoding))
    client = make_client(max_decoded_size=limit)
    sizes: list[int] = []
    with (
        client.stream("GET", server.url) as response,
        pytest.raises(rawkeep.DecodingError, match="max_decoded_size"),
    ):
        sizes.extend(map(len, response.iter_bytes()))
    # All that fits, less at most the one step (1 MiB) that crossed the limit.
    assert limit - MIB <= sum(sizes) <= limit
    assert max(sizes) <= PIECE_BOUND
    assert client.pool_stats().active == 0


def test_a_bad_check_at_the_end_comes_after_the_body(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    # The gzip trailer's CRC-32 is wrong: only the end can tell. Streaming, the
    # body has been handed over (in bounded pieces) by then, all but the last
    # step (1 MiB), whose inflating met the trailer; read whole, it is refused.
    encoded = bytearray(gzip.compress(ZEROS))
    encoded[-8] ^= 0xFF
    server = start_keepalive_server(respond=serving(bytes(encoded), "gzip"))
    sizes: list[int] = []
    with (
        client.stream("GET", server.url) as response,
        pytest.raises(rawkeep.DecodingError, match="invalid gzip data"),
    ):
        sizes.extend(map(len, response.iter_bytes()))
    assert BOMB_SIZE - MIB <= sum(sizes) < BOMB_SIZE
    assert max(sizes) <= PIECE_BOUND
    with pytest.raises(rawkeep.DecodingError, match="invalid gzip data"):
        client.get(server.url)
    assert client.pool_stats().active == 0


def test_an_inner_stream_cut_short_raises_after_bounded_pieces(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    inner = gzip.compress(ZEROS)
    encoded = gzip.compress(inner[: len(inner) // 2])  # the outer layer is whole
    server = start_keepalive_server(respond=serving(encoded, "gzip, gzip"))
    sizes: list[int] = []
    with (
        client.stream("GET", server.url) as response,
        pytest.raises(rawkeep.DecodingError, match="ends before its end-of-stream marker"),
    ):
        sizes.extend(map(len, response.iter_bytes()))
    assert MIB < sum(sizes) < BOMB_SIZE
    assert max(sizes) <= PIECE_BOUND
    assert client.pool_stats().active == 0


def test_more_than_five_codings_are_refused(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    def layers(count: int) -> bytes:
        data = PLAIN
        for _ in range(count):
            data = gzip.compress(data)
        return data

    five = start_keepalive_server(respond=serving(layers(5), ", ".join(["gzip"] * 5)))
    assert client.get(five.url).content == PLAIN
    # Each layer costs a decompressor: a long list is a bomb of its own.
    six = start_keepalive_server(
        respond=serving(layers(6), ", ".join(["gzip", "identity"] * 6), chunked=True)
    )
    with pytest.raises(rawkeep.DecodingError, match="6 codings"):
        client.get(six.url)
    stats = client.pool_stats()
    assert stats.active == 0
    assert stats.opened - stats.closed == stats.idle


# -- br and zstd, where a module for them is installed ---------------------------------


def compress(coding: str, data: bytes) -> bytes:
    """``data`` compressed as br or zstd by whichever module is installed."""
    module: Any
    if coding == "br":
        for name in ("brotli", "brotlicffi"):
            if _importable(name):
                module = importlib.import_module(name)
                return bytes(module.compress(data, quality=5))
    elif _importable("compression.zstd"):
        module = importlib.import_module("compression.zstd")
        return bytes(module.compress(data))
    elif _importable("zstandard"):
        module = importlib.import_module("zstandard")
        return bytes(module.ZstdCompressor().compress(data))
    pytest.skip(f"no module for {coding}")


@pytest.mark.parametrize("coding", ["br", "zstd"])
def test_br_and_zstd_bombs_stream_in_bounded_pieces(
    start_keepalive_server: Callable[..., ScriptedServer],
    make_client: Callable[..., rawkeep.Client],
    coding: str,
) -> None:
    encoded = compress(coding, ZEROS)
    assert len(encoded) < BOMB_SIZE // 500
    server = start_keepalive_server(respond=serving(encoded, coding))
    # Asked for explicitly: an old brotli module is not advertised, but
    # still decodes a br body.
    client = make_client(headers={"Accept-Encoding": coding})
    sizes = streamed_sizes(client, server.url)
    assert sum(sizes) == BOMB_SIZE
    assert max(sizes) <= PIECE_BOUND
    limited = make_client(headers={"Accept-Encoding": coding}, max_decoded_size=4 * MIB)
    with pytest.raises(rawkeep.DecodingError, match="max_decoded_size"):
        limited.get(server.url)


# -- the push API: BodyDecoder, fed the body piece by piece --------------------------


def decode_all(decoder: BodyDecoder, pieces: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for piece in pieces:
        out.extend(decoder.feed(piece))
    out.extend(decoder.end())
    return out


def feed_in_pieces(decoder: BodyDecoder, data: bytes, size: int, sizes: list[int]) -> None:
    """Feed ``data`` in pieces of ``size`` bytes, noting the sizes decoded."""
    for start in range(0, len(data), size):
        sizes.extend(map(len, decoder.feed(data[start : start + size])))


def one_byte_pieces(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


@pytest.mark.parametrize(
    ("encoding", "make"),
    [
        ("gzip", lambda: gzip.compress(PLAIN)),
        ("deflate", lambda: zlib.compress(PLAIN)),
        ("deflate", lambda: raw_deflate(PLAIN)),
        ("gzip", lambda: gzip.compress(PLAIN[:1000]) + gzip.compress(PLAIN[1000:]) + b"junk"),
        ("deflate, gzip", lambda: gzip.compress(zlib.compress(PLAIN))),
        ("br", lambda: compress("br", PLAIN)),
        ("zstd", lambda: compress("zstd", PLAIN)),
    ],
    ids=["gzip", "deflate", "raw-deflate", "gzip-members", "deflate-in-gzip", "br", "zstd"],
)
def test_body_decoder_output_does_not_depend_on_how_the_body_is_cut(
    encoding: str, make: Callable[[], bytes]
) -> None:
    encoded = make()
    whole = decode_all(BodyDecoder(encoding), [encoded])
    bytewise = decode_all(BodyDecoder(encoding), one_byte_pieces(encoded))
    assert b"".join(whole) == b"".join(bytewise) == PLAIN
    assert max(map(len, whole + bytewise)) <= PIECE_BOUND


def test_body_decoder_nested_bomb_is_bounded_and_lazy() -> None:
    # The outer gzip inflates to 16 MiB (stored deflate blocks of zeros),
    # which the inner one undoes byte for byte: only if each outer step goes
    # through the inner layer before the next is taken does decoding hold
    # about one step per layer rather than the 16 MiB between the layers.
    inner = zlib.compressobj(0, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    encoded = gzip.compress(inner.compress(ZEROS) + inner.flush(), 9)
    assert len(encoded) < BOMB_SIZE // 500
    decoder = BodyDecoder("gzip, gzip")
    total = largest = 0
    tracemalloc.start()
    try:
        for start in range(0, len(encoded), 1000):
            for piece in decoder.feed(encoded[start : start + 1000]):
                total += len(piece)
                largest = max(largest, len(piece))
        for piece in decoder.end():
            total += len(piece)
            largest = max(largest, len(piece))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == BOMB_SIZE
    assert largest <= PIECE_BOUND
    assert peak < 5 * MIB  # a step per layer and the zlib states, not 16 MiB


@pytest.mark.parametrize(
    ("encoding", "encoded", "message"),
    [
        ("gzip", gzip.compress(PLAIN)[:-100], "ends before its end-of-stream marker"),
        ("deflate", zlib.compress(PLAIN)[:-100], "ends before its end-of-stream marker"),
        ("gzip", b"\x1f", "too short to be valid"),
        # The outer layer is whole; the stream inside it is cut short.
        (
            "gzip, gzip",
            gzip.compress(gzip.compress(PLAIN)[:-100]),
            "ends before its end-of-stream marker",
        ),
    ],
    ids=["gzip", "deflate", "one-byte", "inner-gzip"],
)
def test_body_decoder_end_refuses_a_truncated_body(
    encoding: str, encoded: bytes, message: str
) -> None:
    decoder = BodyDecoder(encoding)
    for piece in one_byte_pieces(encoded):
        for _ in decoder.feed(piece):
            pass
    with pytest.raises(rawkeep.DecodingError, match=message):
        list(decoder.end())


@pytest.mark.parametrize("encoding", ["gzip", "gzip, identity", "identity, gzip, gzip"])
def test_body_decoder_stops_past_max_size(encoding: str) -> None:
    encoded = gzip.compress(ZEROS)
    if encoding.count("gzip") == 2:
        encoded = gzip.compress(encoded)
    limit = 4 * MIB
    decoder = BodyDecoder(encoding, max_size=limit)
    sizes: list[int] = []
    with pytest.raises(rawkeep.DecodingError, match="max_decoded_size"):
        feed_in_pieces(decoder, encoded, 4096, sizes)
    assert limit - MIB <= sum(sizes) <= limit
    # The same body under a limit it fits decodes whole.
    assert sum(map(len, decode_all(BodyDecoder(encoding, max_size=BOMB_SIZE), [encoded]))) == (
        BOMB_SIZE
    )


@pytest.mark.parametrize(
    ("encoding", "passthrough"),
    [
        (None, True),
        ("", True),
        ("identity", True),
        ("Identity, identity", True),
        ("x-custom", True),
        ("gzip, x-custom", True),  # x-custom applied last can't be undone
        ("gzip", False),
        ("x-gzip", False),
        ("identity, deflate", False),
    ],
)
def test_body_decoder_passthrough(encoding: str | None, passthrough: bool) -> None:
    decoder = BodyDecoder(encoding)
    assert decoder.passthrough is passthrough
    if passthrough:
        assert decode_all(decoder, [b"opaque", b"", b" bytes"]) == [b"opaque", b" bytes"]
