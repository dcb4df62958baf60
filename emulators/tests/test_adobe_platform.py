"""Adobe emulator: the platform APIs that set a sandbox up (Schema Registry, Identity Service, Catalog, Flow Service),
strict about what the docs require, and what they show of ingestion afterwards (batches, failed records, metrics)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import requests
from test_adobe_ims import platform_headers, token_request

from emulators.adobe import ADOBE

EMPTY = pytest.mark.adobe(provisioned=False)
REGISTRY = "/data/foundation/schemaregistry"
PROFILE = "https://ns.adobe.com/xdm/context/profile"
EVENT = "https://ns.adobe.com/xdm/context/experienceevent"
IDENTITY_MAP = "https://ns.adobe.com/xdm/context/identitymap"
HTTP_API = {"id": "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb", "version": "1.0"}
XED = "application/vnd.adobe.xed-full+json;version=1"


class Platform:
    """Calls to the emulator's platform APIs with a valid token."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.token = token_request(server).json()["access_token"]

    def call(self, method: str, route: str, body: Any = None, accept: str | None = None, **params: Any) -> Any:
        headers = platform_headers(self.token, Accept=accept, **({"Content-Type": "application/json"} if body else {}))
        data = None if body is None else orjson.dumps(body)
        return requests.request(method, self.server.base_url + route, headers=headers, data=data, params=params,
                                timeout=10)  # fmt: skip

    def field_group(self, title: str = "Loyalty Fields", fields: Any = None, classes: Any = (PROFILE,)) -> Any:
        fields = fields or {"_capillarydemo": {"type": "object", "properties": {"tier": {"type": "string"}}}}
        body = {"title": title, "type": "object", "meta:intendedToExtend": list(classes),
                "definitions": {"f": {"properties": fields}}, "allOf": [{"$ref": "#/definitions/f"}]}  # fmt: skip
        return self.call("POST", f"{REGISTRY}/tenant/fieldgroups", body)

    def schema(self, title: str, *refs: str) -> Any:
        body = {"title": title, "type": "object", "allOf": [{"$ref": ref} for ref in refs]}
        return self.call("POST", f"{REGISTRY}/tenant/schemas", body)

    def union(self, schema_id: str) -> Any:
        ops = [{"op": "add", "path": "/meta:immutableTags", "value": ["union"]}]
        return self.call("PATCH", f"{REGISTRY}/tenant/schemas/{quote(schema_id, safe='')}", ops)

    def dataset(self, schema_id: str, **extra: Any) -> Any:
        body = {"name": "Loyalty", "schemaRef": {"id": schema_id, "contentType": XED}, **extra}
        return self.call("POST", "/data/foundation/catalog/dataSets", body)


@pytest.fixture
def platform(adobe_emulator: Any) -> Platform:
    return Platform(adobe_emulator)


def detail(response: Any) -> str:
    return response.json()["detail"]


@EMPTY
def test_an_empty_sandbox_has_only_the_standard_namespaces(adobe_emulator: Any, platform: Platform) -> None:
    counts = adobe_emulator.call(adobe_emulator.app[ADOBE].sandbox.counts)
    assert set(counts.values()) == {0}
    assert platform.call("GET", f"{REGISTRY}/tenant/schemas").json()["results"] == []
    codes = {ns["code"] for ns in platform.call("GET", "/data/core/idnamespace/identities").json()}
    assert {"Email", "Phone", "ECID"} <= codes
    inlet = adobe_emulator.config.auth_inlet_id
    assert requests.post(f"{adobe_emulator.base_url}/collection/{inlet}", json={}, timeout=5).status_code == 404


