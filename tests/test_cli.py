"""The ``rawkeep`` command line, run as a subprocess against loopback servers.

Each test starts its own server (tests/servers), runs ``python -m rawkeep``
with a bounded timeout and checks the exit code, stdout (bodies, exactly) and
stderr (the -v story, the one-line errors). The server's ledger shows what
really went over the wire: how many connections, which requests.
"""

from __future__ import annotations

import base64
import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from servers import faults
from servers.h11server import Reply, echo_token, fixed_body
from servers.scripted import render_response

import rawkeep
from rawkeep._app.exitcodes import ExitCode

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.scripted import ReceivedRequest, ScriptedServer, ServerConnection

    StartServer = Callable[..., ScriptedServer]

#: Bound (seconds) for one run of the command; a run takes well under 1 s.
RUN_TIMEOUT = 20.0
REPO = Path(__file__).resolve().parent.parent


def run(
    *args: str, cwd: Path | None = None, stdin: bytes = b"", stderr: int | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m rawkeep ARGS``; stdout and stderr captured."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "rawkeep", *args],
        input=stdin,
        capture_output=stderr is None,
        stdout=subprocess.PIPE if stderr is not None else None,
        stderr=stderr,
        timeout=RUN_TIMEOUT,
        cwd=cwd,
        env=env,
        check=False,
    )


def lines(output: bytes) -> list[str]:
    return output.decode().splitlines()


def assert_one_line_error(result: subprocess.CompletedProcess[bytes], code: int) -> str:
    """The run failed with ``code`` and said why in one line plus a hint."""
    assert result.returncode == code, result.stderr
    err = lines(result.stderr)
    assert len(err) == 2, err
    assert err[0].startswith("rawkeep: ")
    assert err[1] == "Try 'rawkeep --help' for more information."
    assert "Traceback" not in result.stderr.decode()
    return err[0]


# -- bodies and the story ------------------------------------------------------------


def test_two_urls_on_one_origin_reuse_one_connection(server: ScriptedServer) -> None:
    result = run("-v", f"{server.url}/a", f"{server.url}/b")

    assert result.returncode == 0, result.stderr
    assert result.stdout == b"/a/b"  # bodies in order, nothing else
    assert server.requests_per_connection() == [2]
    story = lines(result.stderr)
    assert story[0].startswith(f"* connected to {server.origin} as connection #0 in ")
    assert story[0].endswith(" ms")
    # Every request header as the server received it, in its order.
    # (The first request of a connection asks the server to announce its
    # keep-alive limits; the one that reuses it does not.)
    sent = [f"> {n.decode()}: {v.decode()}" for n, v in server.requests[0].headers]
    assert [line.lower() for line in story[1:7]] == [
        line.lower() for line in ["> GET /a HTTP/1.1", *sent]
    ]
    assert story[2:7] == [
        f"> Host: 127.0.0.1:{server.port}",
        f"> User-Agent: rawkeep/{rawkeep.__version__}",
        "> Accept: */*",
        "> Accept-Encoding: gzip, deflate",
        "> Connection: keep-alive",
    ]
    assert story[7:9] == ["< HTTP/1.1 200 OK", "< Content-Length: 2"]
    assert story[9] == "* body done (2 bytes); connection #0 kept alive for reuse"
    assert story[10].startswith("* reusing connection #0 (idle ")
    assert story[10].endswith(", response 2 on it)")
    assert story[11:16] == [
        "> GET /b HTTP/1.1",
        f"> Host: 127.0.0.1:{server.port}",
        f"> User-Agent: rawkeep/{rawkeep.__version__}",
        "> Accept: */*",
        "> Accept-Encoding: gzip, deflate",
    ]
    assert story[16] == "< HTTP/1.1 200 OK"
    assert "* connection #0 closed: the client was closed" in story
    assert story[-1].startswith(
        "* summary: 2 requests, 1 connection opened,"
        " 1 of 2 responses on a reused connection (reuse ratio 50%), 0 retries, "
    )


