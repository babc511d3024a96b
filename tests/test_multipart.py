"""``files=``: multipart/form-data bodies, parsed back by the standard
library's MIME parser from the bytes the server received."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import pytest
from servers import faults
from servers.forms import described, form_parts
from servers.h11server import Reply

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from servers.scripted import ReceivedRequest, ScriptedServer

pytestmark = pytest.mark.both_clients


class Reader(io.BytesIO):
    """A binary file that records the size of every read."""

    def __init__(self, data: bytes, *, seekable: bool = True) -> None:
        super().__init__(data)
        self.reads: list[int | None] = []
        self._can_seek = seekable

    def read(self, size: int | None = -1) -> bytes:
        self.reads.append(size)
        return super().read(size)

    def seekable(self) -> bool:
        return self._can_seek

    def seek(self, offset: int, whence: int = 0) -> int:
        if not self._can_seek:
            raise io.UnsupportedOperation("seek")
        return super().seek(offset, whence)

    def tell(self) -> int:
        if not self._can_seek:
            raise io.UnsupportedOperation("tell")
        return super().tell()


def test_fields_and_files_of_every_form(
    server: ScriptedServer, client: rawkeep.Client, tmp_path: Path
) -> None:
    path = tmp_path / "report.csv"
    path.write_bytes(b"a,b\n1,2\n")
    with path.open("rb") as opened:
        files: dict[str, Any] = {
            "bare": opened,
            "named": ("notes.txt", b"some notes"),
            "typed": ("data.bin", io.BytesIO(b"\x00\x01"), "application/x-custom"),
            "text": (None, "caf\u00e9"),
        }
        client.post(server.url, data={"title": "t\u00eate", "tags": ["a", "b"]}, files=files)
    (request,) = server.requests
    assert request.header("content-length") == str(len(request.body)).encode()
    assert request.header("transfer-encoding") is None
    assert [described(part) for part in form_parts(request)] == [
        ("title", None, None, "t\u00eate".encode()),
        ("tags", None, None, b"a"),
        ("tags", None, None, b"b"),
        ("bare", "report.csv", "text/csv", b"a,b\n1,2\n"),
        ("named", "notes.txt", "text/plain", b"some notes"),
        ("typed", "data.bin", "application/x-custom", b"\x00\x01"),
        ("text", None, None, "caf\u00e9".encode()),
    ]


def test_repeated_names_from_pairs_and_a_fresh_boundary_each_time(
    server: ScriptedServer, client: rawkeep.Client
) -> None:
    pairs = [("f", ("1.txt", b"one")), ("f", ("2.txt", b"two"))]
    client.post(server.url, files=pairs)
    client.post(server.url, files=pairs)
    first, second = server.requests
    assert [described(part)[1:] for part in form_parts(first)] == [
        ("1.txt", "text/plain", b"one"),
        ("2.txt", "text/plain", b"two"),
    ]
    assert first.header("content-type") != second.header("content-type")


def test_a_file_in_memory_goes_in_blocks_never_whole(
    server: ScriptedServer, client: rawkeep.Client
) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    reader = Reader(payload)
    client.put(server.url, files={"blob": ("blob.bin", reader)})
    (request,) = server.requests
    assert described(form_parts(request)[0])[3] == payload
    assert request.header("content-length") == str(len(request.body)).encode()
    assert reader.reads, "the file was not read through read()"
    assert all(size is not None and 0 < size <= 64 * 1024 for size in reader.reads)


def test_a_file_of_unknown_size_goes_chunked(
    server: ScriptedServer, client: rawkeep.Client
) -> None:
    client.post(server.url, files={"pipe": ("p.txt", Reader(b"streamed", seekable=False))})
    (request,) = server.requests
    assert request.header("transfer-encoding") == b"chunked"
    assert request.header("content-length") is None
    assert described(form_parts(request)[0])[3] == b"streamed"


@pytest.mark.parametrize(
    "filename",
    ['evil"; name="other', "two\r\nContent-Type: text/html\r\n\r\nx", "back\\slash", "\x00\x7f"],
)
def test_filenames_and_names_cannot_break_out_of_their_quotes(
    server: ScriptedServer, client: rawkeep.Client, filename: str
) -> None:
    client.post(server.url, files={filename: (filename, b"x")})
    (request,) = server.requests
    head = request.body.split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")
    assert len(lines) == 3  # boundary, Content-Disposition, Content-Type: nothing more
    disposition = lines[1].decode()
    assert disposition.count('"') == 4
    for bad in ('"', "\r", "\n", "\x00", "\x7f"):
        inner = disposition.split('"')[1::2]
        assert all(bad not in text for text in inner)


def test_files_with_seekable_content_are_retried_after_the_race(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_server(
        faults.per_connection(
            faults.serve_then(1, faults.close_without_response), faults.keep_serving
        )
    )
    client.get(f"{server.url}/first")
    response = client.put(f"{server.url}/up", files={"f": ("f.txt", io.BytesIO(b"again"))})
    assert response.status == 200
    lost, replayed = server.requests[1], server.requests[2]
    assert replayed.body == lost.body
    assert described(form_parts(replayed)[0])[3] == b"again"


def test_files_that_cannot_seek_are_not_retried(
    start_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_server(
        faults.per_connection(
            faults.serve_then(1, faults.close_without_response), faults.keep_serving
        )
    )
    client.get(f"{server.url}/first")
    once = Reader(b"once", seekable=False)
    with pytest.raises(rawkeep.RemoteProtocolError, match="the body can't be sent again"):
        client.put(f"{server.url}/up", files={"f": ("f.txt", once)})
    assert [r.target for r in server.requests] == ["/first", "/up"]


def test_307_replays_seekable_files(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    def respond(request: ReceivedRequest) -> Reply:
        if request.target == "/a":
            return Reply(status=307, headers=[("Location", "/b")])
        return Reply(body=b"ok")

    server = start_keepalive_server(respond=respond)
    upload = io.BytesIO(b"x" * 100_000)
    response = client.post(server.url + "/a", files={"f": upload}, follow_redirects=True)
    assert response.content == b"ok"
    first, second = server.requests
    assert first.body == second.body
    assert described(form_parts(second)[0])[3] == b"x" * 100_000


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"files": {"f": {"nested": 1}}}, TypeError, "for 'f'"),
        ({"files": {"f": io.StringIO("text")}}, TypeError, "text mode"),
        ({"files": {"f": ("a", b"x", "text/plain", {"X": "1"})}}, TypeError, "for 'f'"),
        ({"files": {"f": (b"name", b"x")}}, TypeError, "filename for 'f'"),
        ({"files": {"f": ("a", b"x", 5)}}, TypeError, "content type for 'f'"),
        ({"files": {"f": ("a", b"x", "text/plain\r\nX: 1")}}, rawkeep.LocalProtocolError, "'f'"),
        ({"files": "f"}, TypeError, "files="),
        ({"files": [("f",)]}, TypeError, "files= pairs"),
        ({"files": {1: b"x"}}, TypeError, "names must be str"),
        ({"files": {"f": b"x"}, "content": b"y"}, TypeError, "content and files"),
        ({"files": {"f": b"x"}, "json": {}}, TypeError, "json and files"),
        ({"files": {"f": b"x"}, "data": "a=1"}, TypeError, "data="),
        ({"files": {"f": b"x"}, "data": {"k": {"d": 1}}}, TypeError, "for 'k'"),
        (
            {"files": {"f": b"x"}, "headers": {"Content-Type": "multipart/form-data"}},
            ValueError,
            "boundary",
        ),
    ],
)
def test_bad_files_input_raises_before_any_io(
    server: ScriptedServer,
    client: rawkeep.Client,
    kwargs: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        client.post(server.url, **kwargs)
    assert server.accepted == 0


def test_a_boundary_the_caller_gives_is_used(
    server: ScriptedServer, client: rawkeep.Client
) -> None:
    content_type = "multipart/form-data; boundary=my-own-boundary"
    client.post(server.url, files={"f": b"x"}, headers={"Content-Type": content_type})
    (request,) = server.requests
    assert request.body.startswith(b"--my-own-boundary\r\n")
    assert described(form_parts(request)[0])[1:] == ("upload", "application/octet-stream", b"x")


def test_empty_files_leave_a_plain_form(server: ScriptedServer, client: rawkeep.Client) -> None:
    client.post(server.url, files={}, data={"a": "1"})
    (request,) = server.requests
    assert request.header("content-type") == b"application/x-www-form-urlencoded"
    assert request.body == b"a=1"
