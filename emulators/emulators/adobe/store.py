"""SQLite storage of what the emulated platform received, per dataset.

``records`` holds every message DCS accepted: valid ones land in the data lake (``failed = 0``);
messages accepted asynchronously that then fail XDM validation are the dataset's failed records
(``failed = 1``, with the reasons), as AEP's failed batches are. The connection belongs to the
server's event-loop thread; tests reach it through ``BackgroundServer.call``.

With ``keep_messages=False`` (the benchmark mode) nothing is stored: each dataset's accepted and failed
messages and distinct ``_id`` values are only counted, so ingestion costs the emulator little CPU; the
inspection methods then raise ``NotStored``.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    dataset_id TEXT NOT NULL,
    xdm_id TEXT,
    failed INTEGER NOT NULL,
    inlet_id TEXT NOT NULL,
    xaction_id TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    entity TEXT NOT NULL,
    errors TEXT
);
CREATE INDEX IF NOT EXISTS records_dataset_id ON records (dataset_id, failed, xdm_id);
"""


@dataclass
class Record:
    """One message as stored: which dataset, its ``xdmEntity``, and why it failed (if it did)."""

    dataset_id: str
    entity: Any
    inlet_id: str
    xaction_id: str
    received_ms: int
    errors: list[dict[str, Any]] | None = None

    @property
    def xdm_id(self) -> str | None:
        xdm_id = self.entity.get("_id") if isinstance(self.entity, dict) else None
        return xdm_id if isinstance(xdm_id, str) else None


class NotStored(RuntimeError):
    """Messages were counted, not stored (``keep_messages=False``)."""


@dataclass
class _Tally:
    accepted: int = 0
    failed: int = 0
    ids: set[str] = field(default_factory=set)


class Store:
    def __init__(self, path: str = ":memory:", *, keep_messages: bool = True) -> None:
        self._db = sqlite3.connect(path, check_same_thread=True)
        self._db.executescript(_SCHEMA)
        self._tally: dict[str, _Tally] | None = None if keep_messages else defaultdict(_Tally)

    def close(self) -> None:
        self._db.close()

    def _stored(self) -> sqlite3.Connection:
        if self._tally is not None:
            msg = "this emulator counts messages without storing them (store_messages=false)"
            raise NotStored(msg)
        return self._db

    def add(self, records: list[Record]) -> None:
        if self._tally is not None:
            for r in records:
                tally = self._tally[r.dataset_id]
                if r.errors is None:
                    tally.accepted += 1
                    if (xdm_id := r.xdm_id) is not None:
                        tally.ids.add(xdm_id)
                else:
                    tally.failed += 1
            return
        with self._db:
            self._db.executemany(
                "INSERT INTO records (dataset_id, xdm_id, failed, inlet_id, xaction_id, received_ms, entity, errors)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.dataset_id,
                        r.xdm_id,
                        int(r.errors is not None),
                        r.inlet_id,
                        r.xaction_id,
                        r.received_ms,
                        orjson.dumps(r.entity).decode(),
                        None if r.errors is None else orjson.dumps(r.errors).decode(),
                    )
                    for r in records
                ],
            )

    def counts(self) -> dict[str, dict[str, int]]:
        """dataset id -> accepted (valid) records, failed records and distinct valid ``_id`` values."""
        if self._tally is not None:
            return {ds: {"accepted": t.accepted, "failed": t.failed, "distinct_ids": len(t.ids)}
                    for ds, t in self._tally.items()}  # fmt: skip
        rows = self._db.execute(
            "SELECT dataset_id, SUM(failed = 0), SUM(failed = 1),"
            " COUNT(DISTINCT CASE WHEN failed = 0 THEN xdm_id END) FROM records GROUP BY dataset_id"
        )
        return {ds: {"accepted": ok, "failed": bad, "distinct_ids": ids} for ds, ok, bad, ids in rows}

    def distinct_ids(self, dataset_id: str, limit: int = 1000, offset: int = 0) -> list[str]:
        rows = self._stored().execute(
            "SELECT DISTINCT xdm_id FROM records WHERE dataset_id = ? AND failed = 0 AND xdm_id IS NOT NULL"
            " ORDER BY xdm_id LIMIT ? OFFSET ?",
            (dataset_id, limit, offset),
        )
        return [row[0] for row in rows]

    def messages(self, dataset_id: str, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Valid records' ``xdmEntity`` bodies in arrival order."""
        rows = self._stored().execute(
            "SELECT entity FROM records WHERE dataset_id = ? AND failed = 0 ORDER BY seq LIMIT ? OFFSET ?",
            (dataset_id, limit, offset),
        )
        return [orjson.loads(row[0]) for row in rows]

    def failed(self, dataset_id: str, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Failed records with the validation errors that failed them, in arrival order."""
        rows = self._stored().execute(
            "SELECT xaction_id, entity, errors FROM records WHERE dataset_id = ? AND failed = 1"
            " ORDER BY seq LIMIT ? OFFSET ?",
            (dataset_id, limit, offset),
        )
        return [{"xactionId": x, "entity": orjson.loads(e), "errors": orjson.loads(err)} for x, e, err in rows]

    def clear(self) -> None:
        if self._tally is not None:
            self._tally.clear()
        with self._db:
            self._db.execute("DELETE FROM records")
