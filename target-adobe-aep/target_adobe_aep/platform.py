"""Calls to the platform API gateway (``platform.adobe.io``: Schema Registry, Catalog): its headers, a bearer token
refreshed once when refused, and retries of 429/5xx and dropped connections."""

from __future__ import annotations

from typing import Any

import requests

from target_adobe_aep.connection import RetryPolicy, send
from target_adobe_aep.ims import TokenProvider

REGISTRY = "/data/foundation/schemaregistry"
CATALOG = "/data/foundation/catalog"
# The gateway's error codes (EN help/landing/troubleshooting.md) and the setting each points at.
GATEWAY_CODES = {
    "400003": ("org_id", "the x-gw-ims-org-id header is missing"),
    "403025": ("org_id", 'the client is not entitled to this org ("Profile is not valid")'),
    "403027": ("org_id", 'the org or its region is unknown to the gateway ("User region is missing")'),
    "403000": ("api_key", "the x-api-key header is missing"),
    "403003": ("api_key", "the API key is invalid (api_key, default: client_id)"),
}


class PlatformClient:
    """``GET`` requests to one platform URL with ``Authorization``, ``x-api-key``, ``x-gw-ims-org-id`` and
    ``x-sandbox-name`` (EN help/landing/api-fundamentals.md)."""

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
        url = self._base + path
        headers = {**self._headers, **({"Accept": accept} if accept else {})}

        def attempt(timeout: float) -> requests.Response:
            def get(token: str) -> requests.Response:
                authorized = {**headers, "Authorization": f"Bearer {token}"}
                return send(self._session, "GET", url, what, headers=authorized, params=params, timeout=timeout)

            return self._tokens.authorized(get, what)

        return self._retry.call(attempt)


def gateway_error(text: str) -> tuple[str, str] | None:
    """``(setting, explanation)`` for a gateway error body naming a documented ``error_code``."""
    return next((found for code, found in GATEWAY_CODES.items() if f'"{code}"' in text), None)
