"""Per-API, per-API-key rate limits (``rate_limits``, ``rate_limit_window_seconds``).

Capillary documents its limits as "the number of API calls that can be made in a minute", different for each API
and region (``01-getting-started-2/05-rate-limits.md``), and 1,000 requests a minute per API key on demo clusters;
it documents neither how the minute is counted nor any rate-limit header. The emulator counts, per API and per API
key (the OAuth client key, or the till user of Basic auth), the requests it accepted in the last
``rate_limit_window_seconds`` (a sliding window: the strictest reading, no burst of two windows' worth across a
boundary); one more is answered 429 in both error dialects, with ``Retry-After`` (whole seconds until the oldest
counted request leaves the window; ``rate_limit_retry_after`` false leaves it out, as the docs do). Refused
requests are not counted. A short window emulates a per-minute limit in compressed time (the benchmark's tens of
requests per second). The token endpoint and the admin routes are not limited.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from emulators.server import API_KEY, route_of

ALL_APIS = "*"


def api_name(route: str) -> str:
    """A route as Capillary's docs name the API: no leading slash, every path parameter ``{id}``."""
    return re.sub(r"\{[^}]*\}", "{id}", route.lstrip("/"))


class RateLimits:
    """Requests accepted per (API, API key) over a sliding window; ``now`` is replaceable (tests share a fake
    clock with the client under test)."""

    def __init__(self, limits: dict[str, int], window_seconds: float, now: Callable[[], float] = time.monotonic):
        self.limits = limits
        self.window_seconds = window_seconds
        self.now = now
        self._accepted: dict[tuple[str, str], deque[float]] = {}

    def check(self, known_apis: Iterable[str]) -> None:
        """Refuse limits for APIs the emulator does not serve (a typo would limit nothing)."""
        unknown = sorted(set(self.limits) - {ALL_APIS, *known_apis})
        if unknown:
            msg = f"rate_limits names unknown APIs {unknown}; the APIs are {sorted(known_apis)} (or '*' for all)"
            raise ValueError(msg)
        if any(not isinstance(n, int) or n < 1 for n in self.limits.values()) or self.window_seconds <= 0:
            msg = "rate limits must be positive whole numbers of requests per positive rate_limit_window_seconds"
            raise ValueError(msg)

    def limit(self, api: str) -> int | None:
        return self.limits.get(api, self.limits.get(ALL_APIS))

    def retry_after(self, api: str, key: str) -> float | None:
        """Count a request to ``api`` by ``key`` and return None; over the limit, count nothing and return the
        seconds until the oldest counted request leaves the window."""
        limit = self.limit(api)
        if limit is None:
            return None
        now = self.now()
        accepted = self._accepted.setdefault((api, key), deque())
        while accepted and accepted[0] <= now - self.window_seconds:
            accepted.popleft()
        if len(accepted) < limit:
            accepted.append(now)
            return None
        return accepted[0] + self.window_seconds - now


def rate_limit_middleware(
    limits: RateLimits, error_body: Callable[[int, str], dict], *, send_retry_after: bool
) -> Callable:
    """Answers 429 over an API's limit; runs after authentication, which names the request's API key. Requests
    without a key (the token route, admin paths) are not limited."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        key = request.get(API_KEY)
        if key is None:
            return await handler(request)
        wait = limits.retry_after(api_name(route_of(request)), key)
        if wait is None:
            return await handler(request)
        headers = {"Retry-After": str(max(1, math.ceil(wait)))} if send_retry_after else {}
        return web.json_response(error_body(429, request.path), status=429, headers=headers)

    return middleware
