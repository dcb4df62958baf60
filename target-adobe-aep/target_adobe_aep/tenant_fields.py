"""The tenant field group, built from the mappings: every path under ``_{tenant_id}`` that a stream's mapping can
write, with the type the mapping writes there (``StreamMapping.written``). The mappings stay the one source of truth:
``provision`` creates this field group, and preflight checks each mapping against the schema that holds it.

Fields are written the way EN help/xdm/tutorials/custom-fields-api.md defines them: ``type`` (and ``format`` for
dates), ``items`` for arrays, ``properties`` for objects, and for maps ``type: object`` with ``meta:xdmType: map``
and a single ``additionalProperties`` schema (the one case where the request carries ``meta:xdmType``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from target_adobe_aep.mapping import StreamMapping
from target_adobe_aep.xdm_schema import described


@dataclass
class TenantFields:
    """The ``_{tenant_id}`` object's schema, and why it could not take a path some mapping writes."""

    tenant_object: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    problems: list[str] = field(default_factory=list)


def _title(name: str) -> str:
    """``pointsLedger`` -> ``Points Ledger``: the field's display name in the Schema Editor."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").strip().title() or name


def _same_type(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if (a.get("type"), a.get("format")) != (b.get("type"), b.get("format")):
        return False
    return all(_same_type(a[key], b[key]) for key in ("items", "additionalProperties") if key in a and key in b)


def _field(written: dict[str, Any], name: str) -> dict[str, Any]:
    """The field definition of what a mapping writes, with a title; a list of objects gets their fields later."""
    result: dict[str, Any] = {"title": _title(name), **written}
    if isinstance(written.get("additionalProperties"), dict):
        result["meta:xdmType"] = "map"
    if isinstance(written.get("items"), dict):
        result["items"] = {**written["items"]}
        if result["items"].get("type") == "object":
            result["items"]["properties"] = {}
    return result


def _container(node: dict[str, Any] | None) -> bool:
    """Whether ``node`` is an object that lists its fields (not a map, not a value)."""
    if not isinstance(node, dict):
        return False
    return node.get("type") == "object" and "properties" in node and "meta:xdmType" not in node


def _place(root: dict[str, Any], path: tuple[str, ...], written: dict[str, Any]) -> dict[str, Any] | str:
    """Put ``written`` at ``path`` below ``root`` (``"[]"``: into a list's items), creating the objects on the way;
    the field placed there, or why it cannot be."""
    node = root
    for index, step in enumerate(path[:-1]):
        if step == "[]":
            node = node["items"]
            continue
        into_items = path[index + 1] == "[]"
        made = ({"type": "array", "items": {"type": "object", "properties": {}}} if into_items
                else {"type": "object", "properties": {}})  # fmt: skip
        child = node["properties"].setdefault(step, {"title": _title(step), **made})
        if not _container(child.get("items") if into_items else child):
            return f"{step} is written whole as {described(child)} and also has fields written inside it"
        node = child
    leaf = path[-1]
    existing = node["properties"].get(leaf)
    if existing is None:
        node["properties"][leaf] = placed = _field(written, leaf)
        return placed
    if not _same_type(existing, written):
        return f"written as {described(existing)} by one mapping and as {described(written)} by another"
    return existing


def _objects(node: dict[str, Any], path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every object below ``node`` that lists its fields, with its path."""
    if _container(node):
        yield path, node
        for name, child in node["properties"].items():
            yield from _objects(child, (*path, name))
    elif isinstance(node.get("items"), dict):
        yield from _objects(node["items"], (*path, "[]"))


def tenant_fields(mappings: Iterable[StreamMapping], tenant_id: str) -> TenantFields:
    """The tenant object that takes every ``_{tenant_id}`` path of ``mappings``, each field described with the
    streams that write it."""
    fields = TenantFields()
    tenant = f"_{tenant_id}"
    writers: dict[int, tuple[dict[str, Any], set[str]]] = {}
    for mapping in mappings:
        for path, written in mapping.written.items():
            if path[0] != tenant:
                continue
            name = ".".join(path).replace(".[]", "[]")
            if written is None:
                fields.problems.append(
                    f"stream {mapping.stream!r} ({mapping.origin}) writes {name} without saying its type: give the "
                    "rule a transform that does (string, number, integer, timestamp, boolean, string_values, ...)"
                )
                continue
            placed = _place(fields.tenant_object, path[1:], written)
            if isinstance(placed, str):
                fields.problems.append(f"{name}: {placed} (stream {mapping.stream!r}, {mapping.origin})")
            else:
                writers.setdefault(id(placed), (placed, set()))[1].add(mapping.stream)
    for placed, streams in writers.values():
        placed["description"] = f"Written by target-adobe-aep from stream(s) {', '.join(sorted(streams))}."
    for path, node in _objects(fields.tenant_object, (tenant,)):
        if not node["properties"]:
            fields.problems.append(f"{'.'.join(path).replace('.[]', '[]')}: an object no rule writes a field into")
    return fields