def test_without_verbose_stderr_is_empty(server: ScriptedServer) -> None:
    result = run(f"{server.url}/only")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"/only", b"")


def test_bodies_are_binary_safe_and_whole(start_keepalive_server: StartServer) -> None:
    size = 3 * 1024 * 1024 + 7
    server = start_keepalive_server(respond=fixed_body(size, chunked=True))
    result = run(f"{server.url}/big", f"{server.url}/big")
    assert result.returncode == 0, result.stderr
    assert result.stdout == bytes(i % 251 for i in range(size)) * 2


def test_repeat_sends_the_list_again(server: ScriptedServer) -> None:
    result = run("--repeat", "3", f"{server.url}/a", f"{server.url}/b")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"/a/b" * 3
    assert server.requests_per_connection() == [6]


def test_server_keep_alive_max_retires_the_connection(
    start_keepalive_server: StartServer,
) -> None:
    server = start_keepalive_server(keep_alive_timeout=5, keep_alive_max=0)
    result = run("-v", f"{server.url}/a", f"{server.url}/b")
    assert result.returncode == 0, result.stderr
    story = lines(result.stderr)
    assert "< Keep-Alive: timeout=5, max=0" in story
    assert (
        "* connection #0 retired: server Keep-Alive max reached (Keep-Alive: timeout=5, max=0)"
    ) in story
    assert any(line.startswith("* connected to ") and "#1" in line for line in story)
    assert server.requests_per_connection() == [1, 1]


def test_connection_close_is_told(start_keepalive_server: StartServer) -> None:
    server = start_keepalive_server(connection_close=True)
    result = run("-v", f"{server.url}/a", f"{server.url}/b")
    assert result.returncode == 0, result.stderr
    story = lines(result.stderr)
    assert "< Connection: close" in story
    assert "* connection #0 closed: Connection: close, no more requests on it" in story
    assert "* connection #1 closed: Connection: close, no more requests on it" in story
    assert "reuse ratio 0%" in story[-1]


def test_idle_timeout_zero_disables_reuse(server: ScriptedServer) -> None:
    result = run("-v", "--idle-timeout", "0", f"{server.url}/a", f"{server.url}/b")
    assert result.returncode == 0, result.stderr
    assert "* connection #0 retired: idle longer than the client's idle timeout (0 s)" in lines(
        result.stderr
    )
    assert server.requests_per_connection() == [1, 1]


def race_server(start_server: StartServer) -> ScriptedServer:
    """Connection 0 answers once, then reads the next request and closes."""
    return start_server(
        faults.per_connection(
            faults.serve_then(1, faults.close_without_response), faults.keep_serving
        )
    )


def test_keep_alive_race_retries_a_get(start_server: StartServer, tmp_path: Path) -> None:
    server = race_server(start_server)
    trace = tmp_path / "trace.jsonl"
    result = run("-v", "--trace", str(trace), f"{server.url}/a", f"{server.url}/b")

    assert result.returncode == 0, result.stderr
    assert result.stdout == b"okok"
    story = lines(result.stderr)
    retry = story.index(
        "* retrying GET on a new connection"
        " (attempt 1; #0: server closed the connection without sending a response)"
    )
    # The request line is shown again after the new connection's line.
    assert story[retry + 1].startswith("* connected to ")
    assert "#1" in story[retry + 1]
    assert story[retry + 2] == "> GET /b HTTP/1.1"
    assert ", 1 retry, " in story[-1]
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    retried = [e for e in events if e["event"] == "RequestRetried"]
    assert len(retried) == 1
    assert retried[0]["method"] == "GET"
    assert retried[0]["attempt"] == 1


def test_keep_alive_race_does_not_retry_a_post(start_server: StartServer) -> None:
    server = race_server(start_server)
    result = run("-d", "x=1", f"{server.url}/a", f"{server.url}/b")

    assert result.returncode == ExitCode.PROTOCOL
    assert result.stdout == b"ok"  # the first body was written before the failure
    (error,) = lines(result.stderr)
    assert error.startswith("rawkeep: protocol error: server closed the connection")
    assert error.endswith("(on reused connection #0; not retried: POST is not idempotent)")
    assert [r.method for r in server.requests] == ["POST", "POST"]


