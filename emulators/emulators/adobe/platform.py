"""``platform.adobe.io`` APIs the target needs: Schema Registry schema lookup/list and ``/stats``, and Catalog's
dataset lookup (``GET /data/foundation/catalog/dataSets/{id}``, EN ``help/catalog/api/look-up-object.md``).

Every call passes the API gateway's checks first, with the gateway's documented error codes
(EN ``help/landing/troubleshooting.md``): 403010 token missing, 401013 token not valid, 403000 API key
missing, 403003 API key invalid, 400003 org header missing, 403025 org not entitled ("Profile is not
valid"). An absent ``x-sandbox-name`` means the configured (``prod``) sandbox; another name → 404.
"""

from __future__ import annotations

from urllib.parse import unquote

from aiohttp import web

from emulators.adobe.config import AdobeConfig
from emulators.adobe.ims import TokenIssuer, bearer_token
from emulators.adobe.xdm import XED_FULL, Schema, without_text

REGISTRY = "/data/foundation/schemaregistry"
CATALOG = "/data/foundation/catalog"
# How the datasets were created (EN help/catalog/api/create-dataset.md): xed-full schemaRef, Profile and Identity on.
DATASET_TAGS = {"unifiedProfile": ["enabled:true"], "unifiedIdentity": ["enabled:true"]}
# Lookup Accept forms the emulator serves (EN help/xdm/api/schemas.md lists more; see docs/adobe.md).
LOOKUP_FORMS = {XED_FULL: False, "application/vnd.adobe.xed-full-notext+json": True}


def _gateway_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error_code": code, "message": message}, status=status)


def _registry_error(status: int, title: str, detail: str) -> web.Response:
    body = {"type": f"https://ns.adobe.com/aep/errors/XDM-{status}", "title": title, "status": status, "detail": detail}
    return web.json_response(body, status=status)


class PlatformApi:
    def __init__(self, config: AdobeConfig, issuer: TokenIssuer, schemas: dict[str, Schema]) -> None:
        self.config = config
        self.issuer = issuer
        self.schemas = {s.alt_id: s for s in schemas.values()}
        self.datasets = schemas  # dataset id -> its schema

    def _gateway(self, request: web.Request) -> web.Response | None:
        token = bearer_token(request)
        if not token:
            return _gateway_error(403, "403010", "Oauth token is missing.")
        if not self.issuer.is_valid(token):
            return _gateway_error(401, "401013", "Oauth token is not valid")
        api_key = request.headers.get("x-api-key")
        if not api_key:
            return _gateway_error(403, "403000", "Api Key is required")
        if api_key not in self.config.clients:
            return _gateway_error(403, "403003", "Api Key is invalid")
        org = request.headers.get("x-gw-ims-org-id")
        if not org:
            return _gateway_error(400, "400003", "Missing header")
        if org != self.config.org_id:
            return _gateway_error(403, "403025", "Profile is not valid")
        sandbox = request.headers.get("x-sandbox-name", self.config.sandbox)
        if sandbox != self.config.sandbox:
            return _registry_error(404, "Not Found", f"Sandbox {sandbox} not found")
        return None

    def _find(self, schema_id: str) -> Schema | None:
        schema_id = unquote(schema_id)
        return self.schemas.get(schema_id) or next((s for s in self.schemas.values() if s.id == schema_id), None)

    async def lookup(self, request: web.Request) -> web.Response:
        error = self._gateway(request)
        if error is not None:
            return error
        media_type, *params = (p.strip() for p in request.headers.get("Accept", "").split(";"))
        version = dict(p.partition("=")[::2] for p in params).get("version")
        if media_type not in LOOKUP_FORMS or version is None:
            detail = f"Accept header must be one of {sorted(LOOKUP_FORMS)} with '; version=1'"
            return _registry_error(406, "Not Acceptable", detail)
        schema = self._find(request.match_info["schemaId"])
        if schema is None or version.split(".")[0] != "1":
            return _registry_error(
                404, "Not Found", f"Schema {request.match_info['schemaId']} (version {version}) not found"
            )
        body = without_text(schema.body) if LOOKUP_FORMS[media_type] else schema.body
        return web.json_response(body, content_type=media_type)

    async def list_schemas(self, request: web.Request) -> web.Response:
        error = self._gateway(request)
        if error is not None:
            return error
        results = [
            {"$id": s.id, "meta:altId": s.alt_id, "version": s.body["version"], "title": s.body["title"]}
            for s in self.schemas.values()
        ]
        return web.json_response(
            {"results": results, "_page": {"orderby": "title", "next": None, "count": len(results)}}
        )

    async def stats(self, request: web.Request) -> web.Response:
        error = self._gateway(request)
        if error is not None:
            return error
        return web.json_response({"imsOrg": self.config.org_id, "tenantId": self.config.tenant_id})

    async def dataset(self, request: web.Request) -> web.Response:
        """``{id: {name, schemaRef, tags}}``; ``?properties=a,b`` returns only those (look-up-object.md)."""
        error = self._gateway(request)
        if error is not None:
            return error
        dataset_id = request.match_info["dataSetId"]
        schema = self.datasets.get(dataset_id)
        if schema is None:
            return _registry_error(404, "Not Found", f"Dataset {dataset_id} not found")
        details = {
            "name": f"{schema.body['title']} dataset",
            "schemaRef": {"id": schema.id, "contentType": "application/vnd.adobe.xed-full+json;version=1"},
            "tags": DATASET_TAGS,
        }
        if "properties" in request.query:
            wanted = request.query["properties"].split(",")
            details = {key: value for key, value in details.items() if key in wanted}
        return web.json_response({dataset_id: details})

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(f"{CATALOG}/dataSets/{{dataSetId}}", self.dataset)
        app.router.add_get(f"{REGISTRY}/tenant/schemas", self.list_schemas)
        app.router.add_get(f"{REGISTRY}/tenant/schemas/{{schemaId:.+}}", self.lookup)
        app.router.add_get(f"{REGISTRY}/stats", self.stats)