@EMPTY
def test_field_groups_follow_the_documented_rules(platform: Platform) -> None:
    created = platform.field_group()
    assert created.status_code == 201
    group = created.json()
    assert group["$id"].startswith("https://ns.adobe.com/capillarydemo/mixins/")
    assert group["meta:altId"] == "_capillarydemo.mixins." + group["$id"].rsplit("/", 1)[1]
    # Titles are unique across resource types (EN help/xdm/troubleshooting-guide.md).
    again = platform.schema("Loyalty Fields", PROFILE)
    assert again.status_code == 400
    assert again.json()["title"] == "BadRequestError"
    assert detail(again) == f"Title must be unique. An object {group['$id']} already exists with the same title."
    outside = platform.field_group("Outside", {"tier": {"type": "string"}})
    assert detail(outside).startswith("For custom fields, you must use a top level field named _capillarydemo")
    bad_map = {
        "_capillarydemo": {
            "type": "object",
            "properties": {"m": {"type": "object", "meta:xdmType": "map", "additionalProperties": {"type": "number"}}},
        }
    }
    assert "map types must not define properties" in detail(platform.field_group("Map", bad_map))  # fmt: skip
    assert platform.field_group("No class", classes=()).status_code == 400
    # Lookups: raw (definitions/allOf) or resolved (properties with their meta:xdmType).
    path = f"{REGISTRY}/tenant/fieldgroups/{group['meta:altId']}"
    full = platform.call("GET", path, accept="application/vnd.adobe.xed-full+json; version=1").json()
    assert full["properties"]["_capillarydemo"]["properties"]["tier"]["meta:xdmType"] == "string"
    raw = platform.call("GET", path, accept="application/vnd.adobe.xed+json; version=1").json()
    assert raw["allOf"] == [{"$ref": "#/definitions/f"}]
    listed = platform.call("GET", f"{REGISTRY}/tenant/fieldgroups", property="title==Loyalty Fields").json()
    assert [r["$id"] for r in listed["results"]] == [group["$id"]]


@EMPTY
def test_schemas_compose_a_class_and_its_field_groups(platform: Platform) -> None:
    group = platform.field_group().json()["$id"]
    assert "exactly one class" in detail(platform.schema("Two classes", PROFILE, EVENT))
    assert detail(platform.schema("Unknown", PROFILE, "https://ns.adobe.com/x/mixins/nope")).endswith(
        "with version 1 not found"
    )
    assert "is not intended to extend class" in detail(platform.schema("Wrong class", EVENT, group))
    created = platform.schema("Members", PROFILE, IDENTITY_MAP, group)
    assert created.status_code == 201
    schema = created.json()
    assert schema["meta:class"] == PROFILE
    assert schema["meta:extends"][-2:] == [IDENTITY_MAP, group]
    full = platform.call("GET", f"{REGISTRY}/tenant/schemas/{schema['meta:altId']}",
                         accept="application/vnd.adobe.xed-full+json; version=1").json()  # fmt: skip
    assert {"identityMap", "_capillarydemo", "_id"} <= set(full["properties"])


@EMPTY
def test_immutable_tags_stay_and_union_needs_a_primary_identity(platform: Platform) -> None:
    group = platform.field_group().json()["$id"]
    bare = platform.schema("Bare", PROFILE, group).json()["$id"]
    refused = platform.union(bare)
    assert refused.status_code == 400
    assert "primary identity" in detail(refused)
    # A primary identity descriptor gives it one (EN help/xdm/api/descriptors.md).
    descriptor = {"@type": "xdm:descriptorIdentity", "xdm:sourceSchema": bare, "xdm:sourceVersion": 1,
                  "xdm:sourceProperty": "/_capillarydemo/tier", "xdm:namespace": "Email", "xdm:property": "xdm:code",
                  "xdm:isPrimary": True}  # fmt: skip
    assert platform.call("POST", f"{REGISTRY}/tenant/descriptors", descriptor).status_code == 201
    assert "only one primary identity" in detail(platform.call("POST", f"{REGISTRY}/tenant/descriptors", descriptor))
    missing = {**descriptor, "xdm:sourceProperty": "/_capillarydemo/nope", "xdm:isPrimary": False}
    assert "has no field" in detail(platform.call("POST", f"{REGISTRY}/tenant/descriptors", missing))
    assert platform.union(bare).json()["meta:immutableTags"] == ["union"]
    listed = platform.call("GET", f"{REGISTRY}/tenant/descriptors", accept="application/vnd.adobe.xdm-id+json").json()
    assert len(listed["xdm:descriptorIdentity"]) == 1
    removal = [{"op": "remove", "path": "/meta:immutableTags"}]
    response = platform.call("PATCH", f"{REGISTRY}/tenant/schemas/{quote(bare, safe='')}", removal)
    assert response.status_code == 400
    assert "never removed" in detail(response)


