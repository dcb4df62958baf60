"""The emulated sandbox: what the platform APIs create, and what DCS ingests into.

One org, one sandbox. It holds the tenant's field groups, schemas and descriptors (Schema Registry, EN
help/xdm/api/field-groups.md, schemas.md, descriptors.md), identity namespaces (EN
help/identity-service/api/list-namespaces.md, create-custom-namespace.md), datasets (EN help/catalog/api/
create-dataset.md, help/catalog/datasets/enable-for-profile.md) and the HTTP API streaming source's connections,
source and target connections and dataflows (EN help/sources/tutorials/api/create/streaming/http.md). Every write is
checked the way the docs describe, and refused with the documented error where there is one:

- titles are unique across field groups and schemas ("Title must be unique", EN help/xdm/troubleshooting-guide.md);
- custom fields live under one top-level ``_{TENANT_ID}`` object (same guide); maps are ``type: object`` with
  ``meta:xdmType: map`` and string or integer ``additionalProperties``, no ``properties`` (EN
  help/xdm/tutorials/custom-fields-api.md);
- a schema names exactly one class and field groups intended to extend it; ``meta:immutableTags`` "are intended to
  be set, but never removed", and ``union`` needs a primary identity (EN help/xdm/troubleshooting-guide.md: "a schema
  must have a primary identity in order for the schema to be enabled for use in Real-time Customer Profile" — an
  identityMap field or a primary identity descriptor);
- once a schema is used by a dataset or enabled for Profile, breaking changes (removing a field group or a field,
  changing a field's type) are refused (same guide, "When does a schema start preventing breaking changes?");
- a dataset with ``unifiedProfile``/``unifiedIdentity`` tags needs a ``union`` schema ("To enable profile datasets
  the schema should be valid");
- connections, source and target connections and flows must name the documented specs and existing objects; a
  streaming dataflow has one source and one target connection, as the docs make every one (EN
  help/sources/tutorials/api/create/streaming/http.md; its UI guide picks one dataset per dataflow): no doc shows a
  list of several, so one is refused.

Ids have the documented shapes: ``https://ns.adobe.com/{TENANT}/mixins|schemas/<48 hex>``, 24-hex dataset ids,
UUIDs for Flow Service objects, 64-hex inlet ids.
"""

from __future__ import annotations

import copy
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jsonpatch

from emulators.adobe.xdm import (
    Schema,
    compiled,
    compose,
    extends_chain,
    merged,
    standard_components,
    with_xdm_types,
)

HTTP_API_SPEC = "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb"  # HTTP API streaming source (connections, sourceConnections)
DATA_LAKE_SPEC = "c604ff05-7f1a-43c0-8e18-33bf874cb11c"  # target connections to the data lake
STREAMING_FLOW_SPEC = "d8a6f005-7eaf-4153-983e-e8574508b877"  # XDM streaming dataflow, no transformation
MAPPING_FLOW_SPEC = "c1a19761-d2c7-4702-b9fa-fe91f0613e81"  # with a Data Prep mapping (not emulated)
# Identity types (EN help/identity-service/namespaces.md); the docs spell them in either case ("Cross_device").
ID_TYPES = ("COOKIE", "CROSS_DEVICE", "DEVICE", "EMAIL", "MOBILE", "NON_PEOPLE", "PHONE")
# Standard namespaces every sandbox has (EN help/identity-service/api/list-namespaces.md, namespaces.md).
STANDARD_NAMESPACES = (
    (0, "CORE", "COOKIE"), (4, "ECID", "COOKIE"), (6, "Email", "EMAIL"), (7, "Phone", "PHONE"),
    (411, "AdCloud", "COOKIE"),
)  # fmt: skip
PROFILE_TAGS = ("unifiedProfile", "unifiedIdentity")
SCHEMA_MEDIA = "application/vnd.adobe.xed"


