"""Seeded, per-endpoint fault injection shared by both emulators.

A fault profile is a seed plus an ordered list of rules. The first rule whose
``path`` (fnmatch pattern on the request path) and ``method`` match a request
decides what happens to it: added latency (fixed, or drawn between ``latency_ms``
and ``latency_max_ms``), a dropped connection, an answer cut
short (the request is handled, then only half of the answer's body is sent), a
revoked token, an error status (a 3xx one redirects to ``redirect_to``), a
published envelope (an emulator's named error body, served with
``envelope_status``, HTTP 200 by default), or misstated paging totals
(``total``: the emulator omits, understates, overstates or drifts the totals of matching
responses). ``reject_message_rate`` is per message of a batch request: an
emulator that takes several messages in one request (DCS's batch endpoint)
refuses each with that probability in its multi-status answer. Rates are
probabilities in [0, 1]; ``max_faults`` bounds how many faults a rule injects,
so a test can say "the next 2 calls fail". Paths under the admin prefix are
never faulted.
"""

from __future__ import annotations

import asyncio
import fnmatch
import random
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn

from aiohttp import web

ADMIN_PREFIX = "/_emulator"

# App keys the emulators set so the shared middleware can speak their dialect.
FAULT_PROFILE = web.AppKey("fault_profile", "FaultProfile")
ERROR_BODY = web.AppKey("error_body", Callable[[int, str], dict])  # (status, path) -> body
ENVELOPE_BODY = web.AppKey("envelope_body", Callable[[str], bytes])
REVOKE_TOKENS = web.AppKey("revoke_tokens", Callable[[], None])
TOTALS = ("omit", "understate", "overstate", "drift")
FAULT_DECISION = web.RequestKey("fault_decision", "FaultDecision")


@dataclass
class FaultRule:
    """What to do to requests matching ``method`` and ``path``."""

    path: str = "*"
    method: str = "*"
    status_rates: dict[int, float] = field(default_factory=dict)
    envelopes: dict[str, float] = field(default_factory=dict)
    envelope_status: int = 200
    total: str | None = None
    retry_after: float = 1.0
    redirect_to: str | None = None
    latency_ms: float = 0.0
    latency_max_ms: float | None = None
    drop_rate: float = 0.0
    cut_body_rate: float = 0.0
    revoke_token_rate: float = 0.0
    reject_message_rate: float = 0.0
    max_faults: int | None = None
    injected: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        known = {f for f in cls.__dataclass_fields__ if f != "injected"}
        unknown = set(data) - known
        if unknown:
            msg = f"unknown fault rule keys: {sorted(unknown)}"
            raise ValueError(msg)
        rule = cls(**data)
        rule.status_rates = {int(k): float(v) for k, v in rule.status_rates.items()}
        rule.envelopes = {str(k): float(v) for k, v in rule.envelopes.items()}
        rates = [*rule.status_rates.values(), *rule.envelopes.values(), rule.drop_rate, rule.cut_body_rate,
                 rule.revoke_token_rate, rule.reject_message_rate]  # fmt: skip
        for rate in rates:
            if not 0.0 <= rate <= 1.0:
                msg = f"fault rates must be within [0, 1], got {rate}"
                raise ValueError(msg)
        if sum(rule.status_rates.values()) + sum(rule.envelopes.values()) > 1.0:
            msg = "the status and envelope rates of one rule must add up to at most 1"
            raise ValueError(msg)
        if rule.drop_rate + rule.cut_body_rate > 1.0:
            msg = "drop_rate and cut_body_rate of one rule must add up to at most 1"
            raise ValueError(msg)
        if any(300 <= status < 400 for status in rule.status_rates) and not rule.redirect_to:
            msg = "a 3xx status needs redirect_to, the Location it redirects to"
            raise ValueError(msg)
        if rule.latency_max_ms is not None and rule.latency_max_ms < rule.latency_ms:
            msg = "latency_max_ms must be at least latency_ms"
            raise ValueError(msg)
        if rule.total not in (None, *TOTALS):
            msg = f"total must be one of {TOTALS}, got {rule.total!r}"
            raise ValueError(msg)
        return rule

    def matches(self, method: str, path: str) -> bool:
        return fnmatch.fnmatchcase(method, self.method) and fnmatch.fnmatchcase(path, self.path)

    def exhausted(self) -> bool:
        return self.max_faults is not None and self.injected >= self.max_faults


@dataclass
class FaultDecision:
    latency_ms: float = 0.0
    drop: bool = False
    cut_body: bool = False
    revoke_tokens: bool = False
    status: int | None = None
    envelope: str | None = None
    envelope_status: int = 200
    total: str | None = None
    retry_after: float = 1.0
    redirect_to: str | None = None
    rule: FaultRule | None = None  # the rule that matched: per-message faults draw on it

    @property
    def is_fault(self) -> bool:
        return self.drop or self.cut_body or self.revoke_tokens or self.status is not None or self.envelope is not None


