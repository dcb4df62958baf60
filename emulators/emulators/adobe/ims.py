"""Adobe IMS: the OAuth server-to-server token endpoints and the tokens they issue.

``POST /ims/token/v3`` answers ``expires_in`` in seconds; the legacy ``POST /ims/token`` in
milliseconds (DEVC implementation.md; EN capillary.md sample ``86399994``). Parameters may come in
the form body or the query string (DEVC IMS.md). Error bodies follow RFC 6749 §5.2, since Adobe
documents none for IMS.
Tokens look like IMS tokens (a JWT whose claims carry ``created_at`` and ``expires_in`` in ms, which
``@adobe/aio-lib-ims`` reads) but are opaque to the emulator: it looks them up in memory.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from emulators.adobe.config import AdobeConfig


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()


@dataclass
class Grant:
    client_id: str
    expires_at: float


class TokenIssuer:
    """Issues access tokens and answers whether one is currently valid. ``now`` (epoch seconds) is the clock
    tokens expire by; tests replace it to let a token expire without waiting."""

    def __init__(self, config: AdobeConfig) -> None:
        self._config = config
        self._grants: dict[str, Grant] = {}
        self.now: Callable[[], float] = time.time

    def issue(self, client_id: str, scope: str) -> str:
        now = self.now()
        lifetime = self._config.token_lifetime_seconds
        header = {"alg": "RS256", "x5u": "ims_na1-key-at-1.cer", "kid": "ims_na1-key-at-1", "itt": "at"}
        claims = {
            "id": secrets.token_hex(16),
            "type": "access_token",
            "client_id": client_id,
            "user_id": f"{client_id}@techacct.adobe.com",
            "as": "ims-na1",
            "aa_id": f"{client_id}@techacct.adobe.com",
            "scope": scope,
            "created_at": str(int(now * 1000)),
            "expires_in": str(int(lifetime * 1000)),
        }
        token = f"{_b64(header)}.{_b64(claims)}.{secrets.token_urlsafe(32)}"
        self._grants[token] = Grant(client_id, now + lifetime)
        return token

    def is_valid(self, token: str) -> bool:
        grant = self._grants.get(token)
        return grant is not None and self.now() < grant.expires_at

    def revoke_all(self) -> None:
        self._grants.clear()


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer …`` header; ``None`` when the header is absent."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


def token_handler(issuer: TokenIssuer, config: AdobeConfig, expires_in_ms: bool):
    async def handle(request: web.Request) -> web.Response:
        params = {**request.query, **(await request.post())}
        grant_type = params.get("grant_type")
        if not grant_type:
            return _oauth_error(400, "invalid_request", "missing grant_type parameter")
        if grant_type != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", f"unsupported grant_type {grant_type}")
        client_id, secret = params.get("client_id"), params.get("client_secret")
        if not client_id or not secret:
            return _oauth_error(400, "invalid_request", "missing client_id or client_secret parameter")
        known = config.clients.get(client_id)
        if known is None or not secrets.compare_digest(str(known), str(secret)):
            return _oauth_error(401, "invalid_client", "invalid client_id or client_secret")
        scope = str(params.get("scope", ",".join(config.allowed_scopes)))
        requested = [s for s in scope.replace(" ", ",").split(",") if s]
        unknown = [s for s in requested if s not in config.allowed_scopes]
        if unknown:
            return _oauth_error(400, "invalid_scope", f"invalid scope ({','.join(unknown)})")
        lifetime = config.token_lifetime_seconds
        return web.json_response(
            {
                "access_token": issuer.issue(client_id, ",".join(requested)),
                "token_type": "bearer",
                "expires_in": int(lifetime * 1000) if expires_in_ms else int(lifetime),
            }
        )

    return handle


def add_routes(app: web.Application, issuer: TokenIssuer, config: AdobeConfig) -> None:
    app.router.add_post("/ims/token/v3", token_handler(issuer, config, expires_in_ms=False))
    app.router.add_post("/ims/token", token_handler(issuer, config, expires_in_ms=True))
