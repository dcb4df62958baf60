"""AEPSink: one stream's records, kept as bytes, converted to XDM at drain time and published in batches.

A batch keeps each record serialized, as the dead letter would write it. It is drained once the messages its
records are expected to make fill ``requests_per_batch`` DCS requests (message size per record byte is learnt
from the stream's converted batches), so memory stays flat whatever the run's size. A drained batch is converted
by the target's conversion workers (``conversion.py``) and published in the background while the next records
are read; the messages of its last, part-filled request are held back and go out first with the stream's next
batch, so requests go out full. Before the target writes a STATE message it sends what every stream holds and
waits for every batch (``TargetAdobeAEP.wait_for_batches``), so state never covers a record that is not yet
accepted by AEP or written to the dead letter, and any failure leaves the state where it was.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from singer_sdk.sinks.core import BaseJSONSchemaValidator

from target_adobe_aep.conversion import (
    DATE_PARSERS,
    GUARDRAIL_BYTES,
    AheadOfClock,
    ConversionSpec,
    Converted,
    InvalidInputRecord,
)
from target_adobe_aep.dcs import REQUEST_OVERHEAD, RequestFill, pack
from target_adobe_aep.dead_letter import private_file, serialized, write_all
from target_adobe_aep.mapping import compile_mapping, missing_source_paths
from target_adobe_aep.sdk_adapter import WorkerParsedDatesSink, get_datelike_property_type

if TYPE_CHECKING:
    from target_adobe_aep.target import TargetAdobeAEP

# Why orjson cannot serialize a record, and what that means for AEP.
UNSENDABLE = {
    "Integer exceeds 64-bit range": "an integer beyond 64 bits (XDM numbers are doubles, its integers 64-bit: send "
    "such a value as a string)",
    "Recursion limit reached": "nesting deeper than 254 levels",
}


class AEPSink(WorkerParsedDatesSink):
    """Sends one Singer stream to the profile or event dataset its mapping names."""

    # Batches are bounded by bytes (requests_per_batch); rows only bound batches of tiny records.
    MAX_SIZE_DEFAULT = 100_000

    def __init__(self, target: TargetAdobeAEP, *args: Any, **kwargs: Any) -> None:
        self._target = target
        self._fill = RequestFill(target.config["max_request_bytes"])
        self._requests_per_batch: int = target.config["requests_per_batch"]
        # Messages of the last batch's part-filled request, sent first with the next batch (or by ``flush``).
        # Only this sink's batch jobs touch it, and they run one after the other.
        self._held: list[tuple[bytes, bytes, Any]] = []  # (message, serialized record, key)
        # The records of the batch being filled, by key. Not in the SDK's batch context, which the SDK logs at
        # DEBUG for every record.
        self._pending: dict[Any, bytes] = {}
        self._message_bytes_per_record_byte = 1.0  # learnt from each converted batch
        super().__init__(target, *args, **kwargs)

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        """None: input records are validated where they are converted (``conversion.Converter``), off the
        target's main thread; an invalid stream schema still fails at SCHEMA time (``ConversionPool.prepare``)."""
        return None

    def setup(self) -> None:
        """Everything that can be wrong with the configuration fails here, when the stream's SCHEMA arrives."""
        super().setup()
        target = self._target
        properties = self.schema["properties"]
        self.declared_properties = frozenset(properties)
        date_kinds = {key: kind for key, prop in properties.items()
                      if (kind := get_datelike_property_type(prop)) in DATE_PARSERS}  # fmt: skip
        mapping_inputs = target.mapping_inputs(self.stream_name)
        self.mapping = compile_mapping(self.stream_name, **mapping_inputs)
        if self.config["preflight"] and self.mapping.target != "none":
            target.preflight.check_mapping(self.mapping)  # before any record of the stream is sent
        for path in missing_source_paths(self.mapping, self.schema):
            self.logger.warning(
                "Mapping %s reads '%s', which the stream's schema does not declare", self.mapping.origin, path
            )
        if self.mapping.target == "none":
            self.logger.info("Stream '%s' is mapped to nothing (%s): its records are counted, not sent",
                             self.stream_name, self.mapping.origin)  # fmt: skip
            return
        _, schema_id = target.destination(self.mapping.target)
        target.profile_guardrail_kb[self.stream_name] = GUARDRAIL_BYTES[self.mapping.target] // 1024
        self.envelope = target.envelope(self.mapping.target)
        self.flow_id = target.flow_id(self.mapping.target)
        self._spec = ConversionSpec(
            key=uuid.uuid4().hex,
            stream=self.stream_name,
            mapping=mapping_inputs,
            xdm_schema=(schema_id, target.schemas.reduced(schema_id, self.mapping.output_tree))
            if self.config["validate_xdm"]
            else None,
            envelope=self.envelope,
            input_schema=self.schema if self.validate_schema else None,
            date_kinds=date_kinds,
            future_tolerance=datetime.timedelta(seconds=self.config["future_timestamp_tolerance_seconds"]),
            dead_letter_future_timestamps=self.config["dead_letter_future_timestamps"],
            dead_letter_over_guardrail=self.config["dead_letter_over_profile_guardrail"],
        )
        target.conversions.prepare(self._spec)
        self._envelope_bytes = len(self.envelope.wrap(b""))
        self.max_message_bytes = self.config["max_request_bytes"] - REQUEST_OVERHEAD  # larger: the publisher refuses
        if self.config["dry_run"]:
            safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", self.stream_name)
            self.dry_run_file = Path(self.config["dry_run_path"]) / f"{safe_name}.jsonl"
        else:
            _ = target.publisher  # connect settings are checked now, not at the first drain

    @property
    def _requests_full(self) -> bool:
        return self._fill.full_requests >= self._requests_per_batch

    @property
    def is_full(self) -> bool:
        return super().is_full or self._requests_full

    def start_drain(self) -> dict:
        # Only a batch drained because its requests are full holds back its last, part-filled request: one
        # drained by batch_size_rows, a checkpoint or the end of input sends everything.
        full = self._requests_full
        self._fill = RequestFill(self._fill.max_request_bytes)
        context = super().start_drain()
        context["requests_full"] = full
        context["pending"], self._pending = self._pending, {}
        return context

    def _dead(self, reason: str, xdm: Any, raw: bytes, http_status: int | None = None) -> dict[str, Any]:
        """A dead-letter entry for a serialized record (the dead letter adds ``time`` and ``stream``)."""
        record = orjson.loads(raw)
        key = {name: record.get(name) for name in self.key_properties}
        return {"key": key, "http_status": http_status, "reason": reason, "xdm": xdm, "record": orjson.Fragment(raw)}

    def process_record(self, record: dict, context: dict) -> None:
        """Keep ``record`` serialized until its batch is drained.

        Within a batch, a later record with the same key properties supersedes an earlier one (in its place).
        """
        received = context["received"] = context.get("received", 0) + 1
        if self.mapping.target == "none":
            return
        key = tuple(map(record.get, self.key_properties)) if self.key_properties else received
        try:
            raw = serialized(record)
        except orjson.JSONEncodeError as exc:
            found = {name: str(record.get(name))[:40] for name in self.key_properties}
            msg = f"stream '{self.stream_name}': the record with key {found} holds {UNSENDABLE.get(str(exc), exc)}"
            raise InvalidInputRecord(msg) from None
        try:
            self._pending[key] = raw
        except TypeError:  # a key property holding a list or an object
            self._pending[orjson.dumps(key, default=str)] = raw
        expected = self._envelope_bytes + int(len(raw) * self._message_bytes_per_record_byte)
        self._fill.add(min(expected, self.max_message_bytes))

    def process_batch_files(self, encoding: Any, files: Any) -> None:
        """BATCH messages would bypass conversion, validation and counting: refuse them rather than drop them."""
        msg = (
            f"stream '{self.stream_name}' sent a BATCH message, which target-adobe-aep does not support: run the "
            "tap without batch_config, so that it sends RECORD messages"
        )
        raise NotImplementedError(msg)

    def process_batch(self, context: dict) -> None:
        received: int = context.get("received", 0)
        if self.mapping.target == "none":
            self._target.record_stats(self.stream_name, received=received, skipped=received)
            return
        pending: dict = context.pop("pending", {})
        merged = received - len(pending)
        if merged:
            self.tally_duplicate_merged(merged)
        keys, raws = list(pending), list(pending.values())
        del pending
        conversions = self._target.conversions.submit(self._spec.key, raws, self._target.clock.utc_now())
        counts = {"received": received, "duplicates_merged": merged}
        hold = context["requests_full"]
        # Converted and published while the next records are read. This stream's batches go out in order, and
        # the target writes STATE only once every batch before it is done (TargetAdobeAEP.wait_for_batches).
        self._target.in_background(self.stream_name, lambda: self._send_batch(keys, raws, conversions, counts, hold))

    def flush(self) -> None:
        """Send the messages held back from the last batch (the target is about to write STATE, or ends)."""
        if self.mapping.target != "none" and not self.config["dry_run"]:
            self._target.in_background(self.stream_name, self._send_held)

    def _send_held(self) -> None:
        held, self._held = self._held, []
        if held:
            self._publish(held, [], {}, hold_open_request=False)

    def _send_batch(
        self, keys: list, raws: list[bytes], conversions: list[Future], counts: dict[str, int], hold: bool
    ) -> None:
        results: list[Converted] = [result for chunk in conversions for result in chunk.result()]
        sendable: list[tuple[bytes, bytes, Any]] = []
        dead: list[dict] = []
        ahead = 0
        for key, raw, result in zip(keys, raws, results, strict=True):
            if isinstance(result, AheadOfClock):
                ahead += 1
                sendable.append((result.message, raw, key))
            elif isinstance(result, bytes):
                sendable.append((result, raw, key))
            else:
                dead.append(self._dead(*result, raw))
        counts = {**counts, "future_timestamps": ahead}
        if sendable:
            entity_bytes = sum(len(message) for message, _, _ in sendable) - self._envelope_bytes * len(sendable)
            self._message_bytes_per_record_byte = entity_bytes / sum(len(raw) for _, raw, _ in sendable)
            # Sent to the data lake all the same; Profile drops them (dead_letter_over_profile_guardrail: false).
            largest_kept = GUARDRAIL_BYTES[self.mapping.target] + self._envelope_bytes
            counts = {**counts, "over_profile_guardrail": sum(len(m) > largest_kept for m, _, _ in sendable)}
        if self.config["dry_run"]:
            with private_file(self.dry_run_file) as file:
                write_all(file, b"".join(m + b"\n" for m, _, _ in sendable))
            self._finish_batch(dead, {**counts, "written": len(sendable)})
            return
        held, self._held = self._held, []
        if held and self.key_properties:
            # One publish sends its requests concurrently, so two versions of a record in it could arrive in
            # either order: a held message superseded by a newer version in this batch is dropped.
            newer = {key for _, _, key in sendable}
            kept = [item for item in held if item[2] not in newer]
            counts = {**counts, "duplicates_merged": counts["duplicates_merged"] + len(held) - len(kept)}
            held = kept
        self._publish(held + sendable, dead, counts, hold_open_request=hold)

    def _publish(
        self, sendable: list[tuple[bytes, bytes, Any]], dead: list[dict], counts: dict[str, int], *,
        hold_open_request: bool,
    ) -> None:  # fmt: skip
        if hold_open_request:
            groups, _ = pack([len(message) for message, _, _ in sendable], self.config["max_request_bytes"])
            cut = groups[-1][0] if groups else len(sendable)
            sendable, self._held = sendable[:cut], sendable[cut:]
        messages = [message for message, _, _ in sendable]
        whole_requests_refused: list[tuple[str, int]] = []
        if messages:
            result = self._target.publisher.publish(messages, self.flow_id)
            for rejection in result.rejected:
                message, raw, _ = sendable[rejection.index]
                dead.append(self._dead(rejection.reason, self.envelope.entity(message), raw, rejection.http_status))
            counts = {**counts, "sent": len(messages), "accepted": result.accepted, "requests": result.requests,
                      "retries": result.retries}  # fmt: skip
            whole_requests_refused = result.whole_requests_refused
        self._finish_batch(dead, counts, whole_requests_refused)

    def _finish_batch(
        self, dead: list[dict], counts: dict[str, int], whole_requests_refused: Sequence[tuple[str, int]] = ()
    ) -> None:
        """Count the batch, stop the run if its refusals come from a setting (``rejections.py``), dead-letter them,
        then stop the run if too many were refused."""
        target = self._target
        target.record_stats(self.stream_name, **counts)
        outcomes = counts.get("accepted", 0) + counts.get("written", 0) + len(dead)
        reasons = [entry["reason"] for entry in dead]
        target.rejections.check_batch(self.stream_name, self.mapping.target, reasons, outcomes, whole_requests_refused)
        target.record_stats(self.stream_name, dead_lettered=len(dead))
        target.dead_letter.write([{"stream": self.stream_name, **entry} for entry in dead])
        target.rejections.check_totals(self.stream_name, target.dead_letter.count)
