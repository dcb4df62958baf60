"""A fresh install of each plugin is consistent: ``pip check`` finds no broken requirement and no two
distributions install the same top-level module (issue #16: ``backoff`` 2.x and ``python-backoff`` both wrote
``backoff/``, and which one the SDK ran depended on the install order). Checked in the environments Meltano
creates for the plugins (``meltano install``) and in the development environment holding all three packages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from harness import ROOT

ENVIRONMENTS = {
    "tap-capillary": ROOT / ".meltano" / "extractors" / "tap-capillary" / "venv",
    "target-adobe-aep": ROOT / ".meltano" / "loaders" / "target-adobe-aep" / "venv",
    "development": Path(sys.prefix),
}
PROBE = Path(__file__).resolve().parent / "module_owners.py"


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_no_two_distributions_install_the_same_top_level_module(meltano_installed: None, name: str) -> None:
    python = ENVIRONMENTS[name] / "bin" / "python"
    result = subprocess.run([str(python), "-I", str(PROBE)], capture_output=True, text=True, check=True)
    installed = json.loads(result.stdout)
    plugins = {"tap-capillary", "target-adobe-aep"}
    assert plugins & set(installed["distributions"]) == ({name} if name in plugins else plugins)
    assert installed["shared_modules"] == {}


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_pip_check_is_clean(meltano_installed: None, name: str) -> None:
    python = ENVIRONMENTS[name] / "bin" / "python"
    # The development environment's pip checks the plugin environments too (Meltano's uv venvs have no pip).
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
