"""Capillary authentication: OAuth client credentials (server-to-server) or Basic till credentials.

Both authenticators are shared by all streams and worker threads of one tap run.
"""

from __future__ import annotations

import hashlib
import threading
import time

import requests
from requests.adapters import HTTPAdapter
from singer_sdk.authenticators import APIAuthenticatorBase, BasicAuthenticator
from singer_sdk.exceptions import FatalAPIError
from urllib3.util.retry import Retry

from tap_capillary.errors import read_reports

TOKEN_PATH = "/v3/oauth/token/generate"
TOKEN_HEADER = "X-CAP-API-OAUTH-TOKEN"  # capillary-api.md 2.2; the overview's CAP-API-ACCESS-TOKEN is inconsistent
RETRIABLE_STATUSES = (429, 461, 500, 502, 503, 504, 521)


def till_authenticator(username: str, password: str) -> BasicAuthenticator:
    """Basic auth as Capillary defines it: ``base64(username + ":" + md5_hex(password))``."""
    return BasicAuthenticator(username=username, password=hashlib.md5(password.encode()).hexdigest())


class OAuthTokenAuthenticator(APIAuthenticatorBase):
    """Generates a token with the client key and secret, caches it, and renews it before it expires.

    Capillary tokens can live as little as 300 s, so the token is renewed once ``refresh_margin``
    of its lifetime is left (a fifth, at most 60 s) rather than on expiry.
    """

    retry_backoff_factor = 0.5

    def __init__(self, *, base_url: str, client_key: str, client_secret: str, timeout: float = 60) -> None:
        super().__init__()
        self._url = base_url.rstrip("/") + TOKEN_PATH
        self._credentials = {"key": client_key, "secret": client_secret}
        self._timeout = timeout
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._session = requests.Session()
        retry = Retry(
            total=5,
            backoff_factor=self.retry_backoff_factor,
            status_forcelist=RETRIABLE_STATUSES,
            allowed_methods=["POST"],
            raise_on_status=False,
        )
        for scheme in ("http://", "https://"):
            self._session.mount(scheme, HTTPAdapter(max_retries=retry))

    def authenticate_request(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[TOKEN_HEADER] = self.token()
        return request

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                self._generate()
            return self._token  # type: ignore[return-value]

    def reject(self, token: str | None) -> None:
        """Forget ``token`` after the API refused it (revoked early), unless another thread already renewed it."""
        with self._lock:
            if token is not None and token == self._token:
                self._token = None

    def _generate(self) -> None:
        started = time.monotonic()
        try:
            response = self._session.post(self._url, json=self._credentials, timeout=self._timeout)
        except requests.RequestException as exc:
            msg = f"OAuth token request to {TOKEN_PATH} failed: {type(exc).__name__}"
            raise FatalAPIError(msg) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        data = (body.get("data") or {}) if isinstance(body, dict) else {}
        token = data.get("accessToken")
        if response.status_code != 200 or not token:
            detail = "; ".join(map(str, read_reports(body, response.content).errors))
            msg = (
                f"Capillary refused to generate an OAuth token (HTTP {response.status_code} from {TOKEN_PATH}"
                f"{': ' + detail if detail else ''}); check client_key/client_secret and the client's access group"
            )
            raise FatalAPIError(msg)
        ttl = float(data.get("ttlSeconds") or 300)
        self._token = token
        self._renew_at = started + ttl - min(60.0, ttl / 5)
        self.logger.info("Generated a Capillary OAuth token valid for %.0f s", ttl)
