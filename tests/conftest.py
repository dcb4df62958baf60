"""Fixtures of the end-to-end tests: the plugins installed in the Meltano project, and a pipeline per test
against fresh emulators (``capillary_emulator``/``adobe_emulator`` from the emulators' pytest plugin, configured
with ``@pytest.mark.capillary(...)``) with its own Meltano system database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))  # pipeline.py, shared with the demo

from harness import MELTANO_BIN, OFFLINE_ENV, ROOT, Pipeline, new_pipeline

from emulators.server import BackgroundServer


@pytest.fixture(scope="session")
def meltano_installed() -> None:
    """``meltano install`` in the repository root: idempotent, a few seconds when nothing changed."""
    result = subprocess.run(
        [MELTANO_BIN, "install"], cwd=ROOT, env={**os.environ, **OFFLINE_ENV}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def pipeline(
    meltano_installed: None, capillary_emulator: BackgroundServer, adobe_emulator: BackgroundServer, tmp_path: Path
) -> Pipeline:
    """The pipeline against this test's emulators, with ``start_date`` a day before the generated history."""
    return new_pipeline(capillary_emulator, adobe_emulator, tmp_path)
