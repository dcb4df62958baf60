"""TargetAdobeAEP: settings, and the services its sinks share (token, schemas, publisher, dead letter, summary)."""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, cast

import msgspec
import requests
from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecReader
from singer_sdk.exceptions import InvalidInputLine
from singer_sdk.singerlib import SingerMessageType

from target_adobe_aep.connection import Clock, ConfigError, RetryPolicy, checked_url, new_session
from target_adobe_aep.conversion import ConversionPool, Envelope
from target_adobe_aep.dcs import Publisher, batch_url
from target_adobe_aep.dead_letter import DeadLetter
from target_adobe_aep.errors import InvalidStateMessage
from target_adobe_aep.ims import TokenProvider
from target_adobe_aep.mapping import PRESETS, StreamMapping, compile_mapping, load_document
from target_adobe_aep.platform import PlatformClient
from target_adobe_aep.preflight import Preflight
from target_adobe_aep.rejections import RejectionGuard
from target_adobe_aep.schema_registry import SchemaCatalog, SchemaRegistry
from target_adobe_aep.sinks import AEPSink

DEFAULT_SCOPES = "openid,AdobeID,read_organizations,additional_info.projectedProductContext,session"
DEFAULT_IDENTITY_NAMESPACES = {"email": "Email", "phone": "Phone", "customer_id": "CapillaryCustomerId"}
# AEP documents 1 MB per request (413 beyond); stay just under it.
DEFAULT_MAX_REQUEST_BYTES = 990_000
# Batches converted or published at once (a stream's batches are published one after the other); reading input
# waits while this many are not done, which bounds memory.
BATCHES_IN_FLIGHT = 4


class InputReader(MsgSpecReader):
    """Input lines decoded by msgspec (about 3x faster than the stdlib reader), numbers as ints and floats, each
    line checked for the shape the target relies on; STATE messages and a failed input go to the target.

    The SDK's reader makes every fraction a Decimal, which only costs time here: XDM numbers are doubles, so the
    mapping and the dead letter turned them into floats anyway. Errors never quote the line: it may hold
    personal data.
    """

    _decoder = msgspec.json.Decoder()

    def __init__(self, target: TargetAdobeAEP) -> None:
        super().__init__()
        self.target = target

    def deserialize_json(self, line: str) -> dict:
        try:
            message = self._decoder.decode(line)
        except msgspec.DecodeError as exc:
            msg = f"Unable to parse an input line as JSON ({exc})"
            raise InvalidInputLine(msg) from None
        except RecursionError:
            msg = "An input line is nested too deeply to be read (beyond the JSON decoder's recursion limit)"
            raise InvalidInputLine(msg) from None
        if type(message) is not dict:
            msg = f"An input line is a JSON {type(message).__name__}, not a Singer message"
            raise InvalidInputLine(msg)
        if message.get("type") == "RECORD" and (type(message.get("record")) is not dict or "stream" not in message):
            found = type(message.get("record")).__name__
            msg = f"A RECORD message of stream {message.get('stream')!r} holds a {found}, not a JSON object"
            raise InvalidInputLine(msg)
        return message

    def process_lines(self, file_input: IO[str] | None, callbacks: dict[str, Callable[[dict], None]]) -> Any:
        """The SDK's loop over input lines, with STATE messages handled by the target (``process_state``), which
        writes them only once every record before them is in AEP or the dead letter; on any failure, the target's
        services are shut down and its summary logged."""
        self.target.start_input()
        try:
            return super().process_lines(file_input, {**callbacks, SingerMessageType.STATE: self.target.process_state})
        except BaseException:
            self.target.finish()
            raise


@dataclass
class StreamStats:
    """What happened to one stream's records; logged as the run summary."""

    received: int = 0
    skipped: int = 0
    duplicates_merged: int = 0
    sent: int = 0
    accepted: int = 0
    over_profile_guardrail: int = 0
    future_timestamps: int = 0
    dead_lettered: int = 0
    written: int = 0
    requests: int = 0
    retries: int = 0


def _string(name: str, description: str, **kwargs: Any) -> th.Property:
    return th.Property(name, th.StringType, description=description, **kwargs)


