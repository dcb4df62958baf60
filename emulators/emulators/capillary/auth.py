"""Capillary authentication: OAuth tokens from ``/v3/oauth/token/generate`` sent as
``X-CAP-API-OAUTH-TOKEN``, or till Basic auth ``Basic base64(user:md5_hex(password))``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from aiohttp import web

from emulators.capillary.dialects import TOKEN_PATH, token_refused_body
from emulators.faults import ADMIN_PREFIX
from emulators.server import API_KEY

__all__ = ["TOKEN_HEADER", "TOKEN_PATH", "Authenticator", "auth_middleware"]

TOKEN_HEADER = "X-CAP-API-OAUTH-TOKEN"


class Authenticator:
    """Issued tokens (in memory, with expiry) and the accepted credentials. ``now`` (epoch seconds) is the clock
    tokens expire by; tests replace it to let a token expire without waiting."""

    def __init__(
        self, oauth_clients: dict[str, str], tills: dict[str, str], ttl_seconds: float, timezone: str = "UTC"
    ) -> None:
        self.oauth_clients = oauth_clients
        self.timezone = ZoneInfo(timezone)
        self.till_hashes = {user: hashlib.md5(pw.encode()).hexdigest() for user, pw in tills.items()}
        self.ttl_seconds = ttl_seconds
        self.now: Callable[[], float] = time.time
        self.tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self.token_keys: dict[str, str] = {}  # token -> the client key it was issued to

    def issue(self, key: str, secret: str) -> str | None:
        expected = self.oauth_clients.get(key)
        if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
            return None
        token = secrets.token_urlsafe(32)
        self.tokens[token] = self.now() + self.ttl_seconds
        self.token_keys[token] = key
        return token

    def revoke_all(self) -> None:
        self.tokens.clear()
        self.token_keys.clear()

    def check(self, request: web.Request) -> tuple[int, str] | None:
        """None if the request is authenticated (its API key then in ``request[API_KEY]``), else the documented
        code and why not (never echoing credentials): 401 for a missing or invalid credential, 498 for an expired
        token."""
        token = request.headers.get(TOKEN_HEADER)
        if token is not None:
            expiry = self.tokens.get(token)
            if expiry is None:
                return 401, "Unauthorized"
            if self.now() >= expiry:
                del self.tokens[token]
                del self.token_keys[token]
                expired = datetime.fromtimestamp(expiry, self.timezone)
                # As the docs print it: "Token expired at 2019-12-02T12:31:15.000+0530".
                return 498, f"Token expired at {expired.strftime('%Y-%m-%dT%H:%M:%S.000%z')}"
            request[API_KEY] = self.token_keys[token]
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return 401, "Authentication required: X-CAP-API-OAUTH-TOKEN or Basic till credentials"
        try:
            user, _, md5_hex = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return 401, "Malformed Basic credentials"
        expected = self.till_hashes.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), md5_hex.lower().encode()):
            return 401, "Invalid till credentials"
        request[API_KEY] = user
        return None


def auth_middleware(authenticator: Authenticator) -> Callable:
    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith(ADMIN_PREFIX) or request.path == TOKEN_PATH:
            return await handler(request)
        problem = authenticator.check(request)
        if problem is not None:
            return web.json_response(token_refused_body(request.path, *problem), status=401)
        return await handler(request)

    return middleware
