"""``rawkeep -F`` (multipart forms) and ``--resolve``, run as a subprocess.

The command runs under a guard (``GUARDED``): its name look-ups of anything
but loopback fail, so a ``--resolve`` entry that were missed makes the run
fail with exit 4 instead of asking the network about a ``.test`` name
(``test_resolve_for_another_port_is_not_used`` shows it). The multipart
bodies are parsed back from the bytes the server received, with the
standard library's ``email`` parser.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from servers.addresses import refusing
from servers.forms import described, form_parts

from rawkeep._app.exitcodes import ExitCode
from rawkeep._app.form import open_form, parse_form

if TYPE_CHECKING:
    from servers.scripted import ScriptedServer

#: Bound (seconds) for one run of the command.
RUN_TIMEOUT = 20.0
REPO = Path(__file__).resolve().parent.parent
_CLEAN_ENV = {
    name: value for name, value in os.environ.items() if not name.lower().endswith("_proxy")
}
#: ``python -m rawkeep``, with look-ups of names other than loopback refused.
GUARDED = """
import ipaddress, socket, sys
real_getaddrinfo = socket.getaddrinfo
def getaddrinfo(host, *args, **kwargs):
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise socket.gaierror(socket.EAI_NONAME, f"the test resolves no {host!r}")
    return real_getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = getaddrinfo
from rawkeep._app.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run(
    *args: str, cwd: Path | None = None, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", GUARDED, *args],
        input=stdin,
        capture_output=True,
        timeout=RUN_TIMEOUT,
        env={**_CLEAN_ENV, "PYTHONPATH": str(REPO)},
        cwd=cwd,
        check=False,
    )


# -- -F ----------------------------------------------------------------------------------

#: Bytes a careless encoder would mangle: a NUL, CR LF, a lone CR, high bytes.
BLOB = b"\x00\x01head\r\n--not-a-boundary\r\n\rtail\xff\xfe" * 1000


