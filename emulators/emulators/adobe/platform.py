"""``platform.adobe.io``: the API gateway's checks, the Schema Registry and Identity Service.

Every call passes the API gateway's checks first, with the gateway's documented error codes
(EN ``help/landing/troubleshooting.md``): 403010 token missing, 401013 token not valid, 403000 API key
missing, 403003 API key invalid, 400003 org header missing, 403025 org not entitled ("Profile is not
valid"). An absent ``x-sandbox-name`` means the configured (``prod``) sandbox; another name → 404.

Schema Registry (EN help/xdm/api/schemas.md, field-groups.md, descriptors.md, appendix.md): ``/stats``; field groups
and schemas listed (``property=title==…``, ``orderby``), looked up (``Accept`` with a version: ``xed`` raw with
``allOf``, ``xed-full`` resolved, ``-notext`` without titles and descriptions), created (201) and patched with JSON
Patch; identity descriptors created, listed and looked up. Identity Service (EN
help/identity-service/api/list-namespaces.md, create-custom-namespace.md): namespaces listed and created. The
sandbox (``sandbox.py``) decides what is valid; refusals answer ``{type, title, status, detail}`` as EN
help/xdm/troubleshooting-guide.md shows them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from emulators.adobe.config import AdobeConfig
from emulators.adobe.ims import TokenIssuer, bearer_token
from emulators.adobe.sandbox import ApiError, Sandbox, bad_request, not_found
from emulators.adobe.store import NotStored
from emulators.adobe.xdm import XED_FULL, without_text

REGISTRY = "/data/foundation/schemaregistry"
IDENTITY = "/data/core/idnamespace/identities"
# Lookup Accept forms (EN help/xdm/api/schemas.md): media type -> (resolved, without text).
LOOKUP_FORMS = {
    "application/vnd.adobe.xed+json": (False, False),
    "application/vnd.adobe.xed-notext+json": (False, True),
    XED_FULL: (True, False),
    "application/vnd.adobe.xed-full-notext+json": (True, True),
}
# Descriptor listings (EN help/xdm/api/descriptors.md): "xdm" instead of "xed".
DESCRIPTOR_FORMS = ("application/vnd.adobe.xdm-id+json", "application/vnd.adobe.xdm-link+json",
                    "application/vnd.adobe.xdm+json")  # fmt: skip

Handler = Callable[[web.Request], Awaitable[web.Response]]


def _gateway_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error_code": code, "message": message}, status=status)


def platform_error(status: int, title: str, detail: str) -> web.Response:
    body = {"type": f"https://ns.adobe.com/aep/errors/XDM-{status}", "title": title, "status": status, "detail": detail}
    return web.json_response(body, status=status)


async def json_body(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise bad_request("the request body is not valid JSON") from None


def _accept(request: web.Request) -> tuple[str, str | None]:
    media_type, *params = (p.strip() for p in request.headers.get("Accept", "").split(";"))
    return media_type, dict(p.partition("=")[::2] for p in params).get("version")


class PlatformApi:
    """The gateway shared by every platform API, and the Schema Registry and Identity Service routes."""

    def __init__(self, config: AdobeConfig, issuer: TokenIssuer, sandbox: Sandbox) -> None:
        self.config = config
        self.issuer = issuer
        self.sandbox = sandbox

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
            return platform_error(404, "Not Found", f"Sandbox {sandbox} not found")
        return None

    def guarded(self, handler: Handler) -> Handler:
        """``handler`` behind the gateway, its refusals (``ApiError``) answered as the platform answers them."""

        async def run(request: web.Request) -> web.Response:
            error = self._gateway(request)
            if error is not None:
                return error
            try:
                return await handler(request)
            except ApiError as exc:
                return platform_error(exc.status, exc.title, exc.detail)
            except NotStored as exc:
                raise web.HTTPConflict(text=str(exc)) from None

        return run

    # -- Schema Registry -----------------------------------------------------------------------------------

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response({"imsOrg": self.config.org_id, "tenantId": self.config.tenant_id})

    def _resource(self, kind: str, request: web.Request) -> dict:
        resource_id = unquote(request.match_info["resourceId"])
        found = self.sandbox.find(kind, resource_id)
        if found is None:
            raise not_found(f"Object {resource_id} with version 1 not found")
        return found

    def listing(self, kind: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            resources = self.sandbox.listing(kind, dict(request.query))
            if _accept(request)[0] == "application/vnd.adobe.xed+json":
                results = resources
            else:  # xed-id+json, the recommended summary (EN help/xdm/api/schemas.md)
                results = [{key: r[key] for key in ("$id", "meta:altId", "version", "title")} for r in resources]
            page = {"orderby": request.query.get("orderby", "title"), "next": None, "count": len(results)}
            return web.json_response({"results": results, "_page": page, "_links": {"next": None}})

        return handler

    def lookup(self, kind: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            media_type, version = _accept(request)
            if media_type not in LOOKUP_FORMS or version is None:
                detail = f"Accept header must be one of {sorted(LOOKUP_FORMS)} with '; version=1'"
                return platform_error(406, "Not Acceptable", detail)
            resource = self._resource(kind, request)
            if version.split(".")[0] != "1":
                raise not_found(f"Object {resource['$id']} with version {version} not found")
            resolved, notext = LOOKUP_FORMS[media_type]
            if resolved:
                full = self.sandbox.schema_full if kind == "schemas" else self.sandbox.field_group_full
                resource = full(resource)
            return web.json_response(without_text(resource) if notext else resource, content_type=media_type)

        return handler

    def creation(self, kind: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            create = self.sandbox.create_schema if kind == "schemas" else self.sandbox.create_field_group
            return web.json_response(create(await json_body(request)), status=201)

        return handler

    def patch(self, kind: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            resource_id = self._resource(kind, request)["$id"]
            update = self.sandbox.patch_schema if kind == "schemas" else self.sandbox.patch_field_group
            return web.json_response(update(resource_id, await json_body(request)))

        return handler

    async def descriptors(self, request: web.Request) -> web.Response:
        media_type = _accept(request)[0]
        if media_type not in DESCRIPTOR_FORMS:
            return platform_error(406, "NotAcceptableError", "Unknown Accept format available ")
        grouped: dict[str, list[Any]] = {}
        for descriptor_id, descriptor in self.sandbox.descriptors.items():
            entry = {DESCRIPTOR_FORMS[0]: descriptor_id, DESCRIPTOR_FORMS[1]: f"/tenant/descriptors/{descriptor_id}"}
            grouped.setdefault(descriptor["@type"], []).append(entry.get(media_type, descriptor))
        return web.json_response(grouped)

    async def descriptor(self, request: web.Request) -> web.Response:
        found = self.sandbox.descriptors.get(request.match_info["descriptorId"])
        if found is None:
            raise not_found(f"Descriptor {request.match_info['descriptorId']} not found")
        return web.json_response(found)

    async def create_descriptor(self, request: web.Request) -> web.Response:
        return web.json_response(self.sandbox.create_descriptor(await json_body(request)), status=201)

    # -- Identity Service --------------------------------------------------------------------------------

    async def namespaces(self, _: web.Request) -> web.Response:
        return web.json_response(self.sandbox.namespaces)

    async def create_namespace(self, request: web.Request) -> web.Response:
        return web.json_response(self.sandbox.create_namespace(await json_body(request)))

    def add_routes(self, app: web.Application) -> None:
        guarded = self.guarded
        app.router.add_get(f"{REGISTRY}/stats", guarded(self.stats))
        for kind, path in (("schemas", "schemas"), ("mixins", "fieldgroups")):
            app.router.add_get(f"{REGISTRY}/tenant/{path}", guarded(self.listing(kind)))
            app.router.add_post(f"{REGISTRY}/tenant/{path}", guarded(self.creation(kind)))
            app.router.add_get(f"{REGISTRY}/tenant/{path}/{{resourceId:.+}}", guarded(self.lookup(kind)))
            app.router.add_patch(f"{REGISTRY}/tenant/{path}/{{resourceId:.+}}", guarded(self.patch(kind)))
        # The schema PATCH's "API format" line says /tenant/schema/{id}, its example /tenant/schemas/{id}.
        app.router.add_patch(f"{REGISTRY}/tenant/schema/{{resourceId:.+}}", guarded(self.patch("schemas")))
        app.router.add_get(f"{REGISTRY}/tenant/descriptors", guarded(self.descriptors))
        app.router.add_post(f"{REGISTRY}/tenant/descriptors", guarded(self.create_descriptor))
        app.router.add_get(f"{REGISTRY}/tenant/descriptors/{{descriptorId}}", guarded(self.descriptor))
        app.router.add_get(IDENTITY, guarded(self.namespaces))
        app.router.add_post(IDENTITY, guarded(self.create_namespace))
