"""Converting records into DCS messages (mapping, XDM validation, guardrail, envelope), in worker processes.

Conversion is most of the target's CPU. The sink keeps each record as the bytes the dead letter would write and
hands a drained batch to ``conversion_workers`` processes in chunks, so converting uses the other cores while
the target's own process reads input and publishes. A worker gets a stream's ``ConversionSpec`` (documents and
schemas, no code) and compiles it once; ``0`` workers convert in a thread of the target's process instead, with
the same code.
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import fastjsonschema
import orjson

from target_adobe_aep.mapping import ConversionError, compile_mapping
from target_adobe_aep.xdm_schema import XdmValidator

# Real-Time Customer Profile's guardrails: larger ExperienceEvents and profile records are dropped from Profile
# (EN help/profile/guardrails.md), while the data lake takes records up to 1 MB (EN help/ingestion/guardrails.md).
GUARDRAIL_BYTES = {"event": 10 * 1024, "profile": 100 * 1024}
# The parsers the SDK applies to date-like properties (Sink._parse_timestamps_in_record; on Python 3.11+ its
# singer_sdk.helpers._compat parsers are these). Workers do not import the SDK: it would double their memory.
DATE_PARSERS: dict[str, Callable[[str], Any]] = {
    "date-time": datetime.datetime.fromisoformat,
    "date": datetime.date.fromisoformat,
    "time": datetime.time.fromisoformat,
}
# Records per task sent to a worker: large enough that inter-process overhead is small, small enough that the
# workers share a batch evenly.
CHUNK_RECORDS = 256

XED_CONTENT_TYPE = "application/vnd.adobe.xed-full+json;version=1"

#: A record that cannot be sent: ``(reason, the XDM entity when conversion got that far)``.
Failure = tuple[str, Any]


@dataclass(frozen=True, slots=True)
class AheadOfClock:
    """The message of an ExperienceEvent timestamped more than ``future_timestamp_tolerance_seconds`` after the
    target's clock: sent all the same (AEP takes future timestamps, README "Validate"), and counted."""

    message: bytes


#: What converting one record gives: its message, an ``AheadOfClock`` message, or why it cannot be sent.
Converted = bytes | AheadOfClock | Failure


class Envelope:
    """Wraps serialized XDM entities in the streaming message envelope of one dataset and schema."""

    def __init__(
        self, *, schema_id: str, dataset_id: str, org_id: str | None, flow_id: str | None, source: str
    ) -> None:
        schema_ref = {"id": schema_id, "contentType": XED_CONTENT_TYPE}
        header = {"schemaRef": schema_ref, "imsOrgId": org_id, "datasetId": dataset_id, "source": {"name": source}}
        if not org_id:  # DCCS fills in the inlet's org when the header has none (streaming-multiple-messages.md)
            del header["imsOrgId"]
        if flow_id:
            header["flowId"] = flow_id
        meta = orjson.dumps({"schemaRef": schema_ref})
        self._prefix = b'{"header":' + orjson.dumps(header) + b',"body":{"xdmMeta":' + meta + b',"xdmEntity":'
        self._suffix = b"}}"

    def wrap(self, entity: bytes) -> bytes:
        return self._prefix + entity + self._suffix

    def entity(self, message: bytes) -> orjson.Fragment:
        """The serialized XDM entity inside a message of this envelope."""
        return orjson.Fragment(message[len(self._prefix) : -len(self._suffix)])


class InvalidInputRecord(ValueError):
    """An input record that its stream's schema refuses, or whose date-like property does not parse: the run
    stops, as the SDK stops on these (its ``InvalidRecord``; the SDK's datetime_error_treatment ERROR)."""


class InvalidStreamSchema(ValueError):
    """A stream's SCHEMA that is not a usable JSON Schema (found when it arrives, as the SDK finds it)."""


class RecordValidator:
    """A stream's input records checked against its Singer schema, compiled with fastjsonschema (the SDK's
    ``validate_records``; its jsonschema validator was the target's hot spot). Formats are not checked: the
    SDK's validator does not check them either."""

    def __init__(self, stream: str, schema: dict[str, Any]) -> None:
        self.stream = stream
        try:
            self._validate = fastjsonschema.compile(schema, use_formats=False, use_default=False)
        except fastjsonschema.JsonSchemaDefinitionException as exc:
            msg = f"stream '{stream}': Schema Validation Error: {exc}"
            raise InvalidStreamSchema(msg) from None

    def validate(self, record: dict[str, Any]) -> None:
        try:
            self._validate(record)
        except fastjsonschema.JsonSchemaValueException as exc:
            msg = f"Record Message Validation Error: {exc.message} (stream '{self.stream}')"
            raise InvalidInputRecord(msg) from None


@dataclass(frozen=True)
class ConversionSpec:
    """What converting one stream's records needs; picklable, so that worker processes can compile it."""

    key: str  # unique per sink: a worker compiles each spec once
    stream: str
    #: ``compile_mapping``'s keyword arguments: document, origin, tenant_id, identity_namespaces.
    mapping: dict[str, Any]
    #: ``(schema id, schema reduced to what the mapping writes)``, or None when XDM validation is off.
    xdm_schema: tuple[str, dict] | None
    envelope: Envelope
    #: The stream's Singer schema when input records are validated (the SDK's validate_records), else None.
    input_schema: dict | None
    #: Top-level date-like properties and their kind, parsed as the SDK parses them.
    date_kinds: dict[str, str]
    #: How far ahead of the target's clock an ExperienceEvent's timestamp may be (clock skew) before it counts as
    #: a future timestamp.
    future_tolerance: datetime.timedelta
    #: Dead-letter events with a future timestamp instead of sending them.
    dead_letter_future_timestamps: bool
    #: Dead-letter entities over Profile's guardrail instead of sending them to the data lake.
    dead_letter_over_guardrail: bool