class TargetAdobeAEP(Target):
    """Converts Singer records to XDM and streams them into AEP datasets through the HTTP API streaming inlet."""

    name = "target-adobe-aep"
    default_sink_class = AEPSink

    config_jsonschema = th.PropertiesList(
        # IMS
        _string("client_id", "OAuth server-to-server client id (Developer Console credential)."),
        _string("client_secret", "OAuth server-to-server client secret.", secret=True),
        _string("org_id", "IMS organization id, e.g. 12345@AdobeOrg."),
        _string("scopes", "Comma-separated OAuth scopes, as in the credential's cURL command.", default=DEFAULT_SCOPES),
        _string(
            "ims_url",
            "IMS token endpoint. /ims/token/v3 answers expires_in in seconds, the legacy /ims/token in milliseconds.",
            default="https://ims-na1.adobelogin.com/ims/token/v3",
        ),
        # Platform
        _string("sandbox_name", "Sandbox of the datasets and schemas (x-sandbox-name).", default="prod"),
        _string("platform_url", "Platform API base URL (Schema Registry).", default="https://platform.adobe.io"),
        _string("api_key", "x-api-key for platform APIs. Default: client_id."),
        # Streaming
        _string(
            "inlet_url",
            "Streaming inlet URL, https://dcs.adobedc.net/collection/{inletId}; records go to its batch endpoint.",
        ),
        _string("flow_id", "Dataflow id of destinations without their own: sent as header.flowId and x-adobe-flow-id."),
        _string("profile_flow_id", "Dataflow id of the profile dataset's messages. Default: flow_id."),
        _string("event_flow_id", "Dataflow id of the event dataset's messages. Default: flow_id."),
        th.Property(
            "inlet_auth_required",
            th.BooleanType,
            default=True,
            description="Whether the inlet was created with authenticationRequired (send an IMS bearer token).",
        ),
        # Targets
        _string("profile_dataset_id", "Dataset id for Individual Profile records (mapping target 'profile')."),
        _string("profile_schema_id", "$id of the profile dataset's schema, https://ns.adobe.com/{tenant}/schemas/…"),
        _string("event_dataset_id", "Dataset id for ExperienceEvents (mapping target 'event')."),
        _string("event_schema_id", "$id of the event dataset's schema, https://ns.adobe.com/{tenant}/schemas/…"),
        _string("tenant_id", "Tenant id without underscore; custom fields are written under _{tenant_id}."),
        th.Property(
            "identity_namespaces",
            th.ObjectType(
                th.Property("email", th.StringType, description="Namespace of e-mail addresses."),
                th.Property("phone", th.StringType, description="Namespace of mobile numbers."),
                th.Property("customer_id", th.StringType, description="Namespace of the Capillary customer id."),
                additional_properties=th.StringType,
            ),
            default=DEFAULT_IDENTITY_NAMESPACES,
            description="Identity namespace per identifier kind of 'identity' mapping rules; keys given replace the "
            "defaults.",
        ),
        th.Property(
            "mappings",
            th.ObjectType(additional_properties=th.CustomType({"type": ["string", "object"]})),
            description="Per stream: a mapping file path or an inline mapping; other streams use the built-in preset "
            "of their name.",
        ),
        th.Property(
            "schema_files",
            th.ObjectType(additional_properties=th.StringType),
            description="Schema id -> local file of the schema in xed-full form, used instead of the Schema Registry.",
        ),
        # Behaviour
        th.Property(
            "preflight",
            th.BooleanType,
            default=True,
            description="Check the settings against Adobe before reading input, and each mapping against its schema; "
            "a failure stops the run.",
        ),
        th.Property(
            "validate_xdm",
            th.BooleanType,
            default=True,
            description="Validate each XDM record against its schema before sending; invalid ones are dead-lettered.",
        ),
        th.Property(
            "future_timestamp_tolerance_seconds",
            th.IntegerType(minimum=0),
            default=300,
            description="Seconds an event's timestamp may be ahead of this machine's clock before it counts as a "
            "future timestamp.",
        ),
        th.Property(
            "dead_letter_future_timestamps",
            th.BooleanType,
            default=False,
            description="Dead-letter events with a future timestamp instead of sending them (AEP takes them).",
        ),
        th.Property(
            "dead_letter_over_profile_guardrail",
            th.BooleanType,
            default=False,
            description="Dead-letter entities over Profile's guardrails (event 10 KB, profile 100 KB) instead of "
            "sending them.",
        ),
        _string(
            "dead_letter_path",
            "JSONL file that receives every record AEP will not get, with the reason.",
            default="aep-dead-letter.jsonl",
        ),
        th.Property(
            "max_rejected_records",
            th.IntegerType(minimum=0),
            default=0,
            description="Stop once the run dead-lettered more records than this; 0: no limit on the number.",
        ),
        th.Property(
            "max_rejected_percent",
            th.IntegerType(minimum=0, maximum=100),
            default=50,
            description="Stop once more than this percentage of a stream's records was refused (from its 20th "
            "record on); 100: never.",
        ),
        th.Property(
            "max_request_bytes",
            th.IntegerType(minimum=1024, maximum=1_000_000),
            default=DEFAULT_MAX_REQUEST_BYTES,
            description="Largest DCS request body; messages are packed into batch requests up to this size.",
        ),
        th.Property(
            "requests_per_batch",
            th.IntegerType(minimum=1),
            default=4,
            description="Send a stream's records once their messages fill this many requests of max_request_bytes.",
        ),
        th.Property(
            "state_checkpoint_seconds",
            th.IntegerType(minimum=0),
            default=60,
            description="On a STATE this long after the last checkpoint, send every pending record, then write the "
            "STATE.",
        ),
        th.Property(
            "max_messages_per_second",
            th.IntegerType(minimum=1),
            default=8000,
            description="Client-side message rate limit (AEP documents 10,000 messages/s).",
        ),
        th.Property(
            "max_requests_per_second",
            th.IntegerType(minimum=1),
            default=800,
            description="Client-side request rate limit (AEP documents 1,000 requests/s).",
        ),
        th.Property("max_concurrency", th.IntegerType(minimum=1), default=8, description="Requests in flight at once."),
        th.Property(
            "conversion_workers",
            th.IntegerType(minimum=0),
            default=2,
            description="Processes converting records to XDM (about 25 MB each; up to one per core); 0: a thread of "
            "the target.",
        ),
        th.Property(
            "max_retries",
            th.IntegerType(minimum=0),
            default=5,
            description="Retries of a request after 429, 5xx or a dropped connection before the run fails.",
        ),
        # Integers on purpose: Meltano 4.4.1 crashes on a `kind: decimal` value given as an environment variable.
        th.Property(
            "retry_backoff_ms",
            th.IntegerType(minimum=0),
            default=500,
            description="First backoff step in ms; doubles per retry up to 60 s, equal jitter, never below "
            "Retry-After.",
        ),
        th.Property(
            "request_timeout_seconds",
            th.IntegerType(minimum=1),
            default=60,
            description="Timeout of each HTTP request.",
        ),
        th.Property(
            "retry_budget_seconds",
            th.IntegerType(minimum=1),
            default=300,
            description="Longest time one request may take, its retries and waits included; then the run fails.",
        ),
        _string(
            "ca_bundle",
            "PEM file of the CA certificates to verify Adobe's TLS certificates with, instead of the system's.",
        ),
        th.Property(
            "dry_run",
            th.BooleanType,
            default=False,
            description="Convert and validate, write the messages to dry_run_path, send nothing.",
        ),
        _string(
            "dry_run_path", "Directory that receives <stream>.jsonl message files in dry_run.", default="aep-dry-run"
        ),
    ).to_dict()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, message_reader=InputReader(self), **kwargs)
        self.clock = Clock()  # every wait of the run; a termination signal stops it
        self._stats_lock = threading.Lock()
        self.stats: dict[str, StreamStats] = {}
        self._batches_lock = threading.Lock()  # sinks drain (and so publish) from several threads at once
        self._batches: list[Future] = []
        self._last_batch_of: dict[str, Future] = {}  # per stream: its batches are published one after the other
        self.active_sinks: dict[str, AEPSink] = {}  # the sink of each stream, as the SDK's get_sink returns it
        self._input_state: dict | None = None  # the latest STATE value read
        self._written_state: dict | None = None  # the last one written (or withheld, in a dry run)
        self._checkpoint_at = 0.0
        self._finished = False
        self.profile_guardrail_kb: dict[str, int] = {}  # per stream: Profile's size limit of what it writes
        if threading.current_thread() is threading.main_thread():  # where Python allows signal handlers
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self.on_termination_signal)

    # -- shared services, created on first use by a sink's setup (i.e. at SCHEMA time) -------------------------

    @functools.cached_property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_tries=self.config["max_retries"] + 1,
            base_seconds=self.config["retry_backoff_ms"] / 1000,
            budget_seconds=float(self.config["retry_budget_seconds"]),
            timeout_seconds=float(self.config["request_timeout_seconds"]),
            clock=self.clock,
        )

    @functools.cached_property
    def session(self) -> requests.Session:
        ca_bundle = self.config.get("ca_bundle")
        if ca_bundle and not Path(ca_bundle).expanduser().is_file():
            msg = f"setting 'ca_bundle' names no readable file: {ca_bundle!r}"
            raise ConfigError(msg)
        return new_session(self.config["max_concurrency"], str(Path(ca_bundle).expanduser()) if ca_bundle else None)

    def _required(self, *names: str) -> list[str]:
        missing = [name for name in names if not self.config.get(name)]
        if missing:
            msg = f"missing setting(s): {', '.join(missing)}"
            raise ConfigError(msg)
        return [self.config[name] for name in names]

    @functools.cached_property
    def tokens(self) -> TokenProvider:
        client_id, client_secret, ims_url = self._required("client_id", "client_secret", "ims_url")
        return TokenProvider(
            session=self.session,
            ims_url=checked_url(ims_url, "ims_url"),
            client_id=client_id,
            client_secret=client_secret,
            scopes=self.config["scopes"],
            retry=self.retry_policy,
        )

    @functools.cached_property
    def platform(self) -> PlatformClient:
        """The platform API gateway (Schema Registry, Catalog); needs client_id, client_secret and org_id."""
        (org_id,) = self._required("org_id")
        return PlatformClient(
            session=self.session,
            platform_url=checked_url(self.config["platform_url"], "platform_url"),
            tokens=self.tokens,
            api_key=self.config.get("api_key") or self.config["client_id"],
            org_id=org_id,
            sandbox_name=self.config["sandbox_name"],
            retry=self.retry_policy,
        )

    @functools.cached_property
    def schemas(self) -> SchemaCatalog:
        files = self.config.get("schema_files") or {}
        fetch = SchemaRegistry(self.platform).fetch if self.config.get("client_id") else None
        return SchemaCatalog(files=files, fetch=fetch)

    @functools.cached_property
    def publisher(self) -> Publisher:
        (inlet_url,) = self._required("inlet_url")
        try:
            url = batch_url(checked_url(inlet_url, "inlet_url"))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return Publisher(
            session=self.session,
            inlet_url=url,
            tokens=self.tokens if self.config["inlet_auth_required"] else None,
            max_request_bytes=self.config["max_request_bytes"],
            max_messages_per_second=float(self.config["max_messages_per_second"]),
            max_requests_per_second=float(self.config["max_requests_per_second"]),
            max_concurrency=self.config["max_concurrency"],
            retry=self.retry_policy,
        )

    @functools.cached_property
    def dead_letter(self) -> DeadLetter:
        return DeadLetter(self.config["dead_letter_path"])

    @functools.cached_property
    def rejections(self) -> RejectionGuard:
        return RejectionGuard(tenant_id=self.config.get("tenant_id") or "",
                              max_records=self.config["max_rejected_records"],
                              max_percent=self.config["max_rejected_percent"])  # fmt: skip

    @functools.cached_property
    def conversions(self) -> ConversionPool:
        return ConversionPool(self.config["conversion_workers"])

    def active_streams(self) -> list[str]:
        """The streams with a mapping: every built-in preset's and every stream of the ``mappings`` setting."""
        presets = {path.name.removesuffix(".json") for path in PRESETS.iterdir() if path.name.endswith(".json")}
        return sorted(presets | set(self.config.get("mappings") or {}))

    def mapping_inputs(self, stream: str) -> dict[str, Any]:
        """``compile_mapping``'s keyword arguments for ``stream``: its document, origin, tenant and namespaces;
        raises ``MappingError`` when it has no mapping."""
        document, origin = load_document(stream, (self.config.get("mappings") or {}).get(stream))
        return {
            "document": document,
            "origin": origin,
            "tenant_id": self.config.get("tenant_id") or "",
            "identity_namespaces": self.identity_namespaces(),
        }

    def identity_namespaces(self) -> dict[str, str]:
        """The identity namespace of each identity key: the defaults, overridden by ``identity_namespaces``."""
        return {**DEFAULT_IDENTITY_NAMESPACES, **(self.config.get("identity_namespaces") or {})}

    def compiled_mapping(self, stream: str) -> StreamMapping:
        """``stream``'s mapping, compiled; raises ``MappingError`` when it has none or it is invalid."""
        return compile_mapping(stream, **self.mapping_inputs(stream))

    def destination(self, target: str) -> tuple[str, str]:
        """``(dataset_id, schema_id)`` for a mapping target (``profile`` or ``event``)."""
        dataset_id, schema_id = self._required(f"{target}_dataset_id", f"{target}_schema_id")
        return dataset_id, schema_id

    def flow_id(self, target: str) -> str | None:
        """The dataflow of a mapping target's messages: ``{target}_flow_id``, else ``flow_id``. AEP's streaming
        dataflows lead to one target connection, so one dataset, each (EN help/sources/tutorials/api/create/
        streaming/http.md); provision makes one per destination."""
        return self.config.get(f"{target}_flow_id") or self.config.get("flow_id")

    def envelope(self, target: str) -> Envelope:
        """The streaming message envelope of a mapping target (``profile`` or ``event``)."""
        dataset_id, schema_id = self.destination(target)
        return Envelope(schema_id=schema_id, dataset_id=dataset_id, org_id=self.config.get("org_id"),
                        flow_id=self.flow_id(target), source=self.name)  # fmt: skip

    @functools.cached_property
    def preflight(self) -> Preflight:
        return Preflight(self)

    def record_stats(self, stream: str, **counts: int) -> None:
        with self._stats_lock:
            stats = self.stats.setdefault(stream, StreamStats())
            for name, value in counts.items():
                setattr(stats, name, getattr(stats, name) + value)

    # -- batches published in the background ------------------------------------------------------------

    @functools.cached_property
    def _batch_executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=BATCHES_IN_FLIGHT, thread_name_prefix="batch")

    def in_background(self, stream: str, job: Callable[[], None]) -> None:
        """Run ``job`` (a batch of ``stream``) while the next records are read; it starts its work at once but
        finishes only after the stream's previous batch, so a later version of a record never overtakes an
        earlier one, even across a sink replaced by a schema change. Waits while ``BATCHES_IN_FLIGHT`` batches
        are not done; raises an earlier batch's error."""
        while True:
            with self._batches_lock:
                self._batches = [batch for batch in self._batches if not batch.done() or batch.exception()]
                failed = [batch for batch in self._batches if batch.done()]
                if not failed and len(self._batches) < BATCHES_IN_FLIGHT:
                    previous = self._last_batch_of.get(stream)
                    self._last_batch_of[stream] = future = self._batch_executor.submit(self._after, previous, job)
                    self._batches.append(future)
                    return
                oldest = self._batches[0]
            for batch in failed:
                batch.result()  # raises
            wait([oldest])

    @staticmethod
    def _after(previous: Future | None, job: Callable[[], None]) -> None:
        if previous is not None:
            previous.result()  # an earlier batch of the stream failed: so does this one, and the run
        job()

    def wait_for_batches(self) -> None:
        """Send what every stream holds back, and return once every batch is done; raise the first failure."""
        for sink in list(self.active_sinks.values()):
            sink.flush()
        with self._batches_lock:
            batches = list(self._batches)
        for batch in batches:
            batch.result()

    def get_sink(self, stream_name: str, *, record: dict | None = None, schema: dict | None = None,
                 key_properties: Any = None) -> AEPSink:  # fmt: skip
        """The SDK's sink lookup; a sink replaced by a schema change is drained first, so its records go out
        before any record that follows the new SCHEMA (the SDK would leave them until the next full drain)."""
        if schema is None:  # a RECORD: the stream's sink (the SDK checked that it exists)
            return self.active_sinks[stream_name]
        existing = self.active_sinks.get(stream_name)
        if existing is not None and (existing.original_schema, existing.key_properties) != (schema, key_properties):
            self.drain_one(existing)
            existing.flush()
        sink = cast(AEPSink, super().get_sink(stream_name, record=record, schema=schema, key_properties=key_properties))
        self.active_sinks[stream_name] = sink
        return sink

    # -- STATE: written only once everything before it is in AEP or the dead letter ---------------------------

    def process_state(self, message: dict) -> None:
        """A STATE message from the tap: kept, and written at the next checkpoint (``state_checkpoint_seconds``
        since the last one: every stream is drained first) or at the end of the input."""
        self.message_reader.assert_line_requires(message, requires={"value"})
        value = message["value"]
        if type(value) is not dict:
            msg = (
                f"A STATE message holds a {type(value).__name__}, not a JSON object: it is not forwarded (Meltano "
                "would store it and fail every later run); fix the tap, or the stored state with `meltano state set`"
            )
            raise InvalidStateMessage(msg)
        if value == self._input_state:
            return
        self._input_state = value
        if self.clock.now() - self._checkpoint_at >= self.config["state_checkpoint_seconds"]:
            self.drain_all()
            self.write_state()

    def write_state(self) -> None:
        """Write the latest STATE read, once every batch so far is done (each record accepted by AEP or written to
        the dead letter) and every held message sent; a failure raises, and nothing is written."""
        self.wait_for_batches()
        self._checkpoint_at = self.clock.now()
        state = self._input_state
        if state is None or state == self._written_state:
            return
        first, self._written_state = self._written_state is None, state
        if self.config["dry_run"]:
            if first:
                self.logger.info("Dry run: STATE messages are withheld, so bookmarks do not move")
            return
        sys.stdout.write(json.dumps(state) + "\n")
        sys.stdout.flush()

    # -- run lifecycle --------------------------------------------------------------------------------------

    def start_input(self) -> None:
        """Before the first line of input is read: the dead letter repaired, the settings checked (preflight)."""
        self._checkpoint_at = self.clock.now()
        _ = self.dead_letter
        if self.config["preflight"]:
            self.preflight.check_connection()

    def on_termination_signal(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM or SIGINT: stop within seconds, writing no STATE. Every wait (retry backoff, rate limits) ends
        at once; the last STATE written stays true, and the next run sends again what came after it. Exits
        128 + the signal number: a failed run. A second signal (Meltano and the OS may both send one) is ignored.
        """
        if self.clock.stopped:
            return
        self.clock.stop()
        self.logger.warning(
            "Received termination signal %d: stopping without writing STATE; the next run resumes from the last "
            "STATE written",
            signum,
        )
        threading.Thread(target=_exit_after_grace, args=(128 + signum,), daemon=True).start()
        sys.exit(128 + signum)

    def process_endofpipe(self) -> None:
        """The end of the input: every batch is sent (held messages too) and done, then the last STATE written."""
        try:
            super().process_endofpipe()
            self.write_state()
        finally:
            self.finish()

    def finish(self) -> None:
        """Shut the services down and log the summary; after a termination signal, without waiting for them."""
        if self._finished:
            return
        self._finished = True
        wait_for_requests = not self.clock.stopped
        if "_batch_executor" in self.__dict__:
            self._batch_executor.shutdown(wait=wait_for_requests, cancel_futures=True)
        if "conversions" in self.__dict__:
            self.conversions.shutdown()  # chunks take milliseconds (and a process pool left running can fail at exit)
        if "publisher" in self.__dict__:
            self.publisher.close(wait=wait_for_requests)
        for stream, stats in sorted(self.stats.items()):
            summary = " ".join(f"{name}={value}" for name, value in asdict(stats).items())
            self.logger.info("Summary for stream '%s': %s", stream, summary)
            if stats.over_profile_guardrail:
                self.logger.warning(
                    "Stream '%s': %d record(s) over Profile's %d KB guardrail were sent: the data lake keeps them, "
                    "Real-Time Customer Profile drops them (dead_letter_over_profile_guardrail dead-letters them)",
                    stream, stats.over_profile_guardrail, self.profile_guardrail_kb[stream],
                )  # fmt: skip
            if stats.future_timestamps:
                self.logger.warning(
                    "Stream '%s': %d event(s) timestamped more than future_timestamp_tolerance_seconds=%d after this "
                    "machine's clock were sent (AEP takes them; a clock or time zone upstream may be wrong; "
                    "dead_letter_future_timestamps dead-letters them)",
                    stream, stats.future_timestamps, self.config["future_timestamp_tolerance_seconds"],
                )  # fmt: skip
        if "dead_letter" in self.__dict__ and self.dead_letter.count:
            self.logger.warning("%d record(s) dead-lettered to %s", self.dead_letter.count, self.dead_letter.path)


# After a termination signal, requests already sent get this long to end before the process exits regardless.
TERMINATION_GRACE_SECONDS = 5.0


def _exit_after_grace(code: int) -> None:
    """Exit with ``code`` once the grace period is over, if the process has not ended by then: a request in
    flight may take up to its timeout, and Python waits for the threads sending them."""
    time.sleep(TERMINATION_GRACE_SECONDS)
    logger = logging.getLogger(TargetAdobeAEP.name)
    logger.warning("Requests still in flight after %.0f s: exiting now", TERMINATION_GRACE_SECONDS)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(code)


if __name__ == "__main__":
    TargetAdobeAEP.cli()