class ApiError(Exception):
    """A refusal: status, the documented title (``BadRequestError``, ``NotFoundError``) and detail."""

    def __init__(self, status: int, detail: str, title: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or {400: "BadRequestError", 404: "NotFoundError"}.get(status, "Error")


def bad_request(detail: str) -> ApiError:
    return ApiError(400, detail)


def not_found(detail: str) -> ApiError:
    return ApiError(404, detail)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text(body: dict, key: str, where: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        msg = f"{where}: '{key}' is required"
        raise bad_request(msg)
    return value


def _patched(document: dict, operations: Any) -> dict:
    """``document`` with a JSON Patch applied (EN help/landing/api-fundamentals.md#json-patch)."""
    if not isinstance(operations, list):
        msg = "the request body must be a JSON Patch array of operations"
        raise bad_request(msg)
    try:
        return jsonpatch.apply_patch(copy.deepcopy(document), operations)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
        raise bad_request(f"invalid JSON Patch: {exc}") from None


def _check_field(node: Any, where: str) -> None:
    """A custom field as EN help/xdm/tutorials/custom-fields-api.md defines them."""
    if not isinstance(node, dict):
        raise bad_request(f"{where}: a field must be a JSON object")
    if "$ref" in node:
        raise bad_request(f"{where}: data type {node['$ref']} not found")
    kind = node.get("type")
    if kind not in ("string", "number", "integer", "boolean", "object", "array"):
        raise bad_request(f"{where}: unknown field type {kind!r}")
    if kind == "object" and node.get("meta:xdmType") == "map":
        values = node.get("additionalProperties")
        if "properties" in node or not isinstance(values, dict) or values.get("type") not in ("string", "integer"):
            msg = (f"{where}: map types must not define properties and must include an additionalProperties.type, "
                   "either string or integer")  # fmt: skip
            raise bad_request(msg)
    elif kind == "object":
        properties = node.get("properties")
        if not isinstance(properties, dict):
            raise bad_request(f"{where}: an object field needs 'properties'")
        for name, sub in properties.items():
            _check_field(sub, f"{where}.{name}")
    elif kind == "array":
        if not isinstance(node.get("items"), dict):
            raise bad_request(f"{where}: an array field needs 'items'")
        _check_field(node["items"], f"{where}[]")


def _leaves(node: dict, path: str = "") -> dict[str, tuple[Any, Any]]:
    """Each field path below ``node`` and its (type, format): what a breaking change would alter."""
    result = {path: (node.get("type"), node.get("format"))} if path else {}
    if isinstance(node.get("properties"), dict):
        for name, sub in node["properties"].items():
            result.update(_leaves(sub, f"{path}/{name}"))
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            result.update(_leaves(node[key], f"{path}/{key}"))
    return result


def _major_version_1(content_type: Any) -> bool:
    """``application/vnd.adobe.xed[-full][-notext]+json; version=1[.0]`` (doc samples use each spelling)."""
    if not isinstance(content_type, str):
        return False
    media, *params = (part.strip() for part in content_type.split(";"))
    version = dict(p.partition("=")[::2] for p in params).get("version", "")
    return media.startswith(SCHEMA_MEDIA) and media.endswith("+json") and version.split(".")[0] == "1"


@dataclass
class Sandbox:
    """The objects of one sandbox, keyed by id; ``counts()`` says how many of each there are."""

    tenant_id: str
    org_id: str
    name: str = "prod"
    field_groups: dict[str, dict] = field(default_factory=dict)
    schemas: dict[str, dict] = field(default_factory=dict)
    descriptors: dict[str, dict] = field(default_factory=dict)
    namespaces: list[dict] = field(default_factory=list)
    datasets: dict[str, dict] = field(default_factory=dict)
    connections: dict[str, dict] = field(default_factory=dict)
    source_connections: dict[str, dict] = field(default_factory=dict)
    target_connections: dict[str, dict] = field(default_factory=dict)
    flows: dict[str, dict] = field(default_factory=dict)
    max_errors: int = 5
    # Compiled schemas by $id, for DCS: composing and compiling on every message would cost more than validating.
    # Cleared by every change of a schema or field group.
    _compiled: dict[str, Schema] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        created = 1441122419000  # a fixed time, as the doc sample's standard namespaces have one
        for number, code, id_type in STANDARD_NAMESPACES:
            self.namespaces.append({"updateTime": created, "code": code, "status": "ACTIVE", "description":
                                    f"{code} Namespace", "id": number, "createTime": created, "idType": id_type,
                                    "name": code, "custom": False})  # fmt: skip

    def counts(self) -> dict[str, int]:
        """How many objects of each kind the sandbox holds (standard namespaces left out)."""
        return {
            "fieldGroups": len(self.field_groups),
            "schemas": len(self.schemas),
            "descriptors": len(self.descriptors),
            "namespaces": sum(1 for ns in self.namespaces if ns["custom"]),
            "dataSets": len(self.datasets),
            "connections": len(self.connections),
            "sourceConnections": len(self.source_connections),
            "targetConnections": len(self.target_connections),
            "flows": len(self.flows),
        }

    # -- Schema Registry ---------------------------------------------------------------------------------

    def _resource_id(self, kind: str) -> tuple[str, str]:
        name = secrets.token_hex(24)
        return f"https://ns.adobe.com/{self.tenant_id}/{kind}/{name}", f"_{self.tenant_id}.{kind}.{name}"

    def _unique_title(self, title: str, own_id: str | None = None) -> None:
        for resource_id, resource in (*self.field_groups.items(), *self.schemas.items()):
            if resource["title"] == title and resource_id != own_id:
                msg = f"Title must be unique. An object {resource_id} already exists with the same title."
                raise bad_request(msg)

    def _server_fields(self, resource_id: str, alt_id: str, kind: str) -> dict[str, Any]:
        now = _now_ms()
        return {"$id": resource_id, "meta:altId": alt_id, "meta:resourceType": kind, "version": "1.0",
                "imsOrg": self.org_id, "meta:containerId": "tenant", "meta:tenantNamespace": f"_{self.tenant_id}",
                "meta:xdmType": "object", "meta:registryMetadata": {"repo:createdDate": now,
                                                                    "repo:lastModifiedDate": now}}  # fmt: skip

    def find(self, kind: str, resource_id: str) -> dict | None:
        """A field group (``mixins``) or schema by ``$id`` or ``meta:altId``."""
        resources = self.field_groups if kind == "mixins" else self.schemas
        found = resources.get(resource_id)
        return found or next((r for r in resources.values() if r["meta:altId"] == resource_id), None)

    def _check_field_group(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        _text(body, "title", "field group")
        if body.get("type") != "object":
            raise bad_request("field group: 'type' must be 'object'")
        classes = body.get("meta:intendedToExtend")
        known = {ref for ref, part in standard_components().items() if part["meta:resourceType"] == "classes"}
        if not isinstance(classes, list) or not classes or not set(classes) <= known:
            msg = (
                f"field group: 'meta:intendedToExtend' must list the $id of the classes it extends, of {sorted(known)}"
            )
            raise bad_request(msg)
        definitions, all_of = body.get("definitions"), body.get("allOf")
        if not isinstance(definitions, dict) or not isinstance(all_of, list) or not all_of:
            raise bad_request("field group: 'definitions' and an 'allOf' referencing them are required")
        tenant = f"_{self.tenant_id}"
        for member in all_of:
            ref = member.get("$ref") if isinstance(member, dict) else None
            name = ref.removeprefix("#/definitions/") if isinstance(ref, str) else None
            if name is None or name == ref or not isinstance(definitions.get(name), dict):
                raise bad_request(f"field group: allOf member {member!r} references no definition")
            properties = definitions[name].get("properties")
            if not isinstance(properties, dict) or set(properties) != {tenant}:
                msg = (f"For custom fields, you must use a top level field named {tenant} and all the other fields "
                       "must be defined under it")  # fmt: skip
                raise bad_request(msg)
            _check_field(properties[tenant], tenant)

    def tenant_part(self, field_group: dict) -> dict[str, Any]:
        """A tenant field group's fields, ``allOf`` resolved, as a schema composes them."""
        names = [member["$ref"].removeprefix("#/definitions/") for member in field_group["allOf"]]
        return with_xdm_types(merged([field_group["definitions"][name] for name in names]))

    def field_group_full(self, field_group: dict) -> dict[str, Any]:
        """The xed-full form: ``definitions``/``allOf`` resolved into ``properties``."""
        body = {key: value for key, value in field_group.items() if key not in ("definitions", "allOf")}
        return {**body, "properties": self.tenant_part(field_group)["properties"]}

    def create_field_group(self, body: Any, resource_id: str | None = None) -> dict:
        self._check_field_group(body)
        self._unique_title(body["title"])
        return self._stored("mixins", body, resource_id, {"meta:extensible": True, "meta:abstract": True})

    def _stored(self, kind: str, body: dict, resource_id: str | None, extra: dict[str, Any]) -> dict:
        """A new field group (``mixins``) or schema: ``body`` with the registry's own fields and ``extra``; its id
        given (seeds) or made."""
        new_id, alt_id = self._resource_id(kind)
        if resource_id:
            new_id, alt_id = resource_id, resource_id.replace("https://ns.adobe.com/", "_").replace("/", ".")
        stored = {**copy.deepcopy(body), **self._server_fields(new_id, alt_id, kind), **extra}
        (self.field_groups if kind == "mixins" else self.schemas)[new_id] = stored
        return stored

    def _existing(self, kind: str, resource_id: str) -> dict:
        found = self.find(kind, resource_id)
        if found is None:
            raise not_found(f"Object {resource_id} with version 1 not found")
        return found

    def patch_field_group(self, resource_id: str, operations: Any) -> dict:
        field_group = self._existing("mixins", resource_id)
        patched = _patched(field_group, operations)
        self._check_field_group(patched)
        self._unique_title(patched["title"], field_group["$id"])
        if self._protected(field_group["$id"]):
            self._refuse_breaking(_leaves(self.tenant_part(field_group)), _leaves(self.tenant_part(patched)))
        field_group.clear()
        field_group.update(patched)
        self._compiled.clear()
        return field_group

    def _refuse_breaking(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        changed = [path for path, kind in before.items() if after.get(path) != kind]
        if changed:
            msg = (f"breaking changes are not allowed once a schema is used by a dataset or enabled for Profile: "
                   f"{', '.join(changed)} removed or retyped")  # fmt: skip
            raise bad_request(msg)

    def _protected(self, field_group_id: str) -> bool:
        """Whether a schema using this field group is bound to a dataset or enabled for Profile."""
        return any(self._schema_protected(s) for s in self.schemas.values() if field_group_id in s["meta:extends"])

    def _schema_protected(self, schema: dict) -> bool:
        in_use = any(d["schemaRef"]["id"] == schema["$id"] for d in self.datasets.values())
        return in_use or "union" in schema.get("meta:immutableTags", [])

    def _composition(self, body: Any) -> tuple[str, list[str]]:
        """The class and field groups of a schema body's ``allOf``, checked."""
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        _text(body, "title", "schema")
        if body.get("type") != "object":
            raise bad_request("schema: 'type' must be 'object'")
        refs = [m.get("$ref") for m in body.get("allOf") or [] if isinstance(m, dict)]
        if not refs or len(refs) != len(body.get("allOf") or []) or not all(isinstance(r, str) for r in refs):
            raise bad_request("schema: 'allOf' must list the $ref of one class and of its field groups")
        standard = standard_components()
        classes = [r for r in refs if standard.get(r, {}).get("meta:resourceType") == "classes"]
        if len(classes) != 1:
            raise bad_request(f"schema: 'allOf' must reference exactly one class, found {len(classes)}")
        groups = [r for r in refs if r not in classes]
        for ref in groups:
            group = standard.get(ref) or self.field_groups.get(ref)
            if group is None:
                raise bad_request(f"Object {ref} with version 1 not found")
            intended = group.get("meta:intendedToExtend") or []  # empty: any class (adobe/xdm's Identity Map)
            if intended and classes[0] not in intended:
                raise bad_request(f"field group {ref} is not intended to extend class {classes[0]}")
        return classes[0], list(dict.fromkeys(groups))

    def schema_full(self, schema: dict) -> dict[str, Any]:
        """The xed-full form: class and field groups resolved, fields with their ``meta:xdmType``."""
        groups = [ref for ref in schema["meta:extends"] if ref in self.field_groups]
        standard = [ref for ref in schema["meta:extends"] if ref not in self.field_groups]
        composed = compose(schema["meta:class"], [r for r in standard if r != schema["meta:class"]],
                           [self.tenant_part(self.field_groups[ref]) for ref in groups])  # fmt: skip
        body = {key: value for key, value in schema.items() if key not in ("allOf", "meta:extends")}
        body["meta:extends"] = list(dict.fromkeys([*composed["meta:extends"], *groups]))
        body["properties"] = composed["properties"]
        if composed["required"]:
            body["required"] = composed["required"]
        return body

    def compiled_schema(self, schema_id: str) -> Schema | None:
        if schema_id not in self._compiled:
            schema = self.schemas.get(schema_id)
            if schema is None:
                return None
            self._compiled[schema_id] = compiled(self.schema_full(schema), self.max_errors)
        return self._compiled[schema_id]

    def create_schema(self, body: Any, resource_id: str | None = None) -> dict:
        class_id, groups = self._composition(body)
        self._unique_title(body["title"])
        extra = {
            "meta:class": class_id,
            "meta:extends": extends_chain(class_id, groups),
            "meta:abstract": False,
            "meta:extensible": False,
        }
        return self._stored("schemas", body, resource_id, extra)

    def patch_schema(self, resource_id: str, operations: Any) -> dict:
        schema = self._existing("schemas", resource_id)
        patched = _patched(schema, operations)
        class_id, groups = self._composition(patched)
        if class_id != schema["meta:class"]:
            raise bad_request("a schema's class cannot be changed")
        self._unique_title(patched["title"], schema["$id"])
        before, after = schema.get("meta:immutableTags", []), patched.get("meta:immutableTags", [])
        if not isinstance(after, list) or not set(before) <= set(after):
            raise bad_request("meta:immutableTags are intended to be set, but never removed")
        patched["meta:extends"] = extends_chain(class_id, groups)
        if self._schema_protected(schema):
            self._refuse_breaking(_leaves(self.schema_full(schema)), _leaves(self.schema_full(patched)))
        if "union" in after and "union" not in before and not self._has_primary_identity(patched):
            raise bad_request("a schema must have a primary identity (an identityMap field or a primary identity "
                              "descriptor) to be enabled for Real-Time Customer Profile")  # fmt: skip
        schema.clear()
        schema.update(patched)
        self._compiled.clear()
        return schema

    def _has_primary_identity(self, schema: dict) -> bool:
        if "identityMap" in self.schema_full(schema)["properties"]:
            return True
        return any(d.get("xdm:sourceSchema") == schema["$id"] and d.get("xdm:isPrimary") is True
                   for d in self.descriptors.values())  # fmt: skip

    def listing(self, kind: str, query: dict[str, str]) -> list[dict]:
        """Field groups or schemas, filtered by ``property=<field>==<value>`` and ordered by ``orderby`` (EN
        help/xdm/api/appendix.md)."""
        resources = list((self.field_groups if kind == "mixins" else self.schemas).values())
        condition = query.get("property")
        if condition:
            name, sep, value = condition.partition("==")
            if not sep:
                raise bad_request(f"unsupported property filter {condition!r}: use property=<field>==<value>")
            resources = [r for r in resources if str(r.get(name)) == value.strip('"')]
        order = query.get("orderby", "")
        if order:
            resources.sort(key=lambda r: str(r.get(order.lstrip("-"), "")), reverse=order.startswith("-"))
        return resources

    # -- descriptors -------------------------------------------------------------------------------------

    def create_descriptor(self, body: Any) -> dict:
        if not isinstance(body, dict) or body.get("@type") != "xdm:descriptorIdentity":
            raise bad_request("the emulator's registry takes identity descriptors ('@type': 'xdm:descriptorIdentity')")
        schema = self.schemas.get(_text(body, "xdm:sourceSchema", "descriptor"))
        if schema is None:
            raise bad_request(f"Object {body['xdm:sourceSchema']} with version 1 not found")
        if body.get("xdm:sourceVersion") != 1:
            raise bad_request("descriptor: 'xdm:sourceVersion' must be the schema's major version, 1")
        path = _text(body, "xdm:sourceProperty", "descriptor")
        node: Any = {"properties": self.schema_full(schema)["properties"]}
        for step in path.strip("/").split("/"):
            node = node.get("properties", {}).get(step) if path.startswith("/") and isinstance(node, dict) else None
        if node is None:
            raise bad_request(f"descriptor: the schema has no field {path}")
        namespace = body.get("xdm:namespace")
        if not any(namespace in (ns["code"], str(ns["id"])) for ns in self.namespaces):
            raise bad_request(f"descriptor: no identity namespace {namespace!r}")
        if body.get("xdm:property") not in ("xdm:code", "xdm:id"):
            raise bad_request("descriptor: 'xdm:property' must be 'xdm:code' or 'xdm:id'")
        primary = body.get("xdm:isPrimary", False)
        if not isinstance(primary, bool):
            raise bad_request("descriptor: 'xdm:isPrimary' must be a boolean")
        if primary and any(d.get("xdm:sourceSchema") == schema["$id"] and d.get("xdm:isPrimary")
                           for d in self.descriptors.values()):  # fmt: skip
            raise bad_request("Schemas may contain only one primary identity")
        descriptor_id = secrets.token_hex(20)
        stored = {**copy.deepcopy(body), "meta:containerId": "tenant", "@id": descriptor_id, "version": "1",
                  "imsOrg": self.org_id}  # fmt: skip
        self.descriptors[descriptor_id] = stored
        return stored

    # -- Identity Service --------------------------------------------------------------------------------

    def create_namespace(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        name, code = _text(body, "name", "namespace"), _text(body, "code", "namespace")
        id_type = body.get("idType")
        if not isinstance(id_type, str) or id_type.upper() not in ID_TYPES:
            raise bad_request(f"namespace: 'idType' must be one of {', '.join(ID_TYPES)}")
        for existing in self.namespaces:
            if existing["code"].lower() == code.lower() or existing["name"].lower() == name.lower():
                raise bad_request(f"namespace: an identity namespace with code {existing['code']!r} or name "
                                  f"{existing['name']!r} already exists")  # fmt: skip
        now = _now_ms()
        number = max(10_000_000, *(ns["id"] + 1 for ns in self.namespaces))
        created = {"updateTime": now, "code": code, "status": "ACTIVE", "description": body.get("description", ""),
                   "id": number, "createTime": now, "idType": id_type, "name": name, "custom": True}  # fmt: skip
        self.namespaces.append(created)
        return created

    # -- Catalog -----------------------------------------------------------------------------------------

    def _check_profile_tags(self, tags: Any, schema_id: str) -> None:
        if not isinstance(tags, dict) or not all(isinstance(v, list) for v in tags.values()):
            raise bad_request("dataset: 'tags' must map tag names to lists of strings")
        enabled = any("enabled:true" in tags.get(name, []) for name in PROFILE_TAGS)
        if enabled and "union" not in self.schemas[schema_id].get("meta:immutableTags", []):
            raise bad_request("To enable profile datasets the schema should be valid")

    def create_dataset(self, body: Any, dataset_id: str | None = None) -> str:
        if not isinstance(body, dict) or not isinstance(body.get("schemaRef"), dict):
            raise bad_request("dataset: 'schemaRef' with the schema's 'id' and 'contentType' is required")
        ref = body["schemaRef"]
        if not _major_version_1(ref.get("contentType")):
            raise bad_request("dataset: schemaRef.contentType must be application/vnd.adobe.xed…+json;version=1")
        if ref.get("id") not in self.schemas:
            raise bad_request(f"dataset: schema {ref.get('id')} not found")
        tags = body.get("tags", {})
        self._check_profile_tags(tags, ref["id"])
        new_id = dataset_id or secrets.token_hex(12)
        now = _now_ms()
        self.datasets[new_id] = {
            **({"name": body["name"]} if isinstance(body.get("name"), str) else {}),
            **({"description": body["description"]} if isinstance(body.get("description"), str) else {}),
            "imsOrg": self.org_id, "tags": copy.deepcopy(tags), "version": "1.0.0", "created": now, "updated": now,
            "schemaRef": {"id": ref["id"], "contentType": ref["contentType"]},
        }  # fmt: skip
        return new_id

    def patch_dataset(self, dataset_id: str, operations: Any) -> None:
        dataset = self.datasets.get(dataset_id)
        if dataset is None:
            raise not_found(f"Dataset {dataset_id} not found")
        paths = (
            [op.get("path", "") for op in operations if isinstance(op, dict)] if isinstance(operations, list) else []
        )
        if not paths or not all(path.startswith("/tags") for path in paths):
            raise bad_request("the emulated Catalog changes a dataset's tags only (paths /tags/...)")
        patched = _patched(dataset, operations)
        self._check_profile_tags(patched.get("tags", {}), dataset["schemaRef"]["id"])
        dataset.update(patched, updated=_now_ms())

    # -- Flow Service ------------------------------------------------------------------------------------

    @staticmethod
    def _spec(body: dict, key: str, specs: tuple[str, ...], where: str) -> None:
        spec = body.get(key)
        if not isinstance(spec, dict) or spec.get("id") not in specs or not isinstance(spec.get("version"), str):
            raise bad_request(f"{where}: '{key}' must be {{'id': one of {list(specs)}, 'version': '1.0'}}")

    @staticmethod
    def _created(objects: dict[str, dict], body: dict, extra: dict[str, Any]) -> dict[str, str]:
        new_id, now = str(uuid.uuid4()), _now_ms()
        etag = f'"{uuid.uuid4()}"'
        objects[new_id] = {"id": new_id, "createdAt": now, "updatedAt": now, **copy.deepcopy(body), **extra,
                           "state": "enabled", "version": etag, "etag": etag}  # fmt: skip
        return {"id": new_id, "etag": etag}

    def create_connection(self, body: Any, inlet_id: str | None = None) -> dict[str, str]:
        """A base connection of the HTTP API source, with a new inlet (its URL is the emulator's
        ``/collection/{inletId}``, filled in when the connection is read)."""
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        _text(body, "name", "connection")
        self._spec(body, "connectionSpec", (HTTP_API_SPEC,), "connection")
        auth = body.get("auth")
        params = auth.get("params") if isinstance(auth, dict) else None
        if not isinstance(auth, dict) or auth.get("specName") != "Streaming Connection" or not isinstance(params, dict):
            raise bad_request("connection: 'auth' must be {'specName': 'Streaming Connection', 'params': {...}}")
        if params.get("dataType") not in ("xdm", "raw"):
            raise bad_request("connection: auth.params.dataType must be 'xdm' or 'raw'")
        required = params.get("authenticationRequired", False)
        if not isinstance(required, bool):
            raise bad_request("connection: auth.params.authenticationRequired must be a boolean")
        inlet = inlet_id or secrets.token_hex(32)
        params = {"sourceId": params.get("sourceId", body["name"]), **params, "authenticationRequired": required,
                  "inletId": inlet, "name": params.get("name", body["name"])}  # fmt: skip
        extra = {"sandboxName": self.name, "imsOrgId": self.org_id, "auth": {**auth, "params": params}}
        return self._created(self.connections, body, extra)

    def inlet(self, inlet_id: str) -> dict | None:
        """The base connection whose inlet this is."""
        return next((c for c in self.connections.values() if c["auth"]["params"]["inletId"] == inlet_id), None)

    def create_source_connection(self, body: Any) -> dict[str, str]:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        _text(body, "name", "source connection")
        self._spec(body, "connectionSpec", (HTTP_API_SPEC,), "source connection")
        base = self.connections.get(body.get("baseConnectionId", ""))
        if base is None:
            raise bad_request(f"source connection: base connection {body.get('baseConnectionId')!r} not found")
        if base["connectionSpec"]["id"] != body["connectionSpec"]["id"]:
            raise bad_request("source connection: connectionSpec differs from the base connection's")
        return self._created(self.source_connections, body, {})

    def create_target_connection(self, body: Any) -> dict[str, str]:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        _text(body, "name", "target connection")
        self._spec(body, "connectionSpec", (DATA_LAKE_SPEC,), "target connection")
        data, params = body.get("data"), body.get("params")
        schema = data.get("schema") if isinstance(data, dict) else None
        if not isinstance(schema, dict) or not isinstance(params, dict):
            raise bad_request("target connection: 'data.schema' {id, version} and 'params.dataSetId' are required")
        if schema.get("id") not in self.schemas or not _major_version_1(schema.get("version")):
            raise bad_request(f"target connection: schema {schema.get('id')} not found, or its version is not "
                              "application/vnd.adobe.xed-full+json;version=1")  # fmt: skip
        dataset = self.datasets.get(params.get("dataSetId", ""))
        if dataset is None:
            raise bad_request(f"target connection: dataset {params.get('dataSetId')!r} not found")
        if dataset["schemaRef"]["id"] != schema["id"]:
            raise bad_request(f"target connection: dataset {params['dataSetId']} is bound to schema "
                              f"{dataset['schemaRef']['id']}, not {schema['id']}")  # fmt: skip
        return self._created(self.target_connections, body, {})

    def create_flow(self, body: Any) -> dict[str, str]:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        _text(body, "name", "flow")
        self._spec(body, "flowSpec", (STREAMING_FLOW_SPEC, MAPPING_FLOW_SPEC), "flow")
        if body["flowSpec"]["id"] == MAPPING_FLOW_SPEC:
            raise bad_request("flow: the emulator has no Data Prep mappings: use flowSpec " + STREAMING_FLOW_SPEC)
        for key, objects in (("sourceConnectionIds", self.source_connections),
                             ("targetConnectionIds", self.target_connections)):  # fmt: skip
            ids = body.get(key)
            if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i in objects for i in ids):
                raise bad_request(f"flow: '{key}' must list existing {key.removesuffix('Ids')}s, got {ids!r}")
            if len(ids) > 1:  # the docs' streaming dataflows have one of each: one dataset per dataflow
                raise bad_request(f"flow: a streaming dataflow takes one {key.removesuffix('Ids')}, got {len(ids)}")
        return self._created(self.flows, body, {})

    @staticmethod
    def filtered(objects: dict[str, dict], condition: str | None) -> list[dict]:
        """Flow Service objects matching ``property=<dotted.path>==<value>`` (the value may be quoted, EN
        help/sources/tutorials/api/filter.md); a list field matches when it holds the value."""
        items = list(objects.values())
        if not condition:
            return items
        path, sep, value = condition.partition("==")
        if not sep:
            raise bad_request(f"unsupported property filter {condition!r}: use property=<field>==<value>")
        value = value.strip('"')

        def holds(item: dict) -> bool:
            node: Any = item
            for step in path.split("."):
                node = node.get(step) if isinstance(node, dict) else None
            return value in node if isinstance(node, list) else str(node) == value

        return [item for item in items if holds(item)]
