"""Calls to the platform API gateway (``platform.adobe.io``: Schema Registry, Catalog, Identity Service, Flow Service,
data export, observability): its headers, a bearer token refreshed once when refused, and retries.

Reads (``GET``) are retried after 429, 5xx and dropped connections. Writes (``POST``, ``PATCH``) create or change
something, so they are retried only when the gateway says it did not take them (429, 503); after a dropped
connection or another 5xx, whether the write took effect is unknown (``UncertainOutcome``): provision looks every
object up before creating it, so running it again finds what the write made instead of making it twice.
"""

from __future__ import annotations

from typing import Any

import orjson
import requests

from target_adobe_aep.connection import RetriableError, RetryPolicy, send
from target_adobe_aep.ims import TokenProvider

REGISTRY = "/data/foundation/schemaregistry"
CATALOG = "/data/foundation/catalog"
IDENTITY = "/data/core/idnamespace/identities"
FLOW_SERVICE = "/data/foundation/flowservice"
EXPORT = "/data/foundation/export"
METRICS = "/data/infrastructure/observability/insights/metrics"
# Answers that say a write was not taken (rate limit, unavailable): retried. After any other transient failure (a
# dropped connection, 500, 502, 504) a write may or may not have been made.
NOT_TAKEN_STATUSES = frozenset({429, 503})
# The gateway's error codes (EN help/landing/troubleshooting.md) and the setting each points at.
GATEWAY_CODES = {
    "400003": ("org_id", "the x-gw-ims-org-id header is missing"),
    "403025": ("org_id", 'the client is not entitled to this org ("Profile is not valid")'),
    "403027": ("org_id", 'the org or its region is unknown to the gateway ("User region is missing")'),
    "403000": ("api_key", "the x-api-key header is missing"),
    "403003": ("api_key", "the API key is invalid (api_key, default: client_id)"),
}


class UncertainOutcome(RuntimeError):
    """A write was sent but whether it took effect is unknown (dropped connection, 500/502/504)."""


class PlatformClient:
    """Requests to one platform URL with ``Authorization``, ``x-api-key``, ``x-gw-ims-org-id`` and
    ``x-sandbox-name`` (EN help/landing/api-fundamentals.md), under the outbound-HTTP policy of ``connection``."""

    def __init__(
        self,
        *,
        session: requests.Session,
        platform_url: str,
        tokens: TokenProvider,
        api_key: str,
        org_id: str,
        sandbox_name: str,
        retry: RetryPolicy,
    ) -> None:
        self._session = session
        self._base = platform_url
        self._tokens = tokens
        self._headers = {"x-api-key": api_key, "x-gw-ims-org-id": org_id, "x-sandbox-name": sandbox_name}
        self._retry = retry

    def get(self, path: str, what: str, *, accept: str | None = None, params: dict[str, Any] | None = None,
            ) -> requests.Response:  # fmt: skip
        """The answer to ``GET {platform_url}{path}``; raises ``AuthError`` when the token is refused twice and
        ``RetriesExhausted`` when retries run out."""
        return self.request("GET", path, what, accept=accept, params=params)

    def request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        accept: str | None = None,
        params: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> requests.Response:
        """The answer to ``{method} {platform_url}{path}`` with ``body`` as JSON; a write (not ``GET``) raises
        ``UncertainOutcome`` when it may or may not have been made."""
        url = self._base + path
        headers = {**self._headers, **({"Accept": accept} if accept else {})}
        data = None if body is None else orjson.dumps(body)
        if data is not None:
            headers["Content-Type"] = content_type
        write = method != "GET"

        def attempt(timeout: float) -> requests.Response:
            def call(token: str) -> requests.Response:
                authorized = {**headers, "Authorization": f"Bearer {token}"}
                try:
                    return send(
                        self._session, method, url, what, headers=authorized, params=params, data=data, timeout=timeout
                    )
                except RetriableError as exc:
                    if write and exc.status not in NOT_TAKEN_STATUSES:
                        outcome = f"answered HTTP {exc.status}" if exc.status else f"failed ({exc})"
                        msg = f"{what}: {method} {path} {outcome}; whether it took effect is unknown"
                        raise UncertainOutcome(msg) from None
                    raise

            return self._tokens.authorized(call, what)

        return self._retry.call(attempt)


def gateway_error(text: str) -> tuple[str, str] | None:
    """``(setting, explanation)`` for a gateway error body naming a documented ``error_code``."""
    return next((found for code, found in GATEWAY_CODES.items() if f'"{code}"' in text), None)
