"""Capillary authentication: OAuth client credentials (server-to-server) or Basic till credentials.

Both authenticators are shared by all streams and worker threads of one tap run.
"""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING, Any

import requests
from singer_sdk.authenticators import APIAuthenticatorBase, BasicAuthenticator
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from tap_capillary.errors import Action, classify, read_reports

if TYPE_CHECKING:
    from tap_capillary.transport import Transport

TOKEN_PATH = "/v3/oauth/token/generate"
TOKEN_HEADER = "X-CAP-API-OAUTH-TOKEN"  # capillary-api.md 2.2; the overview's CAP-API-ACCESS-TOKEN is inconsistent


def till_authenticator(username: str, password: str) -> BasicAuthenticator:
    """Basic auth as Capillary defines it: ``base64(username + ":" + md5_hex(password))``."""
    return BasicAuthenticator(username=username, password=hashlib.md5(password.encode()).hexdigest())


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


class OAuthTokenAuthenticator(APIAuthenticatorBase):
    """Generates a token with the client key and secret, caches it, and renews it before it expires.

    Capillary tokens can live as little as 300 s, so the token is renewed once ``refresh_margin``
    of its lifetime is left (a fifth, at most 60 s) rather than on expiry. The token request goes through the
    run's transport (its session and retry policy), outside the rate limit of API requests.
    """

    def __init__(self, *, base_url: str, client_key: str, client_secret: str, transport: Transport) -> None:
        super().__init__()
        self._url = base_url.rstrip("/") + TOKEN_PATH
        self._credentials = {"key": client_key, "secret": client_secret}
        self._transport = transport
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

    def authenticate_request(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[TOKEN_HEADER] = self.token()
        return request

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._transport.retry.clock.now() >= self._renew_at:
                self._token, self._renew_at = self._generate()
            return self._token

    def reject(self, token: str | bytes | None) -> None:
        """Forget ``token`` after the API refused it (revoked early), unless another thread already renewed it."""
        with self._lock:
            if token is not None and token == self._token:
                self._token = None

    def _generate(self) -> tuple[str, float]:
        """A new token and when to renew it; retried as one call of its own (``transport.py``)."""
        clock = self._transport.retry.clock
        started = clock.now()
        token, ttl = self._transport.retry.call(self._request_token, f"POST {TOKEN_PATH}")
        self.logger.info("Generated a Capillary OAuth token valid for %.0f s", ttl)
        return token, started + ttl - min(60.0, ttl / 5)

    def _request_token(self, timeout: float) -> tuple[str, float]:
        # ``auth``: the SDK sets the session's auth to the API authenticator (this one), which must not apply here.
        response = self._transport.session.post(self._url, json=self._credentials, timeout=timeout, auth=_no_auth)
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        data = (body.get("data") or {}) if isinstance(body, dict) else {}
        token = data.get("accessToken")
        if response.status_code == 200 and token:
            return str(token), float(data.get("ttlSeconds") or 300)
        errors = read_reports(body, response.content).errors
        detail = "; ".join(map(str, errors))
        status = f"HTTP {response.status_code} from POST {TOKEN_PATH}{': ' + detail if detail else ''}"
        if classify(response.status_code, errors).action == Action.RETRY:
            raise RetriableAPIError(status, response)
        msg = (
            f"Capillary refused to generate an OAuth token ({status}); check client_key/client_secret and the "
            "client's access group"
        )
        raise FatalAPIError(msg)
