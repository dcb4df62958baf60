"""``provision``: find or create, in the sandbox of the settings, everything the target writes to.

In order, each looked up first (by title or name) and created only when missing:

1. the tenant id (Schema Registry ``GET /stats``, EN help/xdm/api/getting-started.md);
2. the custom identity namespaces the mappings' ``identity`` rules use (``GET``/``POST /core/idnamespace/identities``,
   EN help/identity-service/api/list-namespaces.md, create-custom-namespace.md; ``idType`` ``CROSS_DEVICE``, a person
   identifier). Namespaces cannot be deleted;
3. per destination (``profile``, ``event``) a tenant field group built from the mappings (``tenant_fields.py``), and
   a schema of the class with the standard field groups and that field group (EN help/xdm/api/field-groups.md,
   schemas.md). The primary identity: the mapping language writes identities into ``identityMap`` (its ``identity``
   rules, ``primary: true``), so the Identity Map field group carries it and no identity descriptor is needed (EN
   help/xdm/ui/fields/identity.md: "identityMap" or a descriptor). ``--profile-enabled`` adds the ``union`` tag
   (``PATCH``, EN help/xdm/api/schemas.md#union) — irreversible, and said so first;
4. per destination a dataset of that schema, with ``unifiedProfile``/``unifiedIdentity`` tags when Profile-enabled
   (``POST /catalog/dataSets``, EN help/catalog/datasets/enable-for-profile.md);
5. the HTTP API streaming source: one base connection (its inlet, ``authenticationRequired`` as
   ``inlet_auth_required`` says) and the inlet URL read back from it; then per destination a source connection, a
   target connection to its dataset and a dataflow from the one to the other (EN
   help/sources/tutorials/api/create/streaming/http.md). The Flow Service takes lists of connection ids, but every
   documented streaming dataflow has one source and one target connection (the tutorial's; the UI guide picks one
   dataset per dataflow and reuses an existing account, i.e. base connection, for a new dataflow,
   help/sources/tutorials/ui/create/streaming/http.md), so each destination gets its own dataflow, and the target
   its own flow id per destination (``profile_flow_id``, ``event_flow_id``).

An object that exists with another shape (a schema of that title without the field group, a dataset bound to
another schema, a connection of another spec, ...) is reported and left alone: provision never changes what it did
not make, and never makes a second one; and since everything is looked up before anything is made, such an object
stops provision before it has made anything. ``--plan`` looks everything up and prints what it would create or
change, and the call that would, changing nothing. At the end it prints the settings to use and runs ``check``.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from target_adobe_aep.conversion import XED_CONTENT_TYPE
from target_adobe_aep.mapping import StreamMapping, compile_mapping
from target_adobe_aep.platform import CATALOG, FLOW_SERVICE, IDENTITY, REGISTRY
from target_adobe_aep.tenant_fields import TenantFields, tenant_fields
from target_adobe_aep.xdm_schema import XED_FULL, unwritable

if TYPE_CHECKING:
    from target_adobe_aep.target import TargetAdobeAEP

PROFILE_CLASS = "https://ns.adobe.com/xdm/context/profile"
EVENT_CLASS = "https://ns.adobe.com/xdm/context/experienceevent"
IDENTITY_MAP = "https://ns.adobe.com/xdm/context/identitymap"
CLASSES = {"profile": PROFILE_CLASS, "event": EVENT_CLASS}
# The standard field groups of each destination's schema: what the presets write outside the tenant namespace.
STANDARD_FIELD_GROUPS = {
    "profile": (
        IDENTITY_MAP,
        "https://ns.adobe.com/xdm/context/profile-person-details",  # Demographic Details: person
        "https://ns.adobe.com/xdm/context/profile-personal-details",  # Personal Contact Details: personalEmail, ...
        "https://ns.adobe.com/xdm/mixins/profile/profile-loyalty-details",  # Loyalty Details: loyalty
    ),
    "event": (IDENTITY_MAP, "https://ns.adobe.com/xdm/context/experienceevent-commerce"),  # Commerce Details
}
HTTP_API_SPEC = {"id": "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb", "version": "1.0"}
DATA_LAKE_SPEC = {"id": "c604ff05-7f1a-43c0-8e18-33bf874cb11c", "version": "1.0"}
STREAMING_FLOW_SPEC = {"id": "d8a6f005-7eaf-4153-983e-e8574508b877", "version": "1.0"}
XED_RAW = "application/vnd.adobe.xed+json; version=1"
PROFILE_TAGS = {"unifiedProfile": ["enabled:true"], "unifiedIdentity": ["enabled:true"]}
KIND_TITLES = {"profile": "Profile", "event": "Events"}


@dataclass(frozen=True)
class Names:
    """Titles and names of what provision makes, all from one prefix (``--title``). Schema Registry titles are unique
    across field groups and schemas (EN help/xdm/troubleshooting-guide.md), hence "… Fields" for field groups."""

    title: str = "Capillary Loyalty"

    def schema(self, kind: str) -> str:
        return f"{self.title} {KIND_TITLES[kind]}"

    def field_group(self, kind: str) -> str:
        return f"{self.schema(kind)} Fields"

    def dataset(self, kind: str) -> str:
        return self.schema(kind)

    def source_connection(self, kind: str) -> str:
        return f"{self.schema(kind)} source"

    def target_connection(self, kind: str) -> str:
        return f"{self.schema(kind)} target"

    def flow(self, kind: str) -> str:
        return f"{self.schema(kind)} dataflow"

    @property
    def connection(self) -> str:
        return f"{self.title} HTTP API"


# -- request bodies, as the docs show them ---------------------------------------------------------------------


def field_group_body(kind: str, names: Names, tenant_id: str, tenant_object: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": names.field_group(kind),
        "description": f"Custom fields the target-adobe-aep mappings of the {kind} destination write.",
        "type": "object",
        "meta:intendedToExtend": [CLASSES[kind]],
        "definitions": {"tenantFields": {"properties": {f"_{tenant_id}": tenant_object}}},
        "allOf": [{"$ref": "#/definitions/tenantFields"}],
    }


def schema_body(kind: str, names: Names, field_group_id: str) -> dict[str, Any]:
    refs = (CLASSES[kind], *STANDARD_FIELD_GROUPS[kind], field_group_id)
    return {
        "title": names.schema(kind),
        "description": f"The {kind} destination of target-adobe-aep.",
        "type": "object",
        "allOf": [{"$ref": ref} for ref in refs],
    }


def dataset_body(kind: str, names: Names, schema_id: str, profile_enabled: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": names.dataset(kind),
        "description": f"The {kind} destination of target-adobe-aep.",
        "schemaRef": {"id": schema_id, "contentType": XED_CONTENT_TYPE},
    }
    if profile_enabled:
        body["tags"] = PROFILE_TAGS
    return body


def namespace_body(code: str) -> dict[str, Any]:
    """A custom namespace for a person identifier (``CROSS_DEVICE``, EN help/identity-service/namespaces.md)."""
    return {
        "name": code,
        "code": code,
        "description": "Created by target-adobe-aep provision",
        "idType": "CROSS_DEVICE",
    }


def identity_codes(mappings: Mappings) -> list[str]:
    """The namespaces of the identity rules of ``mappings``."""
    namespaces = mappings.namespaces
    return sorted({namespaces[key] for docs in mappings.documents.values() for d in docs
                   for key in _identity_keys(d.get("fields", [])) if key in namespaces})  # fmt: skip


def connection_body(names: Names, authenticated: bool) -> dict[str, Any]:
    return {
        "name": names.connection,
        "description": "Streaming inlet of target-adobe-aep.",
        "connectionSpec": HTTP_API_SPEC,
        "auth": {"specName": "Streaming Connection", "params": {"dataType": "xdm",
                                                                "authenticationRequired": authenticated}},
    }  # fmt: skip


# -- lookups and findings ------------------------------------------------------------------------------------


class ProvisionError(RuntimeError):
    """An API refused a lookup or a creation; what was done so far has been printed."""


@dataclass
class Outcome:
    """What provision found, made and could not use."""

    settings: dict[str, Any] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)


@dataclass
class Mappings:
    """The active mappings per destination (``profile``, ``event``), their documents, and the identity namespace of
    each identity key."""

    by_kind: dict[str, list[StreamMapping]] = field(default_factory=dict)
    documents: dict[str, list[dict]] = field(default_factory=dict)
    namespaces: dict[str, str] = field(default_factory=dict)


def active_mappings(target: TargetAdobeAEP, tenant: str) -> Mappings:
    """Every built-in preset's and every ``mappings`` setting stream's mapping, compiled for ``tenant``, as the target
    would run them; streams mapped to nothing are left out."""
    mappings = Mappings(namespaces=target.identity_namespaces())
    for stream in target.active_streams():
        inputs = {**target.mapping_inputs(stream), "tenant_id": tenant}
        mapping = compile_mapping(stream, **inputs)
        if mapping.target != "none":
            mappings.by_kind.setdefault(mapping.target, []).append(mapping)
            mappings.documents.setdefault(mapping.target, []).append(inputs["document"])
    return mappings


def _identity_keys(rules: Iterable[dict]) -> set[str]:
    keys: set[str] = set()
    for rule in rules:
        if "identity" in rule:
            keys.add(rule["identity"])
        keys |= _identity_keys(rule.get("fields", []))
    return keys


def _has_primary(rules: Iterable[dict]) -> bool:
    return any(rule.get("primary") is True and "identity" in rule for rule in rules)


class Provisioner:
    """One run of provision against the target's platform client."""

    def __init__(self, target: TargetAdobeAEP, names: Names, *, plan: bool, profile_enabled: bool,
                 echo: Callable[[str], None]) -> None:  # fmt: skip
        self.target = target
        self.config = target.config
        self.platform = target.platform
        self.names = names
        self.plan = plan
        self.profile_enabled = profile_enabled
        self.echo = echo
        self.outcome = Outcome()
        self.fields: dict[str, TenantFields] = {}  # per destination, the tenant field group its mappings need
        self._pending = ""  # in --plan: the call the next reported object would be made by

    # -- calls ---------------------------------------------------------------------------------------------

    def _get(self, path: str, what: str, **kwargs: Any) -> Any:
        response = self.platform.get(path, what, **kwargs)
        if response.status_code != 200:
            msg = f"{what}: GET {path} answered HTTP {response.status_code}: {response.text[:300]}"
            raise ProvisionError(msg)
        return response.json()

    def _write(self, method: str, path: str, what: str, body: Any, summary: str, **kwargs: Any) -> Any:
        """The answer to a write, or None in ``--plan`` (then the call is only printed)."""
        if self.plan:
            self._pending = f"  by {method} {path}  ({summary})"
            return None
        response = self.platform.request(method, path, what, body=body, **kwargs)
        if response.status_code not in (200, 201):
            msg = f"{what}: {method} {path} answered HTTP {response.status_code}: {response.text[:400]}"
            raise ProvisionError(msg)
        return response.json()

    def _report(self, status: str, what: str, detail: str = "") -> None:
        """One line per object: its status, what it is, its id; in ``--plan``, then the call that would do it."""
        self.echo(f"{status:<12} {what}{f'  {detail}' if detail else ''}")
        if self._pending:
            self.echo(self._pending)
            self._pending = ""

    def _created(self, what: str, new_id: str | None) -> str:
        """The id of what was just created (a placeholder in ``--plan``)."""
        if new_id is None:
            self._report("create", what)
            return f"<new {what}>"
        self._report("created", what, new_id)
        self.outcome.created.append(what)
        return new_id

    def _incompatible(self, what: str, found_id: str, problem: str) -> None:
        """Report an object that exists with another shape; nothing that depends on it can be done."""
        self._report("INCOMPATIBLE", what, found_id)
        self.outcome.findings.append(
            f"{what} ({found_id}) exists but {problem}; provision changes nothing it did not make and makes no second "
            "one: fix or delete it in AEP, or choose another --title"
        )
        raise _Stop

    def _unique(self, found: list[dict], what: str, key: str = "id") -> dict | None:
        if len(found) > 1:
            ids = ", ".join(str(item.get(key)) for item in found)
            self._report("INCOMPATIBLE", what, ids)
            self.outcome.findings.append(f"{what}: {len(found)} objects have that name ({ids}); keep one of them")
            raise _Stop
        return found[0] if found else None

    # -- steps ---------------------------------------------------------------------------------------------

    def run(self) -> Outcome:
        with contextlib.suppress(_Stop):
            self._run()
        return self.outcome

    def _run(self) -> None:
        tenant = self._tenant()
        mappings = self._mappings(tenant)
        if self.outcome.findings:
            return
        self._namespaces(mappings)
        kinds = [kind for kind in CLASSES if mappings.by_kind.get(kind)]
        destinations: dict[str, tuple[str, str]] = {}
        for kind in kinds:
            field_group = self._field_group(kind, tenant, mappings.by_kind[kind])
            schema = self._schema(kind, field_group)
            dataset = self._dataset(kind, schema)
            destinations[kind] = (dataset, schema)
            self.outcome.settings[f"{kind}_dataset_id"] = dataset
            self.outcome.settings[f"{kind}_schema_id"] = schema
        connection, inlet_url = self._connection()
        self.outcome.settings.update(tenant_id=tenant, inlet_url=inlet_url)
        created = len(self.outcome.created)
        for kind, (dataset, schema) in destinations.items():
            source = self._source_connection(kind, connection)
            target = self._target_connection(kind, schema, dataset)
            self.outcome.settings[f"{kind}_flow_id"] = self._flow(kind, source, target)
        if any(what.startswith("dataflow ") for what in self.outcome.created[created:]):
            self.echo("note: AEP advises waiting about 5 minutes after creating a dataflow before streaming to it "
                      "(EN help/sources/tutorials/api/create/streaming/http.md)")  # fmt: skip

    def _tenant(self) -> str:
        stats = self._get(f"{REGISTRY}/stats", "Schema Registry")
        tenant = stats.get("tenantId")
        configured = self.config.get("tenant_id")
        if configured and configured != tenant:
            self.outcome.findings.append(f"tenant_id: the org's tenant is {tenant!r} (Schema Registry /stats), not "
                                         f"{configured!r}")  # fmt: skip
            raise _Stop
        self._report("exists", "tenant", str(tenant))
        return str(tenant)

    def _mappings(self, tenant: str) -> Mappings:
        mappings = active_mappings(self.target, tenant)
        for kind, kind_mappings in mappings.by_kind.items():
            self.fields[kind] = tenant_fields(kind_mappings, tenant)
            self.outcome.findings += self.fields[kind].problems
            if not any(_has_primary(document.get("fields", [])) for document in mappings.documents[kind]):
                self.echo(f"note: no {kind} mapping writes a primary identity; Profile takes none of its records")
        return mappings

    def _namespaces(self, mappings: Mappings) -> None:
        """The identity namespaces the mappings' identity rules use; standard ones (Email, Phone) exist already."""
        codes = identity_codes(mappings)
        existing = {ns.get("code"): ns for ns in self._get(IDENTITY, "Identity Service")}
        for code in codes:
            what = f"identity namespace {code!r}"
            if code in existing:
                self._report("exists", what, "standard" if not existing[code].get("custom") else "custom")
                continue
            created = self._write("POST", IDENTITY, "Identity Service", namespace_body(code),
                                  f"code {code}, idType CROSS_DEVICE")  # fmt: skip
            self._created(what, None if created is None else str(created.get("id")))

    def _find_registry(self, kind: str, title: str) -> dict | None:
        """The tenant field group (``fieldgroups``) or schema of that title."""
        listing = self._get(f"{REGISTRY}/tenant/{kind}", "Schema Registry", accept="application/vnd.adobe.xed-id+json",
                            params={"property": f"title=={title}"})  # fmt: skip
        found = [r for r in listing.get("results", []) if r.get("title") == title]
        return self._unique(found, f"{kind.removesuffix('s')} {title!r}", "$id")

    def _lookup(self, kind: str, resource_id: str, accept: str) -> dict:
        path = f"{REGISTRY}/tenant/{kind}/{urllib.parse.quote(resource_id, safe='')}"
        return self._get(path, "Schema Registry", accept=accept)

    def _field_group(self, kind: str, tenant: str, mappings: list[StreamMapping]) -> str:
        title = self.names.field_group(kind)
        what = f"field group {title!r}"
        fields = self.fields[kind]
        found = self._find_registry("fieldgroups", title)
        if found is None:
            body = field_group_body(kind, self.names, tenant, fields.tenant_object)
            created = self._write("POST", f"{REGISTRY}/tenant/fieldgroups", "Schema Registry", body,
                                  f"fields under _{tenant} that the {kind} mappings write")  # fmt: skip
            return self._created(what, None if created is None else created["$id"])
        full = self._lookup("fieldgroups", found["$id"], XED_FULL)
        written = {path: w for m in mappings for path, w in m.written.items() if path[0] == f"_{tenant}"}
        problems = unwritable(full, written)
        if CLASSES[kind] not in full.get("meta:intendedToExtend", []):
            problems.append(f"it does not extend {CLASSES[kind]}")
        if problems:
            self._incompatible(what, found["$id"], f"does not take what the mappings write: {', '.join(problems)}")
        else:
            self._report("exists", what, found["$id"])
        return str(found["$id"])

    def _schema(self, kind: str, field_group: str) -> str:
        title = self.names.schema(kind)
        what = f"schema {title!r}"
        found = self._find_registry("schemas", title)
        if found is None:
            created = self._write("POST", f"{REGISTRY}/tenant/schemas", "Schema Registry",
                                  schema_body(kind, self.names, field_group),
                                  f"class {CLASSES[kind]} + {len(STANDARD_FIELD_GROUPS[kind])} standard field groups + "
                                  f"{self.names.field_group(kind)!r}")  # fmt: skip
            schema_id = self._created(what, None if created is None else created["$id"])
            tags: list[str] = []
        else:
            schema_id = str(found["$id"])
            raw = self._lookup("schemas", schema_id, XED_RAW)
            missing = [
                ref for ref in (*STANDARD_FIELD_GROUPS[kind], field_group) if ref not in raw.get("meta:extends", [])
            ]
            if raw.get("meta:class") != CLASSES[kind]:
                self._incompatible(what, schema_id, f"is of class {raw.get('meta:class')}")
            if missing:
                self._incompatible(what, schema_id, f"lacks the field group(s) {', '.join(missing)}")
            tags = raw.get("meta:immutableTags", [])
            self._report("exists", what, schema_id + (" (enabled for Profile)" if "union" in tags else ""))
        if self.profile_enabled and "union" not in tags:
            self._enable_profile(what, schema_id)
        return schema_id

    def _enable_profile(self, what: str, schema_id: str) -> None:
        self.echo(f"WARNING: enabling {what} for Real-Time Customer Profile cannot be undone: AEP never removes the "
                  "'union' tag, an immutable tag (EN help/xdm/api/schemas.md#union)")  # fmt: skip
        path = f"{REGISTRY}/tenant/schemas/{urllib.parse.quote(schema_id, safe='')}"
        body = [{"op": "add", "path": "/meta:immutableTags", "value": ["union"]}]
        if self._write("PATCH", path, "Schema Registry", body, "meta:immutableTags: [union]") is None:
            self._report("update", f"{what}: enable for Profile")
        else:
            self._report("updated", f"{what}: enabled for Profile")
            self.outcome.changed.append(f"{what} enabled for Profile")

    def _dataset(self, kind: str, schema_id: str) -> str:
        name = self.names.dataset(kind)
        what = f"dataset {name!r}"
        listing = self._get(f"{CATALOG}/dataSets", "Catalog",
                            params={"name": name, "properties": "name,schemaRef,tags", "limit": 100})  # fmt: skip
        found = [{"id": i, **d} for i, d in listing.items() if d.get("name") == name]
        dataset = self._unique(found, what)
        if dataset is None:
            created = self._write(
                "POST",
                f"{CATALOG}/dataSets",
                "Catalog",
                dataset_body(kind, self.names, schema_id, self.profile_enabled),
                f"schema {schema_id}{', Profile and Identity tags' if self.profile_enabled else ''}",
            )
            return self._created(what, None if created is None else str(created[0]).rsplit("/", 1)[-1])
        bound = (dataset.get("schemaRef") or {}).get("id")
        if bound != schema_id:
            self._incompatible(what, dataset["id"], f"is bound to schema {bound}, not {schema_id}")
        self._report("exists", what, dataset["id"])
        tags = dataset.get("tags") or {}
        if self.profile_enabled and any("enabled:true" not in tags.get(tag, []) for tag in PROFILE_TAGS):
            body = [{"op": "add", "path": f"/tags/{tag}", "value": value} for tag, value in PROFILE_TAGS.items()]
            done = self._write(
                "PATCH",
                f"{CATALOG}/dataSets/{dataset['id']}",
                "Catalog",
                body,
                "tags unifiedProfile, unifiedIdentity",
                content_type="application/json-patch+json",
            )
            self._report("updated" if done is not None else "update", f"{what}: enable for Profile and Identity")
            if done is not None:
                self.outcome.changed.append(f"{what} enabled for Profile")
        return str(dataset["id"])

    def _find_flow_object(self, kind: str, name: str, what: str) -> dict | None:
        listing = self._get(f"{FLOW_SERVICE}/{kind}", "Flow Service", params={"property": f'name=="{name}"'})
        return self._unique([item for item in listing.get("items", []) if item.get("name") == name], what)

    def _create_flow_object(self, kind: str, what: str, body: dict, summary: str) -> str:
        created = self._write("POST", f"{FLOW_SERVICE}/{kind}", "Flow Service", body, summary)
        return self._created(what, None if created is None else created["id"])

    def _connection(self) -> tuple[str, str]:
        name = self.names.connection
        what = f"streaming connection {name!r}"
        authenticated = bool(self.config["inlet_auth_required"])
        found = self._find_flow_object("connections", name, what)
        if found is None:
            connection = self._create_flow_object(
                "connections",
                what,
                connection_body(self.names, authenticated),
                f"HTTP API, xdm, authenticationRequired {authenticated}",
            )
            if self.plan:
                return connection, "<the new connection's inlet URL>"
        else:
            connection = str(found["id"])
            params = (found.get("auth") or {}).get("params") or {}
            problem = None
            if (found.get("connectionSpec") or {}).get("id") != HTTP_API_SPEC["id"] or params.get("dataType") != "xdm":
                problem = "is not an HTTP API connection for XDM data"
            elif bool(params.get("authenticationRequired")) != authenticated:
                problem = (f"has authenticationRequired {params.get('authenticationRequired')}, but "
                           f"inlet_auth_required is {authenticated}")  # fmt: skip
            if problem:
                self._incompatible(what, connection, problem)
            self._report("exists", what, connection)
        items = self._get(f"{FLOW_SERVICE}/connections/{connection}", "Flow Service").get("items") or [{}]
        inlet_url = ((items[0].get("auth") or {}).get("params") or {}).get("inletUrl")
        if not inlet_url:
            raise ProvisionError(f"{what} ({connection}) has no auth.params.inletUrl")
        self._report("inlet", inlet_url)
        return connection, str(inlet_url)

    def _source_connection(self, kind: str, connection: str) -> str:
        name = self.names.source_connection(kind)
        what = f"source connection {name!r}"
        found = self._find_flow_object("sourceConnections", name, what)
        if found is None:
            body = {"name": name, "description": "target-adobe-aep", "baseConnectionId": connection,
                    "connectionSpec": HTTP_API_SPEC}  # fmt: skip
            return self._create_flow_object("sourceConnections", what, body, f"base connection {connection}")
        if found.get("baseConnectionId") != connection:
            self._incompatible(what, found["id"], f"belongs to connection {found.get('baseConnectionId')}")
        self._report("exists", what, found["id"])
        return str(found["id"])

    def _target_connection(self, kind: str, schema_id: str, dataset_id: str) -> str:
        name = self.names.target_connection(kind)
        what = f"target connection {name!r}"
        found = self._find_flow_object("targetConnections", name, what)
        if found is None:
            body = {"name": name, "description": "target-adobe-aep", "connectionSpec": DATA_LAKE_SPEC,
                    "data": {"format": "parquet_xdm", "schema": {"id": schema_id, "version": XED_CONTENT_TYPE}},
                    "params": {"dataSetId": dataset_id}}  # fmt: skip
            return self._create_flow_object("targetConnections", what, body, f"dataset {dataset_id}")
        bound = (
            (found.get("params") or {}).get("dataSetId"),
            ((found.get("data") or {}).get("schema") or {}).get("id"),
        )
        if bound != (dataset_id, schema_id) or (found.get("connectionSpec") or {}).get("id") != DATA_LAKE_SPEC["id"]:
            self._incompatible(what, found["id"], f"leads to dataset {bound[0]} (schema {bound[1]}), not {dataset_id}")
        else:
            self._report("exists", what, found["id"])
        return str(found["id"])

    def _flow(self, kind: str, source: str, target: str) -> str:
        name = self.names.flow(kind)
        what = f"dataflow {name!r}"
        found = self._find_flow_object("flows", name, what)
        if found is None:
            body = {"name": name, "description": "target-adobe-aep", "flowSpec": STREAMING_FLOW_SPEC,
                    "sourceConnectionIds": [source], "targetConnectionIds": [target]}  # fmt: skip
            return self._create_flow_object("flows", what, body, f"{source} -> {target}")
        if found.get("sourceConnectionIds") != [source] or found.get("targetConnectionIds") != [target]:
            self._incompatible(what, found["id"], "connects other source or target connections")
        self._report("exists", what, found["id"])
        return str(found["id"])


class _Stop(Exception):
    """Nothing after this step can be done (its findings are recorded)."""