@EMPTY
def test_datasets_need_a_union_schema_for_profile_and_lock_breaking_changes(platform: Platform) -> None:
    group = platform.field_group().json()
    schema = platform.schema("Members", PROFILE, IDENTITY_MAP, group["$id"]).json()["$id"]
    tags = {"unifiedProfile": ["enabled:true"], "unifiedIdentity": ["enabled:true"]}
    refused = platform.dataset(schema, tags=tags)
    assert detail(refused) == "To enable profile datasets the schema should be valid"
    assert platform.dataset("https://ns.adobe.com/capillarydemo/schemas/nope").status_code == 400
    created = platform.dataset(schema)
    assert created.status_code == 201
    (ref,) = created.json()
    dataset_id = ref.removeprefix("@/dataSets/")
    assert len(dataset_id) == 24
    listed = platform.call("GET", "/data/foundation/catalog/dataSets", name="Loyalty", properties="schemaRef").json()
    assert listed == {dataset_id: {"schemaRef": {"id": schema, "contentType": XED}}}
    # Once a dataset uses the schema, a field may be added but not removed or retyped.
    path = f"{REGISTRY}/tenant/fieldgroups/{group['meta:altId']}"
    tier = "/definitions/f/properties/_capillarydemo/properties/tier"
    add = [{"op": "add", "path": tier.replace("tier", "level"), "value": {"type": "integer"}}]
    assert platform.call("PATCH", path, add).status_code == 200
    retype = [{"op": "replace", "path": f"{tier}/type", "value": "number"}]
    response = platform.call("PATCH", path, retype)
    assert response.status_code == 400
    assert "breaking changes are not allowed" in detail(response)
    # Enabling Profile afterwards: the schema first, then the dataset's tags (JSON Patch).
    assert platform.union(schema).status_code == 200
    ops = [{"op": "add", "path": f"/tags/{tag}", "value": value} for tag, value in tags.items()]
    assert platform.call("PATCH", f"/data/foundation/catalog/dataSets/{dataset_id}", ops).json() == [ref]


@EMPTY
def test_identity_namespaces_are_created_once(platform: Platform) -> None:
    body = {
        "name": "Loyalty Member",
        "code": "Loyalty",
        "description": "Loyalty Program Member ID",
        "idType": "Cross_device",
    }  # fmt: skip  the doc sample's spelling
    created = platform.call("POST", "/data/core/idnamespace/identities", body)
    assert created.status_code == 200
    assert {key: created.json()[key] for key in ("code", "status", "custom")} == {
        "code": "Loyalty", "status": "ACTIVE", "custom": True}  # fmt: skip
    assert platform.call("POST", "/data/core/idnamespace/identities", body).status_code == 400
    person = {**body, "code": "X", "name": "X", "idType": "PERSON"}
    assert platform.call("POST", "/data/core/idnamespace/identities", person).status_code == 400


