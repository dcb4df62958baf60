"""The dead letter: a JSONL file of every record that AEP will not get, with the reason, so none is lost."""

from __future__ import annotations

import datetime
import decimal
import os
import threading
from pathlib import Path
from typing import Any

import orjson


def _json_default(value: Any) -> Any:
    """Decimals (records decoded the SDK's way) stay numbers, so a replay reads what the tap wrote."""
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def serialized(value: Any) -> bytes:
    """``value`` as the dead letter writes it: compact bytes to hold until needed, then ``orjson.Fragment(…)``."""
    # orjson's bytes keep the capacity its buffer grew to (4 KB or more); a copy holds exactly the JSON.
    return bytes(memoryview(orjson.dumps(value, default=_json_default)))


class DeadLetter:
    """Appends entries to one JSONL file, durably (fsync) before the batch that produced them is acknowledged.

    An entry holds: ``time``, ``stream``, ``key`` (the record's key properties), ``reason``, ``http_status`` (for
    rejections by AEP), ``xdm`` (the converted payload, when conversion got that far) and ``record`` (the source
    record, for replay). Nothing else: no request headers, no tokens.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.count = 0

    def write(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        lines = b"".join(
            orjson.dumps({"time": now, **entry}, default=_json_default, option=orjson.OPT_APPEND_NEWLINE)
            for entry in entries
        )
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as file:
                file.write(lines)
                file.flush()
                os.fsync(file.fileno())
            self.count += len(entries)
