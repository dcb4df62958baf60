"""XDM schemas as the target validates entities against them: closed like AEP's streaming validation, pruned to
what a mapping writes, compiled. No HTTP here (``schema_registry.py`` loads schemas): conversion workers import it.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import fastjsonschema

# "$ref/allOf resolved" form; version must be 1 (EN help/xdm/api/getting-started.md).
XED_FULL = "application/vnd.adobe.xed-full+json; version=1"

# Formats as JSON Schema defines them (draft 7, section 7.3), never stricter: AEP validates against the same
# schema, and a record refused here for nothing would be lost to the dead letter. fastjsonschema's own checks are
# regular expressions that accept 1990-02-30 and refuse john.doe@gmail.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII)
# RFC 5321 section 4.1.2 Mailbox (a dot-string or quoted local part; a domain of letter-digit-hyphen labels, no
# top-level domain needed, or an address literal), with RFC 6531's UTF-8 allowed in both parts (idn-email).
_UTF8 = "\u0080-\U0010ffff"
_ATOM = rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~\-{_UTF8}]+"
_QUOTED = rf'"(?:[\x20\x21\x23-\x5b\x5d-\x7e{_UTF8}]|\\[\x20-\x7e])*"'
_LABEL = rf"[A-Za-z0-9{_UTF8}](?:[A-Za-z0-9\-{_UTF8}]*[A-Za-z0-9{_UTF8}])?"
_EMAIL = re.compile(rf"(?:{_ATOM}(?:\.{_ATOM})*|{_QUOTED})@(?:{_LABEL}(?:\.{_LABEL})*|\[[\x21-\x5a\x5e-\x7e]+\])")


def _is_date(value: str) -> bool:
    try:
        return _DATE.fullmatch(value) is not None and bool(datetime.date.fromisoformat(value))
    except ValueError:  # no such day: 1990-02-30
        return False


def _is_date_time(value: str) -> bool:
    if _DATE_TIME.fullmatch(value) is None:
        return False
    for text in (value, value.upper()):  # Python reads neither a lower-case "z" nor a leap second
        try:
            return bool(datetime.datetime.fromisoformat(text if text[17:19] != "60" else f"{text[:17]}59{text[19:]}"))
        except ValueError:
            continue
    return False


FORMATS = {"date": _is_date, "date-time": _is_date_time, "email": lambda value: _EMAIL.fullmatch(value) is not None}


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
        # use_default=False: validation is a check and never writes into the entity (fastjsonschema's default fills
        # in the schema's defaults, e.g. person.maritalStatus "not_specified", which the mapping never wrote).
        self._validate = fastjsonschema.compile(
            schema, handlers={"http": _refuse_remote, "https": _refuse_remote}, formats=FORMATS, use_default=False
        )

    def error(self, entity: dict) -> str | None:
        """Why ``entity`` is invalid, or None when it is valid."""
        try:
            self._validate(entity)
        except fastjsonschema.JsonSchemaValueException as exc:
            return exc.message.replace("data", "xdm", 1)
        return None


def _field(schema: dict, path: tuple[str, ...]) -> dict | None:
    """The schema of the field at ``path`` (``"[]"``: a list's items); None when the schema has no such field."""
    node: Any = schema
    for step in path:
        if step == "[]":
            node = node.get("items") if node.get("type") == "array" else None
        elif isinstance(node.get("properties"), dict) and step in node["properties"]:
            node = node["properties"][step]
        elif isinstance(node.get("additionalProperties"), dict):  # a map: any key
            node = node["additionalProperties"]
        elif "properties" not in node and node.get("type", "object") == "object" and "additionalProperties" not in node:
            return {}  # an object that says nothing of its fields takes any
        else:
            return None
        if not isinstance(node, dict):
            return None
    return node


def _takes(field: dict, written: dict) -> bool:
    """Whether a field of schema ``field`` takes what a mapping writes where its field is ``written``."""
    types = field.get("type")
    types = {types} if isinstance(types, str) else set(types or ())
    if not types:
        return True
    kind, form = written.get("type"), written.get("format")
    if form in ("date-time", "date"):
        return "string" in types and field.get("format") in (None, form)
    if kind == "integer":
        return bool(types & {"integer", "number"})
    if kind not in types:
        return False
    inner = "items" if kind == "array" else "additionalProperties"  # a list's items, a map's values
    if isinstance(written.get(inner), dict) and isinstance(field.get(inner), dict):
        return _takes(field[inner], written[inner])
    return True


def described(field: dict) -> str:
    """``field``'s type in a few words: ``date-time``, ``array of string``, ``object of string`` (a map)."""
    inner = field.get("items") or field.get("additionalProperties")
    text = field.get("format") or str(field.get("type", "any value"))
    return f"{text} of {described(inner)}" if isinstance(inner, dict) else text


def unwritable(schema: dict, written: dict[tuple[str, ...], dict | None]) -> list[str]:
    """The paths of ``written`` (``StreamMapping.written``) that ``schema`` lacks or types otherwise."""
    problems = []
    for path, wanted in written.items():
        field = _field(schema, path)
        name = ".".join(path).replace(".[]", "[]")
        if field is None:
            problems.append(f"{name} (not in the schema)")
        elif wanted is not None and not _takes(field, wanted):
            found = " ".join(str(field.get(key)) for key in ("type", "format") if field.get(key))
            problems.append(f"{name} (the mapping writes {described(wanted)}, the schema has {found})")
    return problems