# -- --trace -------------------------------------------------------------------------


def test_trace_writes_one_json_event_per_line(server: ScriptedServer, tmp_path: Path) -> None:
    trace = tmp_path / "events.jsonl"
    result = run("--trace", str(trace), f"{server.url}/a", f"{server.url}/b")

    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [(e["event"], e.get("reason")) for e in events] == [
        ("ConnectionOpened", None),
        ("ConnectionReused", None),
        ("ConnectionClosed", "client_closed"),
    ]
    for event in events:
        assert event["connection_id"] == 0
        assert event["origin"] == server.origin
        assert isinstance(event["time"], float)
    assert events[1]["responses"] == 1
    assert events[0]["tls_version"] is None


def test_unwritable_trace_is_an_output_error(server: ScriptedServer, tmp_path: Path) -> None:
    result = run("--trace", str(tmp_path / "no" / "such" / "dir"), f"{server.url}/a")
    assert result.returncode == ExitCode.OUTPUT
    assert lines(result.stderr)[0].startswith("rawkeep: output error: can't write ")
    assert server.requests == []


# -- output options ------------------------------------------------------------------


def test_output_file_gets_every_body(server: ScriptedServer, tmp_path: Path) -> None:
    out = tmp_path / "bodies"
    result = run("-o", str(out), f"{server.url}/a", f"{server.url}/b")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    assert out.read_bytes() == b"/a/b"


def test_remote_name_writes_one_file_per_url(server: ScriptedServer, tmp_path: Path) -> None:
    result = run("-O", f"{server.url}/dir/one.txt", f"{server.url}/two", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, b""), result.stderr
    assert (tmp_path / "one.txt").read_bytes() == b"/dir/one.txt"
    assert (tmp_path / "two").read_bytes() == b"/two"


@pytest.mark.parametrize("path", ["/dir/", "/..", "/a%2Fb", "/%2E%2E"])
def test_remote_name_refuses_unsafe_names(
    server: ScriptedServer, tmp_path: Path, path: str
) -> None:
    result = run("-O", f"{server.url}{path}", cwd=tmp_path)
    assert "use -o FILE" in assert_one_line_error(result, ExitCode.USAGE)
    assert server.requests == []
    assert list(tmp_path.iterdir()) == []


def test_include_writes_the_head_before_the_body(server: ScriptedServer) -> None:
    result = run("-i", f"{server.url}/a", f"{server.url}/b")
    assert result.returncode == 0, result.stderr
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    assert result.stdout == head + b"/a" + head + b"/b"


def test_fail_exits_8_without_writing_the_body(start_keepalive_server: StartServer) -> None:
    def respond(request: ReceivedRequest) -> Reply:
        if request.path == "/missing":
            return Reply(status=404, body=b"not here")
        return echo_token(request)

    server = start_keepalive_server(respond=respond)
    plain = run(f"{server.url}/missing")
    assert (plain.returncode, plain.stdout) == (0, b"not here")

    failed = run("--fail", f"{server.url}/a", f"{server.url}/missing", f"{server.url}/c")
    assert failed.returncode == ExitCode.HTTP_STATUS
    assert failed.stdout == b"/a"  # stops at the first error
    assert lines(failed.stderr) == [
        f"rawkeep: HTTP error: 404 Not Found from {server.url}/missing"
    ]


