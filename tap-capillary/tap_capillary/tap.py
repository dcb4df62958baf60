"""TapCapillary: settings, their validation, and what all streams of one run share."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, ClassVar
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from pyrate_limiter import Duration, Limiter, Rate
from requests.adapters import HTTPAdapter
from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities

from tap_capillary import streams
from tap_capillary.auth import OAuthTokenAuthenticator, till_authenticator
from tap_capillary.client import CodeTally
from tap_capillary.convert import TimeConverter
from tap_capillary.discovery import ChangedCustomers

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


class TapCapillary(Tap):
    """Pulls a Capillary org's loyalty data, incrementally, window by window."""

    name = "tap-capillary"
    # No BATCH: batch messages carry no incremental state (meltano/sdk#976); state here is per window.
    capabilities: ClassVar[list[CapabilitiesEnum]] = [c for c in Tap.capabilities if c != PluginCapabilities.BATCH]
    # msgspec encodes RECORD messages several times faster than the default stdlib-json writer.
    message_writer_class = MsgSpecWriter

    config_jsonschema = th.PropertiesList(
        th.Property(
            "base_url",
            th.StringType,
            required=True,
            description="Capillary cluster host, e.g. https://eu.api.capillarytech.com (no path).",
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
            description=(
                "Concurrent API requests (customers read in parallel, and a customer's independent requests such "
                "as bill details and ledger ranges): the run waits on API latency, not CPU, so more workers than "
                "cores pay. Capillary documents no read rate limits; requests_per_minute is the budget."
            ),
        ),
        th.Property(
            "ledger_window_days",
            th.IntegerType,
            default=90,
            description=(
                "Longest date range per points-ledger request: 90 days per the API's parameter table; its error "
                "table says 60 (code 11010). Lower it if the org answers 11010."
            ),
        ),
        th.Property(
            "requests_per_minute",
            th.IntegerType,
            default=600,
            description="Client-side limit on API requests per minute, shared by all streams and workers.",
        ),
        th.Property(
            "lookback_minutes",
            th.IntegerType,
            default=15,
            description=(
                "Margin for late data (changes that reach entity search after their time, clock skew): a run "
                "emits records up to this many minutes before its start and discovery re-reads the margin "
                "before the bookmark; records older than the bookmark are filtered out, so nothing is sent "
                "twice. 0 emits up to the run's start."
            ),
        ),
        th.Property(
            "customer_identifiers_path",
            th.StringType,
            description=(
                "CSV (header row) or JSONL file of customers to extract, for orgs without entity search: columns/keys "
                "id, mobile, email or external_id. Every listed customer is read on every run."
            ),
        ),
    ).to_dict()

    def discover_streams(self) -> list[streams.CapillaryStream]:
        return [stream_type(tap=self) for stream_type in STREAM_TYPES]

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        errors = super()._validate_config(raise_errors=raise_errors)
        errors += config_errors(self.config)
        if errors and raise_errors:
            raise ConfigValidationError("Config validation failed", errors=errors)
        return errors

    # -- what the streams of one run share ---------------------------------------------------------------

    @cached_property
    def authenticator(self) -> Any:
        if self.config.get("client_key"):
            return OAuthTokenAuthenticator(
                base_url=self.config["base_url"],
                client_key=self.config["client_key"],
                client_secret=self.config["client_secret"],
            )
        return till_authenticator(self.config["username"], self.config["password"])

    @cached_property
    def rate_limiter(self) -> Limiter:
        return Limiter(Rate(self.config["requests_per_minute"], Duration.MINUTE))

    @cached_property
    def http_session(self) -> requests.Session:
        """One session for all streams and workers: keep-alive connections, pooled for ``max_workers``.

        Proxy and CA-bundle settings are read from the environment once here: with ``trust_env``
        requests re-reads the environment on every request (a tenth of the tap's CPU). The
        proxies are those of ``base_url`` (all requests go to that host), so ``NO_PROXY`` applies.
        """
        session = requests.Session()
        session.trust_env = False
        session.proxies = requests.utils.get_environ_proxies(self.config["base_url"])
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.config["max_workers"])
        for scheme in ("http://", "https://"):
            session.mount(scheme, adapter)
        return session

    @cached_property
    def request_slots(self) -> threading.BoundedSemaphore:
        """At most ``max_workers`` requests in flight, whichever threads send them."""
        return threading.BoundedSemaphore(self.config["max_workers"])

    @cached_property
    def _fan_out_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.config["max_workers"], thread_name_prefix="capillary-fan-out")

    def fan_out(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """``fn`` over one customer's independent requests (bill details, ledger ranges) on a shared pool;
        results in input order. ``request_slots`` keeps the run's requests within ``max_workers``."""
        items = list(items)
        if len(items) == 1:
            return [fn(items[0])]  # nothing to overlap: spare the hand-over to another thread
        futures = [self._fan_out_pool.submit(fn, item) for item in items]
        try:
            return [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()  # after a failure: drop what has not started

    @cached_property
    def item_errors(self) -> CodeTally:
        """Customers, bills and records skipped (counted and logged), by stream and Capillary code."""
        return CodeTally()

    @cached_property
    def warnings(self) -> CodeTally:
        """Warnings in accepted responses (the data was read), by stream and Capillary code."""
        return CodeTally()

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
    def changed_customers(self) -> ChangedCustomers:
        return ChangedCustomers(self)

    def sync_all(self) -> None:
        # Create the shared objects before worker threads could race to create them.
        _ = (self.authenticator, self.rate_limiter, self.item_errors, self.warnings, self.times, self.run_started_at)
        _ = (self.http_session, self.request_slots, self._fan_out_pool, self.transaction_details)
        try:
            super().sync_all()
        finally:
            self._fan_out_pool.shutdown(wait=True, cancel_futures=True)
            self.http_session.close()
            self.changed_customers.close()


def config_errors(config: Any) -> list[str]:
    """What JSON Schema cannot say clearly: one auth mode, a usable URL and time zone, positive sizes."""
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
    base_url = config.get("base_url")
    if base_url is not None:
        parsed = urlparse(str(base_url))
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path.strip("/"):
            errors.append(
                f"base_url must be a cluster host such as https://eu.api.capillarytech.com, got {base_url!r}."
            )
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
    for key in ("backfill_window_days", "page_size", "max_workers", "ledger_window_days", "requests_per_minute"):
        if config.get(key) is not None and config[key] < 1:
            errors.append(f"{key} must be at least 1.")
    if config.get("lookback_minutes") is not None and config["lookback_minutes"] < 0:
        errors.append("lookback_minutes must not be negative.")
    return errors
