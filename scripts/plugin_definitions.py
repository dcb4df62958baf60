"""Meltano plugin definitions of both plugins, generated from their ``--about --format=json``.

Writes the Meltano Hub definition files (``hub/<type>/<name>/<variant>.yml``, the layout of the
meltano/hub repository) and the ``plugins`` section of ``meltano.yml``, so that settings, labels, kinds,
sensitivity, capabilities and Python versions never drift from what the plugins themselves declare. The
settings follow the Hub's own generator (meltano/hub ``hub-utils/hub_utils/meltano_util.py``): a setting's
``title`` is its label (else one is made from its name), an ``enum`` is ``kind: options``; a ``secret``
setting is ``sensitive: true`` (Meltano deprecates ``kind: password``).

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
# Files of the default branch, as the Hub links them (logos under hub/logos/).
RAW_URL = REPO_URL.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main"
ACRONYMS = {"url": "URL", "id": "ID", "ids": "IDs", "ims": "IMS", "xdm": "XDM", "api": "API", "aep": "AEP"}
# A trailing unit word of a setting name becomes a parenthesised unit in its label ("Lookback (minutes)").
UNITS = {"ms": "ms", "seconds": "seconds", "minutes": "minutes", "days": "days", "bytes": "bytes", "percent": "%"}
# What the target needs to load with the default mapping presets: customers go to the profile dataset, every
# other stream to the event dataset.
AEP_CREDENTIALS = ["client_id", "client_secret", "org_id"]
AEP_DESTINATIONS = ["profile_dataset_id", "profile_schema_id", "event_dataset_id", "event_schema_id"]

PLUGINS: dict[str, dict[str, Any]] = {
    "tap-capillary": {
        "type": "extractors",
        "namespace": "tap_capillary",
        "label": "Capillary",
        "description": "Loyalty data from the Capillary platform: customers, points, tiers, rewards and transactions",
        "domain_url": "https://docs.capillarytech.com",
        "keywords": ["meltano_sdk", "loyalty", "capillary", "crm"],
        # OAuth or Basic auth; start_date: a stream without state yet cannot start without it.
        "settings_group_validation": [
            ["base_url", "client_key", "client_secret", "start_date"],
            ["base_url", "username", "password", "start_date"],
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
        # Sending; a dry run (no inlet) with the schemas from local files, or from the Schema Registry.
        "settings_group_validation": [
            [*AEP_CREDENTIALS, "tenant_id", "inlet_url", *AEP_DESTINATIONS],
            ["dry_run", "tenant_id", "schema_files", *AEP_DESTINATIONS],
            ["dry_run", *AEP_CREDENTIALS, "tenant_id", *AEP_DESTINATIONS],
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
            "provision": {
                "executable": "target-adobe-aep-admin",
                "args": "provision --config ENV",
                "description": "Find or create in AEP what the target writes to (field group, schemas, identity "
                "namespaces, datasets, streaming connection, a dataflow per dataset), print the settings to use, then "
                "check; add --plan to change nothing, --profile-enabled for Profile (irreversible), --meltano-config "
                "to store the settings.",
            },
            "report": {
                "executable": "target-adobe-aep-admin",
                "args": "report --config ENV",
                "description": "What AEP did with what was sent: batches per dataset and status, failed records with "
                "AEP's validation errors joined back to stream and key, inlet metrics; add --since 24h, "
                "--dead-letter.",
            },
        },
    },
}


def label(name: str) -> str:
    """A label for a setting that declares no ``title``: ``retry_backoff_ms`` -> ``Retry Backoff (ms)``."""
    *words, last = name.split("_")
    unit = UNITS.get(last) if words else None
    text = " ".join(ACRONYMS.get(word, word.capitalize()) for word in (words if unit else [*words, last]))
    return f"{text} ({unit})" if unit else text


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
        setting: dict[str, Any] = {"name": name, "label": schema.get("title") or label(name), "kind": kind(schema)}
        if "enum" in schema:
            setting["kind"] = "options"
            setting["options"] = [
                {"label": label(str(value).replace("-", "_")), "value": value} for value in schema["enum"]
            ]
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
        "logo_url": f"{RAW_URL}/hub/logos/{plugin}.svg",
        "capabilities": about_json["capabilities"],
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
        "capabilities": about_json["capabilities"],
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
