"""XDM schemas as the target validates entities against them: closed like AEP's streaming validation, pruned to
what a mapping writes, compiled. No HTTP here (``schema_registry.py`` loads schemas): conversion workers import it.
"""

from __future__ import annotations

from typing import Any

import fastjsonschema

# "$ref/allOf resolved" form; version must be 1 (EN help/xdm/api/getting-started.md).
XED_FULL = "application/vnd.adobe.xed-full+json; version=1"
# XDM uses draft-07 formats (e.g. ``date``) in schemas that declare draft-06; check them all.
_FORMATS = {"date": r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"}


class XdmSchemaError(ValueError):
    """An XDM schema the target cannot compile into a validator (found when the stream's SCHEMA arrives)."""


def _refuse_remote(uri: str) -> Any:
    msg = f"the XDM schema references {uri}; use the resolved xed-full form ({XED_FULL})"
    raise XdmSchemaError(msg)


def closed(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object that lists properties and says nothing.

    AEP's Streaming Validation Service rejects extraneous keys ("extraneous key [workEmail] is not permitted",
    EN help/ingestion/quality/streaming-validation.md) although the registry's schemas do not say so.
    """
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: closed(value) if key not in ("enum", "const", "default", "examples") else value
              for key, value in schema.items()}  # fmt: skip
    if isinstance(schema.get("properties"), dict) and "additionalProperties" not in schema:
        result["additionalProperties"] = False
    return result


# Keywords under which pruning stops: their subschemas constrain values in ways a path tree cannot follow.
_UNPRUNABLE = ("allOf", "anyOf", "oneOf", "not", "if", "$ref", "patternProperties", "dependencies")


def pruned(schema: Any, tree: dict[str, Any] | None) -> Any:
    """``schema`` without the properties a mapping cannot write (``tree``, see ``StreamMapping.output_tree``).

    A converted entity only holds keys of ``tree``, so validating it against the pruned schema gives the same
    verdict as against the whole one; what changes is the cost: compiled validators test every declared
    property of each object they visit, and an XDM class with its field groups declares hundreds. ``required``
    and ``additionalProperties`` stay as they are, so missing and extraneous keys are still refused.
    """
    if tree is None or not isinstance(schema, dict) or any(key in schema for key in _UNPRUNABLE):
        return schema
    result = dict(schema)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        result["properties"] = {key: pruned(sub, tree[key]) for key, sub in properties.items() if key in tree}
    if isinstance(schema.get("items"), dict):
        result["items"] = pruned(schema["items"], tree)
    return result


def reduced(schema: Any, output_tree: dict[str, Any] | None) -> Any:
    """``schema`` as the target validates entities against it: closed, then pruned to ``output_tree``."""
    return pruned(closed(schema), output_tree)


class XdmValidator:
    """One compiled XDM schema (``reduced`` to what one mapping writes)."""

    def __init__(self, schema_id: str, schema: dict) -> None:
        self.schema_id = schema_id
        self._validate = fastjsonschema.compile(
            schema, handlers={"http": _refuse_remote, "https": _refuse_remote}, formats=_FORMATS
        )

    def error(self, entity: dict) -> str | None:
        """Why ``entity`` is invalid, or None when it is valid."""
        try:
            self._validate(entity)
        except fastjsonschema.JsonSchemaValueException as exc:
            return exc.message.replace("data", "xdm", 1)
        return None
