"""The exception tree of API.md, its context attributes, and pickling."""

from __future__ import annotations

import builtins
import copy
import pickle
from typing import Any

import pytest

import rawkeep
from rawkeep import Headers, HTTPStatusError, RawkeepError, Response

#: name -> parent name, exactly as API.md "Exceptions" and the tree drawn in
#: rawkeep/_exceptions.py have it.
TREE: dict[str, str] = {
    "InvalidURL": "RawkeepError",
    "ClientClosed": "RawkeepError",
    "ConnectError": "RawkeepError",
    "TLSError": "RawkeepError",
    "ProxyError": "RawkeepError",
    "TimeoutError": "RawkeepError",
    "ConnectTimeout": "TimeoutError",
    "ReadTimeout": "TimeoutError",
    "WriteTimeout": "TimeoutError",
    "PoolTimeout": "TimeoutError",
    "RemoteProtocolError": "RawkeepError",
    "LocalProtocolError": "RawkeepError",
    "TooManyRedirects": "RawkeepError",
    "DecodingError": "RawkeepError",
    "HTTPStatusError": "RawkeepError",
}
ALL_NAMES = ["RawkeepError", *TREE]
ALL_CLASSES: list[type[RawkeepError]] = [getattr(rawkeep, n) for n in ALL_NAMES]


def test_root_derives_from_exception() -> None:
    assert RawkeepError.__bases__ == (Exception,)


@pytest.mark.parametrize(("name", "parent"), TREE.items())
def test_tree(name: str, parent: str) -> None:
    cls = getattr(rawkeep, name)
    assert cls.__bases__ == (getattr(rawkeep, parent),)
    assert issubclass(cls, RawkeepError)
    # Defined in the errors module; HTTPStatusError beside the Response it
    # carries, so that the errors module imports nothing (no import cycle).
    home = "rawkeep._models" if name == "HTTPStatusError" else "rawkeep._exceptions"
    assert cls.__module__ == home
    # One root, no builtin bases: nothing is also an OSError or a ValueError.
    for builtin in (OSError, ValueError, builtins.TimeoutError, RuntimeError):
        assert not issubclass(cls, builtin), builtin


def test_the_four_timeouts_are_caught_by_rawkeep_timeout_error() -> None:
    for name in ["ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout"]:
        with pytest.raises(rawkeep.TimeoutError):
            raise getattr(rawkeep, name)("slow")


def test_timeout_error_is_not_the_builtin() -> None:
    assert not issubclass(rawkeep.TimeoutError, builtins.TimeoutError)
    assert rawkeep.TimeoutError.__name__ == "TimeoutError"


def test_every_exported_exception_is_in_the_tree() -> None:
    exported = {
        name
        for name in rawkeep.__all__
        if isinstance(getattr(rawkeep, name), type)
        and issubclass(getattr(rawkeep, name), BaseException)
    }
    assert exported == set(ALL_NAMES)


# -- attributes ---------------------------------------------------------------


def required(cls: type[RawkeepError]) -> dict[str, Any]:
    """The keywords ``cls`` requires besides its message: the response of
    an ``HTTPStatusError``, never optional."""
    return {"response": make_response()} if cls is HTTPStatusError else {}


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=ALL_NAMES)
def test_attributes(cls: type[RawkeepError]) -> None:
    exc = cls("went wrong", **required(cls))
    assert str(exc) == "went wrong"
    assert exc.message == "went wrong"
    assert exc.args == ("went wrong",)
    assert exc.origin is None
    assert exc.connection_id is None

    exc = cls("went wrong", origin="http://127.0.0.1:8080", connection_id=7, **required(cls))
    assert exc.origin == "http://127.0.0.1:8080"
    assert exc.connection_id == 7
    assert str(exc) == "went wrong"

    # The context attributes are keyword-only.
    with pytest.raises(TypeError):
        cls("went wrong", "http://127.0.0.1:8080", **required(cls))  # type: ignore[call-arg]


PROTOCOLS = sorted({0, 2, pickle.HIGHEST_PROTOCOL})


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=ALL_NAMES)
def test_pickle_round_trip(cls: type[RawkeepError]) -> None:
    exc = cls("went wrong", origin="https://example.org:443", connection_id=42, **required(cls))
    for protocol in PROTOCOLS:
        again = pickle.loads(pickle.dumps(exc, protocol=protocol))
        assert type(again) is cls
        assert str(again) == "went wrong"
        assert again.message == "went wrong"
        assert again.args == exc.args
        assert again.origin == "https://example.org:443"
        assert again.connection_id == 42

    plain = pickle.loads(pickle.dumps(cls("plain", **required(cls))))
    assert type(plain) is cls
    assert (plain.message, plain.origin, plain.connection_id) == ("plain", None, None)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=ALL_NAMES)
def test_copy(cls: type[RawkeepError]) -> None:
    exc = cls("went wrong", origin="http://h:80", connection_id=1, **required(cls))
    for again in (copy.copy(exc), copy.deepcopy(exc)):
        assert type(again) is cls
        assert (again.message, again.origin, again.connection_id) == (
            "went wrong",
            "http://h:80",
            1,
        )


# -- HTTPStatusError ----------------------------------------------------------


def make_response(status: int = 404) -> Response:
    return Response(
        status=status,
        reason="Not Found",
        http_version="HTTP/1.1",
        headers=Headers({"Content-Type": "text/plain"}),
        url="http://example.org/missing",
        content=b"no such page",
        connection_id=3,
    )


def test_http_status_error_carries_the_response() -> None:
    response = make_response()
    exc = HTTPStatusError(
        "404 Not Found for http://example.org/missing",
        response=response,
        origin="http://example.org:80",
        connection_id=3,
    )
    assert exc.response is response
    assert exc.origin == "http://example.org:80"
    assert exc.connection_id == 3


def test_http_status_error_requires_its_response() -> None:
    with pytest.raises(TypeError, match="response"):
        HTTPStatusError("x")  # type: ignore[call-arg]


def test_http_status_error_pickles_with_its_response() -> None:
    exc = HTTPStatusError("404", response=make_response(), connection_id=3)
    again = pickle.loads(pickle.dumps(exc))
    assert isinstance(again, HTTPStatusError)
    assert again.response.status == 404
    assert again.response.content == b"no such page"
    assert again.response.headers["content-type"] == "text/plain"
    assert again.connection_id == 3


# -- ProxyError ---------------------------------------------------------------


def test_proxy_error_carries_the_status_through_pickling() -> None:
    exc = rawkeep.ProxyError("407 from proxy", status=407, origin="http://p:3128")
    assert exc.status == 407
    assert rawkeep.ProxyError("refused").status is None
    again = pickle.loads(pickle.dumps(exc))
    assert isinstance(again, rawkeep.ProxyError)
    assert (again.status, again.origin, str(again)) == (
        407,
        "http://p:3128",
        "407 from proxy",
    )


def test_with_context_fills_what_is_missing_and_keeps_what_is_said() -> None:
    from rawkeep._exceptions import with_context

    bare = rawkeep.ReadTimeout("slow")
    assert with_context(bare, origin="http://h:80", connection_id=4) is bare
    assert (bare.origin, bare.connection_id) == ("http://h:80", 4)
    said = rawkeep.ProxyError("refused", origin="https://target:443")
    with_context(said, origin="http://other:80", connection_id=1)
    assert (said.origin, said.connection_id) == ("https://target:443", 1)
