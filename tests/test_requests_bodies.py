"""What the client puts on the wire: request line, default headers, bodies.

Asserted on the bytes the server received, and on the server's parse of them
(which h11 cross-checks), never on the client's own idea of what it sent.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from servers.h11server import Reply

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from servers.scripted import ReceivedRequest, ScriptedServer

pytestmark = pytest.mark.both_clients


def header_names(request: ReceivedRequest) -> list[bytes]:
    return [name for name, _ in request.headers]


def test_default_request_headers(server: ScriptedServer, client: rawkeep.Client) -> None:
    first = client.get(f"{server.url}/path?q=1")
    second = client.get(f"{server.url}/path?q=2")

    request, reusing = server.requests
    assert reusing.connection == request.connection
    raw = server.raw(0)  # the connection's bytes: both heads
    first_head, second_head, _ = raw.split(b"\r\n\r\n")
    assert raw.startswith(b"GET /path?q=1 HTTP/1.1\r\n")
    assert request.header("host") == f"127.0.0.1:{server.port}".encode()
    assert request.header("user-agent") == f"rawkeep/{rawkeep.__version__}".encode()
    assert request.header("accept") == b"*/*"
    # HTTP/1.1 is persistent by default: the token never asks for that. The
    # first request of a connection carries it once, last, so that Apache
    # announces its limits; the requests that reuse the connection don't.
    assert header_names(request).count(b"connection") == 1
    assert first_head.endswith(b"\r\nConnection: keep-alive")
    assert b"connection" not in header_names(reusing)
    assert b"keep-alive" not in second_head.lower()
    # response.request says the same as the bytes.
    assert first.request.headers.get_all("connection") == ["keep-alive"]
    assert "connection" not in second.request.headers
    # A GET without a body carries no framing headers at all.
    assert b"content-length" not in header_names(request)
    assert b"transfer-encoding" not in header_names(request)
    for name in (b"host", b"user-agent", b"accept"):
        assert header_names(request).count(name) == 1


def test_client_and_request_headers_merge(
    server: ScriptedServer, make_client: Callable[..., rawkeep.Client]
) -> None:
    client = make_client(headers={"X-Default": "d"})
    client.get(server.url, headers={"X-Per-Request": "p"})
    client.get(server.url, headers={"x-default": "override"})

    first, second = server.requests
    assert first.header_all("x-default") == [b"d"]
    assert first.header_all("x-per-request") == [b"p"]
    assert second.header_all("x-default") == [b"override"]
    assert second.header("x-per-request") is None


def test_client_headers_replace_builtin_defaults(
    server: ScriptedServer, make_client: Callable[..., rawkeep.Client]
) -> None:
    client = make_client(headers={"User-Agent": "custom/1", "accept": "text/plain"})
    client.get(server.url)
    (request,) = server.requests
    assert request.header_all("user-agent") == [b"custom/1"]
    assert request.header_all("accept") == [b"text/plain"]


def test_request_headers_replace_builtin_defaults(
    server: ScriptedServer, client: rawkeep.Client
) -> None:
    client.get(server.url, headers={"user-agent": "mine/2", "Accept": "text/html"})
    (request,) = server.requests
    assert request.header_all("user-agent") == [b"mine/2"]
    assert request.header_all("accept") == [b"text/html"]


@pytest.mark.parametrize(
    ("url_suffix", "params", "expected"),
    [
        ("/p", {"a": "1", "b": "x y"}, [("a", "1"), ("b", "x y")]),
        ("/p", [("k", "1"), ("k", "2")], [("k", "1"), ("k", "2")]),
        ("/p?a=1", {"b": "2"}, [("a", "1"), ("b", "2")]),
        ("/p", {"u": "é&="}, [("u", "é&=")]),
    ],
)
def test_params_build_the_query(
    server: ScriptedServer,
    client: rawkeep.Client,
    url_suffix: str,
    params: Any,
    expected: list[tuple[str, str]],
) -> None:
    client.get(server.url + url_suffix, params=params)
    target = urlsplit(server.requests[0].target)
    assert target.path == "/p"
    assert parse_qsl(target.query, keep_blank_values=True) == expected


def test_encoded_target_is_sent_as_given(server: ScriptedServer, client: rawkeep.Client) -> None:
    client.get(f"{server.url}/a%20b/c%2Fd?x=%2F&y=%25")
    assert server.requests[0].target == "/a%20b/c%2Fd?x=%2F&y=%25"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"raw bytes \x00\xff", b"raw bytes \x00\xff"),
        ("h\u00e9llo \u2713", "h\u00e9llo \u2713".encode()),
        (b"", b""),
    ],
    ids=["bytes", "str", "empty-bytes"],
)
def test_bytes_and_str_bodies_use_content_length(
    server: ScriptedServer, client: rawkeep.Client, content: bytes | str, expected: bytes
) -> None:
    client.put(server.url, content=content)
    (request,) = server.requests
    assert request.body == expected
    assert request.header("content-length") == str(len(expected)).encode()
    assert request.header("transfer-encoding") is None


def chunks_with_an_empty_one() -> Iterator[bytes]:
    yield b"first,"
    yield b""  # must not be taken for the end of the body
    yield b"second"


@pytest.mark.parametrize(
    "make_body",
    [chunks_with_an_empty_one, lambda: [b"list ", b"of ", b"bytes"]],
    ids=["generator", "list"],
)
def test_iterable_body_is_chunked(
    server: ScriptedServer,
    client: rawkeep.Client,
    make_body: Callable[[], Any],
) -> None:
    body = make_body()
    expected = b"".join(make_body())
    assert client.post(server.url, content=body).status == 200

    (request,) = server.requests
    assert request.header("transfer-encoding") == b"chunked"
    assert request.header("content-length") is None
    assert request.body == expected
    # The connection stays usable: the chunked body was terminated properly.
    assert client.get(server.url).reused


def test_disk_file_body_uses_content_length(
    server: ScriptedServer, client: rawkeep.Client, tmp_path: Path
) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes(b"file body " * 1000)
    with path.open("rb") as file:
        client.put(f"{server.url}/disk", content=file)

    (request,) = server.requests
    assert request.body == b"file body " * 1000
    assert request.header("content-length") == b"10000"
    assert request.header("transfer-encoding") is None


def test_in_memory_file_body_uses_content_length(
    server: ScriptedServer, client: rawkeep.Client
) -> None:
    # A seekable file object's size is known even without a file descriptor.
    client.put(f"{server.url}/memory", content=io.BytesIO(b"in memory"))

    (request,) = server.requests
    assert request.body == b"in memory"
    assert request.header("content-length") == b"9"
    assert request.header("transfer-encoding") is None


def test_json_body(server: ScriptedServer, client: rawkeep.Client) -> None:
    document = {"name": "r\u00e9", "items": [1, 2.5, None, True], "nested": {"k": "v"}}
    client.post(server.url, json=document)

    (request,) = server.requests
    assert request.header("content-type") == b"application/json"
    assert json.loads(request.body) == document
    assert request.header("content-length") == str(len(request.body)).encode()


def test_form_body(server: ScriptedServer, client: rawkeep.Client) -> None:
    client.post(server.url, data={"a": "1", "text": "two words & more"})

    (request,) = server.requests
    assert request.header("content-type") == b"application/x-www-form-urlencoded"
    assert parse_qsl(request.body.decode()) == [("a", "1"), ("text", "two words & more")]


def test_post_without_body_sends_content_length_zero(
    server: ScriptedServer, client: rawkeep.Client
) -> None:
    client.post(server.url)
    (request,) = server.requests
    assert request.header("content-length") == b"0"
    assert request.body == b""
    assert request.header("transfer-encoding") is None


def test_large_upload_arrives_intact(server: ScriptedServer, client: rawkeep.Client) -> None:
    body = hashlib.sha256(b"seed").digest() * (8 * 1024 * 1024 // 32)  # 8 MiB
    client.put(f"{server.url}/big", content=body)
    assert client.get(f"{server.url}/after").reused

    big = server.requests[0]
    assert big.header("content-length") == str(len(body)).encode()
    assert hashlib.sha256(big.body).digest() == hashlib.sha256(body).digest()


def test_basic_auth_header(server: ScriptedServer, client: rawkeep.Client) -> None:
    client.get(server.url, auth=("user", "p\u00e4ss"))
    expected = b"Basic " + base64.b64encode("user:p\u00e4ss".encode())
    assert server.requests[0].header("authorization") == expected


def test_response_attributes(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    def respond(request: ReceivedRequest) -> Reply:
        return Reply(
            status=201,
            body='{"caf\u00e9": 1}'.encode(),
            headers=[
                ("Content-Type", "application/json; charset=utf-8"),
                ("X-Multi", "one"),
                ("X-Multi", "two"),
            ],
        )

    server = start_keepalive_server(respond=respond)
    url = f"{server.url}/created?x=1"
    response = client.get(url)

    assert (response.status, response.reason, response.http_version) == (
        201,
        "Created",
        "HTTP/1.1",
    )
    assert response.url == url
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers["CONTENT-TYPE"] == response.headers["Content-Type"]
    assert response.headers.get_all("x-multi") == ["one", "two"]
    assert response.headers.get("x-missing", "default") == "default"
    assert ("X-Multi", "two") in [(k.title(), v) for k, v in response.headers.items()]
    assert response.text == '{"caf\u00e9": 1}'
    assert response.json() == {"caf\u00e9": 1}
    assert response.history == []


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses_keep_the_connection(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    status: int,
) -> None:
    server = start_keepalive_server(respond=lambda request: Reply(status=status))
    first = client.get(server.url)
    second = client.get(server.url)
    assert (first.status, first.content) == (status, b"")
    assert second.reused
    assert server.accepted == 1


def test_head_response_has_no_body_and_keeps_connection(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_keepalive_server(respond=lambda request: Reply(body=b"x" * 1000))
    head = client.head(server.url)
    assert head.headers["content-length"] == "1000"
    assert head.content == b""
    after = client.get(server.url)
    assert after.reused
    assert after.content == b"x" * 1000


def test_chunked_response_keeps_the_connection(
    start_keepalive_server: Callable[..., ScriptedServer], client: rawkeep.Client
) -> None:
    server = start_keepalive_server(respond=lambda request: Reply(body=b"abcdef", chunked=True))
    assert client.get(server.url).content == b"abcdef"
    second = client.get(server.url)
    assert (second.content, second.reused) == (b"abcdef", True)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_verb_helpers_send_their_method(
    server: ScriptedServer, client: rawkeep.Client, method: str
) -> None:
    helper = getattr(client, method.lower())
    assert helper(f"{server.url}/{method}").content == f"/{method}".encode()
    assert (server.requests[0].method, server.requests[0].target) == (method, f"/{method}")


def test_lower_case_method_is_sent_upper_cased(
    server: ScriptedServer, client: rawkeep.Client
) -> None:
    assert client.request("get", server.url + "/a").content == b"/a"
    assert client.request("Post", server.url + "/b").status == 200
    assert [r.method for r in server.requests] == ["GET", "POST"]


@pytest.mark.parametrize(
    "content",
    [{"a": 1}, [1, 2], (b"ok", "not bytes")],
    ids=["dict", "list-of-ints", "tuple-with-str"],
)
def test_content_meant_as_json_or_a_form_is_refused_before_any_io(
    server: ScriptedServer, client: rawkeep.Client, content: Any
) -> None:
    with pytest.raises(TypeError, match="json="):
        client.post(server.url, content=content)
    assert server.accepted == 0
    assert client.pool_stats().opened == 0


def test_a_string_as_form_data_is_refused_before_any_io(
    server: ScriptedServer, client: rawkeep.Client
) -> None:
    with pytest.raises(TypeError, match="content="):
        client.post(server.url, data="a=1")  # type: ignore[arg-type]
    assert server.accepted == 0


def test_an_iterable_that_gives_non_bytes_fails_and_frees_its_connection(
    server: ScriptedServer, client: rawkeep.Client
) -> None:
    def parts() -> Iterator[Any]:
        yield b"fine, "
        yield 42

    with pytest.raises(TypeError, match="must give bytes, and gave a int"):
        client.post(server.url, content=parts())
    stats = client.pool_stats()
    assert stats.active == 0
    assert stats.idle == 0
    assert client.get(server.url + "/after").content == b"/after"