def test_progress_bar_only_on_a_terminal(start_server: StartServer) -> None:
    size = 6 * 1024 * 1024

    def slow_body(conn: ServerConnection) -> None:
        # Slow enough for a few redraws (one every 0.1 s).
        while conn.read_request() is not None:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            for _ in range(8):
                conn.send(b"x" * (size // 8))
                conn.sleep(0.05)

    server = start_server(slow_body)
    master, slave = pty.openpty()
    try:
        result = run(f"{server.url}/big", stderr=slave)
        shown = _read_all(master)
    finally:
        os.close(master)
        os.close(slave)
    assert result.returncode == 0
    assert len(result.stdout) == size
    assert "6.0 MiB [####################] 100%" in shown
    assert "MiB/s" in shown

    quiet = run(f"{server.url}/big")  # stderr is a pipe, not a terminal
    assert quiet.returncode == 0
    assert quiet.stderr == b""


def _read_all(fd: int) -> str:
    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        chunks.append(os.read(fd, 65536))
    return b"".join(chunks).decode()


# -- the request ---------------------------------------------------------------------


def test_method_headers_and_data(server: ScriptedServer) -> None:
    result = run(
        "-X", "PUT", "-H", "X-Token: t1", "-H", "X-Other:  spaced ", "-d", "a=1",
        f"{server.url}/put",
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, b"t1"), result.stderr
    (request,) = server.requests
    assert (request.method, request.body) == ("PUT", b"a=1")
    assert request.header("x-other") == b"spaced"
    assert request.header("content-type") == b"application/x-www-form-urlencoded"


def test_data_from_a_file_and_from_stdin(server: ScriptedServer, tmp_path: Path) -> None:
    body = tmp_path / "body.bin"
    body.write_bytes(b"\x00\x01binary\xff")
    assert run("-d", f"@{body}", f"{server.url}/f").returncode == 0
    assert run("-d", "@-", f"{server.url}/s", stdin=b"from stdin").returncode == 0
    first, second = server.requests
    assert (first.method, first.body) == ("POST", b"\x00\x01binary\xff")
    assert second.body == b"from stdin"


def test_json_body_sets_its_headers(server: ScriptedServer) -> None:
    result = run("--json", '{"a": 1}', f"{server.url}/j")
    assert result.returncode == 0, result.stderr
    (request,) = server.requests
    assert (request.method, request.body) == ("POST", b'{"a": 1}')
    assert request.header("content-type") == b"application/json"
    assert request.header("accept") == b"application/json"


def test_user_sends_basic_auth(server: ScriptedServer) -> None:
    assert run("-u", "ann:s3cret", f"{server.url}/a").returncode == 0
    expected = b"Basic " + base64.b64encode(b"ann:s3cret")
    assert server.requests[0].header("authorization") == expected


def test_location_follows_redirects(start_keepalive_server: StartServer) -> None:
    def respond(request: ReceivedRequest) -> Reply:
        if request.path == "/old":
            return Reply(status=302, headers=[("Location", "/new")])
        return echo_token(request)

    server = start_keepalive_server(respond=respond)
    assert run(f"{server.url}/old").stdout == b""
    result = run("-L", f"{server.url}/old")
    assert (result.returncode, result.stdout) == (0, b"/new"), result.stderr
    assert [r.target for r in server.requests] == ["/old", "/old", "/new"]


def test_verbose_redirects_tell_each_hop_in_order(start_keepalive_server: StartServer) -> None:
    hops = {"/one": "/two", "/two": "/end"}

    def respond(request: ReceivedRequest) -> Reply:
        if request.path in hops:
            return Reply(status=302, headers=[("Location", hops[request.path])])
        return echo_token(request)

    server = start_keepalive_server(respond=respond)
    result = run("-L", "-v", "-H", "X-Trace: 7", f"{server.url}/one")
    assert (result.returncode, result.stdout) == (0, b"/end"), result.stderr
    assert server.requests_per_connection() == [3]

    def request(target: str) -> list[str]:
        return [
            f"> GET {target} HTTP/1.1",
            f"> Host: 127.0.0.1:{server.port}",
            f"> User-Agent: rawkeep/{rawkeep.__version__}",
            "> Accept: */*",
            "> Accept-Encoding: gzip, deflate",
            "> X-Trace: 7",
        ]

    def redirect(to: str) -> list[str]:
        return ["< HTTP/1.1 302 Found", f"< Location: {to}", "< Content-Length: 0"]

    def reusing(response: int) -> str:
        return f"* reusing connection #0 (idle TIME, response {response} on it)"

    story = [
        re.sub(r"\d+\.\d (ms|s)\b", "TIME", line).replace(server.origin, "ORIGIN")
        for line in lines(result.stderr)
    ]
    assert story == [
        "* connected to ORIGIN as connection #0 in TIME",
        *request("/one"),
        "> Connection: keep-alive",  # a connection's first request only
        *redirect("/two"),
        reusing(2),
        *request("/two"),
        *redirect("/end"),
        reusing(3),
        *request("/end"),
        "< HTTP/1.1 200 OK",
        "< Content-Length: 4",
        "* body done (4 bytes); connection #0 kept alive for reuse",
        "* connection #0 closed: the client was closed",
        "* summary: 1 request, 1 connection opened, 2 of 3 responses on a reused"
        " connection (reuse ratio 67%), 0 retries, TIME in all",
    ]


def test_tls_with_cacert_and_insecure(
    start_keepalive_server: StartServer, server_ssl_context: object, ca_pem_path: str
) -> None:
    server = start_keepalive_server(ssl_context=server_ssl_context)
    verified = run("-v", "--cacert", ca_pem_path, f"{server.url}/a")
    assert (verified.returncode, verified.stdout) == (0, b"/a"), verified.stderr
    assert ", TLSv1." in lines(verified.stderr)[0]
    assert run("-k", f"{server.url}/b").stdout == b"/b"

    untrusted = run(f"{server.url}/c")
    assert untrusted.returncode == ExitCode.TLS
    assert lines(untrusted.stderr)[0].startswith("rawkeep: TLS error: ")


def _tls_story(stderr: bytes) -> list[str]:
    """The lines -v says of a new connection, before its request."""
    said = lines(stderr)
    return said[: next(i for i, line in enumerate(said) if line.startswith("> "))]


def test_verbose_tells_the_tls_handshake_and_certificate(
    start_keepalive_server: StartServer,
    server_ssl_context: object,
    ca_pem_path: str,
) -> None:
    server = start_keepalive_server(ssl_context=server_ssl_context)
    verified = run("-v", "--cacert", ca_pem_path, f"{server.url}/a", f"{server.url}/b")
    assert verified.returncode == 0, verified.stderr
    connected, using, heading, subject, start, expire, names, issuer, ok = _tls_story(
        verified.stderr
    )
    assert connected.startswith(f"* connected to {server.origin} as connection #0 in ")
    assert re.fullmatch(r"\* TLS connection using TLSv1\.[23] / \S+ \(\d+ bits\)", using)
    assert heading == "* Server certificate:"
    assert subject.startswith("*  subject: O=trustme")
    assert re.fullmatch(r"\*  start date: \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} GMT", start)
    assert expire.startswith("*  expire date: ")
    assert names == "*  subjectAltName: IP Address:127.0.0.1, DNS:localhost"
    assert issuer.startswith("*  issuer: O=trustme")
    assert ok == "*  certificate verified"
    # Told once per connection: the reused one says nothing of TLS again.
    assert sum("TLS connection using" in line for line in lines(verified.stderr)) == 1

    insecure = run("-v", "-k", f"{server.url}/c")
    assert insecure.returncode == 0, insecure.stderr
    connected, using, unverified = _tls_story(insecure.stderr)
    assert using.startswith("* TLS connection using TLSv1.")
    assert unverified == "* server certificate not verified: details not shown"


# -- exit codes and errors ---------------------------------------------------------------


def test_connect_refused(refused_url: str) -> None:
    result = run(f"{refused_url}/")
    assert result.returncode == ExitCode.CONNECT
    (error,) = lines(result.stderr)
    assert error.startswith("rawkeep: connect error: could not connect to 127.0.0.1:")


def test_connect_timeout(never_accepting_listener: str) -> None:
    started = time.monotonic()
    result = run("--timeout", "0.3", f"{never_accepting_listener}/")
    assert result.returncode == ExitCode.CONNECT
    assert lines(result.stderr)[0].startswith("rawkeep: connect timeout: ")
    assert time.monotonic() - started < RUN_TIMEOUT / 2


def test_read_timeout(start_server: StartServer) -> None:
    server = start_server(faults.stall)
    result = run("--timeout", "0.3", f"{server.url}/")
    assert result.returncode == ExitCode.TIMEOUT
    assert lines(result.stderr) == ["rawkeep: timeout: read timed out after 0.3 s"]


def test_protocol_error(start_server: StartServer) -> None:
    server = start_server(faults.garbage)
    result = run(f"{server.url}/")
    assert result.returncode == ExitCode.PROTOCOL
    assert lines(result.stderr)[0].startswith("rawkeep: protocol error: ")


def test_debug_adds_the_traceback_and_silent_removes_the_line(refused_url: str) -> None:
    debug = run("--debug", f"{refused_url}/")
    assert debug.returncode == ExitCode.CONNECT
    assert "Traceback" in debug.stderr.decode()
    assert "rawkeep._exceptions.ConnectError" in debug.stderr.decode()
    silent = run("-s", f"{refused_url}/")
    assert (silent.returncode, silent.stderr) == (ExitCode.CONNECT, b"")


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--bogus", "http://127.0.0.1:9/"], ExitCode.USAGE, "unrecognized arguments: --bogus"),
        ([], ExitCode.USAGE, "the following arguments are required: URL"),
        (["-H", "no colon", "http://127.0.0.1:9/"], ExitCode.USAGE, "bad -H 'no colon'"),
        (["-H", " X: 1", "http://127.0.0.1:9/"], ExitCode.USAGE, "bad -H"),
        (["-d", "@/no/such/file", "http://127.0.0.1:9/"], ExitCode.USAGE, "can't read the -d"),
        (["--repeat", "0", "http://127.0.0.1:9/"], ExitCode.USAGE, "must be at least 1"),
        (["--timeout", "soon", "http://127.0.0.1:9/"], ExitCode.USAGE, "not a number"),
        (["-o", "x", "-O", "http://127.0.0.1:9/x"], ExitCode.USAGE, "give -o or -O"),
        (["-d", "a", "--json", "1", "http://127.0.0.1:9/"], ExitCode.USAGE, "give -d or --json"),
        (["-u", "ann", "http://127.0.0.1:9/"], ExitCode.USAGE, "give -u USER:PASSWORD"),
        (["--cacert", "/no/such.pem", "https://127.0.0.1:9/"], ExitCode.USAGE, "--cacert"),
        (["127.0.0.1:9/"], ExitCode.INVALID_URL, "has no scheme; try http://127.0.0.1:9/"),
        (["-v", "demo"], ExitCode.INVALID_URL, "rawkeep demo"),
        (["ftp://127.0.0.1/"], ExitCode.INVALID_URL, "unsupported scheme 'ftp'"),
        (["http://127.0.0.1:99999/"], ExitCode.INVALID_URL, "invalid URL"),
        (["http://127.0.0.1:9/ok", "http://exa mple/"], ExitCode.INVALID_URL, "whitespace"),
    ],
)
def test_bad_input_gets_one_line_and_a_hint(args: list[str], code: ExitCode, words: str) -> None:
    # Port 9 (discard) is never reached: everything is refused before any I/O.
    assert words in assert_one_line_error(run(*args), code)


