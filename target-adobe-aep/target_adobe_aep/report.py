"""``report``: what AEP made of what the target sent, after the fact.

A 200 or 207 from the inlet only says a message was received: AEP validates streamed messages asynchronously and
sends those it refuses "to a failed batch in Data Lake" (EN help/ingestion/quality/streaming-validation.md). For each
destination dataset the report lists the Catalog batches created since ``--since`` with their status (``GET
/catalog/batches?dataSet=&createdAfter=``, EN help/catalog/api/filter-data.md); for each failed batch its failed
records (``GET /export/batches/{id}/failed``, then ``?path={file}``, EN
help/ingestion/quality/retrieve-failed-batches.md) with AEP's ``_validationErrors``, each joined back to its Singer
stream and key; and the counts of the observability metrics API (EN help/observability/api/metrics.md): records
ingested and failed batches per dataset, successful and failed calls to the inlets.

The join goes through the deterministic ``_id``. A mapping's ``_id`` rule hashes ``$stream`` and the record's key
fields, and the presets copy those fields into the entity too (``_{tenant_id}.capillary.*Id``, ``timestamp``). For a
failed entity the report reads each mapping's ``_id`` sources back out of it (through the rules that copy them: a
``from`` with a text, number or timestamp transform; a ``concat`` split at its constants), recomputes the ``_id``
with the target's own hash — a timestamp in each spelling RFC 3339 allows for the same instant — and names the
stream and key whose ``_id`` matches. That match is exact and needs neither the source records nor any state kept
by the target. When no mapping reproduces the ``_id`` (no ``_id`` in the entity, a key field the entity does not
carry), the stream is the one whose mapping can write every path of the entity, and the key what could be read
back, marked unverified.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import orjson

# The target's own path and hash functions, so a recomputed _id is the one the target computed.
from target_adobe_aep.mapping import StreamMapping, as_text, hash_parts, output_path
from target_adobe_aep.platform import CATALOG, EXPORT, METRICS, REGISTRY
from target_adobe_aep.provision import active_mappings

if TYPE_CHECKING:
    from target_adobe_aep.target import TargetAdobeAEP

# Transforms whose output still spells the source value for the hash (text as is, numbers as their text).
_COPYING = {"string", "trim", "number", "integer"}


class ReportError(RuntimeError):
    """A platform API refused a lookup the report needs."""


# Keys of a failed record that are AEP's, not the entity's (flat failed-record form).
_ERROR_KEYS = ("_validationErrors", "_errors", "_corrupt_record", "_filename")
_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def since_time(text: str, now: datetime) -> datetime:
    """``--since``: an RFC 3339 / ISO 8601 time (naive: UTC) or a duration before ``now`` (``90m``, ``24h``, ``7d``)."""
    match = _DURATION.fullmatch(text.strip())
    if match:
        return now - timedelta(**{_UNITS[match[2]]: int(match[1])})
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc(ms: Any) -> str:
    if not isinstance(ms, (int, float)):
        return "?"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _timestamp_spellings(value: str) -> list[str]:
    """``value`` (RFC 3339 in UTC, as the ``timestamp`` transform writes it) in the spellings a source may have
    used for the same instant: ``Z``, or any UTC offset on the quarter hour; no fraction, milliseconds or
    microseconds."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return [value]
    spellings = [value]
    for quarters in range(-48, 57):  # UTC-12:00 to UTC+14:00
        local = moment.astimezone(timezone(timedelta(minutes=15 * quarters)))
        zones = ["Z", "+00:00"] if quarters == 0 else [local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:]]
        fractions = [f".{local.microsecond:06d}"[:4], f".{local.microsecond:06d}"]
        if not local.microsecond:
            fractions.append("")
        for fraction in fractions:
            spellings += [local.strftime("%Y-%m-%dT%H:%M:%S") + fraction + zone for zone in zones]
    return list(dict.fromkeys(spellings))


