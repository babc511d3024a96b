"""A fault-injecting keep-alive server for the chaos suite, seeded and ledgered.

It is a `ScriptedServer` script. Each request carries a unique token
(``X-Token``); the answer to it is a pure function of the token
(`expected_body`), so the client can check every body it gets. What happens
to each request is decided by a random generator seeded with
``(seed, token, attempt)``, so a run's faults do not depend on how the
threads happened to interleave, and a failing seed can be replayed.

Two families of faults
----------------------
*Hideable* faults are what any keep-alive server does to a connection
between requests; a correct client never lets an idempotent request fail
because of them (RFC 9112 section 9.3.1 lets it retry on a new connection):

``idle_close``
    after a response, wait a few milliseconds for the next request, then
    close if none came (a short keep-alive timeout; a request arriving just
    then meets a closing socket: the race).
``close_after_response``
    close right after the response, without ``Connection: close``: the FIN
    lands while the connection sits idle in the client's pool.
``drop_request`` / ``reset_request``
    only on a connection that already served a request: take the next
    request off the wire and close (FIN) or abort (RST) without answering:
    the client's request crossed the server's close.
``connection_close``
    answer with ``Connection: close`` and close.
``slow``
    answer after a delay well below the client's read timeout.

*Visible* faults break a request in a way no client may hide, because the
server may have acted on it. They are only applied to non-idempotent
requests (POST), where the client must raise a typed error:

``reset_mid_body``
    send the head and half the body, then RST.
``stall`` / ``stall_mid_body``
    send nothing (or the head and part of the body), for longer than the
    client's read timeout.

The ledger (`ChaosLedger`) counts, per token, how often the request arrived
and how often it was answered in full, and per kind how many faults were
actually carried out. Upload bodies are checked against `upload_body`.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .scripted import MAX_WAIT, ScriptedServer, render_response

if TYPE_CHECKING:
    from collections.abc import Callable

    from .scripted import ServerConnection

    ScriptedHandler = Callable[[ServerConnection], None]

#: Faults a client may hide from an idempotent request.
HIDEABLE = (
    "idle_close",
    "close_after_response",
    "drop_request",
    "reset_request",
    "connection_close",
    "slow",
)
#: Faults that must surface as an error (applied to POSTs only).
VISIBLE = ("reset_mid_body", "stall", "stall_mid_body")

#: Methods whose requests only ever meet hideable faults (RFC 9110 9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

#: Largest filler appended to a response body, in bytes.
MAX_FILLER = 6000
#: Largest upload body, in bytes.
MAX_UPLOAD = 3000


@dataclass(frozen=True, kw_only=True)
class FaultRates:
    """Probability of each fault per request (visible ones: POST only)."""

    idle_close: float = 0.05
    close_after_response: float = 0.03
    drop_request: float = 0.02
    reset_request: float = 0.02
    connection_close: float = 0.03
    slow: float = 0.01
    reset_mid_body: float = 0.04
    stall: float = 0.015
    stall_mid_body: float = 0.015
    #: Share of responses sent chunked instead of with Content-Length.
    chunked: float = 0.3
    #: Seconds the server waits for the next request under ``idle_close``.
    idle_wait: tuple[float, float] = (0.0, 0.004)
    #: Delay (seconds) of a ``slow`` answer; keep it far below the read timeout.
    slow_delay: tuple[float, float] = (0.02, 0.15)
    #: How long (seconds) a stall lasts at most; keep it above the read
    #: timeout of the requests that can meet it. The client ends it sooner
    #: by closing the connection after its read timeout.
    stall_for: float = 3.0


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def expected_body(token: str) -> bytes:
    """The body the server answers the request with token `token`."""
    digest = _digest("body:" + token)
    size = int.from_bytes(digest[:4], "big") % (MAX_FILLER + 1)
    filler = digest.hex().encode() * (size // 32 + 1)
    return token.encode() + b"|" + filler[:size]


def upload_body(token: str) -> bytes:
    """The body a client uploads with the request with token `token`."""
    digest = _digest("upload:" + token)
    size = int.from_bytes(digest[:4], "big") % (MAX_UPLOAD + 1)
    return (token.encode() + b"/" + digest.hex().encode() * (size // 32 + 1))[:size]


@dataclass(frozen=True)
class Plan:
    """What the server does with one request."""

    before: str | None = None  # drop/reset/slow/stall/mid-body faults
    after: str | None = None  # connection_close / close_after_response / idle_close
    chunked: bool = False
    delay: float = 0.0  # slow: seconds before answering; idle_close: idle wait


def plan_for(
    rates: FaultRates, seed: int, token: str, method: str, attempt: int, *, reused: bool
) -> Plan:
    """Decide, from the seed and the request alone, what happens to it."""
    rng = random.Random(f"{seed}:{token}:{attempt}")
    before: list[tuple[str, float]] = [("slow", rates.slow)]
    if reused:
        before += [("drop_request", rates.drop_request), ("reset_request", rates.reset_request)]
    if method not in IDEMPOTENT:
        before += [(kind, getattr(rates, kind)) for kind in VISIBLE]
    chosen_before = _pick(rng.random(), before)
    after = [
        ("connection_close", rates.connection_close),
        ("close_after_response", rates.close_after_response),
        ("idle_close", rates.idle_close),
    ]
    chosen_after = _pick(rng.random(), after)
    chunked = rng.random() < rates.chunked
    delay = 0.0
    if chosen_before == "slow":
        delay = rng.uniform(*rates.slow_delay)
    elif chosen_after == "idle_close":
        delay = rng.uniform(*rates.idle_wait)
    return Plan(chosen_before, chosen_after, chunked, delay)


def _pick(draw: float, weighted: list[tuple[str, float]]) -> str | None:
    total = 0.0
    for kind, probability in weighted:
        total += probability
        if draw < total:
            return kind
    return None


@dataclass
class ChaosLedger:
    """What the chaos server saw and did; thread-safe."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Times each token arrived, and was answered with a whole response.
    received: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)
    #: Faults carried out, by kind; and the pre-response ones by token.
    faults: Counter[str] = field(default_factory=Counter)
    faults_by_token: dict[str, list[str]] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)
    #: Tokens whose upload body arrived corrupted, or requests without a token.
    corrupt: list[str] = field(default_factory=list)

    def arrive(self, token: str, method: str) -> int:
        """Count an arrival; return how many earlier ones there were."""
        with self.lock:
            attempt = self.received[token]
            self.received[token] += 1
            self.methods[token] = method
            return attempt

    def fault(self, kind: str, token: str | None = None) -> None:
        with self.lock:
            self.faults[kind] += 1
            if token is not None:
                self.faults_by_token.setdefault(token, []).append(kind)

    def answer(self, token: str) -> None:
        with self.lock:
            self.answered[token] += 1

    def bad(self, what: str) -> None:
        with self.lock:
            self.corrupt.append(what)


