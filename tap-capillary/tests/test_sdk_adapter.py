"""Pins the SDK behaviour the tap relies on where it has no public hook (``sdk_adapter.py``), and the order of
records and STATE its window bookmarks need: SDK only, no emulator. A failure here after an SDK upgrade names
what changed."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from contextlib import redirect_stdout
from typing import Any, ClassVar

from singer_sdk import Tap
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.streams import RESTStream

from tap_capillary.sdk_adapter import WindowBookmarksStream

TIMES = ["2025-01-03T00:00:00+00:00", "2025-01-01T00:00:00+00:00", "2025-01-02T00:00:00+00:00"]


class Numbers(RESTStream):
    """An incremental stream whose records come out of order (as a window's customers' records do)."""

    name = "numbers"
    url_base = "https://example.invalid"
    path = "/numbers"
    replication_key = "updated_at"
    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "updated_at": {"type": "string", "format": "date-time"}},
    }
    increments = 0
    owner: Tap

    def get_records(self, context: Any) -> Iterable[dict[str, Any]]:
        yield from ({"id": i, "updated_at": t} for i, t in enumerate(TIMES))
        # What ``WindowedStream.complete`` does after a window: its STATE, after the window's records.
        self.stream_state.update(replication_key="updated_at", replication_key_value="2025-01-04T00:00:00+00:00")
        self.owner.state_writer.write_state(self.tap_state)
        self.owner.state_writer.write_state(self.tap_state)  # unchanged: not written again

    def _increment_stream_state(self, latest_record: Any, *, context: Any = None) -> None:
        type(self).increments += 1
        super()._increment_stream_state(latest_record, context=context)


class WindowNumbers(WindowBookmarksStream, Numbers):
    pass


def run(stream_class: type[Numbers]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    class NumbersTap(Tap):
        name = "tap-numbers"
        config_jsonschema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}
        message_writer_class = MsgSpecWriter

        def discover_streams(self) -> list[Numbers]:
            stream = stream_class(tap=self)
            stream.owner = self
            return [stream]

    tap = NumbersTap(config={})
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with redirect_stdout(out):
        tap.sync_all()
    out.flush()
    messages = [json.loads(line) for line in out.buffer.getvalue().splitlines()]
    return [m for m in messages if m["type"] in ("RECORD", "STATE")], tap.state["bookmarks"]["numbers"]


def test_the_sdk_keeps_per_record_bookmarks_through_increment_stream_state() -> None:
    """What the adapter turns off: the SDK calls ``_increment_stream_state`` once per written record and keeps
    the largest value seen (then makes it the bookmark), which would move the bookmark past a window."""
    Numbers.increments = 0
    _, state = run(Numbers)
    assert Numbers.increments == len(TIMES)
    assert state["replication_key_value"] == max(TIMES)


def test_window_bookmarks_keep_the_state_as_written_and_follow_the_records() -> None:
    WindowNumbers.increments = 0
    messages, state = run(WindowNumbers)
    assert WindowNumbers.increments == 0
    assert state == {"replication_key": "updated_at", "replication_key_value": "2025-01-04T00:00:00+00:00"}
    # Each record is written before ``get_records`` resumes, so a STATE written after a window follows its records;
    # the state writer writes a state once. The SDK's own STATE at the stream's end drops its start-of-sync keys.
    assert [m["type"] for m in messages] == ["RECORD"] * len(TIMES) + ["STATE", "STATE"]
    window_state, final_state = (m["value"]["bookmarks"]["numbers"] for m in messages[-2:])
    assert window_state == {**state, "replication_key_signpost": window_state["replication_key_signpost"],
                            "starting_replication_value": None}  # fmt: skip
    assert final_state == state
