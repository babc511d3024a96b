"""What an exchange records around a response's head and body: the request
that was sent, the time it took, the interim (1xx) responses that came
before the final one, and the trailers that came after a chunked body.

``ExchangeRecord`` gives ``Response`` these as properties. The records
(``SentRequest``, ``InterimResponse``, ``Headers``) are built from what h11
parsed or sent only when someone asks: the request path keeps h11's own
objects, which it has anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, final

from ._headers import Headers

if TYPE_CHECKING:
    import datetime

    import h11

__all__ = ["ExchangeRecord", "InterimResponse", "SentRequest"]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SentRequest:
    """The request a response answers, as it was sent (``Response.request``).

    Attributes:
        method: e.g. ``"GET"`` (upper-cased, as sent).
        url: the URL requested, without credentials (the response's ``url``).
        headers: every header sent, rawkeep's own (``Host``,
            ``User-Agent``, ``Content-Length``...) included, in the order
            sent. Its ``repr`` hides credentials; the values don't.
    """

    method: str
    url: str
    headers: Headers

    def __repr__(self) -> str:
        return f"<SentRequest [{self.method} {self.url}]>"

    @classmethod
    def _from_h11(cls, request: h11.Request, url: str) -> SentRequest:
        return cls(
            method=request.method.decode("ascii"),
            url=url,
            headers=Headers._from_raw(request.headers.raw_items()),
        )


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class InterimResponse:
    """An interim (1xx) response that came before the final one
    (``Response.interim``): ``100 Continue``, ``103 Early Hints``...

    Attributes:
        status: 100 to 199.
        reason: the reason phrase (may be empty).
        headers: its header fields (``Link`` for 103 Early Hints).
    """

    status: int
    reason: str
    headers: Headers

    @classmethod
    def _from_h11(cls, event: h11.InformationalResponse) -> InterimResponse:
        return cls(
            status=event.status_code,
            reason=event.reason.decode("latin-1"),
            headers=Headers._from_raw(event.headers.raw_items()),
        )


class ExchangeRecord:
    """The properties of ``Response`` that tell of its exchange, and the
    state behind them (set by ``Response``)."""

    __slots__ = ("_elapsed", "_interim", "_request", "_trailer_headers", "_trailers")

    url: str
    #: The request as h11 sent it, until ``request`` makes a record of it.
    _request: h11.Request | SentRequest | None
    #: Seconds, see ``elapsed``.
    _elapsed: float
    #: h11's interim responses, until ``interim`` makes records of them.
    _interim: list[Any] | tuple[()]
    #: The trailer fields as received; the list fills when the body ends.
    _trailers: list[tuple[bytes, bytes]] | tuple[()]
    #: ``trailers``, once the body is over and they can't change.
    _trailer_headers: Headers | None

    if TYPE_CHECKING:

        @property
        def is_closed(self) -> bool: ...

    @property
    def request(self) -> SentRequest:
        """The request this response answers, as sent: method, URL, headers.

        After redirects, the last request (each ``history`` entry has its
        own); after a retry, the one that was answered.

        Raises:
            RuntimeError: the response was built with ``Response(...)``, not
                received.
        """
        request = self._request
        if request is None:
            raise RuntimeError("this Response was built, not received: it has no request")
        if type(request) is not SentRequest:
            request = self._request = SentRequest._from_h11(request, self.url)
        return request

    @property
    def elapsed(self) -> datetime.timedelta:
        """The time from sending the request until the response head was
        parsed: from the moment its connection was in hand and its first
        byte about to be written, interim (1xx) responses included. Not
        included: waiting for the pool, connecting (``ConnectionOpened``
        has ``connect_time``) and reading the body. Zero for a response
        built with ``Response(...)``."""
        import datetime

        return datetime.timedelta(seconds=self._elapsed)

    @property
    def interim(self) -> list[InterimResponse]:
        """The interim (1xx) responses received before this one, oldest
        first (``100 Continue``, ``103 Early Hints``...); usually empty."""
        interim = self._interim
        if interim and type(interim[0]) is not InterimResponse:
            interim = self._interim = [InterimResponse._from_h11(event) for event in interim]
        return list(interim)

    @property
    def trailers(self) -> Headers:
        """The trailer fields of a chunked body; empty when it had none.

        Complete once the body has been read (``read()``, iteration to the
        end, ``close()`` draining it); empty before.
        """
        cached = self._trailer_headers
        if cached is not None:
            return cached
        trailers = Headers._from_raw(self._trailers)
        if self.is_closed:  # nothing more can arrive
            self._trailer_headers = trailers
        return trailers