@dataclass
class FaultProfile:
    """A seeded list of rules; empty (no faults) by default."""

    seed: int = 0
    rules: list[FaultRule] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FaultProfile:
        data = data or {}
        unknown = set(data) - {"seed", "rules"}
        if unknown:
            msg = f"unknown fault profile keys: {sorted(unknown)}"
            raise ValueError(msg)
        rules = [FaultRule.from_dict(r) for r in data.get("rules", [])]
        return cls(seed=int(data.get("seed", 0)), rules=rules)

    def replace_with(self, other: FaultProfile) -> None:
        """Swap in another profile in place (the running app's state is frozen)."""
        self.seed, self.rules, self._random = other.seed, other.rules, other._random

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "rules": [asdict(r) for r in self.rules]}

    def decide(self, method: str, path: str) -> FaultDecision:
        if path.startswith(ADMIN_PREFIX):
            return FaultDecision()
        for rule in self.rules:
            if not rule.matches(method, path):
                continue
            latency = rule.latency_ms
            if rule.latency_max_ms is not None:
                latency = self._random.uniform(rule.latency_ms, rule.latency_max_ms)
            decision = FaultDecision(
                latency_ms=latency,
                retry_after=rule.retry_after,
                redirect_to=rule.redirect_to,
                envelope_status=rule.envelope_status,
                total=rule.total,
                rule=rule,
            )
            if rule.exhausted():
                return decision
            draw = self._random.random()
            if draw < rule.drop_rate:
                decision.drop = True
            elif draw < rule.drop_rate + rule.cut_body_rate:
                decision.cut_body = True
            elif self._random.random() < rule.revoke_token_rate:
                decision.revoke_tokens = True
            else:
                picked = self._pick([*sorted(rule.status_rates.items()), *sorted(rule.envelopes.items())])
                if isinstance(picked, int):
                    decision.status = picked
                else:
                    decision.envelope = picked
            if decision.is_fault:
                rule.injected += 1
            return decision
        return FaultDecision()

    def rejects_message(self, decision: FaultDecision) -> bool:
        """Whether to refuse the next message of a batch request (``reject_message_rate`` of the matched rule)."""
        rule = decision.rule
        if rule is None or not rule.reject_message_rate or rule.exhausted():
            return False
        if self._random.random() < rule.reject_message_rate:
            rule.injected += 1
            return True
        return False

    def _pick(self, rates: list[tuple[int | str, float]]) -> int | str | None:
        """A status (int) or envelope name (str) by its rate, or None."""
        draw = self._random.random()
        cumulative = 0.0
        for choice, rate in rates:
            cumulative += rate
            if draw < cumulative:
                return choice
        return None


def default_error_body(status: int, path: str) -> dict:
    return {"status": status, "message": f"emulated fault {status}"}


@web.middleware
async def fault_middleware(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    profile = request.app[FAULT_PROFILE]
    decision = profile.decide(request.method, request.path)
    request[FAULT_DECISION] = decision
    if decision.latency_ms:
        await asyncio.sleep(decision.latency_ms / 1000)
    if decision.drop:
        # Abort the TCP connection with no response, as a crashed upstream would.
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError
    if decision.revoke_tokens and REVOKE_TOKENS in request.app:
        request.app[REVOKE_TOKENS]()
    if decision.envelope is not None:
        if ENVELOPE_BODY not in request.app:
            msg = f"this emulator serves no envelopes (asked for {decision.envelope!r})"
            raise web.HTTPInternalServerError(text=msg)
        body = request.app[ENVELOPE_BODY](decision.envelope)
        return web.Response(body=body, status=decision.envelope_status, content_type="application/json")
    if decision.status is not None and decision.redirect_to and 300 <= decision.status < 400:
        return web.Response(status=decision.status, headers={"Location": decision.redirect_to})
    if decision.status is not None:
        body = request.app.get(ERROR_BODY, default_error_body)(decision.status, request.path)
        headers = {}
        if decision.status in (429, 503):
            headers["Retry-After"] = str(max(0, round(decision.retry_after)))
        return web.json_response(body, status=decision.status, headers=headers)
    response = await handler(request)
    if decision.cut_body:
        await _send_half(request, response)
    return response


async def _send_half(request: web.Request, response: web.StreamResponse) -> NoReturn:
    """The answer's status and headers with its full ``Content-Length``, then half of its body, then the connection
    closes: the request was handled, its answer never arrives whole (a crashed proxy, a cut line)."""
    body = response.body if isinstance(response, web.Response) and isinstance(response.body, bytes) else b""
    half = web.StreamResponse(status=response.status, headers={"Content-Type": response.content_type})
    half.content_length = len(body)
    await half.prepare(request)
    await half.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.close()  # flushes what was written, then closes
    raise asyncio.CancelledError
