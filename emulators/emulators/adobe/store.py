"""SQLite storage of what the emulated platform received, per dataset, in Catalog batches.

``records`` holds every message DCS accepted: valid ones land in the data lake (``failed = 0``);
messages accepted asynchronously that then fail XDM validation are the dataset's failed records
(``failed = 1``, with the reasons), as AEP's failed batches are. The connection belongs to the
server's event-loop thread; tests reach it through ``BackgroundServer.call``.

Batches: what one DCS request brought to one dataset becomes one Catalog batch of the valid records (``success``)
and one of the failed ones (``failed``): asynchronous validation sends failing data "to a failed batch in Data
Lake" (EN help/ingestion/quality/streaming-validation.md), whose records the export API serves with their
``_validationErrors`` (EN help/ingestion/quality/retrieve-failed-batches.md). ``inlet_calls`` counts the HTTP calls
to each inlet and their status, for the observability metrics (EN help/observability/api/metrics.md).

With ``keep_messages=False`` (the benchmark mode) nothing is stored: each dataset's accepted and failed
messages and distinct ``_id`` values are only counted, so ingestion costs the emulator little CPU; the
inspection methods (and batches, failed records and metrics) then raise ``NotStored``.
"""

from __future__ import annotations

import itertools
import secrets
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
    errors TEXT,
    batch_id TEXT,
    header TEXT
);
CREATE INDEX IF NOT EXISTS records_dataset_id ON records (dataset_id, failed, xdm_id);
CREATE INDEX IF NOT EXISTS records_batch_id ON records (batch_id);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    dataset_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    records INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_dataset_id ON batches (dataset_id, created_ms);
CREATE TABLE IF NOT EXISTS inlet_calls (
    inlet_id TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    status INTEGER NOT NULL
);
"""
# Crockford's base32, the alphabet of the ULID-like ids Catalog gives batches (01E8043CY305K2MTV5ANH9G1GC in EN
# help/ingestion/quality/error-diagnostics.md).
_BASE32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@dataclass
class Record:
    """One message as stored: which dataset, its ``xdmEntity``, and why it failed (if it did)."""

    dataset_id: str
    entity: Any
    inlet_id: str
    xaction_id: str
    received_ms: int
    errors: list[dict[str, Any]] | None = None
    header: dict[str, Any] | None = None  # the message's header, kept for failed records (the export serves it)

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


def _batch_id(received_ms: int, sequence: int) -> str:
    """26 characters of Crockford base32: the time (48 bits), then a per-emulator sequence and random bits."""
    number = (received_ms << 80) | ((sequence & 0xFFFF) << 64) | secrets.randbits(64)
    return "".join(_BASE32[(number >> shift) & 31] for shift in range(125, -1, -5))


class Store:
    def __init__(self, path: str = ":memory:", *, keep_messages: bool = True) -> None:
        self._db = sqlite3.connect(path, check_same_thread=True)
        self._db.executescript(_SCHEMA)
        self._tally: dict[str, _Tally] | None = None if keep_messages else defaultdict(_Tally)
        self._sequence = itertools.count()

    def close(self) -> None:
        self._db.close()

    def _stored(self) -> sqlite3.Connection:
        if self._tally is not None:
            msg = "this emulator counts messages without storing them (store_messages=false)"
            raise NotStored(msg)
        return self._db

    def add(self, records: list[Record]) -> None:
        """Store the records one DCS request brought, each dataset's valid and failed ones in a batch of their own."""
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
        batches: dict[tuple[str, bool], tuple[str, int]] = {}
        for r in records:
            key = (r.dataset_id, r.errors is not None)
            if key not in batches:
                batches[key] = (_batch_id(r.received_ms, next(self._sequence)), r.received_ms)
        sizes = defaultdict(int)
        for r in records:
            sizes[(r.dataset_id, r.errors is not None)] += 1
        with self._db:
            self._db.executemany(
                "INSERT INTO batches (id, dataset_id, status, created_ms, records) VALUES (?, ?, ?, ?, ?)",
                [(batch_id, dataset_id, "failed" if failed else "success", created_ms, sizes[(dataset_id, failed)])
                 for (dataset_id, failed), (batch_id, created_ms) in batches.items()],
            )  # fmt: skip
            self._db.executemany(
                "INSERT INTO records (dataset_id, xdm_id, failed, inlet_id, xaction_id, received_ms, entity, errors,"
                " batch_id, header) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                        batches[(r.dataset_id, r.errors is not None)][0],
                        None if r.errors is None or r.header is None else orjson.dumps(r.header).decode(),
                    )
                    for r in records
                ],
            )

    def add_inlet_call(self, inlet_id: str, received_ms: int, status: int) -> None:
        """One HTTP call to an inlet and the status it was answered."""
        if self._tally is None:
            with self._db:
                self._db.execute("INSERT INTO inlet_calls VALUES (?, ?, ?)", (inlet_id, received_ms, status))

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

    def deliveries(self) -> list[tuple[str, str, str | None]]:
        """``(dataset, xactionId, _id)`` of each valid record in arrival order. An xactionId is ``<batchId>:<index>``,
        so it tells which DCS request brought which message (a message sent twice has two)."""
        query = "SELECT dataset_id, xaction_id, xdm_id FROM records WHERE failed = 0 ORDER BY seq"
        rows = self._stored().execute(query)
        return list(rows)

    def failed(self, dataset_id: str, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Failed records with the validation errors that failed them, in arrival order."""
        rows = self._stored().execute(
            "SELECT xaction_id, entity, errors FROM records WHERE dataset_id = ? AND failed = 1"
            " ORDER BY seq LIMIT ? OFFSET ?",
            (dataset_id, limit, offset),
        )
        return [{"xactionId": x, "entity": orjson.loads(e), "errors": orjson.loads(err)} for x, e, err in rows]

    # -- Catalog batches, their failed records, metrics ----------------------------------------------------

    def batches(
        self,
        dataset_ids: list[str] | None = None,
        created_after: int | None = None,
        created_before: int | None = None,
        status: list[str] | None = None,
        ids: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Batches (id, dataset, status, created time in ms, records), oldest first."""
        query = "SELECT id, dataset_id, status, created_ms, records FROM batches WHERE 1 = 1"
        params: list[Any] = []
        for column, values in (("dataset_id", dataset_ids), ("status", status), ("id", ids)):
            if values is not None:
                query += f" AND {column} IN ({', '.join('?' * len(values))})"
                params += values
        if created_after is not None:
            query += " AND created_ms > ?"
            params.append(created_after)
        if created_before is not None:
            query += " AND created_ms < ?"
            params.append(created_before)
        rows = self._stored().execute(query + " ORDER BY created_ms, rowid", params)
        keys = ("id", "dataset_id", "status", "created_ms", "records")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def failed_in_batch(self, batch_id: str) -> list[dict[str, Any]]:
        """A failed batch's records as the message header, the ``xdmEntity`` and the errors."""
        rows = self._stored().execute(
            "SELECT header, entity, errors FROM records WHERE batch_id = ? AND failed = 1 ORDER BY seq", (batch_id,)
        )
        return [{"header": orjson.loads(h) if h else {}, "entity": orjson.loads(e), "errors": orjson.loads(err)}
                for h, e, err in rows]  # fmt: skip

    def record_times(self, dataset_ids: list[str] | None, start_ms: int, end_ms: int) -> list[tuple[str, int]]:
        """(dataset, received time) of each valid record received in ``[start_ms, end_ms)``."""
        rows = self._stored().execute(
            "SELECT dataset_id, received_ms FROM records WHERE failed = 0 AND received_ms >= ? AND received_ms < ?",
            (start_ms, end_ms),
        )
        return [row for row in rows if dataset_ids is None or row[0] in dataset_ids]

    def inlet_calls(self, start_ms: int, end_ms: int) -> list[tuple[str, int, int]]:
        """(inlet, time, status) of each HTTP call to an inlet in ``[start_ms, end_ms)``."""
        rows = self._stored().execute(
            "SELECT inlet_id, received_ms, status FROM inlet_calls WHERE received_ms >= ? AND received_ms < ?",
            (start_ms, end_ms),
        )
        return list(rows)

    def clear(self) -> None:
        if self._tally is not None:
            self._tally.clear()
        with self._db:
            for table in ("records", "batches", "inlet_calls"):
                self._db.execute(f"DELETE FROM {table}")  # a fixed table name