def _at(entity: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        entity = entity.get(step) if isinstance(entity, dict) else None
    return entity


def _leaf_paths(entity: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(entity, dict) and entity and path != ("identityMap",):
        for key, value in entity.items():
            yield from _leaf_paths(value, (*path, key))
    elif isinstance(entity, list) and entity and all(isinstance(item, dict) for item in entity):
        for item in entity:
            yield from _leaf_paths(item, (*path, "[]"))
    else:
        yield path


@dataclass
class Join:
    """A failed entity's stream and key, and how sure that is."""

    stream: str | None
    key: dict[str, Any]
    verified: bool
    candidates: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        key = orjson.dumps(self.key).decode()
        if self.verified:
            return f"stream {self.stream}, key {key} (matched by _id)"
        if self.stream:
            return f"stream {self.stream}, key {key} (unverified: no key gives this _id)"
        if self.candidates:
            return f"stream one of {', '.join(self.candidates)} (unverified)"
        return "no stream's mapping writes this entity"


class KeyReader:
    """Reads a mapping's ``_id`` sources (the record's key fields) back out of an entity it wrote."""

    def __init__(self, mapping: StreamMapping, document: dict, tenant_id: str) -> None:
        self.mapping = mapping
        rules = document.get("fields", [])
        id_rule = next((r for r in rules if r.get("to") == "_id" and "hash" in r), None)
        self.sources: list[Any] = list(id_rule["hash"]) if id_rule else []
        self.readers: dict[str, Callable[[dict], list[str]]] = {}
        for rule in rules:
            if "to" not in rule or rule.get("map") or "each" in rule:
                continue
            path = output_path(rule, tenant_id)
            chain = rule.get("transform") or []
            chain = [chain] if isinstance(chain, str) else chain
            if "from" in rule and set(chain) <= _COPYING | {"timestamp"} and rule["from"] not in self.readers:
                timestamp = "timestamp" in chain
                self.readers[rule["from"]] = functools.partial(self._copied, path, timestamp)
            elif "concat" in rule:
                self._concat_readers(rule, path)

    @staticmethod
    def _copied(path: tuple[str, ...], timestamp: bool, entity: dict) -> list[str]:
        """The text a rule copied to ``path``, in the spellings the source may have had."""
        value = _at(entity, path)
        if value is None or isinstance(value, (dict, list)):
            return []
        text = as_text(value)
        return _timestamp_spellings(text) if timestamp else [text]

    def _concat_readers(self, rule: dict, path: tuple[str, ...]) -> None:
        """Readers for the paths a ``concat`` of paths and constants joins: the written text split at the
        constants (every split; the ``_id`` tells the right one)."""
        parts = rule["concat"]
        separator = re.escape(rule.get("separator", ""))
        fields = [p for p in parts if isinstance(p, str) and not p.startswith("$")]
        if len(fields) + sum(isinstance(p, dict) for p in parts) != len(parts):
            return
        pieces = ["(.+?)" if isinstance(p, str) else re.escape(str(p["value"])) for p in parts]

        def splits(index: int, entity: dict) -> list[str]:
            text = _at(entity, path)
            if not isinstance(text, str):
                return []
            found = []
            for greedy in (False, True):
                pattern = separator.join(pieces).replace("(.+?)", "(.+)") if greedy else separator.join(pieces)
                match = re.fullmatch(pattern, text)
                if match:
                    found.append(match[index + 1])
            return list(dict.fromkeys(found))

        for index, name in enumerate(fields):
            self.readers.setdefault(name, functools.partial(splits, index))

    def key(self, entity: dict) -> tuple[dict[str, Any], bool]:
        """The key fields read back (first spelling of each) and whether one combination gives the entity's
        ``_id``."""
        names = [s for s in self.sources if isinstance(s, str) and s not in ("$stream", "$record")]
        options = {name: self.readers[name](entity) if name in self.readers else [] for name in names}
        first = {name: values[0] for name, values in options.items() if values}
        if not self.sources or any(not values for values in options.values()) or "$record" in self.sources:
            return first, False
        for combination in itertools.product(*options.values()):
            chosen = dict(zip(options, combination, strict=True))
            parts = [self.mapping.stream if s == "$stream" else chosen[s] if isinstance(s, str) else s["value"]
                     for s in self.sources]  # fmt: skip
            if hash_parts(parts) == entity.get("_id"):
                return chosen, True
        return first, False

    def writes(self, entity: dict) -> bool:
        """Whether the mapping can write every path the entity holds."""
        written = set(self.mapping.written)
        return all(any(path[:size] in written for size in range(1, len(path) + 1)) for path in _leaf_paths(entity))


def join(readers: list[KeyReader], entity: dict) -> Join:
    """The stream and key of a failed ``entity``: the mapping whose ``_id`` it reproduces, else the one(s) that
    can write it."""
    keys = []
    for reader in readers:
        key, verified = reader.key(entity)
        if verified:
            return Join(reader.mapping.stream, key, True)
        keys.append(key)
    candidates = [(reader, key) for reader, key in zip(readers, keys, strict=True) if reader.writes(entity)]
    if len(candidates) == 1:
        reader, key = candidates[0]
        return Join(reader.mapping.stream, key, False)
    return Join(None, {}, False, [reader.mapping.stream for reader, _ in candidates])


def _errors(record: dict) -> list[dict[str, Any]]:
    """AEP's reasons, in each documented form: ``_validationErrors``, or ``_errors`` (a list, or an object with
    ``_streamingValidation``)."""
    errors = record.get("_validationErrors")
    if errors is None:
        other = record.get("_errors")
        errors = other.get("_streamingValidation") if isinstance(other, dict) else other
    return [e if isinstance(e, dict) else {"message": str(e)} for e in errors or []]


def _entity(record: dict) -> dict:
    """The failed XDM entity: ``body.xdmEntity`` of a failed message, or the record itself without AEP's keys."""
    body = record.get("body")
    if isinstance(body, dict) and isinstance(body.get("xdmEntity"), dict):
        return body["xdmEntity"]
    return {key: value for key, value in record.items() if key not in _ERROR_KEYS}


def _reason(errors: list[dict[str, Any]]) -> str:
    messages = []
    for error in errors:
        inner = error.get("causingExceptions") or []
        for item in inner or [error]:
            pointer = item.get("pointerToViolation")
            messages.append(f"{pointer}: {item.get('message')}" if pointer else str(item.get("message")))
    return "; ".join(messages) or "no reason given"


@dataclass
class FailedRecord:
    batch_id: str
    entity: dict
    errors: list[dict[str, Any]]
    join: Join

    def dead_letter_entry(self) -> dict[str, Any]:
        """As the target's dead letter writes an entry (``dead_letter.py``), with the batch, and no source record."""
        return {"stream": self.join.stream, "key": self.join.key, "http_status": None, "xdm": self.entity,
                "record": None, "reason": f"AEP failed batch {self.batch_id}: {_reason(self.errors)}",
                "batch_id": self.batch_id}  # fmt: skip


class Reporter:
    """One report over the target's datasets, written line by line through ``echo``."""

    def __init__(self, target: TargetAdobeAEP, echo: Callable[[str], None], *, shown_per_batch: int = 20) -> None:
        self.target = target
        self.platform = target.platform
        self.echo = echo
        self.shown_per_batch = shown_per_batch
        self.failed: list[FailedRecord] = []

    def _get(self, path: str, what: str, **kwargs: Any) -> Any:
        response = self.platform.get(path, what, **kwargs)
        if response.status_code != 200:
            msg = f"{what}: GET {path} answered HTTP {response.status_code}: {response.text[:300]}"
            raise ReportError(msg)
        return response

    @functools.cached_property
    def _readers(self) -> list[KeyReader]:
        """A key reader per active mapping, as ``provision`` and ``check`` see them, in stream order: the tenant is
        asked for and the mappings compiled once per report, not per dataset."""
        tenant = self.target.config.get("tenant_id")
        if not tenant:
            tenant = self._get(f"{REGISTRY}/stats", "Schema Registry").json()["tenantId"]
        mappings = active_mappings(self.target, tenant)
        readers = [KeyReader(mapping, document, tenant)
                   for destination, compiled in mappings.by_kind.items()
                   for mapping, document in zip(compiled, mappings.documents[destination], strict=True)]  # fmt: skip
        return sorted(readers, key=lambda reader: reader.mapping.stream)

    def readers(self, kind: str | None) -> list[KeyReader]:
        """The key readers of the destination's mappings (``None``: of any)."""
        return [reader for reader in self._readers if kind in (None, reader.mapping.target)]

    def batches(self, dataset_id: str, since: datetime) -> list[tuple[str, dict]]:
        found: list[tuple[str, dict]] = []
        start = 0
        while True:
            params = {"dataSet": dataset_id, "createdAfter": int(since.timestamp() * 1000), "orderBy": "asc:created",
                      "limit": 100, "start": start}  # fmt: skip
            page = self._get(f"{CATALOG}/batches", "Catalog", params=params).json()
            found += list(page.items())
            if len(page) < 100:
                return found
            start += len(page)

    def failed_records(self, batch_id: str) -> Iterator[dict]:
        listing = self._get(f"{EXPORT}/batches/{batch_id}/failed", "Data Access").json()
        for item in listing.get("data", []):
            name = item.get("name", "")
            if name.startswith("_"):  # _SUCCESS and other markers
                continue
            response = self._get(f"{EXPORT}/batches/{batch_id}/failed", "Data Access", params={"path": name})
            for line in response.text.splitlines():
                if line.strip():
                    yield orjson.loads(line)

    def dataset(self, kind: str | None, dataset_id: str, since: datetime) -> None:
        batches = self.batches(dataset_id, since)
        self.echo(
            f"Dataset {dataset_id} ({kind}): {len(batches)} batch(es) created since {_utc(since.timestamp() * 1000)}"
        )
        readers = self.readers(kind)
        for batch_id, batch in batches:
            counts = batch.get("metrics") or {}
            records = f"records {counts.get('inputRecordCount', '?')}, failed {counts.get('failedRecordCount', 0)}"
            self.echo(f"  {batch_id}  {batch.get('status', '?'):<8} {_utc(batch.get('created'))}  {records}")
            if batch.get("status") != "failed":
                continue
            for index, record in enumerate(self.failed_records(batch_id)):
                entity = _entity(record)
                failed = FailedRecord(batch_id, entity, _errors(record), join(readers, entity))
                self.failed.append(failed)
                if index < self.shown_per_batch:
                    self.echo(f"    failed record _id {entity.get('_id', '?')}: {failed.join}")
                    self.echo(f"      {_reason(failed.errors)}")
                elif index == self.shown_per_batch:
                    self.echo("    … (every failed record goes to the dead letter with --dead-letter)")

    def metrics(self, dataset_ids: list[str], since: datetime, now: datetime) -> None:
        """Sums of the observability metrics since ``since``; "not available" when the API refuses."""
        dataset_filter = [{"name": "dataSetId", "value": "|".join(dataset_ids), "groupBy": True}]
        names = {
            "timeseries.ingestion.dataset.recordsuccess.count": "records ingested",
            "timeseries.ingestion.dataset.batchfailed.count": "failed batches",
            "timeseries.data.collection.inlet.success": "successful calls to the inlets",
            "timeseries.data.collection.inlet.failure": "failed calls to the inlets",
        }
        body = {
            "start": since.isoformat().replace("+00:00", "Z"), "end": now.isoformat().replace("+00:00", "Z"),
            "granularity": "day",
            "metrics": [{"name": name, "aggregator": "sum", "downsample": "sum",
                         **({"filters": dataset_filter} if ".dataset." in name else {})} for name in names],
        }  # fmt: skip
        response = self.platform.request("POST", METRICS, "Observability Insights", body=body)
        if response.status_code != 200:
            self.echo(f"Observability metrics not available: HTTP {response.status_code} {response.text[:200]}")
            return
        self.echo(f"Observability metrics since {_utc(since.timestamp() * 1000)}:")
        for result in response.json().get("metricResponses", []):
            for point in result.get("datapoints", []):
                total = sum(point.get("dps", {}).values())
                group = point.get("groupBy", {}).get("dataSetId")
                where = f"dataset {group}" if group else "all inlets"
                self.echo(f"  {names.get(result.get('metric'), result.get('metric'))} ({where}): {total:g}")


def existing_dead_letters(lines: Iterator[str]) -> set[tuple[str, str]]:
    """(batch, ``_id``) of the entries a previous report appended, so a second report appends none twice."""
    seen = set()
    for line in lines:
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("batch_id") and isinstance(entry.get("xdm"), dict):
            seen.add((entry["batch_id"], str(entry["xdm"].get("_id"))))
    return seen
