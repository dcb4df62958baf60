"""Build the Adobe emulator's standard XDM components from a checkout of github.com/adobe/xdm.

    python emulators/scripts/xdm_schemas.py PATH/TO/adobe-xdm [--commit SHA]

Each component (an XDM class with its behaviours, or a standard field group) is resolved into the shape the Schema
Registry serves for ``Accept: application/vnd.adobe.xed-full+json; version=1`` (EN ``help/xdm/api/schemas.md``; the
complete "Loyalty Members" schema in EN ``help/xdm/tutorials/create-schema-api.md`` shows it): ``$ref``/``allOf``
resolved, properties sorted, ``xdm:`` prefixes dropped (``@id`` -> ``_id``), other namespaces grouped under
``_<namespace>`` (``repo:createDate`` -> ``_repo.createDate``), each field with ``meta:xdmType`` and
``meta:xdmField``, data types marked ``meta:referencedFrom``, and no ``additionalProperties`` except on maps (AEP
does not declare objects closed; its Streaming Validation Service closes them, and so does the emulator).
Localisation ids and library bookkeeping (``meta:titleId``, ``meta:license``, ``meta:status``, ...) are left out.

The emulator composes a schema from its class, these field groups and the tenant's own field groups, as the Schema
Registry does (``emulators.adobe.xdm.compose``). adobe/xdm is licensed CC BY 4.0; the commit and licence are written
into every generated file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from emulators.adobe.xdm import merged, xdm_type

OUT = Path(__file__).resolve().parents[1] / "emulators" / "adobe" / "schemas" / "standard"
PROFILE = "https://ns.adobe.com/xdm/context/profile"
EXPERIENCE_EVENT = "https://ns.adobe.com/xdm/context/experienceevent"
IDENTITY_MAP = "https://ns.adobe.com/xdm/context/identitymap"
#: The classes and standard field groups the emulator serves (the field groups target-adobe-aep's provision puts in
#: its schemas, emulators/README.md).
COMPONENTS = (
    PROFILE,
    EXPERIENCE_EVENT,
    IDENTITY_MAP,
    "https://ns.adobe.com/xdm/context/profile-person-details",  # Demographic Details
    "https://ns.adobe.com/xdm/context/profile-personal-details",  # Personal Contact Details
    "https://ns.adobe.com/xdm/mixins/profile/profile-loyalty-details",  # Loyalty Details
    "https://ns.adobe.com/xdm/context/experienceevent-commerce",  # Commerce Details
)
# JSON-LD context of every XDM resource: no field, and absent from xed-full.
CONTEXT_REF = "https://ns.adobe.com/xdm/common/extensible#/definitions/@context"
# Annotations the registry serves with each field; everything else of the source files is left out.
KEPT = (
    "title", "type", "format", "description", "pattern", "enum", "const", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "default", "examples",
    "meta:enum", "meta:immutable", "meta:usereditable",
)  # fmt: skip


class Library:
    """Every schema document of the checkout, by ``$id``."""

    def __init__(self, root: Path) -> None:
        self.documents: dict[str, dict] = {}
        for path in sorted((*root.glob("components/**/*.schema.json"), *root.glob("extensions/**/*.schema.json"))):
            document = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(document, dict) and "$id" in document:
                self.documents[document["$id"]] = document

    def target(self, ref: str, current: dict) -> tuple[dict, dict]:
        """The node ``ref`` points at and the document it lives in."""
        base, _, fragment = ref.partition("#")
        document = self.documents[base] if base else current
        node = document
        for part in filter(None, fragment.split("/")):
            node = node[part]
        return node, document


def field_name(name: str) -> tuple[str, str | None]:
    """``(key in the payload, namespace object it goes into)``: ``xdm:x`` -> x, ``@id`` -> _id, ``repo:x`` -> x
    inside ``_repo``."""
    if name.startswith("@"):
        return f"_{name[1:]}", None
    namespace, colon, local = name.partition(":")
    if not colon:
        return name, None
    return (local, None) if namespace == "xdm" else (local, f"_{namespace}")


class Resolver:
    def __init__(self, library: Library) -> None:
        self.library = library

    def node(self, node: dict, document: dict) -> dict:
        """``node`` with every ``$ref``/``allOf`` resolved, in xed-full form."""
        parts: list[dict] = []
        if "$ref" in node and node["$ref"] != CONTEXT_REF:
            target, target_document = self.library.target(node["$ref"], document)
            resolved = self.node(target, target_document)
            if "#" not in node["$ref"] and "properties" in resolved:
                resolved["meta:referencedFrom"] = node["$ref"]
            parts.append(resolved)
        for member in node.get("allOf", []):
            if member.get("$ref") != CONTEXT_REF:
                parts.append(self.node(member, document))
        own: dict[str, Any] = {key: node[key] for key in KEPT if key in node}
        if isinstance(node.get("properties"), dict):
            own["properties"] = self.properties(node["properties"], document)
        if isinstance(node.get("items"), dict):
            own["items"] = self.node(node["items"], document)
        if isinstance(node.get("additionalProperties"), dict):
            own["additionalProperties"] = self.node(node["additionalProperties"], document)
        if node.get("required"):
            own["required"] = [field_name(name)[0] for name in node["required"]]
        if "meta:xdmType" in node:
            own["meta:xdmType"] = node["meta:xdmType"]
        result = merged([*parts, own])
        if "properties" in result:
            result["type"] = "object"
        if result.get("type") or "properties" in result:
            result.setdefault("meta:xdmType", xdm_type(result))
        return result

    def properties(self, properties: dict, document: dict) -> dict:
        result: dict[str, Any] = {}
        for name, schema in properties.items():
            key, namespace = field_name(name)
            field = {**self.node(schema, document), "meta:xdmField": name}
            if namespace is None:
                result[key] = field
            else:
                group = result.setdefault(namespace, {"properties": {}, "type": "object", "meta:xdmType": "object",
                                                      "meta:xedConverted": True})  # fmt: skip
                group["properties"][key] = field
        return result


# Key order of the registry's answers: annotations first, then the structure, then the XDM bookkeeping.
FIRST = ("title", "type", "format", "description")
LAST = (
    "properties",
    "items",
    "additionalProperties",
    "required",
    "meta:xdmType",
    "meta:xedConverted",
    "meta:referencedFrom",
    "meta:xdmField",
)


def tidy(node: Any) -> Any:
    """Keys in the registry's order and properties in name order, as the registry serves them."""
    if isinstance(node, list):
        return [tidy(item) for item in node]
    if not isinstance(node, dict):
        return node
    order = {key: index for index, key in enumerate((*FIRST, *sorted(set(node) - set(FIRST) - set(LAST)), *LAST))}
    result = {key: tidy(node[key]) for key in sorted(node, key=order.__getitem__)}
    if isinstance(result.get("properties"), dict):
        result["properties"] = dict(sorted(result["properties"].items()))
    return result