@EMPTY
def test_a_streaming_source_set_up_by_api_ingests_and_reports(adobe_emulator: Any, platform: Platform) -> None:
    """Connection, source and target connections and a dataflow as EN sources http.md makes them; the new inlet
    takes messages for the new dataset; what fails validation is a failed batch with its records and errors, and
    the metrics count it."""
    group = platform.field_group(fields={"_capillarydemo": {"type": "object", "properties": {
        "tier": {"type": "string", "enum": ["Gold", "Silver"]}}}}).json()["$id"]  # fmt: skip
    schema = platform.schema("Members", PROFILE, IDENTITY_MAP, group).json()["$id"]
    dataset = platform.dataset(schema).json()[0].removeprefix("@/dataSets/")
    flows = "/data/foundation/flowservice"
    unknown_spec = {"name": "x", "connectionSpec": {"id": "nope", "version": "1.0"}, "auth": {}}
    assert platform.call("POST", f"{flows}/connections", unknown_spec).status_code == 400
    auth = {"specName": "Streaming Connection", "params": {"dataType": "xdm", "authenticationRequired": False}}
    connection = platform.call("POST", f"{flows}/connections", {"name": "Inlet", "connectionSpec": HTTP_API,
                                                                 "auth": auth})  # fmt: skip
    assert connection.status_code == 201
    connection_id = connection.json()["id"]
    (item,) = platform.call("GET", f"{flows}/connections/{connection_id}").json()["items"]
    inlet_url = item["auth"]["params"]["inletUrl"]
    assert inlet_url == f"{adobe_emulator.base_url}/collection/{item['auth']['params']['inletId']}"
    source_body = {"name": "Source", "baseConnectionId": connection_id, "connectionSpec": HTTP_API}
    source = platform.call("POST", f"{flows}/sourceConnections", source_body).json()["id"]
    target = {"name": "Target", "connectionSpec": {"id": "c604ff05-7f1a-43c0-8e18-33bf874cb11c", "version": "1.0"},
              "data": {"schema": {"id": schema, "version": XED}}, "params": {"dataSetId": dataset}}  # fmt: skip
    other = {**target, "data": {"schema": {"id": "https://ns.adobe.com/capillarydemo/schemas/x", "version": XED}}}
    assert platform.call("POST", f"{flows}/targetConnections", other).status_code == 400
    target_id = platform.call("POST", f"{flows}/targetConnections", target).json()["id"]
    flow = {"name": "Flow", "flowSpec": {"id": "d8a6f005-7eaf-4153-983e-e8574508b877", "version": "1.0"},
            "sourceConnectionIds": [source], "targetConnectionIds": [target_id]}  # fmt: skip
    assert platform.call("POST", f"{flows}/flows", {**flow, "sourceConnectionIds": ["nope"]}).status_code == 400
    two_targets = {**flow, "targetConnectionIds": [target_id, target_id]}  # a streaming dataflow leads to one dataset
    refused = platform.call("POST", f"{flows}/flows", two_targets)
    assert refused.status_code == 400
    assert "a streaming dataflow takes one targetConnection, got 2" in refused.text
    assert platform.call("POST", f"{flows}/flows", {**flow, "sourceConnectionIds": [source, source]}).status_code == 400
    assert platform.call("POST", f"{flows}/flows", flow).status_code == 201
    found = platform.call("GET", f"{flows}/flows", property='name=="Flow"').json()["items"]
    assert [f["targetConnectionIds"] for f in found] == [[target_id]]

    start = int(time.time() * 1000) - 1
    ref = {"id": schema, "contentType": XED}
    header = {"schemaRef": ref, "imsOrgId": adobe_emulator.config.org_id, "datasetId": dataset}

    def message(entity: dict) -> dict:
        return {"header": header, "body": {"xdmMeta": {"schemaRef": ref}, "xdmEntity": entity}}

    good, bad = {"_capillarydemo": {"tier": "Gold"}}, {"_capillarydemo": {"tier": "Bronze"}}
    batch = requests.post(inlet_url.replace("/collection/", "/collection/batch/"),
                          json={"messages": [message(good), message(bad)]}, timeout=10)  # fmt: skip
    assert [("xactionId" in r) for r in batch.json()["responses"]] == [True, True]  # both received
    batches = platform.call("GET", "/data/foundation/catalog/batches", dataSet=dataset, createdAfter=start).json()
    assert sorted(b["status"] for b in batches.values()) == ["failed", "success"]
    (failed_id,) = [i for i, b in batches.items() if b["status"] == "failed"]
    assert batches[failed_id]["metrics"]["failedRecordCount"] == 1
    assert batches[failed_id]["relatedObjects"] == [{"type": "dataSet", "id": dataset}]
    assert list(platform.call("GET", "/data/foundation/catalog/batches", dataSet=dataset, status="failed").json()) == [
        failed_id
    ]
    files = platform.call("GET", f"/data/foundation/export/batches/{failed_id}/failed").json()["data"]
    assert files[0]["name"] == "_SUCCESS"
    content = platform.call("GET", f"/data/foundation/export/batches/{failed_id}/failed", path=files[1]["name"])
    (line,) = [orjson.loads(text) for text in content.text.splitlines()]
    assert line["body"]["xdmEntity"] == bad
    assert line["header"]["datasetId"] == dataset
    assert line["_validationErrors"][0]["message"] == "Bronze is not a valid enum value"

    day = datetime.now(UTC)
    metrics = {"start": (day - timedelta(days=1)).isoformat(), "end": (day + timedelta(minutes=1)).isoformat(),
               "metrics": [{"name": "timeseries.ingestion.dataset.recordsuccess.count", "aggregator": "sum",
                            "filters": [{"name": "dataSetId", "value": dataset, "groupBy": True}]},
                           {"name": "timeseries.data.collection.inlet.success", "aggregator": "sum"}]}  # fmt: skip
    answer = platform.call("POST", "/data/infrastructure/observability/insights/metrics", metrics).json()
    records, calls = answer["metricResponses"]
    assert sum(records["datapoints"][0]["dps"].values()) == 1.0
    assert records["datapoints"][0]["groupBy"] == {"dataSetId": dataset}
    assert sum(calls["datapoints"][0]["dps"].values()) == 1.0
    no_aggregator = {**metrics, "metrics": [{"name": "timeseries.ingestion.dataset.recordsuccess.count"}]}
    refused = platform.call("POST", "/data/infrastructure/observability/insights/metrics", no_aggregator)
    assert refused.status_code == 400
    assert refused.json()["type"] == "http://ns.adobe.com/aep/errors/INSGHT-1000-400"
