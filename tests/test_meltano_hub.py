"""The Meltano Hub definitions in hub/: a fresh Meltano project adds both plugins from them and runs the pipeline,
each plugin configured with the settings of its first settings group and, beyond them, only settings that have a
default (so the group lists every setting a run needs)."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from harness import (
    MELTANO_BIN,
    OFFLINE_ENV,
    ROOT,
    canonical_records,
    dev_config,
    dev_environment,
    differences,
    keys,
    stored_records,
)
from pipeline import meltano, pipeline_env

from emulators.capillary import ADMIN
from emulators.server import BackgroundServer

PLUGINS = {"extractor": "tap-capillary", "loader": "target-adobe-aep"}


def hub_file(plugin_type: str, name: str) -> Path:
    return ROOT / "hub" / f"{plugin_type}s" / name / "loyalty-to-aep.yml"


def env_prefix(name: str) -> str:
    return name.upper().replace("-", "_") + "_"


def settings_as_env(plugin_type: str, name: str) -> dict[str, str]:
    """The plugin's dev-environment settings of meltano.yml as ``<PLUGIN>_<SETTING>`` variables, the way a user
    would configure the plugins (object values as JSON)."""
    return {
        f"{env_prefix(name)}{setting.upper()}": json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        for setting, value in dev_config(f"{plugin_type}s", name).items()
        if setting != "mappings"  # a path inside this repository; the fresh project uses the built-in presets
    }


@pytest.mark.capillary(customers=12, history_days=30, seed=3)
def test_fresh_project_adds_the_plugins_from_the_hub_files_and_runs(
    capillary_emulator: BackgroundServer, adobe_emulator: BackgroundServer, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    env = {**os.environ, **OFFLINE_ENV}

    def command(*args: str, cwd: Path = project) -> None:
        result = subprocess.run([MELTANO_BIN, *args], cwd=cwd, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"meltano {' '.join(args)}:\n{result.stdout}{result.stderr}"

    command("init", project.name, "--no_usage_stats", cwd=tmp_path)
    for plugin_type, name in PLUGINS.items():
        command(
            "add", "--plugin-type", plugin_type, "--from-ref", str(hub_file(plugin_type, name)), "--no-install", name
        )

    # The Hub files install from the project's git repository; here pip_url points at the local packages
    # instead (tests are offline) and uv installs their dependencies from its cache.
    definition = yaml.safe_load((project / "meltano.yml").read_text())
    definition["venv"] = {"backend": "uv"}
    for plugin_type, name in PLUGINS.items():
        (plugin,) = definition["plugins"][f"{plugin_type}s"]
        assert plugin["name"] == name
        assert plugin["pip_url"] == yaml.safe_load(hub_file(plugin_type, name).read_text())["pip_url"]
        plugin["pip_url"] = str(ROOT / name)
    (project / "meltano.yml").write_text(yaml.safe_dump(definition, sort_keys=False))
    command("install")

    capillary, adobe = capillary_emulator, adobe_emulator
    start = datetime.fromisoformat(capillary.config.anchor_time) - timedelta(days=capillary.config.history_days + 1)
    # The dev environment's settings of meltano.yml, as a user would set them; this test's emulators, start date,
    # system database and dead letter come on top.
    run_env = {
        **settings_as_env("extractor", "tap-capillary"),
        **settings_as_env("loader", "target-adobe-aep"),
        **pipeline_env(capillary, adobe, tmp_path, start, **dev_environment()["env"], **OFFLINE_ENV),
    }
    for plugin_type, name in PLUGINS.items():
        hub = yaml.safe_load(hub_file(plugin_type, name).read_text())
        configured = {
            key.removeprefix(env_prefix(name)).lower()
            for key in run_env.keys() - os.environ.keys()
            if key.startswith(env_prefix(name))
        }
        group = set(hub["settings_group_validation"][0])
        defaults = {setting["name"] for setting in hub["settings"] if "value" in setting}
        assert group <= configured, name
        assert configured - group <= defaults, f"{name}: settings outside the group without a default"
    result = meltano(
        MELTANO_BIN, ["--cwd", str(project), "run", "tap-capillary", "target-adobe-aep"], run_env, tmp_path / "run.log"
    )
    assert result.returncode == 0, f"meltano run failed, log: {result.log_path}"

    # Everything arrived; stores have no preset target (reference data) and are counted as skipped.
    expected = keys(r for r in canonical_records(capillary) if r.stream != "stores")
    stored = keys(stored_records(adobe))
    assert stored == expected, differences(expected, stored)
    assert result.summaries["stores"]["skipped"] == capillary.call(capillary.app[ADMIN].counts)["stores"]
