"""Converting records into DCS messages (mapping, XDM validation, guardrail, envelope), in worker processes.

Conversion is most of the target's CPU. The sink keeps each record as the bytes the dead letter would write and
hands a drained batch to ``conversion_workers`` processes in chunks, so converting uses the other cores while
the target's own process reads input and publishes. A worker gets a stream's ``ConversionSpec`` (documents and
schemas, no code) and compiles it once; ``0`` workers convert in a thread of the target's process instead, with
the same code.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import fastjsonschema
import orjson
from singer_sdk.exceptions import InvalidJSONSchema, InvalidRecord
from singer_sdk.helpers._compat import date_fromisoformat, datetime_fromisoformat, time_fromisoformat
from singer_sdk.sinks.core import BaseJSONSchemaValidator

from target_adobe_aep.dcs import Envelope
from target_adobe_aep.mapping import ConversionError, compile_mapping
from target_adobe_aep.xdm_schema import XdmValidator

# AEP Profile guardrails: larger ExperienceEvents and profile records are dropped (EN help/profile/guardrails.md).
GUARDRAIL_BYTES = {"event": 10 * 1024, "profile": 100 * 1024}
# The parsers the SDK applies to date-like properties (its Sink._parse_timestamps_in_record).
DATE_PARSERS: dict[str, Callable[[str], Any]] = {
    "date-time": datetime_fromisoformat,
    "date": date_fromisoformat,
    "time": time_fromisoformat,
}
# Records per task sent to a worker: large enough that inter-process overhead is small, small enough that the
# workers share a batch evenly.
CHUNK_RECORDS = 256

#: A record that cannot be sent: ``(reason, the XDM entity when conversion got that far)``.
Failure = tuple[str, Any]


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


class InvalidInputRecord(ValueError):
    """An input record that its stream's schema refuses, or whose date-like property does not parse: the run
    stops, as the SDK stops on these (``InvalidRecord``, which cannot cross a process boundary)."""


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


class Converter:
    """One stream's compiled conversion: serialized record → DCS message, or why it cannot be sent."""

    def __init__(self, spec: ConversionSpec) -> None:
        self.stream = spec.stream
        self.mapping = compile_mapping(spec.stream, **spec.mapping)
        self.input_validator = FastRecordValidator(spec.input_schema) if spec.input_schema is not None else None
        self.validator = XdmValidator(*spec.xdm_schema) if spec.xdm_schema is not None else None
        self.envelope = spec.envelope
        self.max_entity_bytes = GUARDRAIL_BYTES[self.mapping.target]
        self._date_parsers = {key: DATE_PARSERS[kind] for key, kind in spec.date_kinds.items()}

    def message(self, raw: bytes) -> bytes | Failure:
        record = orjson.loads(raw)
        if self.input_validator is not None:
            try:
                self.input_validator.validate(record)
            except InvalidRecord as exc:
                raise InvalidInputRecord(f"{exc} (stream '{self.stream}')") from None
        for key, parse in self._date_parsers.items():
            value = record.get(key)
            if type(value) is str:
                try:
                    record[key] = parse(value)
                except ValueError as exc:  # the SDK's message and outcome (its datetime_error_treatment ERROR)
                    msg = f"Could not parse value '{value}' for field '{key}' (stream '{self.stream}'): {exc}"
                    raise InvalidInputRecord(msg) from None
        try:
            xdm = self.mapping.convert(record)
        except ConversionError as exc:
            return f"conversion: {exc}", None
        error = self.validator.error(xdm) if self.validator is not None else None
        if error is not None:
            return f"XDM validation: {error}", xdm
        entity = orjson.dumps(xdm)
        if len(entity) > self.max_entity_bytes:
            reason = (
                f"guardrail: XDM {self.mapping.target} of {len(entity)} bytes exceeds AEP's "
                f"{self.max_entity_bytes // 1024} KB limit"
            )
            return reason, xdm
        return self.envelope.wrap(entity)


_compiled: dict[str, Converter] = {}  # per process: spec key -> its converter


def _convert_chunk(key: str, pickled_spec: bytes, raws: list[bytes]) -> list[bytes | Failure]:
    converter = _compiled.get(key)
    if converter is None:
        converter = _compiled[key] = Converter(pickle.loads(pickled_spec))
    return [converter.message(raw) for raw in raws]


def _ignore_interrupts() -> None:
    """Ctrl-C reaches the whole process group: the target's process decides, workers keep quiet."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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
            self._executor = ProcessPoolExecutor(workers, mp_context=_worker_context(), initializer=_ignore_interrupts)
            self._executor.submit(int)  # start a worker now, while the target reads its first records
        else:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="convert")
        self._pickled: dict[str, bytes] = {}

    def prepare(self, spec: ConversionSpec) -> Converter:
        """Compile ``spec`` here (configuration errors surface now, at SCHEMA time) and keep it for the workers."""
        converter = Converter(spec)
        self._pickled[spec.key] = pickle.dumps(spec)
        if not self.workers:
            _compiled[spec.key] = converter
        return converter

    def submit(self, spec_key: str, raws: list[bytes]) -> list[Future]:
        """Start converting ``raws``; the futures give, chunk by chunk, each record's message or ``Failure``."""
        pickled = self._pickled[spec_key]
        return [
            self._executor.submit(_convert_chunk, spec_key, pickled, raws[start : start + CHUNK_RECORDS])
            for start in range(0, len(raws), CHUNK_RECORDS)
        ]

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
