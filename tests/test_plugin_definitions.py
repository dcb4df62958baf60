"""The Meltano Hub files (hub/) and the plugin sections of meltano.yml: in sync with what the plugins declare
(``--about``), and valid against the Hub's own JSON schemas (vendored in hub/schemas/)."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from typing import Any

import pytest
import yaml
from harness import ROOT
from jsonschema import Draft7Validator
from plugin_definitions import PLUGINS, RAW_URL, VARIANT, about
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

HUB_SCHEMAS = ROOT / "hub" / "schemas"


def hub_definition(plugin: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "hub" / PLUGINS[plugin]["type"] / plugin / f"{VARIANT}.yml").read_text())


def meltano_definition(plugin: str) -> dict[str, Any]:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    (definition,) = (p for p in project["plugins"][PLUGINS[plugin]["type"]] if p["name"] == plugin)
    return definition


@cache
def plugin_about(plugin: str) -> dict[str, Any]:
    return about(plugin)


@cache
def hub_validator(plugin_type: str) -> Draft7Validator:
    """The Hub's schema of a plugin type, its ``$ref``s resolved by the ``$id`` of each vendored file."""
    resources = []
    for path in HUB_SCHEMAS.glob("*/*.schema.json"):
        contents = json.loads(path.read_text())
        resources.append((contents["$id"], Resource.from_contents(contents, default_specification=DRAFT7)))
    registry: Registry = Registry().with_resources(resources)
    schema = registry.contents(f"{plugin_type}.schema.json")
    return Draft7Validator(schema, registry=registry, format_checker=Draft7Validator.FORMAT_CHECKER)


def test_hub_files_and_meltano_yml_are_in_sync_with_the_plugins() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "plugin_definitions.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("plugin", PLUGINS)
def test_hub_file_is_valid_against_the_hub_schema(plugin: str) -> None:
    validator = hub_validator(PLUGINS[plugin]["type"])
    definition = hub_definition(plugin)
    assert [error.message for error in validator.iter_errors(definition)] == []
    # The schema is enforced, down to the settings (resolved through two $refs): a misspelled key or kind fails.
    broken = {**definition, "capabilites": [], "settings": [{**definition["settings"][0], "kind": "secret"}]}
    assert len(list(validator.iter_errors(broken))) == 2


@pytest.mark.parametrize("plugin", PLUGINS)
def test_definitions_declare_what_the_plugin_declares(plugin: str) -> None:
    declared = plugin_about(plugin)
    properties = declared["settings"]["properties"]
    hub = hub_definition(plugin)
    for definition in (hub, meltano_definition(plugin)):
        assert definition["capabilities"] == declared["capabilities"]
        settings = {setting["name"]: setting for setting in definition["settings"]}
        assert list(settings) == list(properties)
        sensitive = {name for name, setting in settings.items() if setting.get("sensitive")}
        assert sensitive == {name for name, schema in properties.items() if schema.get("secret")}
        assert sensitive  # both plugins have secrets
        titled = {name: schema["title"] for name, schema in properties.items() if schema.get("title")}
        assert {name: settings[name]["label"] for name in titled} == titled
        for group in definition["settings_group_validation"]:
            assert set(group) <= set(properties), group
    assert hub["supported_python_versions"] == declared["supported_python_versions"]


@pytest.mark.parametrize("plugin", PLUGINS)
def test_hub_logo_is_a_file_of_this_repository(plugin: str) -> None:
    logo_url = hub_definition(plugin)["logo_url"]
    assert logo_url.startswith(f"{RAW_URL}/")
    assert (ROOT / logo_url.removeprefix(f"{RAW_URL}/")).is_file()
