"""AEPSink: one stream's records, converted to XDM and validated as they arrive, published in batches.

A batch keeps only bytes: each message and its source record serialized for the dead letter. It is drained once
its messages fill ``requests_per_batch`` DCS requests, so memory stays flat whatever the run's size and requests
go out full. Publishing runs in the background while the next records are converted; the target writes a STATE
message only after every batch before it is done (``TargetAdobeAEP.wait_for_batches``), so state never covers a
record that is not yet accepted by AEP or written to the dead letter, and any failure leaves the state where it was.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastjsonschema
import orjson
from singer_sdk.exceptions import InvalidJSONSchema, InvalidRecord
from singer_sdk.helpers._compat import date_fromisoformat, datetime_fromisoformat, time_fromisoformat
from singer_sdk.helpers._typing import get_datelike_property_type
from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import BaseJSONSchemaValidator

from target_adobe_aep.dcs import REQUEST_OVERHEAD, Envelope, RequestFill
from target_adobe_aep.dead_letter import serialized
from target_adobe_aep.mapping import ConversionError, missing_source_paths

if TYPE_CHECKING:
    from singer_sdk.helpers.conform import DatetimeErrorTreatmentEnum

    from target_adobe_aep.target import TargetAdobeAEP

# AEP Profile guardrails: larger ExperienceEvents and profile records are dropped (EN help/profile/guardrails.md).
GUARDRAIL_BYTES = {"event": 10 * 1024, "profile": 100 * 1024}
# The parsers the SDK applies to date-like properties (its Sink._parse_timestamps_in_record).
_DATE_PARSERS = {"date-time": datetime_fromisoformat, "date": date_fromisoformat, "time": time_fromisoformat}


class FastRecordValidator(BaseJSONSchemaValidator):
    """Input validation with a compiled fastjsonschema validator (the SDK's jsonschema one is the hot spot)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        super().__init__(schema)
        try:
            self._validate = fastjsonschema.compile(schema, use_formats=False, use_default=False)
        except fastjsonschema.JsonSchemaDefinitionException as exc:
            msg = f"Schema Validation Error: {exc}"
            raise InvalidJSONSchema(msg) from exc

    def validate(self, record: dict[str, Any]) -> None:
        try:
            self._validate(record)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise InvalidRecord(exc.message, record) from exc


class AEPSink(BatchSink):
    """Sends one Singer stream to the profile or event dataset its mapping names."""

    # Batches are bounded by bytes (requests_per_batch); rows only bound batches of tiny records.
    MAX_SIZE_DEFAULT = 100_000

    def __init__(self, target: TargetAdobeAEP, *args: Any, **kwargs: Any) -> None:
        self._target = target
        self._fill = RequestFill(target.config["max_request_bytes"])
        self._requests_per_batch: int = target.config["requests_per_batch"]
        super().__init__(target, *args, **kwargs)

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        return FastRecordValidator(self.schema) if self.validate_schema else None

    def setup(self) -> None:
        """Everything that can be wrong with the configuration fails here, when the stream's SCHEMA arrives."""
        super().setup()
        target = self._target
        properties = self.schema["properties"]
        self._declared = frozenset(properties)
        self._date_parsers = {key: _DATE_PARSERS[kind] for key, prop in properties.items()
                              if (kind := get_datelike_property_type(prop)) in _DATE_PARSERS}  # fmt: skip
        self.mapping = target.mapping(self.stream_name)
        for path in missing_source_paths(self.mapping, self.schema):
            self.logger.warning(
                "Mapping %s reads '%s', which the stream's schema does not declare", self.mapping.origin, path
            )
        self.validator = None
        if self.mapping.target == "none":
            self.logger.info("Stream '%s' is mapped to nothing (%s): its records are counted, not sent",
                             self.stream_name, self.mapping.origin)  # fmt: skip
            return
        dataset_id, schema_id = target.destination(self.mapping.target)
        if self.config["validate_xdm"]:
            self.validator = target.schemas.validator(schema_id, self.mapping.output_tree)
        self.envelope = Envelope(
            schema_id=schema_id,
            dataset_id=dataset_id,
            org_id=self.config.get("org_id"),
            flow_id=self.config.get("flow_id"),
            source=target.name,
        )
        self.max_entity_bytes = GUARDRAIL_BYTES[self.mapping.target]
        self.max_message_bytes = self.config["max_request_bytes"] - REQUEST_OVERHEAD  # larger: the publisher refuses
        if self.config["dry_run"]:
            safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", self.stream_name)
            self.dry_run_file = Path(self.config["dry_run_path"]) / f"{safe_name}.jsonl"
        else:
            _ = target.publisher  # connect settings are checked now, not at the first drain

    def _parse_timestamps_in_record(self, record: dict, schema: dict, treatment: DatetimeErrorTreatmentEnum) -> None:
        """The SDK's parsing of date-like properties, with those properties found once per stream rather than
        once per record and key; records it would warn about or repair go through the SDK's own method."""
        if schema is not self.schema or not self._declared.issuperset(record):
            super()._parse_timestamps_in_record(record, schema, treatment)
            return
        parsed = {}
        for key, parse in self._date_parsers.items():
            value = record.get(key)
            if value is not None:
                try:
                    parsed[key] = parse(value)
                except ValueError:
                    super()._parse_timestamps_in_record(record, schema, treatment)
                    return
        record.update(parsed)

    @property
    def is_full(self) -> bool:
        return super().is_full or self._fill.full_requests >= self._requests_per_batch

    def start_drain(self) -> dict:
        self._fill = RequestFill(self._fill.max_request_bytes)
        return super().start_drain()

    def _dead(self, reason: str, xdm: Any, record: dict, http_status: int | None = None) -> dict[str, Any]:
        """A dead-letter entry (the dead letter adds ``time`` and ``stream``)."""
        key = {name: record.get(name) for name in self.key_properties}
        return {"key": key, "http_status": http_status, "reason": reason, "xdm": xdm, "record": record}

    def process_record(self, record: dict, context: dict) -> None:
        """Convert and validate ``record`` now; the batch keeps its message, or its dead-letter entry.

        Within a batch, a later record with the same key properties supersedes an earlier one (in its place).
        """
        received = context["received"] = context.get("received", 0) + 1
        if self.mapping.target == "none":
            return
        key = tuple(map(record.get, self.key_properties)) if self.key_properties else received
        pending = context.setdefault("pending", {})
        converted = self._convert(record)
        try:
            pending[key] = converted
        except TypeError:  # a key property holding a list or an object
            pending[orjson.dumps(key, default=str)] = converted
        if type(converted) is tuple and len(converted[0]) <= self.max_message_bytes:
            self._fill.add(len(converted[0]))

    def process_batch_files(self, encoding: Any, files: Any) -> None:
        """BATCH messages would bypass conversion, validation and counting: refuse them rather than drop them."""
        msg = (
            f"stream '{self.stream_name}' sent a BATCH message, which target-adobe-aep does not support: run the "
            "tap without batch_config, so that it sends RECORD messages"
        )
        raise NotImplementedError(msg)

    def _convert(self, record: dict) -> tuple[bytes, bytes] | dict[str, Any]:
        """``(message, serialized record)``, or the dead-letter entry saying why the record cannot be sent."""
        try:
            xdm = self.mapping.convert(record)
        except ConversionError as exc:
            return self._dead(f"conversion: {exc}", None, record)
        error = self.validator.error(xdm) if self.validator is not None else None
        if error is not None:
            return self._dead(f"XDM validation: {error}", xdm, record)
        entity = orjson.dumps(xdm)
        if len(entity) > self.max_entity_bytes:
            reason = (
                f"guardrail: XDM {self.mapping.target} of {len(entity)} bytes exceeds AEP's "
                f"{self.max_entity_bytes // 1024} KB limit"
            )
            return self._dead(reason, xdm, record)
        return self.envelope.wrap(entity), serialized(record)

    def process_batch(self, context: dict) -> None:
        received: int = context.get("received", 0)
        stream = self.stream_name
        if self.mapping.target == "none":
            self._target.record_stats(stream, received=received, skipped=received)
            return
        pending: dict = context.pop("pending", {})
        merged = received - len(pending)
        if merged:
            self.tally_duplicate_merged(merged)
        dead = [entry for entry in pending.values() if type(entry) is dict]
        sendable: list[tuple[bytes, bytes]] = [entry for entry in pending.values() if type(entry) is tuple]
        del pending

        counts = {"received": received, "duplicates_merged": merged}
        if self.config["dry_run"]:
            self.dry_run_file.parent.mkdir(parents=True, exist_ok=True)
            with self.dry_run_file.open("ab") as file:
                file.write(b"".join(m + b"\n" for m, _ in sendable))
            self._finish_batch(dead, written=len(sendable), **counts)
            return
        # Publishing overlaps with converting the next records. This stream's batches stay in order, and the
        # target writes STATE only once every batch before it is done (TargetAdobeAEP.wait_for_batches).
        self._target.in_background(self.stream_name, lambda: self._publish(sendable, dead, counts))

    def _publish(self, sendable: list[tuple[bytes, bytes]], dead: list[dict], counts: dict[str, int]) -> None:
        messages = [message for message, _ in sendable]
        if messages:
            result = self._target.publisher.publish(messages)
            for rejection in result.rejected:
                message, record = sendable[rejection.index]
                entry = self._dead(rejection.reason, self.envelope.entity(message), orjson.loads(record),
                                   rejection.http_status)  # fmt: skip
                dead.append({**entry, "record": orjson.Fragment(record)})
            counts.update(
                sent=len(messages), accepted=result.accepted, requests=result.requests, retries=result.retries
            )
        self._finish_batch(dead, **counts)

    def _finish_batch(self, dead: list[dict], **counts: int) -> None:
        self._target.record_stats(self.stream_name, dead_lettered=len(dead), **counts)
        self._target.dead_letter.write([{"stream": self.stream_name, **entry} for entry in dead])
