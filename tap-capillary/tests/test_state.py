"""An input state that would silently stall a stream, or cannot be read, stops the run before it reads anything,
naming the stream and how to fix the state."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from emulators.server import REQUEST_LOG, BackgroundServer
from tap_capillary.tap import InvalidStateError, TapCapillary
from tap_capillary.windows import state_errors
from tests.support import OAUTH, past_anchor, tap_config

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
FINISHED = {"replication_key": "updated_at", "replication_key_value": "2025-06-01T11:45:00+00:00"}
UNFINISHED = {**FINISHED, "pass_since": "2025-01-01T00:00:00+00:00", "pass_until": "2025-05-31T00:00:00+00:00"}
FIX = "Correct it with `meltano state set`, or drop it with `meltano state clear`"


def test_states_the_tap_writes_are_accepted() -> None:
    bookmarks = {"customers": FINISHED, "transactions": UNFINISHED, "stores": {}, "not_a_stream": "ignored"}
    assert state_errors({"bookmarks": bookmarks}, ["customers", "transactions", "stores"], NOW) == []
    assert state_errors({}, ["customers"], NOW) == []


@pytest.mark.parametrize(
    ("stream_state", "problem"),
    [
        (
            {**FINISHED, "replication_key_value": "2025-06-02T00:00:00+00:00"},
            "replication_key_value 2025-06-02T00:00:00+00:00 is later than now (2025-06-01T12:00:00+00:00): the "
            "stream would emit nothing until then",
        ),
        (
            {**UNFINISHED, "pass_until": "2099-01-01T00:00:00Z"},
            "pass_until 2099-01-01T00:00:00Z is later than now (2025-06-01T12:00:00+00:00)",
        ),
        (
            {**UNFINISHED, "pass_since": "2025-05-31T00:00:01+00:00"},
            "pass_since 2025-05-31T00:00:01+00:00 is after pass_until 2025-05-31T00:00:00+00:00: the unfinished "
            "pass would never emit anything",
        ),
        ({**FINISHED, "replication_key_value": "yesterday"}, "replication_key_value 'yesterday' is not an ISO 8601"),
        ({**FINISHED, "replication_key_value": 1717243200}, "replication_key_value 1717243200 is not an ISO 8601"),
        ("garbage", "its state is not an object: 'garbage'"),
    ],
    ids=["future-bookmark", "future-pass-end", "pass-ends-before-it-starts", "not-a-time", "a-number", "not-an-object"],
)
def test_a_state_that_would_stall_or_cannot_be_read_is_named(stream_state: Any, problem: str) -> None:
    state = {"bookmarks": {"customers": FINISHED, "transactions": stream_state}}
    [error] = state_errors(state, ["customers", "transactions"], NOW)
    assert error.startswith(f"Stream 'transactions': {problem}")
    assert error.endswith(f"{FIX} (the stream then starts again at start_date).")


@pytest.mark.parametrize("state", [["a list"], {"bookmarks": "garbage"}])
def test_a_state_without_a_bookmarks_object_is_refused(state: Any) -> None:
    assert state_errors(state, ["customers"], NOW) == [
        f"The state must be an object with a bookmarks object, got {state!r}."
    ]


def test_the_tap_refuses_such_a_state_at_construction() -> None:
    config = {"base_url": "http://127.0.0.1:9", **OAUTH}
    state = {"bookmarks": {"stores": {**FINISHED, "replication_key_value": "2999-01-01T00:00:00+00:00"}}}
    with pytest.raises(InvalidStateError, match=r"^Stream 'stores': replication_key_value 2999-01-01T00:00:00\+00"):
        TapCapillary(config=config, state=state)


@pytest.mark.capillary(customers=3, anchor_time=past_anchor())
def test_a_future_bookmark_exits_non_zero_before_reading_anything(
    capillary_emulator: BackgroundServer, tmp_path: Path
) -> None:
    """As set by mistake with `meltano state set`: the streams would emit nothing until then, and exit 0."""
    future = {**FINISHED, "replication_key_value": "2999-01-01T00:00:00+00:00"}
    files = {"config": tap_config(capillary_emulator), "state": {"bookmarks": {"customers": future}}}
    for name, content in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(content))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tap_capillary",
            "--config",
            tmp_path / "config.json",
            "--state",
            tmp_path / "state.json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "Stream 'customers': replication_key_value 2999-01-01T00:00:00+00:00 is later than now" in result.stderr
    assert "meltano state clear" in result.stderr
    assert result.stdout == ""
    assert capillary_emulator.call(lambda: list(capillary_emulator.app[REQUEST_LOG].entries)) == []
