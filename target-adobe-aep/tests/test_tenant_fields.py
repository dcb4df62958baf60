"""The tenant field group built from the mappings: every tenant path a mapping writes is in it, with a type that
takes what is written there; what cannot be built is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from target_adobe_aep.mapping import PRESETS, StreamMapping, compile_mapping
from target_adobe_aep.tenant_fields import tenant_fields
from target_adobe_aep.xdm_schema import unwritable

NAMESPACES = {"email": "Email", "phone": "Phone", "customer_id": "CapillaryCustomerId"}
EXAMPLES = Path(__file__).parent.parent / "examples"


def mapping(stream: str, document: dict, tenant: str = "acme") -> StreamMapping:
    return compile_mapping(stream, document, "test", tenant_id=tenant, identity_namespaces=NAMESPACES)


def shipped() -> dict[str, list[StreamMapping]]:
    """Every mapping shipped with the target (presets and examples) per destination."""
    documents = {path.stem: json.loads(path.read_text()) for path in map(Path, map(str, PRESETS.iterdir()))
                 if path.suffix == ".json"}  # fmt: skip
    documents["stores"] = json.loads((EXAMPLES / "stores-as-events.json").read_text())
    by_kind: dict[str, list[StreamMapping]] = {}
    for stream, document in documents.items():
        if document["target"] != "none":
            by_kind.setdefault(document["target"], []).append(mapping(stream, document))
    return by_kind


@pytest.mark.parametrize("kind", ["profile", "event"])
def test_the_field_group_takes_every_tenant_path_each_shipped_mapping_writes(kind: str) -> None:
    """Checked with the target's own preflight comparison (``unwritable``), not with the builder's logic."""
    mappings = shipped()[kind]
    fields = tenant_fields(mappings, "acme")
    assert fields.problems == []
    schema = {"type": "object", "properties": {"_acme": fields.tenant_object}}
    for m in mappings:
        tenant_paths = {path: field for path, field in m.written.items() if path[0] == "_acme"}
        assert tenant_paths, m.stream
        assert unwritable(schema, tenant_paths) == [], m.stream


def test_fields_are_defined_as_the_schema_registry_takes_them() -> None:
    document = {"target": "event", "fields": [
        {"to": "_{tenant_id}.shop.at", "from": "t", "transform": "timestamp"},
        {"to": "_{tenant_id}.shop.tags", "from": "g", "transform": "string_values"},
        {"to": "_{tenant_id}.shop.cards", "from": "c", "transform": "string_list"},
        {"to": "_{tenant_id}.shop.lines", "each": "l", "fields": [{"to": "qty", "from": "q", "transform": "round"}]},
    ]}  # fmt: skip
    shop = tenant_fields([mapping("s", document)], "acme").tenant_object["properties"]["shop"]
    assert shop["title"] == "Shop"
    fields = shop["properties"]
    assert fields["at"] | {"description": ""} == {"title": "At", "type": "string", "format": "date-time",
                                                   "description": ""}  # fmt: skip
    # A map: type object, meta:xdmType map, string values (EN help/xdm/tutorials/custom-fields-api.md).
    assert (fields["tags"]["type"], fields["tags"]["meta:xdmType"]) == ("object", "map")
    assert fields["tags"]["additionalProperties"] == {"type": "string"}
    assert fields["cards"]["items"] == {"type": "string"}
    assert fields["lines"]["items"]["properties"]["qty"]["type"] == "integer"
    assert fields["at"]["description"] == "Written by target-adobe-aep from stream(s) s."


def test_what_cannot_be_built_is_named() -> None:
    untyped = mapping("a", {"target": "event", "fields": [
        {"to": "_{tenant_id}.x.code", "from": "code"},
        {"to": "_{tenant_id}.x.points", "from": "p", "transform": "number"},
    ]})  # fmt: skip
    retyped = mapping("b", {"target": "event", "fields": [{"to": "_{tenant_id}.x.points", "value": "many"}]})
    inside = mapping("c", {"target": "event", "fields": [{"to": "_{tenant_id}.x.points.inner", "value": 1}]})
    problems = tenant_fields([untyped, retyped, inside], "acme").problems
    assert problems[0].startswith("stream 'a' (test) writes _acme.x.code without saying its type")
    assert problems[1] == "_acme.x.points: written as number by one mapping and as string by another (stream 'b', test)"
    assert problems[2].startswith("_acme.x.points.inner: points is written whole as number and also has fields")
    assert problems[2].endswith("(stream 'c', test)")
    assert len(problems) == 3
