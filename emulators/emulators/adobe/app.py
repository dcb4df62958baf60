"""The Adobe emulator application: IMS, DCS and platform paths on one port, plus its admin routes.

Admin routes (besides the shared ``/_emulator/health|requests|faults``):

- ``GET /_emulator/datasets`` — per dataset: schema title, ``accepted``, ``failed``, ``distinct_ids``
- ``GET /_emulator/datasets/{id}/ids|messages|failed?limit=&offset=`` — distinct valid ``_id`` values,
  stored ``xdmEntity`` bodies, failed records with their validation errors (409 when ``store_messages`` is off)
- ``DELETE /_emulator/datasets`` — forget every stored record
- ``GET /_emulator/objects`` — how many field groups, schemas, descriptors, custom namespaces, datasets, connections,
  source and target connections and flows the sandbox holds
- ``POST /_emulator/revoke-tokens`` — invalidate every issued access token

From Python (tests): ``state = server.app[ADOBE]`` and ``server.call(state.store.counts)``, ``state.sandbox`` etc.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

from aiohttp import web

from emulators.adobe import ims
from emulators.adobe.catalog import CatalogApi
from emulators.adobe.config import AdobeConfig
from emulators.adobe.dcs import CollectionService, problem
from emulators.adobe.flows import FlowServiceApi
from emulators.adobe.ims import TokenIssuer
from emulators.adobe.insights import InsightsApi
from emulators.adobe.platform import PlatformApi
from emulators.adobe.sandbox import HTTP_API_SPEC, Sandbox
from emulators.adobe.store import NotStored, Store
from emulators.adobe.xdm import SCHEMAS, TENANT_PLACEHOLDER
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

    @property
    def sandbox(self) -> Sandbox:
        return self.dcs.sandbox


ADOBE = web.AppKey("adobe", AdobeState)


def _error_body(status: int, path: str) -> dict:
    """Injected faults answer in DCS's problem-JSON dialect, whatever the path."""
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


def seeded(config: AdobeConfig) -> Sandbox:
    """The sandbox the emulator starts with: empty, or (``provisioned``) holding what target-adobe-aep's provision
    makes, created through the same checks as the APIs: the identity namespaces, tenant field group, schema (enabled
    for Profile) and dataset of each ``schemas/capillary-*.json`` seed (generated from the target's mappings), with
    the configured ids, and the two inlets."""
    sandbox = Sandbox(config.tenant_id, config.org_id, config.sandbox, max_errors=config.max_errors_per_message)
    if not config.provisioned:
        return sandbox
    for dataset_id, name in config.datasets.items():
        text = SCHEMAS.joinpath(f"{name}.json").read_text(encoding="utf-8")
        seed = json.loads(text.replace(TENANT_PLACEHOLDER, config.tenant_id))
        for namespace in seed["identityNamespaces"]:
            if not any(existing["code"] == namespace["code"] for existing in sandbox.namespaces):
                sandbox.create_namespace(namespace)
        field_group = {key: value for key, value in seed["fieldGroup"].items() if key != "$id"}
        sandbox.create_field_group(field_group, seed["fieldGroup"]["$id"])
        schema = {key: value for key, value in seed["schema"].items() if key != "$id"}
        sandbox.create_schema(schema, seed["schema"]["$id"])
        sandbox.patch_schema(seed["schema"]["$id"], [{"op": "add", "path": "/meta:immutableTags", "value": ["union"]}])
        sandbox.create_dataset(seed["dataSet"], dataset_id)
    for inlet_id, authenticated in config.inlets.items():
        kind = "authenticated" if authenticated else "unauthenticated"
        body = {"name": f"Emulator inlet ({kind})", "connectionSpec": {"id": HTTP_API_SPEC,
                "version": "1.0"}, "auth": {"specName": "Streaming Connection", "params": {"dataType": "xdm",
                "authenticationRequired": authenticated}}}  # fmt: skip
        sandbox.create_connection(body, inlet_id)
    return sandbox


def _admin_routes(app: web.Application, state: AdobeState) -> None:
    def dataset_id(request: web.Request) -> str:
        ds = request.match_info["datasetId"]
        if ds not in state.sandbox.datasets:
            raise web.HTTPNotFound(text=f"unknown dataset {ds}")
        return ds

    async def datasets(_: web.Request) -> web.Response:
        counts = state.store.counts()
        empty = {"accepted": 0, "failed": 0, "distinct_ids": 0}
        schemas = state.sandbox.schemas
        return web.json_response({
            ds: {"schema": schemas[details["schemaRef"]["id"]]["title"], **counts.get(ds, empty)}
            for ds, details in state.sandbox.datasets.items()
        })  # fmt: skip

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

    async def objects(_: web.Request) -> web.Response:
        return web.json_response(state.sandbox.counts())

    app.router.add_get(f"{ADMIN_PREFIX}/datasets", datasets)
    app.router.add_delete(f"{ADMIN_PREFIX}/datasets", clear)
    app.router.add_get(f"{ADMIN_PREFIX}/objects", objects)
    for name, method, default_limit in (("ids", "distinct_ids", 1000), ("messages", "messages", 100),
                                        ("failed", "failed", 100)):  # fmt: skip
        app.router.add_get(f"{ADMIN_PREFIX}/datasets/{{datasetId}}/{name}", listing(name, method, default_limit))


def create_app(config: AdobeConfig | None = None) -> web.Application:
    config = config or AdobeConfig()
    issuer = TokenIssuer(config)
    dcs = CollectionService(config, issuer, seeded(config))
    state = AdobeState(config, issuer, dcs)

    app = create_base_app(config.fault_profile())
    app[ADOBE] = state
    app[ERROR_BODY] = _error_body
    app[REVOKE_TOKENS] = issuer.revoke_all
    ims.add_routes(app, issuer, config)
    dcs.add_routes(app)
    platform = PlatformApi(config, issuer, dcs.sandbox)
    platform.add_routes(app)
    catalog = CatalogApi(platform, lambda: dcs.store)
    catalog.add_routes(app)
    FlowServiceApi(platform).add_routes(app)
    InsightsApi(catalog).add_routes(app)
    _admin_routes(app, state)

    async def open_store(_: web.Application) -> None:
        # SQLite connections belong to one thread: open it on the server's loop thread.
        dcs.store = Store(config.database, keep_messages=config.store_messages)

    async def close_store(_: web.Application) -> None:
        dcs.store.close()

    app.on_startup.append(open_store)
    app.on_cleanup.append(close_store)
    return app