def test_invalid_request_header_is_bad_input(server: ScriptedServer) -> None:
    result = run("-H", "Bad Name: x", f"{server.url}/")
    assert result.returncode == ExitCode.USAGE
    assert lines(result.stderr)[0].startswith("rawkeep: invalid request: ")
    assert server.requests == []


def answering_proxy(conn: ServerConnection) -> None:
    """A forward proxy stand-in: answers each request itself with its target."""
    while (request := conn.read_request()) is not None:
        conn.send(render_response(200, request.target.encode()))


def test_proxy_gets_the_absolute_target(start_server: StartServer) -> None:
    proxy = start_server(answering_proxy)
    # Port 9 is never contacted: the proxy answers for it.
    result = run("--proxy", proxy.url, "http://127.0.0.1:9/x", "http://127.0.0.1:9/y")
    assert (result.returncode, result.stdout) == (0, b"http://127.0.0.1:9/xhttp://127.0.0.1:9/y")
    assert proxy.requests_per_connection() == [2]


def test_proxy_refusing_a_tunnel_is_a_proxy_error(start_server: StartServer) -> None:
    def refusing(conn: ServerConnection) -> None:
        if conn.read_request() is not None:
            conn.send(render_response(403, b"no"))

    proxy = start_server(refusing)
    result = run("--proxy", proxy.url, "https://127.0.0.1:9/")
    assert result.returncode == ExitCode.PROXY
    assert lines(result.stderr)[0].startswith("rawkeep: proxy error: ")


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets here")
def test_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "http.sock")
    heads: list[bytes] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        thread = threading.Thread(target=_serve_one_connection, args=(listener, heads))
        thread.start()
        try:
            result = run(
                "--timeout", "5", "--unix-socket", path, "http://app.local/a", "http://app.local/b"
            )
        finally:
            thread.join(RUN_TIMEOUT)
    assert (result.returncode, result.stdout) == (0, b"okok"), result.stderr
    assert [head.split(b"\r\n")[0] for head in heads] == [b"GET /a HTTP/1.1", b"GET /b HTTP/1.1"]
    assert all(b"\r\nHost: app.local\r\n" in head for head in heads)


