"""The ``rawkeep`` options that follow curl's habits, run as a subprocess
against loopback servers (see test_cli.py for the shape of these tests)."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from servers import faults
from servers.h11server import Reply
from servers.scripted import render_response

import rawkeep
from rawkeep._app.exitcodes import ExitCode

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.scripted import ReceivedRequest, ScriptedServer, ServerConnection

    StartServer = Callable[..., ScriptedServer]

#: Bound (seconds) for one run of the command.
RUN_TIMEOUT = 20.0
REPO = Path(__file__).resolve().parent.parent
#: No proxy variable of the machine running the tests leaks into a run.
_CLEAN_ENV = {
    name: value for name, value in os.environ.items() if not name.lower().endswith("_proxy")
}


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "rawkeep", *args],
        capture_output=True,
        timeout=RUN_TIMEOUT,
        env={**_CLEAN_ENV, "PYTHONPATH": str(REPO), **(env or {})},
        cwd=cwd,
        check=False,
    )


def err_lines(result: subprocess.CompletedProcess[bytes]) -> list[str]:
    return result.stderr.decode().splitlines()


# -- -w ---------------------------------------------------------------------------------


def test_write_out_curl_and_story_variables(server: ScriptedServer) -> None:
    form = (
        r"%{http_code} %{num_connects} %{url_effective} %{size_download}"
        r" reused=%{reused} conn=%{connection_id} %{method} %{http_version}%%\n"
    )
    result = run("-o", os.devnull, "-w", form, f"{server.url}/a", f"{server.url}/bb")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        f"200 1 {server.url}/a 2 reused=0 conn=0 GET 1.1%",
        f"200 0 {server.url}/bb 3 reused=1 conn=0 GET 1.1%",
    ]


def test_write_out_times_are_ordered_seconds(server: ScriptedServer) -> None:
    form = r"%{time_connect} %{time_starttransfer} %{time_total} %{idle_for}\n"
    result = run("-o", os.devnull, "-w", form, f"{server.url}/a", f"{server.url}/a")
    assert result.returncode == 0, result.stderr
    first, second = (
        [float(x) for x in line.split()] for line in result.stdout.decode().splitlines()
    )
    assert 0 < first[0] <= first[1] <= first[2] < 5
    assert first[3] == 0  # a new connection had not been idle
    assert 0 < second[3] < 5  # the reused one had


def test_write_out_after_a_failed_transfer_says_000(refused_url: str) -> None:
    result = run("-s", "-w", r"%{http_code} %{num_connects}\n", refused_url)
    assert (result.returncode, result.stdout, result.stderr) == (ExitCode.CONNECT, b"000 0\n", b"")


def test_unknown_write_out_variable_is_a_usage_error_before_any_io(
    start_server: StartServer,
) -> None:
    server = start_server(faults.keep_serving)
    result = run("-w", "%{http_code} %{nope}", f"{server.url}/a")
    assert result.returncode == ExitCode.USAGE
    assert err_lines(result)[0] == "rawkeep: error: unknown -w variable %{nope}"
    assert server.requests == []
    assert server.accepted == 0


# -- request options --------------------------------------------------------------------


def test_head_writes_the_head_and_sends_head(server: ScriptedServer) -> None:
    result = run("-I", f"{server.url}/a")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    assert [r.method for r in server.requests] == ["HEAD"]


def test_user_agent_and_get_with_data(server: ScriptedServer) -> None:
    result = run("-A", "probe/1", "-G", "-d", "a=1", "-d", "b=2", f"{server.url}/q")
    assert result.returncode == 0, result.stderr
    (request,) = server.requests
    assert (request.method, request.target, request.body) == ("GET", "/q?a=1&b=2", b"")
    assert request.header("user-agent") == b"probe/1"
    assert request.header("content-type") is None


def test_data_given_twice_is_joined_by_ampersand(server: ScriptedServer) -> None:
    assert run("-d", "a=1", "-d", "b=2", server.url).returncode == 0
    assert server.requests[0].body == b"a=1&b=2"


def test_silent_hides_errors_unless_show_error(refused_url: str) -> None:
    assert run("-s", refused_url).stderr == b""
    shown = run("-sS", refused_url)
    assert shown.returncode == ExitCode.CONNECT
    assert err_lines(shown)[0].startswith("rawkeep: connect error: ")


def test_cookie_string_file_and_jar(start_keepalive_server: StartServer, tmp_path: Path) -> None:
    def respond(request: ReceivedRequest) -> Reply:
        return Reply(body=request.header("cookie") or b"-", headers=[("Set-Cookie", "got=1")])

    server = start_keepalive_server(respond=respond)
    assert run("-b", "a=1; b=2", server.url).stdout == b"a=1; b=2"
    # A file that does not exist yet is an empty jar: -b and -c on one file.
    jar = tmp_path / "jar.txt"
    first = run("-b", str(jar), "-c", str(jar), f"{server.url}/1", f"{server.url}/2")
    assert (first.returncode, first.stdout) == (0, b"-got=1"), first.stderr
    saved = jar.read_text()
    assert saved.startswith("# Netscape HTTP Cookie File")
    assert "\tgot\t1" in saved
    again = run("-b", str(jar), f"{server.url}/3")
    assert again.stdout == b"got=1"


def test_bad_cookie_file_is_a_usage_error(tmp_path: Path, refused_url: str) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("not a cookie file\n")
    result = run("-b", str(bad), refused_url)
    assert result.returncode == ExitCode.USAGE
    assert "can't read the -b cookie file" in err_lines(result)[0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["-m", "0"], "must be more than 0"),
        (["--max-time", "soon"], "not a number of seconds"),
        (["--connect-timeout", "-1"], "must be finite and >= 0"),
        (["--retry", "x"], "not a whole number"),
        (["-I", "-d", "a=1"], "-I sends HEAD"),
        (["-c", "/nonexistent-dir/jar"], "can't write the -c file"),
    ],
)
def test_bad_option_values_exit_2_before_any_socket(
    start_server: StartServer, args: list[str], words: str
) -> None:
    server = start_server(faults.keep_serving)
    result = run(*args, server.url)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert words in err_lines(result)[0]
    assert server.accepted == 0


# -- time limits and --retry ------------------------------------------------------------


def test_max_time_bounds_the_whole_transfer(start_server: StartServer) -> None:
    def dripping(conn: ServerConnection) -> None:
        # Each wait is short (0.1 s), the whole is long (3 s): only a
        # limit on the whole transfer stops it.
        if conn.read_request() is not None:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n")
            for _ in range(30):
                conn.send(b"x")
                conn.sleep(0.1)

    server = start_server(dripping)
    started = time.monotonic()
    result = run("--timeout", "1", "-m", "0.6", f"{server.url}/slow")
    took = time.monotonic() - started
    assert result.returncode == ExitCode.TIMEOUT, result.stderr
    assert err_lines(result) == [
        "rawkeep: timeout: the transfer took longer than --max-time 0.6 s"
    ]
    assert 0 < len(result.stdout) < 30
    assert took < 2.5


def test_connect_timeout(never_accepting_listener: str) -> None:
    started = time.monotonic()
    result = run("--connect-timeout", "0.3", never_accepting_listener)
    assert result.returncode == ExitCode.CONNECT, result.stderr
    assert "connect timeout" in err_lines(result)[0]
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("option", ["--timeout", "--connect-timeout"])
def test_zero_timeout_is_a_timeout_at_once(option: str, never_accepting_listener: str) -> None:
    # Zero leaves no time to connect: a connect timeout, said as one, never
    # a connect error from a socket still connecting ("in progress").
    started = time.monotonic()
    result = run(option, "0", never_accepting_listener)
    assert result.returncode == ExitCode.CONNECT, result.stderr
    [line] = err_lines(result)
    assert line.startswith("rawkeep: connect timeout: "), line
    assert "timed out after 0.0 s" in line
    assert "in progress" not in line
    assert time.monotonic() - started < 5


def test_retry_transient_statuses_then_succeed(start_server: StartServer) -> None:
    answers = iter([503, 429, 200])

    def flaky(conn: ServerConnection) -> None:
        while conn.read_request() is not None:
            status = next(answers, 200)
            conn.send(render_response(status, b"ok" if status == 200 else b"busy"))

    server = start_server(flaky)
    result = run("--retry", "3", "--retry-delay", "0", "-w", r" %{num_retries}", server.url)
    assert (result.returncode, result.stdout) == (0, b"ok 2"), result.stderr
    assert err_lines(result) == [
        "rawkeep: warning: HTTP 503 Whatever; retrying in 0 s (3 left)",
        "rawkeep: warning: HTTP 429 Whatever; retrying in 0 s (2 left)",
    ]
    assert len(server.requests) == 3


def test_retry_gives_up_and_writes_the_last_answer(start_server: StartServer) -> None:
    def busy(conn: ServerConnection) -> None:
        while conn.read_request() is not None:
            conn.send(render_response(503, b"busy", [("Retry-After", "0")]))

    server = start_server(busy)
    result = run("--retry", "1", "-f", server.url)
    assert result.returncode == ExitCode.HTTP_STATUS
    assert len(server.requests) == 2
    assert err_lines(result)[0] == (
        "rawkeep: warning: HTTP 503 Whatever; retrying in 0 s (1 left)"
    )


def test_retry_a_connect_error_with_backoff(refused_url: str) -> None:
    started = time.monotonic()
    result = run("--retry", "1", refused_url)
    assert result.returncode == ExitCode.CONNECT
    assert "retrying in 1 s (1 left)" in err_lines(result)[0]
    assert time.monotonic() - started >= 1.0


def test_no_retry_without_the_option(start_server: StartServer) -> None:
    def busy(conn: ServerConnection) -> None:
        while conn.read_request() is not None:
            conn.send(render_response(503))

    server = start_server(busy)
    assert run(server.url).returncode == 0
    assert len(server.requests) == 1


# -- proxies ----------------------------------------------------------------------------


def answering_proxy(conn: ServerConnection) -> None:
    while (request := conn.read_request()) is not None:
        conn.send(render_response(200, b"proxied " + request.target.encode()))


def test_x_is_the_proxy_and_noproxy_exempts(start_server: StartServer) -> None:
    proxy = start_server(answering_proxy)
    result = run("-x", proxy.url[len("http://") :], "http://127.0.0.1:9/x")
    assert result.stdout == b"proxied http://127.0.0.1:9/x"
    direct = start_server(faults.keep_serving)
    skipped = run("-x", proxy.url, "--noproxy", "127.0.0.1", direct.url)
    assert skipped.returncode == 0, skipped.stderr
    assert len(direct.requests) == 1
    assert len(proxy.requests) == 1


def test_proxy_variables_as_curl_reads_them(start_server: StartServer) -> None:
    proxy = start_server(answering_proxy)
    target = "http://127.0.0.1:9/x"
    # Lower-case http_proxy is used...
    assert run(target, env={"http_proxy": proxy.url}).stdout == b"proxied " + target.encode()
    # ...upper-case HTTP_PROXY is not (curl ignores it): port 9 refuses.
    ignored = run(target, env={"HTTP_PROXY": proxy.url})
    assert ignored.returncode == ExitCode.CONNECT
    # ALL_PROXY serves every scheme; NO_PROXY exempts a host.
    assert run(target, env={"ALL_PROXY": proxy.url}).stdout.startswith(b"proxied ")
    exempt = run(target, env={"ALL_PROXY": proxy.url, "NO_PROXY": "127.0.0.1"})
    assert exempt.returncode == ExitCode.CONNECT
    assert len(proxy.requests) == 2


# -- terminals --------------------------------------------------------------------------


def run_on_terminal(*args: str) -> tuple[int, str, bytes]:
    """Run with stdout on a pty; the exit status, what the terminal showed,
    and stderr."""
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "rawkeep", *args],
            stdout=slave,
            stderr=subprocess.PIPE,
            env={**_CLEAN_ENV, "PYTHONPATH": str(REPO)},
        )
        _, err = process.communicate(timeout=RUN_TIMEOUT)
        shown = _drain(master)
    finally:
        os.close(master)
        os.close(slave)
    return process.returncode, shown, err


def _drain(fd: int) -> str:
    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        chunks.append(os.read(fd, 65536))
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize(
    ("body", "content_type"), [(b"PK\x03\x04\x00\x00", "text/plain"), (b"plain", "image/png")]
)
def test_binary_body_is_refused_on_a_terminal(
    start_keepalive_server: StartServer, body: bytes, content_type: str
) -> None:
    server = start_keepalive_server(
        respond=lambda request: Reply(body=body, headers=[("Content-Type", content_type)])
    )
    code, shown, err = run_on_terminal(server.url)
    assert code == ExitCode.OUTPUT
    assert shown == ""
    assert err.decode().startswith(
        'rawkeep: output error: Binary output can mess up your terminal. Use "--output -"'
    )
    code, shown, _ = run_on_terminal("--output", "-", server.url)
    assert code == 0
    assert shown.startswith(body[:2].decode())


def test_text_body_goes_to_the_terminal(server: ScriptedServer) -> None:
    assert run_on_terminal(f"{server.url}/hello")[:2] == (0, "/hello")


def test_ctrl_c_during_a_progress_bar_ends_its_line(start_server: StartServer) -> None:
    size = 40 * 200 * 1024

    def slow_body(conn: ServerConnection) -> None:
        if conn.read_request() is not None:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            for _ in range(40):  # 4 s in all; the test interrupts it
                conn.send(b"x" * (size // 40))
                conn.sleep(0.1)

    server = start_server(slow_body)
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "rawkeep", "-o", os.devnull, server.url],
            stderr=slave,
            env={**_CLEAN_ENV, "PYTHONPATH": str(REPO)},
        )
        shown = ""
        deadline = time.monotonic() + RUN_TIMEOUT
        while "MiB/s" not in shown and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                shown += os.read(master, 65536).decode()
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=RUN_TIMEOUT)
        shown += _drain(master)
    finally:
        os.close(master)
        os.close(slave)
    assert code == ExitCode.INTERRUPTED, shown
    assert "MiB/s" in shown
    _, _, rest = shown.rpartition("\x1b[K")
    assert rest.replace("\r", "") == "\nrawkeep: interrupted\n"


def test_help_lists_the_curl_options() -> None:
    text = run("--help").stdout.decode()
    pairs = [("-I", "--head"), ("-s", "--silent"), ("-S", "--show-error"), ("-x", "--proxy"),
             ("-w", "--write-out"), ("-m", "--max-time"), ("-b", "--cookie"), ("-G", "--get"),
             ("-A", "--user-agent"), ("-c", "--cookie-jar"), ("-F", "--form")]  # fmt: skip
    for short, long in pairs:
        # "-x, --proxy URL" (3.13) or "-x URL, --proxy URL" (3.10)
        assert re.search(rf"^  {short}( \S+)?, {long}\b", text, re.MULTILINE), long
    for option in ("--retry N", "--retry-delay S", "--connect-timeout S", "--noproxy HOSTS",
                   "--resolve HOST:PORT:ADDR[,ADDR...]"):  # fmt: skip
        assert option in text


def test_version_matches(server: ScriptedServer) -> None:
    assert run("--version").stdout.decode().strip() == f"rawkeep {rawkeep.__version__}"
    del server  # the fixture only keeps the shape of the other tests
