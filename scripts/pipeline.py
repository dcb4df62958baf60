"""Running ``meltano run tap-capillary target-adobe-aep`` against the emulators (demo, end-to-end tests, benchmark).

The ``dev`` environment of ``meltano.yml`` holds the emulators' fixed settings; what changes per run
(the emulators' ports, the start date, where the dead letter and Meltano's system database go) is passed
as environment variables, which Meltano ranks above ``meltano.yml``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from emulators.server import BackgroundServer

ROOT = Path(__file__).resolve().parent.parent
SUMMARY_LINE = re.compile(r"Summary for stream '(?P<stream>[^']+)': (?P<fields>(?:\w+=\d+ ?)+)")
# Files 0600 and directories 0700: what the demo and the benchmark write holds customer records.
PRIVATE_UMASK = 0o077


def private_workdir(path: Path) -> Path:
    """An empty ``path`` for a run's outputs (logs, captures, the dead letter, Meltano's system database), all of
    which hold personal data: from now on this process and every process it starts create files 0600 and
    directories 0700 (umask 077), whichever of them writes the file."""
    os.umask(PRIVATE_UMASK)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def pipeline_env(
    capillary: BackgroundServer, adobe: BackgroundServer, workdir: Path, start: datetime, **extra: str
) -> dict[str, str]:
    """Environment for a ``meltano run`` against these emulators; ``extra`` adds or overrides variables."""
    return {
        **os.environ,
        "MELTANO_ENVIRONMENT": "dev",
        "MELTANO_DATABASE_URI": f"sqlite:///{workdir / 'meltano.db'}",
        "TAP_CAPILLARY_BASE_URL": capillary.base_url,
        "TAP_CAPILLARY_START_DATE": start.isoformat().replace("+00:00", "Z"),
        "TAP_CAPILLARY_CLUSTER_TIMEZONE": capillary.config.cluster_timezone,
        "TARGET_ADOBE_AEP_IMS_URL": f"{adobe.base_url}/ims/token/v3",
        "TARGET_ADOBE_AEP_PLATFORM_URL": adobe.base_url,
        "TARGET_ADOBE_AEP_INLET_URL": f"{adobe.base_url}/collection/{adobe.config.auth_inlet_id}",
        "TARGET_ADOBE_AEP_DEAD_LETTER_PATH": str(workdir / "dead-letter.jsonl"),
        **extra,
    }


@dataclass
class RunResult:
    returncode: int
    log_path: Path
    summaries: dict[str, dict[str, int]] = field(default_factory=dict)


def meltano(
    meltano_bin: str,
    args: Sequence[str],
    env: dict[str, str],
    log_path: Path,
    on_line: Callable[[str], None] | None = None,
) -> RunResult:
    """Run a meltano command in the project root, log its output, and collect the target's stream summaries."""
    result = RunResult(returncode=-1, log_path=log_path)
    with (
        log_path.open("w") as log,
        subprocess.Popen(
            [meltano_bin, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process,
    ):
        for line in process.stdout:
            log.write(line)
            if on_line:
                on_line(line)
            match = SUMMARY_LINE.search(line)
            if match:
                pairs = (pair.split("=") for pair in match["fields"].split())
                result.summaries[match["stream"]] = {k: int(v) for k, v in pairs}
    result.returncode = process.returncode
    return result