def _serve_one_connection(listener: socket.socket, heads: list[bytes]) -> None:
    """Accept one connection only (a second would never be answered) and
    answer each bodiless request "ok" until the client closes."""
    listener.settimeout(RUN_TIMEOUT)
    conn, _ = listener.accept()
    buffer = b""
    with conn:
        conn.settimeout(RUN_TIMEOUT)
        while chunk := conn.recv(65536):
            buffer += chunk
            while b"\r\n\r\n" in buffer:
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                heads.append(head)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def test_help_documents_options_and_exit_codes() -> None:
    result = run("--help")
    assert result.returncode == 0
    text = result.stdout.decode()
    for option in ("-v, --verbose", "--trace FILE", "--repeat N", "-O, --remote-name"):
        assert option in text
    for code in ExitCode:
        assert f"\n  {code.value:<3} " in text, code
    assert "rawkeep demo" in text


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.decode().startswith("rawkeep ")


def test_import_rawkeep_does_not_load_the_command_line() -> None:
    code = "import sys, rawkeep; print(sorted(m for m in ('argparse', 'json',"
    code += " 'rawkeep._app', 'rawkeep._app.cli') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        timeout=RUN_TIMEOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    assert result.stdout.strip() == b"[]"


def test_http_1_0_response_is_not_reused(start_server: StartServer) -> None:
    def http10(conn: ServerConnection) -> None:
        if conn.read_request() is not None:
            conn.send(render_response(200, b"old", http_version="1.0"))
            conn.close()

    server = start_server(http10)
    result = run("-v", f"{server.url}/a", f"{server.url}/b")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"oldold"
    assert "* connection #0 closed: the response was HTTP/1.0, which is never reused" in lines(
        result.stderr
    )


def test_main_returns_the_exit_code_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    from rawkeep._app.cli import main

    assert main(["--version"]) == ExitCode.OK
    assert main(["-H", "bad", "http://127.0.0.1:9/"]) == ExitCode.USAGE
    assert main(["--proxy", "socks5://127.0.0.1:1080", "http://127.0.0.1:9/"]) == 3
    captured = capsys.readouterr()
    assert captured.out.startswith("rawkeep ")
    assert captured.err.count("rawkeep: error: ") == 1
    assert captured.err.count("rawkeep: invalid URL: ") == 1
