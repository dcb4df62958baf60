"""The baseline's tap: an SDK tap with default settings that replays records captured from tap-capillary.

It reads one JSON line per record (stdlib ``json``) from ``<capture_dir>/<stream>.jsonl`` and declares each
stream with the schema and key properties tap-capillary sent, so the SDK does the same per-record work it does
for tap-capillary (type conformance, selection, message writing) with nothing of ours in the way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk import typing as th


class ReplayStream(Stream):
    def __init__(self, tap: Tap, name: str, schema: dict[str, Any], key_properties: list[str], path: Path) -> None:
        super().__init__(tap, schema=schema, name=name)
        self.primary_keys = key_properties
        self._path = path

    def get_records(self, context: Any) -> Iterable[dict[str, Any]]:
        with self._path.open(encoding="utf-8") as lines:
            for line in lines:
                yield json.loads(line)


class TapReplay(Tap):
    name = "tap-replay"
    config_jsonschema = th.PropertiesList(
        th.Property("capture_dir", th.StringType, required=True, description="schemas.json and <stream>.jsonl files"),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        capture = Path(self.config["capture_dir"])
        streams = json.loads((capture / "schemas.json").read_text(encoding="utf-8"))
        return [
            ReplayStream(self, s["stream"], s["schema"], s["key_properties"], capture / f"{s['stream']}.jsonl")
            for s in streams
        ]


if __name__ == "__main__":
    TapReplay.cli()
