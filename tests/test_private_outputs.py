"""The demo's and the benchmark's outputs hold customer records (the dead letter, captures, Meltano's system
database and logs): ``private_workdir``, which both scripts create their output directory with, makes every file
written there 0600 and every directory 0700, also when a process they start (Meltano, a plugin) writes it."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from harness import ROOT

# Runs in a process of its own (the umask is process-wide): the output directory, a log written by this process,
# a SQLite database, and a directory and file written by a child process, the way Meltano and the target write.
WRITER = """
import sqlite3, subprocess, sys
from pathlib import Path
from pipeline import private_workdir

workdir = private_workdir(Path(sys.argv[1]))
(workdir / "run-1.log").write_text("customer@example.com")
with sqlite3.connect(workdir / "meltano.db") as db:
    db.execute("CREATE TABLE state (value TEXT)")
child = "import pathlib, sys; p = pathlib.Path(sys.argv[1]); p.mkdir(); (p / 'dead-letter.jsonl').write_text('{}')"
subprocess.run([sys.executable, "-c", child, str(workdir / "target")], check=True)
"""


def test_outputs_of_the_demo_and_the_benchmark_are_private(tmp_path: Path) -> None:
    workdir = tmp_path / "output" / "demo"
    workdir.mkdir(parents=True)
    stale = workdir / "run-0.log"
    stale.write_text("from an earlier run")
    stale.chmod(0o644)

    subprocess.run([sys.executable, "-c", WRITER, str(workdir)], cwd=ROOT / "scripts", check=True)

    modes = {str(p.relative_to(workdir)): stat.S_IMODE(p.stat().st_mode) for p in workdir.rglob("*")}
    assert modes == {"run-1.log": 0o600, "meltano.db": 0o600, "target": 0o700, "target/dead-letter.jsonl": 0o600}
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o700
