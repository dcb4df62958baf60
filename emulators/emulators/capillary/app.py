"""Assembles the Capillary emulator application."""

from __future__ import annotations

from aiohttp import web

from emulators.capillary.admin import ADMIN, CapillaryAdmin, add_admin_routes
from emulators.capillary.api import AUTH, CLOCK, CONFIG, RESPONSE_CACHE, STORE, add_routes
from emulators.capillary.auth import TOKEN_PATH, Authenticator, auth_middleware
from emulators.capillary.cache import ResponseCache
from emulators.capillary.config import CapillaryConfig
from emulators.capillary.dialects import error_body
from emulators.capillary.doc_samples import sample_bytes, sample_names
from emulators.capillary.ratelimit import RateLimits, api_name, rate_limit_middleware
from emulators.capillary.render import Clock, Renderer
from emulators.capillary.store import LoyaltyStore
from emulators.capillary.totals import totals_middleware
from emulators.faults import ADMIN_PREFIX, ENVELOPE_BODY, ERROR_BODY, REVOKE_TOKENS, FaultProfile
from emulators.server import create_base_app

RATE_LIMITS = web.AppKey("capillary_rate_limits", RateLimits)

FAULT_MESSAGES = {
    429: "Too many requests",
    461: "Search Engine is busy, please retry",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Authorization status is unavailable, please retry",
    521: "Multiple actions are running for the same customer, please retry",
}


def fault_body(status: int, path: str) -> dict:
    """An injected fault, in the dialect of the faulted path's API."""
    return error_body(path, status, FAULT_MESSAGES.get(status, "Error"))


def envelope_body(name: str) -> bytes:
    """The ``envelopes`` fault: one of Capillary's published samples (``doc_samples``), byte for byte."""
    if name not in sample_names():
        raise web.HTTPInternalServerError(text=f"no published Capillary sample named {name!r}")
    return sample_bytes(name)


def create_app(config: CapillaryConfig | None = None) -> web.Application:
    config = config or CapillaryConfig()
    app = create_base_app(FaultProfile.from_dict(config.faults))
    store = LoyaltyStore(config)
    clock = Clock(config.cluster_timezone)
    auth = Authenticator(
        config.oauth_clients, config.till_credentials, config.token_ttl_seconds, config.cluster_timezone
    )
    app[CONFIG] = config
    app[STORE] = store
    app[CLOCK] = clock
    app[AUTH] = auth
    app[ADMIN] = CapillaryAdmin(store, auth, Renderer(clock, store.entities))
    if config.response_cache_mb > 0:
        app[RESPONSE_CACHE] = ResponseCache(store, int(config.response_cache_mb * 1024 * 1024))
    app[ERROR_BODY] = fault_body
    app[ENVELOPE_BODY] = envelope_body
    app[REVOKE_TOKENS] = auth.revoke_all
    app.middlewares.append(auth_middleware(auth))
    limits = RateLimits(dict(config.rate_limits), config.rate_limit_window_seconds)
    app[RATE_LIMITS] = limits
    app.middlewares.append(rate_limit_middleware(limits, fault_body, send_retry_after=config.rate_limit_retry_after))
    app.middlewares.append(totals_middleware)
    add_routes(app)
    add_admin_routes(app)
    routes = [resource.canonical for resource in app.router.resources()]
    limits.check({api_name(route) for route in routes if not route.startswith((ADMIN_PREFIX, TOKEN_PATH))})

    async def close_store(_: web.Application) -> None:
        store.close()

    app.on_cleanup.append(close_store)
    return app