def standard_part(library: Library, component_id: str, commit: str) -> dict:
    """A class (with its behaviours) or a field group, resolved; a schema merges its components' properties."""
    document = library.documents[component_id]
    whole = Resolver(library).node({"allOf": [{"$ref": component_id}]}, document)
    part: dict[str, Any] = {
        "$comment": (
            f"Generated by emulators/scripts/xdm_schemas.py from https://github.com/adobe/xdm at commit {commit}: "
            f"{component_id}. adobe/xdm is licensed under the Creative Commons Attribution 4.0 International "
            "licence (CC BY 4.0, https://creativecommons.org/licenses/by/4.0/); this file adapts it (resolved into "
            "the xed-full form)."
        ),
        "$id": component_id,
        "title": document["title"],
        "meta:resourceType": "mixins" if "meta:intendedToExtend" in document else "classes",
    }
    if "meta:intendedToExtend" in document:
        part["meta:intendedToExtend"] = document["meta:intendedToExtend"]
    else:
        part["meta:extends"] = document.get("meta:extends", [])
    part["required"] = whole.get("required", [])
    part["properties"] = tidy({"properties": whole["properties"]})["properties"]
    return part


def checkout_commit(root: Path) -> str:
    result = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit("not a git checkout: pass the adobe/xdm commit with --commit")
    return result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="directory of an adobe/xdm checkout")
    parser.add_argument("--commit", help="the checkout's commit (default: git rev-parse HEAD in it)")
    args = parser.parse_args()
    library = Library(args.checkout)
    commit = args.commit or checkout_commit(args.checkout)
    OUT.mkdir(parents=True, exist_ok=True)
    for path in OUT.glob("*.json"):
        path.unlink()
    for component_id in COMPONENTS:
        part = standard_part(library, component_id, commit)
        name = component_id.rstrip("/").rsplit("/", 1)[-1]
        (OUT / f"{name}.json").write_text(json.dumps(part, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
