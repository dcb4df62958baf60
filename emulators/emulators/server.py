"""What both emulators share: the request log, the admin routes under ``/_emulator``,
fault injection, and running an aiohttp application on a free loopback port.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from aiohttp import web

from emulators.faults import (
    ADMIN_PREFIX,
    FAULT_DECISION,
    FAULT_PROFILE,
    REVOKE_TOKENS,
    FaultProfile,
    fault_middleware,
)

T = TypeVar("T")

REQUEST_LOG = web.AppKey("request_log", "RequestLog")
#: Who made a request: the API key (OAuth client key, till user) the emulator's authentication identified.
API_KEY = web.RequestKey("api_key", str)
LOOPBACK = "127.0.0.1"
# Query parameters never written to the request log (IMS accepts credentials in the query string).
SECRET_PARAMS = frozenset({"client_secret", "secret", "password", "access_token", "token"})


class RequestLog:
    """Bounded log of the requests an emulator answered, plus per-route request and request-body byte counters."""

    def __init__(self, maxlen: int = 100_000) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self.counts: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()

    def record(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)
        route = f"{entry['method']} {entry['route']}"
        self.counts[route] += 1
        self.bytes[route] += entry["bytes"]

    def clear(self) -> None:
        self.entries.clear()
        self.counts.clear()
        self.bytes.clear()


def route_of(request: web.Request) -> str:
    """The route template a request matched (``/v2/transactions/{txn_id}``), else its path."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else request.path


@web.middleware
async def request_log_middleware(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    if request.path.startswith(ADMIN_PREFIX):
        return await handler(request)
    # Measured request body size: Content-Length, or the body read (and kept for the handler) when chunked.
    size = request.content_length
    if size is None:
        size = len(await request.read()) if request.body_exists else 0
    entry = {
        "time": time.time(),
        "method": request.method,
        "path": request.path,
        "route": route_of(request),
        "query": {k: "[redacted]" if k.lower() in SECRET_PARAMS else v for k, v in request.query.items()},
        "bytes": size,
        "status": None,
        "fault": False,
        "api_key": None,
    }
    request.app[REQUEST_LOG].record(entry)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        entry["status"] = exc.status
        raise
    except asyncio.CancelledError:
        decision = request.get(FAULT_DECISION)
        entry["status"] = "cut" if decision is not None and decision.cut_body else "dropped"
        raise
    finally:
        decision = request.get(FAULT_DECISION)
        entry["fault"] = bool(decision and decision.is_fault)
        entry["api_key"] = request.get(API_KEY)
    entry["status"] = response.status
    return response


async def _get_requests(request: web.Request) -> web.Response:
    log = request.app[REQUEST_LOG]
    path = request.query.get("path")
    entries = [e for e in log.entries if path is None or e["path"].startswith(path)]
    return web.json_response(
        {"count": len(entries), "requests": entries, "by_route": log.counts, "bytes_by_route": log.bytes}
    )


async def _clear_requests(request: web.Request) -> web.Response:
    request.app[REQUEST_LOG].clear()
    return web.json_response({"cleared": True})


async def _get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[FAULT_PROFILE].to_dict())


async def _put_faults(request: web.Request) -> web.Response:
    try:
        profile = FaultProfile.from_dict(await request.json())
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    request.app[FAULT_PROFILE].replace_with(profile)
    return web.json_response(profile.to_dict())


async def _clear_faults(request: web.Request) -> web.Response:
    request.app[FAULT_PROFILE].replace_with(FaultProfile())
    return web.json_response({"cleared": True})


async def _revoke_tokens(request: web.Request) -> web.Response:
    request.app[REVOKE_TOKENS]()
    return web.json_response({"revoked": True})


async def _health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_base_app(faults: FaultProfile | None = None) -> web.Application:
    """An application with request logging, fault injection and the shared admin routes.

    The emulator sets ``REVOKE_TOKENS`` (used by ``POST /_emulator/revoke-tokens`` and the
    ``revoke_token_rate`` fault) and ``ERROR_BODY`` (its dialect for injected errors).
    """
    app = web.Application(
        middlewares=[request_log_middleware, fault_middleware],
        client_max_size=16 * 1024 * 1024,
    )
    app[REQUEST_LOG] = RequestLog()
    app[FAULT_PROFILE] = faults or FaultProfile()
    app.router.add_get(f"{ADMIN_PREFIX}/health", _health)
    app.router.add_get(f"{ADMIN_PREFIX}/requests", _get_requests)
    app.router.add_delete(f"{ADMIN_PREFIX}/requests", _clear_requests)
    app.router.add_get(f"{ADMIN_PREFIX}/faults", _get_faults)
    app.router.add_put(f"{ADMIN_PREFIX}/faults", _put_faults)
    app.router.add_delete(f"{ADMIN_PREFIX}/faults", _clear_faults)
    app.router.add_post(f"{ADMIN_PREFIX}/revoke-tokens", _revoke_tokens)
    return app


class BackgroundServer:
    """Serves an aiohttp application from a daemon thread on a loopback port.

    ``port=0`` picks a free port; with ``ssl_context`` it serves https (a client's TLS handling under test).
    Use as a context manager, or ``start()``/``stop()``.
    ``call(fn, ...)`` runs ``fn`` on the server's event loop thread, which is how tests
    touch emulator state (SQLite connections belong to that thread).
    """

    def __init__(
        self,
        app: web.Application,
        host: str = LOOPBACK,
        port: int = 0,
        config: Any = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.app = app
        self.config = config
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=60)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024, ssl_context=self.ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the only way to read an ephemeral port

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout=600)

    def set_faults(self, profile: FaultProfile | dict[str, Any] | None) -> None:
        if not isinstance(profile, FaultProfile):
            profile = FaultProfile.from_dict(profile)

        self.call(self.app[FAULT_PROFILE].replace_with, profile)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
