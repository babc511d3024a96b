"""rawkeep: an HTTP/1.1 client whose keep-alive is explicit and correct.

Quick use::

    import rawkeep

    with rawkeep.Client() as client:
        for _ in range(3):
            response = client.get("http://127.0.0.1:8080/")
            print(response.status, response.connection_id, response.reused)
        print(client.pool_stats())

See docs/ for the keep-alive rules, the pool, events and errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._client import Client
from ._events import (
    ConnectionClosed,
    ConnectionExpired,
    ConnectionOpened,
    ConnectionReused,
    Event,
    IdleLimitLearned,
    RequestRetried,
    RequestSent,
    ResponseReceived,
    StaleConnectionDiscarded,
)
from ._exceptions import (
    ClientClosed,
    ConnectError,
    ConnectTimeout,
    DecodingError,
    InvalidURL,
    LocalProtocolError,
    PoolTimeout,
    ProxyError,
    RawkeepError,
    ReadTimeout,
    RemoteProtocolError,
    TimeoutError,
    TLSError,
    TooManyRedirects,
    WriteTimeout,
)
from ._headers import Headers
from ._messages import InterimResponse, SentRequest
from ._models import HTTPStatusError, Response
from ._pool_core import PoolStats
from ._timeout import Timeout
from ._tls_details import TLSDetails
from ._version import __version__

if TYPE_CHECKING:
    from ._aio_client import AsyncClient

__all__ = [
    # the clients and what they return
    "AsyncClient",
    "Client",
    "Headers",
    "InterimResponse",
    "PoolStats",
    "Response",
    "SentRequest",
    "Timeout",
    "__version__",
    # lifecycle events
    "ConnectionClosed",
    "ConnectionExpired",
    "ConnectionOpened",
    "ConnectionReused",
    "Event",
    "IdleLimitLearned",
    "RequestRetried",
    "RequestSent",
    "ResponseReceived",
    "StaleConnectionDiscarded",
    "TLSDetails",
    # errors
    "ClientClosed",
    "ConnectError",
    "ConnectTimeout",
    "DecodingError",
    "HTTPStatusError",
    "InvalidURL",
    "LocalProtocolError",
    "PoolTimeout",
    "ProxyError",
    "RawkeepError",
    "ReadTimeout",
    "RemoteProtocolError",
    "TLSError",
    "TimeoutError",
    "TooManyRedirects",
    "WriteTimeout",
]


def __getattr__(name: str) -> Any:
    # AsyncClient is loaded on first use: asyncio (and the socket, ssl and
    # selectors modules it brings) would make every ``import rawkeep``
    # several times slower, the blocking client's users included.
    if name == "AsyncClient":
        from ._aio_client import AsyncClient

        globals()["AsyncClient"] = AsyncClient
        return AsyncClient
    raise AttributeError(f"module 'rawkeep' has no attribute {name!r}")
