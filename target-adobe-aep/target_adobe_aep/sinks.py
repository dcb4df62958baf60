"""AEPSink: one stream's batches, converted to XDM, validated, and published before the SDK may emit state.

``process_batch`` is synchronous on purpose: the SDK writes a STATE message only after ``drain_all`` returned,
so state never covers a record that is not yet accepted by AEP or written to the dead letter; any failure
raises and leaves the state where it was.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastjsonschema
import orjson
from singer_sdk.exceptions import InvalidJSONSchema, InvalidRecord
from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import BaseJSONSchemaValidator

from target_adobe_aep.dcs import Envelope
from target_adobe_aep.mapping import ConversionError, missing_source_paths

if TYPE_CHECKING:
    from target_adobe_aep.target import TargetAdobeAEP

# AEP Profile guardrails: larger ExperienceEvents and profile records are dropped (EN help/profile/guardrails.md).
GUARDRAIL_BYTES = {"event": 10 * 1024, "profile": 100 * 1024}


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

    def __init__(self, target: TargetAdobeAEP, *args: Any, **kwargs: Any) -> None:
        self._target = target
        super().__init__(target, *args, **kwargs)

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        return FastRecordValidator(self.schema) if self.validate_schema else None

    def setup(self) -> None:
        """Everything that can be wrong with the configuration fails here, when the stream's SCHEMA arrives."""
        super().setup()
        target = self._target
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
            self.validator = target.schemas.validator(schema_id)
        self.envelope = Envelope(
            schema_id=schema_id,
            dataset_id=dataset_id,
            org_id=self.config.get("org_id"),
            flow_id=self.config.get("flow_id"),
            source=target.name,
        )
        self.max_entity_bytes = GUARDRAIL_BYTES[self.mapping.target]
        if self.config["dry_run"]:
            safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", self.stream_name)
            self.dry_run_file = Path(self.config["dry_run_path"]) / f"{safe_name}.jsonl"
        else:
            _ = target.publisher  # connect settings are checked now, not at the first drain

    def _key(self, record: dict) -> dict[str, Any]:
        return {name: record.get(name) for name in self.key_properties}

    def _latest_per_key(self, records: list[dict]) -> list[dict]:
        """The last record of each key: a later version supersedes an earlier one in the same batch."""
        if not self.key_properties:
            return records
        latest = {tuple(str(record.get(k)) for k in self.key_properties): record for record in records}
        if len(latest) < len(records):
            self.tally_duplicate_merged(len(records) - len(latest))
        return list(latest.values())

    def process_batch(self, context: dict) -> None:
        records: list[dict] = context.get("records", [])
        stream = self.stream_name
        if self.mapping.target == "none":
            self._target.record_stats(stream, received=len(records), skipped=len(records))
            return
        unique = self._latest_per_key(records)
        dead: list[dict[str, Any]] = []
        sources: list[tuple[dict, dict]] = []
        messages: list[bytes] = []
        for record in unique:
            try:
                xdm = self.mapping.convert(record)
            except ConversionError as exc:
                dead.append({"reason": f"conversion: {exc}", "xdm": None, "record": record})
                continue
            error = self.validator.error(xdm) if self.validator is not None else None
            if error is not None:
                dead.append({"reason": f"XDM validation: {error}", "xdm": xdm, "record": record})
                continue
            entity = orjson.dumps(xdm)
            if len(entity) > self.max_entity_bytes:
                reason = (
                    f"guardrail: XDM {self.mapping.target} of {len(entity)} bytes exceeds AEP's "
                    f"{self.max_entity_bytes // 1024} KB limit"
                )
                dead.append({"reason": reason, "xdm": xdm, "record": record})
                continue
            sources.append((record, xdm))
            messages.append(self.envelope.wrap(entity))

        counts = {"received": len(records), "duplicates_merged": len(records) - len(unique)}
        if self.config["dry_run"]:
            self.dry_run_file.parent.mkdir(parents=True, exist_ok=True)
            with self.dry_run_file.open("ab") as file:
                file.write(b"".join(m + b"\n" for m in messages))
            counts["written"] = len(messages)
        elif messages:
            result = self._target.publisher.publish(messages)
            for rejection in result.rejected:
                record, xdm = sources[rejection.index]
                entry = {"reason": rejection.reason, "http_status": rejection.http_status, "xdm": xdm, "record": record}
                dead.append(entry)
            counts.update(
                sent=len(messages), accepted=result.accepted, requests=result.requests, retries=result.retries
            )
        counts["dead_lettered"] = len(dead)
        self._target.record_stats(stream, **counts)
        self._target.dead_letter.write(
            [{"stream": stream, "key": self._key(e["record"]), "http_status": None, **e} for e in dead]
        )
