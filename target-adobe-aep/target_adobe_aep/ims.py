"""Adobe IMS OAuth server-to-server (client credentials) access tokens, cached and refreshed ahead of expiry."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import requests

from target_adobe_aep.connection import RetryPolicy, send

logger = logging.getLogger(__name__)

# Refresh this long before expiry (Adobe's Kafka sink uses 60 s, aepp 500 s), but at most a tenth of the lifetime
# so short-lived tokens are still used for most of their life.
REFRESH_MARGIN_SECONDS = 300.0
# No IMS token lives 10^6 s (11.6 days): a larger expires_in can only be milliseconds.
MAX_PLAUSIBLE_SECONDS = 1_000_000


# Statuses with which Adobe refuses a missing, expired or revoked token (DCS, platform gateway).
AUTH_STATUSES = (401, 403)


class AuthError(RuntimeError):
    """Adobe refused our credentials or token; retrying will not help. ``status`` and ``detail`` (the answer's
    beginning, token masked) say how, when an API refused it."""

    def __init__(self, message: str, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


def expires_in_seconds(ims_url: str, expires_in: float) -> float:
    """``expires_in`` converted to seconds.

    ``/ims/token/v3`` (and v2) document seconds; the legacy unversioned ``/ims/token`` and ``/ims/exchange/jwt``
    return milliseconds (``86399994`` ≈ 24 h). Decide by the endpoint, and by magnitude in case a versioned
    endpoint ever answers in milliseconds.
    """
    versioned = re.search(r"/v\d+$", urlsplit(ims_url).path.rstrip("/")) is not None
    if not versioned or expires_in > MAX_PLAUSIBLE_SECONDS:
        return expires_in / 1000.0
    return float(expires_in)


def _oauth_error(response: requests.Response) -> str:
    """The RFC 6749 error fields of an IMS error body, short; never the request (it holds the secret)."""
    try:
        body = response.json()
    except ValueError:
        return response.reason or ""
    if not isinstance(body, dict):
        return ""
    parts = [str(body.get(k))[:200] for k in ("error", "error_description") if body.get(k)]
    return ": ".join(parts)


class TokenProvider:
    """Thread-safe access token source for one client-credentials integration."""

    def __init__(
        self,
        *,
        session: requests.Session,
        ims_url: str,
        client_id: str,
        client_secret: str,
        scopes: str,
        retry: RetryPolicy,
    ) -> None:
        self._session = session
        self._ims_url = ims_url
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": scopes,
        }
        self._retry = retry
        self._clock = retry.clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self.tokens_fetched = 0

    def __repr__(self) -> str:
        return f"TokenProvider(ims_url={self._ims_url!r})"

    def token(self) -> str:
        """The cached token, fetching a new one when there is none or it is about to expire."""
        with self._lock:
            if self._token is None or self._clock.now() >= self._refresh_at:
                self._fetch()
            return self._token  # type: ignore[return-value]

    def refresh(self, rejected: str) -> str:
        """A new token after ``rejected`` was refused, unless another thread has already replaced it."""
        with self._lock:
            if self._token is None or self._token == rejected:
                self._fetch()
            return self._token  # type: ignore[return-value]

    def authorized(self, request: Callable[[str], requests.Response], what: str) -> requests.Response:
        """``request(token)``; when refused with 401/403, once more with a refreshed token, then ``AuthError``."""
        token = self.token()
        response = request(token)
        if response.status_code not in AUTH_STATUSES:
            return response
        logger.warning("%s answered HTTP %d; refreshing the access token and retrying once", what, response.status_code)
        token = self.refresh(token)
        response = request(token)
        if response.status_code in AUTH_STATUSES:
            detail = response.text[:300].replace(token, "***")
            msg = (
                f"{what} refused a freshly issued access token: HTTP {response.status_code} {detail} -- check that the "
                "client is entitled to this org, sandbox and inlet"
            )
            raise AuthError(msg, response.status_code, detail)
        return response

    def _fetch(self) -> None:
        body = self._retry.call(self._request)
        lifetime = expires_in_seconds(self._ims_url, float(body["expires_in"]))
        margin = min(REFRESH_MARGIN_SECONDS, lifetime / 10)
        self._token = body["access_token"]
        self._refresh_at = self._clock.now() + lifetime - margin
        self.tokens_fetched += 1
        logger.info("Obtained an IMS access token valid for %.0f s (refresh in %.0f s)", lifetime, lifetime - margin)

    def _request(self, timeout: float) -> dict:
        # Credentials go in the form body, never the query string (which proxies may log), as IMS recommends.
        response = send(self._session, "POST", self._ims_url, "IMS", data=self._form, timeout=timeout)
        if response.status_code != 200:
            detail = _oauth_error(response)
            msg = f"IMS refused the client credentials: HTTP {response.status_code} {detail}".rstrip()
            raise AuthError(msg, response.status_code, detail)
        try:
            body = response.json()
            token = body.get("access_token")
            # A token unfit for a header would make requests raise InvalidHeader with the token in its message.
            unusable = not isinstance(token, str) or not token or not token.isprintable() or " " in token
            if unusable or body.get("expires_in") is None:
                raise ValueError
        except (ValueError, AttributeError):
            msg = "IMS answered 200 without a usable access_token/expires_in"
            raise AuthError(msg) from None
        return body
