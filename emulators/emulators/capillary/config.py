"""Configuration of the Capillary emulator, and its ``--capillary-*`` command-line options."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from emulators.options import parse_bool, parse_json_object

# Help text per field; ``add_cli_arguments`` turns every field into ``--capillary-<field>``.
HELP = {
    "seed": "seed of the data generator; the same seed and scale give the same data",
    "customers": "number of generated customers",
    "transactions_per_customer": "average bills per customer (varies 0..2x per customer; about 8%% are RETURN bills)",
    "ledger_entries_per_customer": "extra points-ledger events per customer besides those from bills and redemptions",
    "tier_changes_per_customer": "average tier changes (upgrade, downgrade, renewal) per customer",
    "redemptions_per_customer": "average points redemptions per customer",
    "coupons_per_customer": "average coupons issued per customer",
    "rewards_per_customer": "average reward issuals per customer",
    "stores": "number of stores (each with two tills)",
    "merged_customer_rate": "share of customers that are merged into another one (item-level errors on lookup)",
    "deleted_customer_rate": "share of customers deleted after a PII delete request (item-level errors on lookup)",
    "history_days": "generated activity spans this many days before the anchor time",
    "anchor_time": "ISO time the generated history ends at; default: now, rounded down to the hour",
    "cluster_timezone": "IANA time zone of the emulated cluster: v1.1 times are naive in it, v2 times carry its offset",
    "oauth_clients": 'OAuth clients accepted by /v3/oauth/token/generate, JSON {"key": "secret"}',
    "till_credentials": 'till users accepted for Basic auth, JSON {"username": "password"}',
    "token_ttl_seconds": "lifetime of issued OAuth tokens (Capillary's sample: 300)",
    "entity_search_enabled": "whether POST /v2/search/entity is enabled for the org (off: 403 as without access group)",
    "search_max_limit": "largest 'limit' entity search accepts (docs: 20)",
    "transactions_max_limit": "largest 'limit' of v2 customer transactions (docs: 1000)",
    "ledger_max_limit": "largest 'limit' of the points ledger (docs: 100 in the parameter table, 10 in the code table)",
    "ledger_max_window_days": "longest startDate..endDate window of the points ledger (docs: 90; 60 in the code table)",
    "db_path": "SQLite file holding the generated data; default: a temporary file removed on shutdown",
    "faults": "fault profile as JSON, or @path to a JSON file (see emulators.faults)",
    "response_cache_mb": "benchmark mode: keep rendered GET responses (up to this many MB) until data changes; 0: off",
    "rate_limits": 'requests per window per API and API key, JSON {"v2/transactions/{id}": 300, "*": 1000}; {}: off',
    "rate_limit_window_seconds": "the window rate_limits count over (docs: a minute; shorter compresses time)",
    "rate_limit_retry_after": "send Retry-After with rate-limit 429s (Capillary documents no rate-limit header)",
}


def _default_anchor() -> str:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now.isoformat()


@dataclass
class CapillaryConfig:
    """Everything that shapes the emulated org. ``CapillaryConfig()`` is small and fast (tests)."""

    seed: int = 42
    customers: int = 40
    transactions_per_customer: int = 4
    ledger_entries_per_customer: int = 2
    tier_changes_per_customer: int = 2
    redemptions_per_customer: int = 1
    coupons_per_customer: int = 2
    rewards_per_customer: int = 1
    stores: int = 4
    merged_customer_rate: float = 0.05
    deleted_customer_rate: float = 0.05
    history_days: int = 400
    anchor_time: str = field(default_factory=_default_anchor)
    cluster_timezone: str = "Asia/Kolkata"
    oauth_clients: dict[str, str] = field(default_factory=lambda: {"emulator-key": "emulator-secret"})
    # The user and password of Capillary's Basic-auth example (its printed md5 is wrong: docs/capillary.md).
    till_credentials: dict[str, str] = field(default_factory=lambda: {"store123": "Pass123"})
    token_ttl_seconds: float = 300
    entity_search_enabled: bool = True
    search_max_limit: int = 20
    transactions_max_limit: int = 1000
    ledger_max_limit: int = 100
    ledger_max_window_days: int = 90
    db_path: str | None = None
    faults: dict[str, Any] | None = None
    response_cache_mb: float = 0
    rate_limits: dict[str, int] = field(default_factory=dict)
    rate_limit_window_seconds: float = 60.0
    rate_limit_retry_after: bool = True

    @property
    def anchor_epoch(self) -> int:
        anchor = datetime.fromisoformat(self.anchor_time)
        if anchor.tzinfo is None:
            anchor = anchor.replace(tzinfo=UTC)
        return int(anchor.timestamp())

    def scale(self) -> dict[str, Any]:
        """The fields that determine the generated data (for reproducibility checks)."""
        skip = {
            "oauth_clients",
            "till_credentials",
            "token_ttl_seconds",
            "db_path",
            "entity_search_enabled",
            "faults",
            "response_cache_mb",
            "rate_limits",
            "rate_limit_window_seconds",
            "rate_limit_retry_after",
        }
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip and "max_" not in f.name}


def _string_map(text: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in parse_json_object(text).items()}


def _int_map(text: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in parse_json_object(text).items()}


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--capillary-<field>`` options (defaults: those of ``CapillaryConfig``)."""
    group = parser.add_argument_group("Capillary emulator")
    defaults = CapillaryConfig()
    for f in fields(CapillaryConfig):
        option = "--capillary-" + f.name.replace("_", "-")
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        converter: Any = str
        if kind == "int":
            converter = int
        elif kind == "float":
            converter = float
        elif kind == "bool":
            converter = parse_bool
        elif f.name == "faults":
            converter = parse_json_object
        elif kind == "dict[str, int]":
            converter = _int_map
        elif kind.startswith("dict"):
            converter = _string_map
        # anchor_time's default is "now" at start-up, not at parser build time.
        default = None if f.name == "anchor_time" else getattr(defaults, f.name)
        group.add_argument(option, dest=f"capillary_{f.name}", type=converter, default=default, help=HELP[f.name])


def config_from_cli(args: argparse.Namespace) -> CapillaryConfig:
    """A ``CapillaryConfig`` with the options given on the command line applied."""
    overrides = {
        f.name: getattr(args, f"capillary_{f.name}")
        for f in fields(CapillaryConfig)
        if getattr(args, f"capillary_{f.name}", None) is not None
    }
    return dataclasses.replace(CapillaryConfig(), **overrides)
