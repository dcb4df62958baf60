"""The Meltano Hub files (hub/) and the plugin sections of meltano.yml match what the plugins declare (``--about``)."""

from __future__ import annotations

import subprocess
import sys

from harness import ROOT


def test_hub_files_and_meltano_yml_are_in_sync_with_the_plugins() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "plugin_definitions.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
