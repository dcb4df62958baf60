"""README.md stays true: the settings table is the current --about output, and every worked example is what the
target produces for that input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import Aep, stream_messages

from target_adobe_aep.target import TargetAdobeAEP

README = (Path(__file__).parents[1] / "README.md").read_text()
EXAMPLE = re.compile(
    r"<!-- example: (\w+) -->\s+Input record:\s+```json\n(.*?)```(?:\s+XDM sent[^\n]*\s+```json\n(.*?)```)?", re.S
)
EXAMPLES = {m[1]: (json.loads(m[2]), json.loads(m[3]) if m[3] else None) for m in EXAMPLE.finditer(README)}


def test_readme_starts_with_the_about_output() -> None:
    result = CliRunner().invoke(TargetAdobeAEP.cli, ["--about", "--format=markdown"])
    assert result.exit_code == 0
    assert README.startswith(result.output.rstrip("\n") + "\n")


def test_every_preset_has_a_worked_example() -> None:
    presets = {p.stem for p in (Path(__file__).parents[1] / "target_adobe_aep" / "mappings").glob("*.json")}
    assert set(EXAMPLES) == presets


@pytest.mark.parametrize("stream", sorted(EXAMPLES))
def test_worked_example_is_what_the_target_sends(aep: Aep, stream: str) -> None:
    record, expected = EXAMPLES[stream]
    run = aep.run(stream_messages(stream, [record]), dry_run=True)
    written = aep.tmp_path / "dry-run" / f"{stream}.jsonl"
    assert aep.dead_letters() == []
    if expected is None:
        assert not written.exists()
        assert run.target.stats[stream].skipped == 1
    else:
        assert json.loads(written.read_text())["body"]["xdmEntity"] == expected


def test_stores_as_events_example_is_in_the_readme_and_accepted(aep: Aep) -> None:
    example = Path(__file__).parent.parent / "examples" / "stores-as-events.json"
    section = README[README.index("To load stores anyway") :]
    assert json.loads(re.search(r"```json\n(.*?)```", section, re.S)[1]) == json.loads(example.read_text())
    stores = json.loads((Path(__file__).parent / "data" / "capillary_records.json").read_text())["stores"]
    run = aep.run(stream_messages("stores", stores, {"s": 1}), mappings={"stores": str(example)})
    assert run.states == [{"s": 1}]
    assert aep.dead_letters() == []
    (event,) = aep.stored(aep.config["event_dataset_id"])
    store = {
        "storeId": "101",
        "code": "blr-01",
        "name": "Bengaluru MG Road",
        "countryCode": "IN",
        "timezone": "Asia/Kolkata",
    }
    assert event["_capillarydemo"]["capillary"]["store"] == {**store, "status": "active"}
