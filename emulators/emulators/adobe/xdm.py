"""The tenant's XDM schemas and the Streaming Validation Service's view of a message.

Validation has two stages because the two libraries are good at different things: a compiled
``fastjsonschema`` validator decides valid/invalid at ~20x the speed of ``jsonschema`` (the common,
valid case), and only for invalid messages ``jsonschema`` lists the violations, at most
``max_errors`` of them, phrased like AEP's validator (everit-json-schema), e.g.
"extraneous key [workEmail] is not permitted" (EN ``help/ingestion/quality/streaming-validation.md``).
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


def load_schema(name: str, tenant_id: str) -> dict[str, Any]:
    """A schema file of ``schemas/`` with the tenant id filled in."""
    text = resources.files(__package__).joinpath("schemas", f"{name}.schema.json").read_text(encoding="utf-8")
    return json.loads(text.replace(TENANT_PLACEHOLDER, tenant_id))


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
        self._fast = fastjsonschema.compile(self.body)
        self._detail = jsonschema.Draft7Validator(self.body, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)

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


@functools.cache
def tenant_schema(name: str, tenant_id: str, max_errors: int = 5) -> Schema:
    """A compiled schema of ``schemas/``; compiling takes ~0.15 s, so emulators started per test share it."""
    return Schema(load_schema(name, tenant_id), max_errors=max_errors)


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