def test_form_fields_and_files_on_the_wire(server: ScriptedServer, tmp_path: Path) -> None:
    (tmp_path / "data.json").write_bytes(b'{"a": 1}\n')
    (tmp_path / "blob.bin").write_bytes(BLOB)
    (tmp_path / "note.txt").write_bytes(b"from a file\n")
    result = run(
        "-F", "name=rawkeep",
        "-F", "file=@data.json",
        "-F", "up=@blob.bin;type=image/png;filename=other.bin",
        "-F", "raw=@blob.bin",
        "-F", "note=<note.txt",
        "-F", 'q="a;b \\"c\\""',
        "-F", "t=plain; type=text/x-plain",
        f"{server.url}/form",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (request,) = server.requests
    assert (request.method, request.target) == ("POST", "/form")
    # Regular files: their sizes are known, so the body has a length.
    assert request.header("content-length") == str(len(request.body)).encode()
    assert [described(part) for part in form_parts(request)] == [
        ("name", None, None, b"rawkeep"),
        ("file", "data.json", "application/json", b'{"a": 1}\n'),
        ("up", "other.bin", "image/png", BLOB),
        ("raw", "blob.bin", "application/octet-stream", BLOB),
        ("note", None, None, b"from a file\n"),
        ("q", None, None, b'a;b "c"'),
        ("t", None, "text/x-plain", b"plain"),
    ]


def test_form_with_x_and_repeated_urls(server: ScriptedServer, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_bytes(b"same bytes each time")
    result = run("-X", "PUT", "-F", "f=@f.txt", f"{server.url}/1", f"{server.url}/2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [r.method for r in server.requests] == ["PUT", "PUT"]
    for request in server.requests:
        (part,) = form_parts(request)
        assert described(part) == ("f", "f.txt", "text/plain", b"same bytes each time")


def test_form_reads_stdin(server: ScriptedServer) -> None:
    result = run("-F", "a=@-;type=application/x-thing", "-F", "b=2", server.url, stdin=BLOB)
    assert result.returncode == 0, result.stderr
    assert [described(part) for part in form_parts(server.requests[0])] == [
        ("a", "-", "application/x-thing", BLOB),
        ("b", None, None, b"2"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-F", "a=1", "-d", "x"], "give -F or -d/--json, not both"),
        (["-F", "a=1", "--json", "{}"], "give -F or -d/--json, not both"),
        (["-F", "a=1", "-G"], "-F sends a body, which -G can't send"),
        (["-F", "a=1", "-I"], "-F sends a body, which -I can't send"),
        (["-F", "novalue"], "bad -F 'novalue': expected NAME=VALUE"),
        (["-F", "=x"], "bad -F '=x': expected NAME=VALUE"),
        (["-F", "a=@missing.bin"], "can't read the -F file 'missing.bin': No such file"),
        (["-F", "a=<."], "can't read the -F file '.': Is a directory"),
        (["-F", "a=b;c=d"], "bad -F 'a=b;c=d': unknown ';c=d'"),
        (["-F", 'a="b'], "a double quote is not closed"),
        (["-F", "a=b;type=text/x\r"], "contains a control character"),
        (["-F", "a=@-", "-F", "b=<-"], "stdin can be read once"),
        (["-H", "Content-Type: multipart/form-data", "-F", "a=1"], "must carry the boundary"),
    ],
)
def test_bad_form_is_exit_2_before_any_socket(
    server: ScriptedServer, tmp_path: Path, args: list[str], message: str
) -> None:
    result = run(*args, server.url, cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE, result.stderr
    first = result.stderr.decode().splitlines()[0]
    assert first.startswith("rawkeep: error: ")
    assert message in first
    assert server.accepted == 0


def test_form_files_go_to_the_library_open_not_read(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 100)
    with open_form([parse_form(f"f=@{path}"), parse_form("t=text")]) as files:
        assert files is not None
        (name, (filename, content, kind)), text = files
        assert (name, filename, kind) == ("f", "big.bin", None)
        assert not isinstance(content, bytes)
        assert content.tell() == 0  # the library reads it, in blocks, as it sends
        assert text == ("t", (None, b"text", None))
    assert content.closed


# -- --resolve ---------------------------------------------------------------------------


def test_resolve_dials_the_address_and_keeps_the_name(server: ScriptedServer) -> None:
    url = f"http://example.test:{server.port}"
    result = run(
        "-v", "--resolve", f"example.test:{server.port}:127.0.0.1", f"{url}/a", f"{url}/b"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"/a/b"
    assert [r.header("host") for r in server.requests] == [
        f"example.test:{server.port}".encode()
    ] * 2
    assert server.accepted == 1
    story = result.stderr.decode().splitlines()
    assert story[0] == f"* example.test:{server.port} resolved by --resolve to 127.0.0.1"
    assert story[1].startswith(f"* connected to {url} as connection #0")


def test_resolve_falls_through_a_dead_first_address(server: ScriptedServer) -> None:
    with refusing("127.0.0.2", server.port) as dead:
        entry = f"example.test:{server.port}:{dead},127.0.0.1"
        result = run("--resolve", entry, f"http://example.test:{server.port}/x")
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"/x"
        url = f"http://example.test:{server.port}/x"
        alone = run("--resolve", f"example.test:{server.port}:{dead}", url)
        assert alone.returncode == ExitCode.CONNECT
    assert server.accepted == 1


def test_resolve_for_another_port_is_not_used(server: ScriptedServer) -> None:
    entry = f"example.test:{server.port + 1}:127.0.0.1"
    result = run("--resolve", entry, f"http://example.test:{server.port}/")
    assert result.returncode == ExitCode.CONNECT
    assert "the test resolves no 'example.test'" in result.stderr.decode()
    assert server.accepted == 0


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("example.test", "expected HOST:PORT:ADDRESS"),
        ("example.test:80", "expected HOST:PORT:ADDRESS"),
        ("example.test:80:", "expected HOST:PORT:ADDRESS"),
        ("[::1:80:::1", "expected HOST:PORT:ADDRESS"),
        ("example.test:http:127.0.0.1", "the port must be a number"),
        ("example.test:80:example.org", "'example.org' is not an IP address"),
        ("*:80:127.0.0.1", "resolve key '*:80'"),
    ],
)
def test_bad_resolve_is_exit_2_before_any_socket(
    server: ScriptedServer, entry: str, message: str
) -> None:
    result = run("--resolve", entry, server.url)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert message in result.stderr.decode().splitlines()[0]
    assert server.accepted == 0


def test_resolve_given_twice_is_exit_2(server: ScriptedServer) -> None:
    entry = f"example.test:{server.port}:127.0.0.1"
    result = run("--resolve", entry, "--resolve", entry, server.url)
    assert result.returncode == ExitCode.USAGE
    assert f"--resolve example.test:{server.port} is given twice" in result.stderr.decode()
    assert server.accepted == 0
