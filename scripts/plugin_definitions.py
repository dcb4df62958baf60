"""Meltano plugin definitions of both plugins, generated from their ``--about --format=json``.

Writes the Meltano Hub definition files (``hub/<type>/<name>/<variant>.yml``, the layout of the
meltano/hub repository) and the ``plugins`` section of ``meltano.yml``, so that settings, kinds,
sensitivity and capabilities never drift from what the plugins themselves declare.

    python scripts/plugin_definitions.py          # rewrite the files
    python scripts/plugin_definitions.py --check  # exit 1 and name the stale files (run by the tests)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
VARIANT = "loyalty-to-aep"
REPO_URL = "https://github.com/loyalty-to-aep/capillary-aep-meltano"
ACRONYMS = {"url": "URL", "id": "ID", "ids": "IDs", "ims": "IMS", "xdm": "XDM", "api": "API", "aep": "AEP"}

PLUGINS: dict[str, dict[str, Any]] = {
    "tap-capillary": {
        "type": "extractors",
        "namespace": "tap_capillary",
        "label": "Capillary",
        "description": "Loyalty data from the Capillary platform: customers, points, tiers, rewards and transactions",
        "domain_url": "https://docs.capillarytech.com",
        "keywords": ["meltano_sdk", "loyalty", "capillary", "crm"],
        # Capabilities Meltano must know about (``state`` above all: without it no state is passed in).
        "capabilities": ["catalog", "discover", "state", "about", "stream-maps", "schema-flattening"],
        "settings_group_validation": [
            ["base_url", "client_key", "client_secret"],
            ["base_url", "username", "password"],
        ],
        "select": ["*.*"],
    },
    "target-adobe-aep": {
        "type": "loaders",
        "namespace": "target_adobe_aep",
        "label": "Adobe Experience Platform",
        "description": "Streams Singer records into Adobe Experience Platform datasets as XDM (HTTP API streaming)",
        "domain_url": "https://experienceleague.adobe.com/en/docs/experience-platform",
        "keywords": ["meltano_sdk", "adobe", "aep", "xdm", "cdp"],
        "capabilities": ["about", "stream-maps", "schema-flattening", "validate-records"],
        "settings_group_validation": [
            ["client_id", "client_secret", "org_id", "inlet_url", "tenant_id"],
            ["inlet_url", "tenant_id", "dry_run"],
        ],
        # Meltano passes the plugin's settings to a command as TARGET_ADOBE_AEP_* variables (its invoker's env),
        # which the SDK reads with --config ENV.
        "commands": {
            "check": {
                "executable": "target-adobe-aep-admin",
                "args": "check --config ENV",
                "description": "Check the settings against Adobe (token, tenant, schemas, datasets, inlet, mappings) "
                "without sending data; add --stream NAME to check only the mappings of the streams you load.",
            },
        },
    },
}


def label(name: str) -> str:
    return " ".join(ACRONYMS.get(word, word.capitalize()) for word in name.split("_"))


def kind(schema: dict[str, Any]) -> str:
    types = schema.get("type", "string")
    types = [t for t in ([types] if isinstance(types, str) else types) if t != "null"] or ["string"]
    if schema.get("format") == "date-time":
        return "date_iso8601"
    return {"boolean": "boolean", "integer": "integer", "number": "decimal", "object": "object", "array": "array"}.get(
        types[0], "string"
    )


def about(plugin: str) -> dict[str, Any]:
    executable = Path(sys.executable).parent / plugin
    output = subprocess.run([str(executable), "--about", "--format=json"], capture_output=True, text=True, check=True)
    return json.loads(output.stdout)


def settings(about_json: dict[str, Any]) -> list[dict[str, Any]]:
    result = []
    for name, schema in about_json["settings"]["properties"].items():
        setting: dict[str, Any] = {"name": name, "label": label(name), "kind": kind(schema)}
        if schema.get("description"):
            setting["description"] = schema["description"]
        if schema.get("secret"):
            setting["sensitive"] = True
        if "default" in schema and schema["default"] is not None:
            setting["value"] = schema["default"]
        result.append(setting)
    return result


def hub_definition(plugin: str, spec: dict[str, Any], about_json: dict[str, Any]) -> dict[str, Any]:
    definition = {
        "name": plugin,
        "namespace": spec["namespace"],
        "variant": VARIANT,
        "label": spec["label"],
        "description": spec["description"],
        "domain_url": spec["domain_url"],
        "repo": REPO_URL,
        "pip_url": f"git+{REPO_URL}.git#subdirectory={plugin}",
        "executable": plugin,
        "capabilities": spec["capabilities"],
        "keywords": spec["keywords"],
        "maintenance_status": "active",
        "quality": "silver",
        "supported_python_versions": about_json["supported_python_versions"],
        "settings_group_validation": spec["settings_group_validation"],
        "settings": settings(about_json),
    }
    for key in ("select", "commands"):
        if key in spec:
            definition[key] = spec[key]
    return definition


def meltano_plugin(plugin: str, spec: dict[str, Any], about_json: dict[str, Any]) -> dict[str, Any]:
    entry = {
        "name": plugin,
        "namespace": spec["namespace"],
        "pip_url": f"-e ./{plugin}",
        "executable": plugin,
        "capabilities": spec["capabilities"],
        "settings_group_validation": spec["settings_group_validation"],
        "settings": settings(about_json),
    }
    for key in ("select", "commands"):
        if key in spec:
            entry[key] = spec[key]
    return entry


def dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)


def rendered_files() -> dict[Path, str]:
    meltano_path = ROOT / "meltano.yml"
    project = yaml.safe_load(meltano_path.read_text())
    files: dict[Path, str] = {}
    for plugin, spec in PLUGINS.items():
        about_json = about(plugin)
        hub_path = ROOT / "hub" / spec["type"] / plugin / f"{VARIANT}.yml"
        files[hub_path] = dump(hub_definition(plugin, spec, about_json))
        project["plugins"][spec["type"]] = [meltano_plugin(plugin, spec, about_json)]
    files[meltano_path] = dump(project)
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale files instead of writing them")
    args = parser.parse_args()
    stale = []
    for path, text in rendered_files().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        sys.stderr.write(f"stale plugin definitions (run scripts/plugin_definitions.py): {stale}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
