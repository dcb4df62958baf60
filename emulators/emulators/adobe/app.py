"""The Adobe emulator application: IMS, DCS and platform paths on one port, plus its admin routes.

Admin routes (besides the shared ``/_emulator/health|requests|faults``):

- ``GET /_emulator/datasets`` — per dataset: schema, ``accepted``, ``failed``, ``distinct_ids``
- ``GET /_emulator/datasets/{id}/ids|messages|failed?limit=&offset=`` — distinct valid ``_id`` values,
  stored ``xdmEntity`` bodies, failed records with their validation errors (409 when ``store_messages`` is off)
- ``DELETE /_emulator/datasets`` — forget every stored record
- ``POST /_emulator/revoke-tokens`` — invalidate every issued access token

From Python (tests): ``state = server.app[ADOBE]`` and ``server.call(state.store.counts)`` etc.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

from aiohttp import web

from emulators.adobe import ims
from emulators.adobe.config import AdobeConfig
from emulators.adobe.dcs import CollectionService, problem
from emulators.adobe.ims import TokenIssuer
from emulators.adobe.platform import PlatformApi
from emulators.adobe.store import NotStored, Store
from emulators.adobe.xdm import tenant_schema
from emulators.faults import ADMIN_PREFIX, ERROR_BODY, REVOKE_TOKENS
from emulators.server import create_base_app


@dataclass
class AdobeState:
    config: AdobeConfig
    issuer: TokenIssuer
    dcs: CollectionService

    @property
    def store(self) -> Store:
        return self.dcs.store


ADOBE = web.AppKey("adobe", AdobeState)


def _error_body(status: int) -> dict:
    """Injected faults answer in DCS's problem-JSON dialect."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    return problem(status, f"Emulated fault {status}", title)


def _page(request: web.Request, default_limit: int) -> tuple[int, int]:
    try:
        return int(request.query.get("limit", default_limit)), int(request.query.get("offset", 0))
    except ValueError as exc:
        raise web.HTTPBadRequest(text="limit and offset must be integers") from exc


def _admin_routes(app: web.Application, state: AdobeState) -> None:
    def dataset_id(request: web.Request) -> str:
        ds = request.match_info["datasetId"]
        if ds not in state.config.datasets:
            raise web.HTTPNotFound(text=f"unknown dataset {ds}")
        return ds

    async def datasets(_: web.Request) -> web.Response:
        counts = state.store.counts()
        empty = {"accepted": 0, "failed": 0, "distinct_ids": 0}
        return web.json_response(
            {ds: {"schema": schema, **counts.get(ds, empty)} for ds, schema in state.config.datasets.items()}
        )

    def listing(name: str, method: str, default_limit: int) -> Callable[[web.Request], Awaitable[web.Response]]:
        """A paged listing of one dataset from ``Store.<method>``."""

        async def handler(request: web.Request) -> web.Response:
            limit, offset = _page(request, default_limit)
            try:
                return web.json_response({name: getattr(state.store, method)(dataset_id(request), limit, offset)})
            except NotStored as exc:
                raise web.HTTPConflict(text=str(exc)) from None

        return handler

    async def clear(_: web.Request) -> web.Response:
        state.store.clear()
        return web.json_response({"cleared": True})

    app.router.add_get(f"{ADMIN_PREFIX}/datasets", datasets)
    app.router.add_delete(f"{ADMIN_PREFIX}/datasets", clear)
    for name, method, default_limit in (("ids", "distinct_ids", 1000), ("messages", "messages", 100),
                                        ("failed", "failed", 100)):  # fmt: skip
        app.router.add_get(f"{ADMIN_PREFIX}/datasets/{{datasetId}}/{name}", listing(name, method, default_limit))


def create_app(config: AdobeConfig | None = None) -> web.Application:
    config = config or AdobeConfig()
    schemas = {
        dataset: tenant_schema(name, config.tenant_id, config.max_errors_per_message)
        for dataset, name in config.datasets.items()
    }
    issuer = TokenIssuer(config)
    dcs = CollectionService(config, issuer, schemas)
    state = AdobeState(config, issuer, dcs)

    app = create_base_app(config.fault_profile())
    app[ADOBE] = state
    app[ERROR_BODY] = _error_body
    app[REVOKE_TOKENS] = issuer.revoke_all
    ims.add_routes(app, issuer, config)
    dcs.add_routes(app)
    PlatformApi(config, issuer, schemas).add_routes(app)
    _admin_routes(app, state)

    async def open_store(_: web.Application) -> None:
        # SQLite connections belong to one thread: open it on the server's loop thread.
        dcs.store = Store(config.database, keep_messages=config.store_messages)

    async def close_store(_: web.Application) -> None:
        dcs.store.close()

    app.on_startup.append(open_store)
    app.on_cleanup.append(close_store)
    return app
