"""Input the target cannot take ends the run with one clear line, before any STATE covers it: a STATE whose value
is not an object, a RECORD that is not an object, records nested too deeply or holding integers beyond 64 bits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLES, Aep, record_message, schema_message, state_message

from target_adobe_aep.errors import FATAL_ERRORS


def bill(**changes: Any) -> dict:
    return {**SAMPLES["transactions"][0], **changes}


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


# As a line: json.dumps itself cannot write it. Deeper than the decoder's recursion guard on every supported Python
# (about 1,000 levels on 3.11, some 10,000 on 3.13).
RECORD_NESTED_TOO_DEEP_TO_READ = (
    '{"type": "RECORD", "stream": "transactions", "record": {"x": ' + "[" * 200_000 + "]" * 200_000 + "}}"
)


def first_records_then(*messages: dict | str) -> list[dict | str]:
    """A bill, a STATE (written: every STATE is a checkpoint in these runs), then ``messages``."""
    return [schema_message("transactions"), record_message("transactions", bill()), state_message({"t": 1}), *messages]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "STATE", "value": "garbage"}, "A STATE message holds a str, not a JSON object"),
        ({"type": "STATE", "value": [{"t": 2}]}, "A STATE message holds a list, not a JSON object"),
        ({"type": "STATE", "value": None}, "A STATE message holds a NoneType, not a JSON object"),
        (record_message("transactions", [bill()]), "A RECORD message of stream 'transactions' holds a list"),  # type: ignore[arg-type]
        (RECORD_NESTED_TOO_DEEP_TO_READ, "An input line is nested too deeply to be read"),
        (record_message("transactions", {"amount": 1}), "Record is missing one or more key_properties"),
        (record_message("transactions", bill(extra=nested(300))), "holds nesting deeper than 254 levels"),
        (record_message("transactions", bill(amount=2**70)), "holds an integer beyond 64 bits"),
    ],
)
def test_input_the_target_cannot_take_stops_the_run_with_one_clear_error(
    aep: Aep, message: dict | str, error: str
) -> None:
    run = aep.run([*first_records_then(message), state_message({"t": 2})], expect_error=True,
                  state_checkpoint_seconds=0)  # fmt: skip
    assert isinstance(run.error, FATAL_ERRORS), repr(run.error)
    assert error in str(run.error)
    assert run.states == [{"t": 1}]  # nothing after the input it could not take
    assert len(aep.stored(aep.config["event_dataset_id"])) == 1


def test_a_state_that_is_not_an_object_ends_the_command_with_one_line(aep: Aep, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**aep.config, "state_checkpoint_seconds": 0}))
    messages = tmp_path / "input.jsonl"
    messages.write_text("".join(json.dumps(m) + "\n" for m in first_records_then({"type": "STATE", "value": "x"})))
    target = Path(sys.executable).parent / "target-adobe-aep"
    result = subprocess.run([target, "--config", config, "--input", messages], capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert result.returncode == 1
    assert [json.loads(line) for line in result.stdout.splitlines()] == [{"t": 1}]
    assert "Traceback" not in result.stderr
    assert "| ERROR" in result.stderr.splitlines()[-1]
    assert "A STATE message holds a str, not a JSON object" in result.stderr.splitlines()[-1]