def _head(plan: Plan, body: bytes) -> bytes:
    framing = "Transfer-Encoding: chunked" if plan.chunked else f"Content-Length: {len(body)}"
    return f"HTTP/1.1 200 OK\r\n{framing}\r\n\r\n".encode("ascii")


def _partial(plan: Plan, body: bytes) -> bytes:
    """The head and about half of the body's bytes on the wire."""
    half = body[: max(1, len(body) // 2)]
    if plan.chunked:
        return _head(plan, body) + b"%x\r\n%s\r\n" % (len(body), half)
    return _head(plan, body) + half


def chaos_handler(rates: FaultRates, seed: int, ledger: ChaosLedger) -> ScriptedHandler:
    """The connection script of the chaos server."""

    def handle(conn: ServerConnection) -> None:
        served = 0
        idle_wait: float | None = None
        while True:
            if not conn.wait_readable(MAX_WAIT if idle_wait is None else idle_wait):
                if idle_wait is not None:
                    ledger.fault("idle_close")
                return  # the server closes the idle connection (FIN)
            request = conn.read_request(timeout=10.0)
            if request is None:
                return  # the client closed
            raw_token = request.header("x-token")
            if raw_token is None:
                ledger.bad(f"no token: {request.method} {request.target}")
                return
            token = raw_token.decode("ascii")
            attempt = ledger.arrive(token, request.method)
            if request.method not in IDEMPOTENT and request.body != upload_body(token):
                ledger.bad(f"upload of {token} corrupted ({len(request.body)} bytes)")
            plan = plan_for(rates, seed, token, request.method, attempt, reused=served > 0)
            if not _answer(conn, rates, plan, token, ledger):
                return
            served += 1
            if plan.after in ("connection_close", "close_after_response"):
                ledger.fault(plan.after)
                return
            idle_wait = plan.delay if plan.after == "idle_close" else None

    return handle


def _answer(
    conn: ServerConnection, rates: FaultRates, plan: Plan, token: str, ledger: ChaosLedger
) -> bool:
    """Carry out `plan` for one request; False when the connection is done."""
    body = expected_body(token)
    if plan.before is not None and plan.before != "slow":
        ledger.fault(plan.before, token)
        conn.finish_response()
        if plan.before == "drop_request":
            conn.close()
        elif plan.before == "reset_request":
            conn.reset()
        elif plan.before == "reset_mid_body":
            conn.send(_partial(plan, body))
            conn.sleep(0.02)  # let the partial response reach the client first
            conn.reset()
        else:  # stall, stall_mid_body
            if plan.before == "stall_mid_body":
                conn.send(_partial(plan, body))
            conn.wait_for_peer_close(rates.stall_for)
        return False
    if plan.before == "slow":
        ledger.fault("slow", token)
        if conn.sleep(plan.delay):
            return False
    headers = [("Connection", "close")] if plan.after == "connection_close" else []
    conn.respond(render_response(200, body, headers, chunked=plan.chunked))
    ledger.answer(token)
    return True


def chaos_server(seed: int, rates: FaultRates | None = None) -> tuple[ScriptedServer, ChaosLedger]:
    """A (not yet started) chaos server and its ledger."""
    ledger = ChaosLedger()
    handler = chaos_handler(rates or FaultRates(), seed, ledger)
    return ScriptedServer(handler), ledger
