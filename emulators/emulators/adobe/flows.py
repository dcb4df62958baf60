"""Flow Service (``/data/foundation/flowservice``): the HTTP API streaming source's base connections (each with its
inlet), source and target connections and dataflows, as EN help/sources/tutorials/api/create/streaming/http.md
creates them. ``POST`` answers 201 ``{id, etag}``; ``GET /{kind}/{id}`` and ``GET /{kind}?property=<path>==<value>``
answer ``{"items": [...]}``. A base connection's ``auth.params`` carry ``inletId`` and ``inletUrl`` (this emulator's
``/collection/{inletId}``), which DCS then serves.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from aiohttp import web

from emulators.adobe.platform import Handler, PlatformApi, json_body
from emulators.adobe.sandbox import not_found

FLOW_SERVICE = "/data/foundation/flowservice"


class FlowServiceApi:
    def __init__(self, api: PlatformApi) -> None:
        self.api = api
        sandbox = api.sandbox
        self.kinds: dict[str, tuple[dict[str, dict], Callable[[object], dict[str, str]]]] = {
            "connections": (sandbox.connections, sandbox.create_connection),
            "sourceConnections": (sandbox.source_connections, sandbox.create_source_connection),
            "targetConnections": (sandbox.target_connections, sandbox.create_target_connection),
            "flows": (sandbox.flows, sandbox.create_flow),
        }

    @staticmethod
    def _served(item: dict, request: web.Request) -> dict:
        """A connection with its inlet's URL on this emulator."""
        params = item.get("auth", {}).get("params", {})
        if "inletId" not in params:
            return item
        served = copy.deepcopy(item)
        served["auth"]["params"]["inletUrl"] = f"{request.url.origin()}/collection/{params['inletId']}"
        return served

    def listing(self, kind: str) -> Handler:
        objects = self.kinds[kind][0]

        async def handler(request: web.Request) -> web.Response:
            items = self.api.sandbox.filtered(objects, request.query.get("property"))
            return web.json_response({"items": [self._served(item, request) for item in items]})

        return handler

    def lookup(self, kind: str) -> Handler:
        objects = self.kinds[kind][0]

        async def handler(request: web.Request) -> web.Response:
            item = objects.get(request.match_info["id"])
            if item is None:
                raise not_found(f"{kind} {request.match_info['id']} not found")
            return web.json_response({"items": [self._served(item, request)]})

        return handler

    def creation(self, kind: str) -> Handler:
        create = self.kinds[kind][1]

        async def handler(request: web.Request) -> web.Response:
            return web.json_response(create(await json_body(request)), status=201)

        return handler

    def add_routes(self, app: web.Application) -> None:
        guarded = self.api.guarded
        for kind in self.kinds:
            app.router.add_get(f"{FLOW_SERVICE}/{kind}", guarded(self.listing(kind)))
            app.router.add_post(f"{FLOW_SERVICE}/{kind}", guarded(self.creation(kind)))
            app.router.add_get(f"{FLOW_SERVICE}/{kind}/{{id}}", guarded(self.lookup(kind)))
