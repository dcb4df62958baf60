"""The tenant's XDM schemas and the Streaming Validation Service's view of a message.

A schema is composed as AEP composes it: its class, standard field groups (generated from adobe/xdm by
``scripts/xdm_schemas.py`` into ``schemas/standard/``, one file per component) and the tenant's own field groups
(created through the Schema Registry API, or seeded from ``schemas/capillary-*.json``), served in the registry's
xed-full form. Validation closes every object that lists its properties, as AEP's Streaming Validation Service does
although the served schema does not say so ("extraneous key [workEmail] is not permitted", EN
``help/ingestion/quality/streaming-validation.md``); maps (``meta:xdmType: map``) keep their value schema.

Validation has two stages because the two libraries are good at different things: a compiled
``fastjsonschema`` validator decides valid/invalid at ~20x the speed of ``jsonschema`` (the common,
valid case), and only for invalid messages ``jsonschema`` lists the violations, at most
``max_errors`` of them, phrased like AEP's validator (everit-json-schema). Both check formats with
``jsonschema``'s Draft 7 format checker, so they agree (``date`` and ``date-time`` are real dates, ``email``
holds an ``@``: AEP documents no stricter rule).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema

XED_FULL = "application/vnd.adobe.xed-full+json"
TENANT_PLACEHOLDER = "{TENANT_ID}"
SCHEMAS = resources.files(__package__).joinpath("schemas")
FORMAT_CHECKER = jsonschema.Draft7Validator.FORMAT_CHECKER


def _read(path: Any) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


INT32 = 2**31


def xdm_type(node: dict) -> str:
    """The ``meta:xdmType`` the registry gives a field of this JSON Schema (EN help/xdm/schema/field-constraints.md)."""
    kind = node.get("type")
    if kind == "string":
        return {"date-time": "date-time", "date": "date"}.get(node.get("format", ""), "string")
    if kind == "integer":
        bounds = (abs(node.get("minimum", 0)), abs(node.get("maximum", 0)))
        return "long" if max(bounds) > INT32 else "int"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return "map"
    return kind or "object"


def merged(parts: list[dict]) -> dict:
    """Parts of one node (a ``$ref`` target, ``allOf`` members, the node's own keys) as one: properties and
    required names are united, later annotations win."""
    result: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key == "properties":
                properties = result.setdefault("properties", {})
                for name, schema in value.items():
                    properties[name] = merged([properties[name], schema]) if name in properties else schema
            elif key == "required":
                result["required"] = list(dict.fromkeys([*result.get("required", []), *value]))
            else:
                result[key] = value
    return result


@functools.cache
def standard_components() -> dict[str, dict[str, Any]]:
    """The generated classes and standard field groups by ``$id``."""
    parts = (_read(path) for path in SCHEMAS.joinpath("standard").iterdir() if path.name.endswith(".json"))
    return {part["$id"]: part for part in parts}


def with_xdm_types(node: Any) -> Any:
    """Custom fields as the registry serves them: each field with its ``meta:xdmType``
    (EN help/xdm/tutorials/custom-fields-api.md: "a system-generated value")."""
    if not isinstance(node, dict):
        return node
    result = {key: with_xdm_types(value) if key in ("items", "additionalProperties") else value
              for key, value in node.items()}  # fmt: skip
    if isinstance(node.get("properties"), dict):
        result["properties"] = {name: with_xdm_types(sub) for name, sub in node["properties"].items()}
        result.setdefault("type", "object")
    if "type" in result:
        result.setdefault("meta:xdmType", xdm_type(result))
    return result


def extends_chain(class_id: str, field_groups: list[str]) -> list[str]:
    """A schema's ``meta:extends``: what its class extends, the class, then its field groups, each once."""
    return list(dict.fromkeys([*standard_components()[class_id]["meta:extends"], class_id, *field_groups]))


def compose(class_id: str, field_groups: list[str], tenant_parts: list[dict[str, Any]]) -> dict[str, Any]:
    """A schema's resolved fields: its class, standard field groups (by ``$id``) and tenant field groups' properties
    merged as the registry merges them, with the class's ``required`` and the ``meta:extends`` chain."""
    standard = standard_components()
    parts = [standard[class_id], *(standard[ref] for ref in field_groups if ref in standard), *tenant_parts]
    whole = merged([{key: part[key] for key in ("properties", "required") if key in part} for part in parts])
    return {
        "meta:extends": extends_chain(class_id, field_groups),
        "required": whole.get("required", []),
        "properties": dict(sorted(whole["properties"].items())),
    }


def closed_for_validation(schema: Any) -> Any:
    """``schema`` as the Streaming Validation Service applies it: objects listing properties reject other keys."""
    if not isinstance(schema, dict):
        return schema
    # Extraneous keys first: jsonschema reports in keyword order, and AEP lists them first (streaming-validation.md).
    result = {"additionalProperties": False, **schema} if "properties" in schema else dict(schema)
    if isinstance(schema.get("properties"), dict):
        result["properties"] = {name: closed_for_validation(sub) for name, sub in schema["properties"].items()}
    for keyword in ("items", "additionalProperties"):
        if isinstance(schema.get(keyword), dict):
            result[keyword] = closed_for_validation(schema[keyword])
    return result


def without_text(schema: Any) -> Any:
    """The ``xed-full-notext`` form: no titles or descriptions.

    Only string values are dropped, so properties named ``title`` or ``description`` survive.
    """
    if isinstance(schema, dict):
        return {
            k: without_text(v) for k, v in schema.items() if k not in ("title", "description") or not isinstance(v, str)
        }
    if isinstance(schema, list):
        return [without_text(v) for v in schema]
    return schema


def _java_type(value: Any) -> str:
    """The type name AEP's (Java) validator reports for a JSON value."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer" if -(2**31) <= value < 2**31 else "Long"
    if isinstance(value, float):
        return "Double"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "JSONArray"
    return "JSONObject"


def _pointer(path: Any) -> str:
    return "#" + "".join(f"/{p}" for p in path)


def _violations(error: jsonschema.ValidationError) -> list[dict[str, Any]]:
    """One AEP-style violation per offending key/value (``additionalProperties`` lists each key)."""
    base = {
        "schemaLocation": _pointer(list(error.relative_schema_path)[:-1]),
        "pointerToViolation": _pointer(error.absolute_path),
        "causingExceptions": [],
        "keyword": error.validator,
    }
    value, expected = error.instance, error.validator_value
    if error.validator == "additionalProperties":
        declared = error.schema.get("properties", {})
        return [{**base, "message": f"extraneous key [{key}] is not permitted"} for key in value if key not in declared]
    if error.validator == "required":
        missing = [key for key in expected if key not in value]
        return [{**base, "message": f"required key [{key}] not found"} for key in missing]
    messages = {
        "type": lambda: f"expected type: {_type_name(expected)}, found: {_java_type(value)}",
        "pattern": lambda: f"string [{value}] does not match pattern {expected}",
        "format": lambda: f"[{value}] is not a valid {expected}",
        "enum": lambda: f"{value} is not a valid enum value",
        "minimum": lambda: f"{value} is not greater or equal to {expected}",
        "maximum": lambda: f"{value} is not less or equal to {expected}",
        "minLength": lambda: f"expected minLength: {expected}, actual: {len(value)}",
        "maxLength": lambda: f"expected maxLength: {expected}, actual: {len(value)}",
    }
    return [{**base, "message": messages.get(error.validator, lambda: error.message)()}]


def _type_name(json_type: Any) -> str:
    if isinstance(json_type, list):
        return " or ".join(_type_name(t) for t in json_type)
    return {"integer": "Integer", "number": "Number", "object": "JSONObject", "array": "JSONArray"}.get(
        json_type, str(json_type).capitalize()
    )


@dataclass
class Schema:
    """One tenant schema, compiled once."""

    body: dict[str, Any]
    max_errors: int = 5

    def __post_init__(self) -> None:
        validated = closed_for_validation(self.body)
        formats = {name: functools.partial(FORMAT_CHECKER.conforms, format=name) for name in FORMAT_CHECKER.checkers}
        # use_default=False: a validator never writes into what it validates (fastjsonschema fills in defaults).
        self._fast = fastjsonschema.compile(validated, formats=formats, use_default=False)
        self._detail = jsonschema.Draft7Validator(validated, format_checker=FORMAT_CHECKER)

    @property
    def id(self) -> str:
        return self.body["$id"]

    @property
    def alt_id(self) -> str:
        return self.body["meta:altId"]

    def violations(self, entity: Any) -> list[dict[str, Any]]:
        """The first ``max_errors`` violations of ``entity``; empty when it is valid."""
        try:
            self._fast(entity)
        except fastjsonschema.JsonSchemaValueException as exc:
            found: list[dict[str, Any]] = []
            for error in self._detail.iter_errors(entity):
                found.extend(_violations(error))
                if len(found) >= self.max_errors:
                    break
            if not found:  # the libraries disagree on a format detail: report the fast one's finding
                found = [{"schemaLocation": "#", "pointerToViolation": "#", "causingExceptions": [],
                          "keyword": exc.rule or "", "message": exc.message}]  # fmt: skip
            return found[: self.max_errors]
        return []


@functools.lru_cache(maxsize=64)
def _compiled(text: str, max_errors: int) -> Schema:
    return Schema(json.loads(text), max_errors=max_errors)


def compiled(body: dict[str, Any], max_errors: int = 5) -> Schema:
    """``body`` compiled, once per distinct schema: compiling takes ~0.15 s, and emulators started per test share
    the same seeded schemas."""
    return _compiled(json.dumps(body, sort_keys=True), max_errors)


def validation_report(violations: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``_streamingValidation`` entry for one message: flat for one violation, wrapped for several."""
    if len(violations) == 1:
        return violations[0]
    return {
        "schemaLocation": "#",
        "pointerToViolation": "#",
        "causingExceptions": violations,
        "message": f"{len(violations)} schema violations found",
    }