class Converter:
    """One stream's compiled conversion: serialized record → DCS message, or why it cannot be sent."""

    def __init__(self, spec: ConversionSpec) -> None:
        self.stream = spec.stream
        self.mapping = compile_mapping(spec.stream, **spec.mapping)
        schema = spec.input_schema
        self.input_validator = RecordValidator(spec.stream, schema) if schema is not None else None
        self.validator = XdmValidator(*spec.xdm_schema) if spec.xdm_schema is not None else None
        self.envelope = spec.envelope
        self.future_tolerance = spec.future_tolerance
        self.dead_letter_future_timestamps = spec.dead_letter_future_timestamps
        self.max_entity_bytes = GUARDRAIL_BYTES[self.mapping.target] if spec.dead_letter_over_guardrail else None
        self._date_parsers = {key: DATE_PARSERS[kind] for key, kind in spec.date_kinds.items()}

    def message(self, raw: bytes, now: datetime.datetime) -> Converted:
        """``raw``'s message; ``now`` is the target's clock (UTC) when the record's batch was drained."""
        record = orjson.loads(raw)
        if self.input_validator is not None:
            self.input_validator.validate(record)
        for key, parse in self._date_parsers.items():
            value = record.get(key)
            if type(value) is str:
                try:
                    record[key] = parse(value)
                except ValueError as exc:  # the SDK's message and outcome
                    msg = f"Could not parse value '{value}' for field '{key}' (stream '{self.stream}'): {exc}"
                    raise InvalidInputRecord(msg) from None
        try:
            xdm, moment = self.mapping.convert_timed(record)
        except ConversionError as exc:
            return f"conversion: {exc}", None
        error = self.validator.error(xdm) if self.validator is not None else None
        if error is not None:
            return f"XDM validation: {error}", xdm
        latest = now + self.future_tolerance
        ahead = moment is not None and moment > latest
        if ahead and self.dead_letter_future_timestamps:
            reason = (
                f"future timestamp: the ExperienceEvent timestamp {xdm['timestamp']!r} is later than "
                f"{latest:%Y-%m-%dT%H:%M:%SZ} (now + future_timestamp_tolerance_seconds; dead_letter_future_timestamps)"
            )
            return reason, xdm
        entity = orjson.dumps(xdm)
        if self.max_entity_bytes is not None and len(entity) > self.max_entity_bytes:
            reason = (
                f"guardrail: XDM {self.mapping.target} of {len(entity)} bytes is over Profile's "
                f"{self.max_entity_bytes // 1024} KB guardrail (dead_letter_over_profile_guardrail)"
            )
            return reason, xdm
        message = self.envelope.wrap(entity)
        return AheadOfClock(message) if ahead else message


_compiled: dict[str, Converter] = {}  # per process: spec key -> its converter


def _convert_chunk(key: str, pickled_spec: bytes, raws: list[bytes], now: datetime.datetime) -> list[Converted]:
    converter = _compiled.get(key)
    if converter is None:
        converter = _compiled[key] = Converter(pickle.loads(pickled_spec))
    return [converter.message(raw, now) for raw in raws]


def _start_worker() -> None:
    """A worker never outlives the target (a killed target's workers would wait for work forever, holding the
    pipes Meltano reads until they close), never writes to the target's output (its STATE messages), and
    leaves Ctrl-C, which reaches the whole process group, to the target."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    threading.Thread(target=_exit_with_target, daemon=True).start()


def _exit_with_target() -> None:
    parent = multiprocessing.parent_process()  # a worker always has one
    if parent is not None:
        parent.join()  # returns once the target's process is gone, however it ended
    os._exit(1)


def _worker_context() -> multiprocessing.context.BaseContext:
    """Workers forked from a server process that imported this module: starting one costs no imports. Not a
    plain fork of the target, whose threads (publishing, the SDK's drains) may hold locks at that moment."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


class ConversionPool:
    """Converts batches in ``workers`` processes (0: one thread of this process); results keep record order."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: Executor
        if workers:
            self._executor = ProcessPoolExecutor(workers, mp_context=_worker_context(), initializer=_start_worker)
            self._executor.submit(int)  # start a worker now, while the target reads its first records
        else:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="convert")
        self._pickled: dict[str, bytes] = {}

    def prepare(self, spec: ConversionSpec) -> None:
        """Compile ``spec`` here (configuration errors surface now, at SCHEMA time) and keep it for the workers."""
        converter = Converter(spec)
        self._pickled[spec.key] = pickle.dumps(spec)
        if not self.workers:
            _compiled[spec.key] = converter

    def submit(self, spec_key: str, raws: list[bytes], now: datetime.datetime) -> list[Future]:
        """Start converting ``raws`` at the time ``now``; the futures give, chunk by chunk, each record's
        ``Converted``."""
        pickled = self._pickled[spec_key]
        return [
            self._executor.submit(_convert_chunk, spec_key, pickled, raws[start : start + CHUNK_RECORDS], now)
            for start in range(0, len(raws), CHUNK_RECORDS)
        ]

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
