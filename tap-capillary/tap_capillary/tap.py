"""TapCapillary: settings, their validation, and what all streams of one run share."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities

from tap_capillary import streams
from tap_capillary.auth import OAuthTokenAuthenticator, till_authenticator
from tap_capillary.client import PER_REQUEST_METRICS, CapillaryStream, CodeTally, CustomerOutcomes, api_name
from tap_capillary.convert import TimeConverter
from tap_capillary.discovery import ChangedCustomers, CustomerLookupStream, CustomerSearchStream
from tap_capillary.shards import Shard
from tap_capillary.transport import Clock, RetryPolicy, Transport, base_url_error, new_session
from tap_capillary.windows import state_errors

STREAM_TYPES = [
    streams.CustomersStream,
    streams.TransactionsStream,
    streams.PointsLedgerStream,
    streams.TierHistoryStream,
    streams.RedemptionsStream,
    streams.CouponsStream,
    streams.RewardIssualsStream,
    streams.StoresStream,
]

#: The APIs the tap calls, by the names their budgets take (``api_requests_per_minute``).
_CALLERS: tuple[type[CapillaryStream], ...] = (
    *STREAM_TYPES,
    streams.TransactionDetailStream,
    CustomerSearchStream,
    CustomerLookupStream,
)
# Each of these classes sets ``path``; the SDK declares it per instance, hence the ignore.
API_NAMES = tuple(sorted({api_name(caller.path) for caller in _CALLERS}))  # type: ignore[misc]


class TapCapillary(Tap):
    """Pulls a Capillary org's loyalty data, incrementally, window by window."""

    name = "tap-capillary"
    # No BATCH: batch messages carry no incremental state (meltano/sdk#976); state here is per window.
    capabilities: ClassVar[list[CapabilitiesEnum]] = [c for c in Tap.capabilities if c != PluginCapabilities.BATCH]
    # msgspec encodes RECORD messages several times faster than the default stdlib-json writer.
    message_writer_class = MsgSpecWriter

    # Descriptions stay short (Meltano and the Hub show them verbatim); the README's settings notes say why.
    config_jsonschema = th.PropertiesList(
        th.Property(
            "base_url",
            th.StringType,
            required=True,
            description="Capillary cluster host, e.g. https://eu.api.capillarytech.com (https; no path).",
        ),
        th.Property(
            "client_key",
            th.StringType,
            description="OAuth client key (InTouch > Organization settings > API client). Use with client_secret.",
        ),
        th.Property(
            "client_secret",
            th.StringType,
            secret=True,
            description="OAuth client secret; tokens come from /v3/oauth/token/generate and are renewed before expiry.",
        ),
        th.Property(
            "username",
            th.StringType,
            description="Till username for Basic auth (instead of OAuth). Use with password.",
        ),
        th.Property("password", th.StringType, secret=True, description="Till password for Basic auth."),
        th.Property(
            "start_date",
            th.DateTimeType,
            description="Earliest replication-key time to extract; required when a stream has no state yet.",
        ),
        th.Property(
            "end_date",
            th.DateTimeType,
            description="Extract only records before this time (bounded backfills); default: lookback_minutes ago.",
        ),
        th.Property(
            "cluster_timezone",
            th.StringType,
            default="UTC",
            description="IANA time zone of the cluster; v1.1 APIs send naive times in it (India/SG: Asia/Kolkata).",
        ),
        th.Property(
            "backfill_window_days",
            th.IntegerType,
            default=30,
            description="Size of the change-discovery windows; the bookmark advances after each window.",
        ),
        th.Property(
            "page_size",
            th.IntegerType,
            description="Upper bound on page sizes; default: the largest each endpoint allows.",
        ),
        th.Property(
            "max_workers",
            th.IntegerType,
            default=16,
            description="Most API requests in flight at once (customers and their bill details read in parallel).",
        ),
        th.Property(
            "ledger_window_days",
            th.IntegerType,
            default=90,
            description="Longest date range per points-ledger request (docs: 90, or 60); lower it on code 11010.",
        ),
        th.Property(
            "requests_per_minute",
            th.IntegerType,
            default=600,
            description="Client-side limit on API requests per minute, shared by all streams and workers.",
        ),
        th.Property(
            "api_requests_per_minute",
            th.ObjectType(additional_properties=th.IntegerType),
            description='Budgets per API, e.g. {"v2/transactions/{id}": 1200}; an API without one adapts to its 429s.',
        ),
        th.Property(
            "shard_count",
            th.IntegerType,
            default=1,
            description="Split the customers into this many disjoint shards, each read by a run of its own.",
        ),
        th.Property(
            "shard_index",
            th.IntegerType,
            default=0,
            description="The shard this run reads, 0 to shard_count - 1; stores are read by shard 0.",
        ),
        th.Property(
            "lookback_minutes",
            th.IntegerType,
            default=15,
            description="A run emits records up to this many minutes before its start: a margin for late data.",
        ),
        th.Property(
            "customer_identifiers_path",
            th.StringType,
            description="CSV or JSONL file of the customers to read (id, mobile, email, external_id) without search.",
        ),
        th.Property(
            "max_retries",
            th.IntegerType,
            default=10,
            description="Retries of a request after 429, 461, 521, 5xx or a dropped connection before the run fails.",
        ),
        th.Property(
            "retry_budget_seconds",
            th.IntegerType,
            default=300,
            description="Longest time one request may take, its retries and waits included; then the run fails.",
        ),
        th.Property(
            "ca_bundle",
            th.StringType,
            title="CA Bundle",
            description="PEM file of the CA certificates to verify the Capillary host with, instead of the system's.",
        ),
    ).to_dict()

    def __init__(self, *, validate_config: bool = True, **kwargs: Any) -> None:
        super().__init__(validate_config=validate_config, **kwargs)
        errors = config_errors(self.config)
        if errors and validate_config:
            raise ConfigValidationError("Config validation failed", errors=errors)
        for error in errors:  # discovery validates nothing
            self.logger.warning("Config validation: %s", error)
        self.metrics_logger.addFilter(PER_REQUEST_METRICS)  # one filter object: added once per process
        if threading.current_thread() is threading.main_thread():  # where Python allows signal handlers
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self.on_termination_signal)

    def discover_streams(self) -> list[streams.CapillaryStream]:
        return [stream_type(tap=self) for stream_type in STREAM_TYPES]

    def load_state(self, state: dict[str, Any]) -> None:
        """The state, refused when it would stall or mislead a stream (``windows.state_errors``)."""
        errors = state_errors(state, list(self.streams), self.run_started_at, self.shard.layout)
        if errors:
            raise InvalidStateError(" ".join(errors))
        super().load_state(state)

    def on_termination_signal(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM or SIGINT: stop within seconds, writing no STATE. Every wait (retry backoff) ends at once and
        its call is abandoned; the last STATE written stays true (it only ever covers windows whose records
        were all written), and the next run resumes from it. Exits 128 + the signal number: a failed run.
        A second signal (Meltano and the OS may both send one) is ignored."""
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

    # -- what the streams of one run share ---------------------------------------------------------------

    def prepare_run(self) -> None:
        """Create what the run's worker threads share before they start, so that no two threads race to create
        it (``functools.cached_property`` has no lock from Python 3.12: two rate limiters would halve the
        limit). Called by each stream on the main thread as it starts; idempotent."""
        _ = (self.transport, self.authenticator, self.item_errors, self.warnings, self.customer_outcomes, self.times)
        _ = (self.run_started_at, self.transaction_details, self.store_lookup, self.changed_customers)

    @cached_property
    def clock(self) -> Clock:
        """Every wait of the run; a termination signal stops it (tests inject a fake)."""
        return Clock()

    @cached_property
    def transport(self) -> Transport:
        """The session, retry policy and pacing of every request of the run (``transport.py``)."""
        config = self.config
        return Transport(
            session=new_session(config["base_url"], config["max_workers"], config.get("ca_bundle")),
            retry=RetryPolicy(
                max_tries=config["max_retries"] + 1,
                budget_seconds=float(config["retry_budget_seconds"]),
                clock=self.clock,
            ),
            requests_per_minute=config["requests_per_minute"],
            max_in_flight=config["max_workers"],
            api_budgets=config.get("api_requests_per_minute") or {},
        )

    @cached_property
    def shard(self) -> Shard:
        """The customers this run reads (``shard_index`` of ``shard_count``)."""
        return Shard.from_config(self.config)

    @cached_property
    def authenticator(self) -> Any:
        if self.config.get("client_key"):
            return OAuthTokenAuthenticator(
                base_url=self.config["base_url"],
                client_key=self.config["client_key"],
                client_secret=self.config["client_secret"],
                transport=self.transport,
            )
        return till_authenticator(self.config["username"], self.config["password"])

    @cached_property
    def item_errors(self) -> CodeTally:
        """Customers, bills and records skipped (counted and logged), by stream and Capillary code."""
        return CodeTally()

    @cached_property
    def warnings(self) -> CodeTally:
        """Warnings in accepted responses (the data was read), by stream and Capillary code."""
        return CodeTally()

    @cached_property
    def customer_outcomes(self) -> CustomerOutcomes:
        """Whether each stream's customers so far all failed alike (``SYSTEMIC_ITEM_ERRORS``)."""
        return CustomerOutcomes()

    def log_tallies(self, stream: str) -> None:
        """A stream's item errors and warnings, summed up."""
        for kind, tally in (("skipped items with Capillary error codes", self.item_errors),
                            ("had Capillary warnings", self.warnings)):  # fmt: skip
            counts = tally.for_stream(stream)
            if counts:
                self.logger.warning("Stream %s %s: %s", stream, kind, counts)

    def log_helper_tallies(self) -> None:
        """At the end of a run: the tallies of the streams outside the catalog (the catalog's log their own)."""
        for stream in sorted((self.item_errors.streams() | self.warnings.streams()) - set(self.streams)):
            self.log_tallies(stream)

    @cached_property
    def times(self) -> TimeConverter:
        return TimeConverter(ZoneInfo(self.config["cluster_timezone"]))

    @cached_property
    def run_started_at(self) -> datetime:
        """Upper bound of this run's extraction; records changed later are left for the next run."""
        return datetime.now(UTC).replace(microsecond=0)

    @cached_property
    def transaction_details(self) -> streams.TransactionDetailStream:
        return streams.TransactionDetailStream(tap=self)

    @cached_property
    def store_lookup(self) -> streams.StoreLookupStream:
        return streams.StoreLookupStream(tap=self)

    @cached_property
    def changed_customers(self) -> ChangedCustomers:
        return ChangedCustomers(self)


class InvalidStateError(Exception):
    """The input state would stall or mislead a stream; the run stops before reading anything."""


# After a termination signal, requests already sent get this long to end before the process exits regardless.
TERMINATION_GRACE_SECONDS = 5.0


def _exit_after_grace(code: int) -> None:
    """Exit with ``code`` once the grace period is over, if the process has not ended by then: a request in
    flight may take up to its timeout, and Python waits for the threads sending them."""
    time.sleep(TERMINATION_GRACE_SECONDS)
    logger = logging.getLogger(TapCapillary.name)
    logger.warning("Requests still in flight after %.0f s: exiting now", TERMINATION_GRACE_SECONDS)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(code)


def config_errors(config: Any) -> list[str]:
    """What JSON Schema cannot say clearly: one auth mode, a usable URL, CA bundle and time zone, positive sizes."""
    errors = []
    oauth = [k for k in ("client_key", "client_secret") if config.get(k)]
    basic = [k for k in ("username", "password") if config.get(k)]
    if oauth and basic:
        errors.append("Configure exactly one auth mode: client_key/client_secret (OAuth) or username/password.")
    elif not oauth and not basic:
        errors.append("No credentials: set client_key and client_secret (OAuth) or username and password (till).")
    elif oauth and len(oauth) < 2:
        errors.append("OAuth needs both client_key and client_secret.")
    elif basic and len(basic) < 2:
        errors.append("Basic auth needs both username and password.")
    if config.get("base_url") is not None and (error := base_url_error(config["base_url"])):
        errors.append(error)
    if config.get("ca_bundle") and not Path(config["ca_bundle"]).is_file():
        errors.append(f"ca_bundle names no readable file: {config['ca_bundle']!r}.")
    try:
        ZoneInfo(str(config.get("cluster_timezone")))
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(f"cluster_timezone must be an IANA time zone name, got {config.get('cluster_timezone')!r}.")
    for key in ("start_date", "end_date"):
        try:
            if config.get(key):
                datetime.fromisoformat(str(config[key]))
        except ValueError:
            errors.append(f"{key} must be an ISO 8601 date-time such as 2025-01-31T00:00:00Z, got {config[key]!r}.")
    positive = ("backfill_window_days", "page_size", "max_workers", "ledger_window_days", "requests_per_minute",
                "retry_budget_seconds")  # fmt: skip
    for key in positive:
        if config.get(key) is not None and config[key] < 1:
            errors.append(f"{key} must be at least 1.")
    for key in ("lookback_minutes", "max_retries"):
        if config.get(key) is not None and config[key] < 0:
            errors.append(f"{key} must not be negative.")
    shard_count, shard_index = config.get("shard_count"), config.get("shard_index")
    if shard_count is not None and shard_count < 1:
        errors.append("shard_count must be at least 1.")
    elif shard_index is not None and not 0 <= shard_index < (shard_count or 1):
        errors.append(f"shard_index must be 0 to shard_count - 1 ({(shard_count or 1) - 1}), got {shard_index}.")
    return errors + budget_errors(config.get("api_requests_per_minute"))


def budget_errors(budgets: Any) -> list[str]:
    """``api_requests_per_minute``: known API names (a misspelt one would silently be adaptive), positive budgets."""
    if budgets is None:
        return []
    if not isinstance(budgets, dict):
        return [f"api_requests_per_minute must be an object of API names and requests per minute, got {budgets!r}."]
    errors = []
    unknown = sorted(set(budgets) - set(API_NAMES))
    if unknown:
        errors.append(f"api_requests_per_minute names unknown APIs {unknown}; the APIs are {list(API_NAMES)}.")
    for api, budget in budgets.items():
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
            errors.append(f"api_requests_per_minute[{api!r}] must be a whole number of requests, at least 1.")
    return errors
