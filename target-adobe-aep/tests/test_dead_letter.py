"""Files that hold records are private, and the dead letter is always valid JSONL: a failed write is cut off, and
a partial last line (a kill or a full disk mid-write) is moved aside when the file is next opened."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Aep, stream_messages
from test_target import transactions

from target_adobe_aep.dead_letter import DeadLetterError

RLIMITED = (
    "import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]),) * 2); os.execv(sys.argv[2], sys.argv[2:])"
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_holding_records_are_created_private(aep: Aep) -> None:
    aep.run(stream_messages("transactions", transactions(3, bad_currency={1}), {"t": 3}))
    assert len(aep.dead_letters()) == 1
    aep.run(stream_messages("transactions", transactions(3), {"t": 3}), dry_run=True)
    assert mode(aep.dead_letter_path) == 0o600
    assert mode(aep.tmp_path / "dry-run" / "transactions.jsonl") == 0o600


def test_a_partial_last_line_is_moved_aside_when_the_dead_letter_is_opened(
    aep: Aep, caplog: pytest.LogCaptureFixture
) -> None:
    earlier = [{"stream": "transactions", "reason": f"earlier {i}"} for i in range(2)]
    torn = b'{"time": "2026-01-01T00:00:00.000+00:00", "stream": "transac'
    aep.dead_letter_path.write_bytes(b"".join(json.dumps(e).encode() + b"\n" for e in earlier) + torn)
    caplog.set_level(logging.WARNING)
    run = aep.run(stream_messages("transactions", transactions(3, bad_currency={1}), {"t": 3}))
    assert run.states == [{"t": 3}]
    entries = aep.dead_letters()  # every line parses
    assert [e["reason"] for e in entries[:2]] == ["earlier 0", "earlier 1"]
    assert len(entries) == 3
    assert entries[2]["key"] == {"transaction_id": 100_001}
    assert aep.dead_letter_path.with_name("dead-letter.jsonl.torn").read_bytes() == torn + b"\n"
    assert run.target.dead_letter.torn_lines == 1
    assert "ended with a partial line (60 bytes" in caplog.text


def test_a_write_the_disk_refuses_is_cut_off_and_ends_the_run_with_one_line(aep: Aep, tmp_path: Path) -> None:
    """The file-size limit stands in for a full disk: the write stops part-way. The partial entry is cut off, the
    run ends with one line and no STATE; the next run appends to a valid file."""
    earlier = b'{"stream": "transactions", "reason": "earlier"}\n'
    aep.dead_letter_path.write_bytes(earlier)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**aep.config, "conversion_workers": 0}))
    singer = "".join(json.dumps(m) + "\n" for m in stream_messages("transactions", transactions(3, bad_currency={1}),
                                                                    {"t": 3}))  # fmt: skip
    target = str(Path(sys.executable).parent / "target-adobe-aep")
    limit = str(len(earlier) + 100)  # an entry is about 2 KB
    command = [sys.executable, "-c", RLIMITED, limit, target, "--config", str(config)]
    failed = subprocess.run(command, input=singer, capture_output=True, text=True, timeout=120, check=False)
    assert failed.returncode == 1, failed.stderr
    assert failed.stdout == ""
    assert "Traceback" not in failed.stderr
    last = failed.stderr.splitlines()[-1]
    assert f"cannot write the dead letter {aep.dead_letter_path}: File too large" in last
    assert aep.dead_letter_path.read_bytes() == earlier
    run = aep.run(stream_messages("transactions", transactions(3, bad_currency={1}), {"t": 3}))
    assert run.states == [{"t": 3}]
    assert [e["reason"] == "earlier" for e in aep.dead_letters()] == [True, False]


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """``path`` (an existing file) unwritable while the block runs: its permissions for a user, the immutable
    attribute for root (whom permissions do not stop). Skips where neither is possible."""
    if os.geteuid() != 0:
        path.chmod(0o400)
        try:
            yield
        finally:
            path.chmod(0o600)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode != 0:
        pytest.skip("root cannot make a file immutable here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_an_unwritable_dead_letter_stops_the_run_only_when_a_record_needs_it(aep: Aep) -> None:
    """Opening the dead letter to check its last line only reads it: a run with nothing to dead-letter goes
    through; the first record that must be written ends the run with one line, nothing of its batch acknowledged."""
    earlier = b'{"stream": "transactions", "reason": "earlier"}\n'
    aep.dead_letter_path.write_bytes(earlier)
    with unwritable(aep.dead_letter_path):
        run = aep.run(stream_messages("transactions", transactions(3), {"t": 3}))
        assert run.states == [{"t": 3}]
        failed = aep.run(stream_messages("transactions", transactions(3, bad_currency={1}), {"t": 6}),
                         expect_error=True)  # fmt: skip
    assert isinstance(failed.error, DeadLetterError)
    assert str(failed.error).startswith(f"cannot write the dead letter {aep.dead_letter_path}: ")
    assert str(failed.error).endswith("; nothing of the batch is acknowledged")
    assert failed.states == []
    assert aep.dead_letter_path.read_bytes() == earlier


def test_a_torn_dead_letter_that_cannot_be_repaired_ends_the_run_with_one_line(aep: Aep) -> None:
    aep.dead_letter_path.write_bytes(b'{"stream": "transac')
    with unwritable(aep.dead_letter_path):
        failed = aep.run(stream_messages("transactions", transactions(3), {"t": 3}), expect_error=True)
    assert isinstance(failed.error, DeadLetterError)
    assert f"cannot repair the dead letter {aep.dead_letter_path}, which ends with a partial line" in str(failed.error)
    assert failed.states == []
