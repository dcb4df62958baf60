"""Bad configuration: a clear message and a non-zero exit, from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from singer_sdk.exceptions import ConfigValidationError

from emulators.server import BackgroundServer
from tap_capillary.tap import TapCapillary
from tests.support import OAUTH, TILL, tap_config

# Loopback only: a config that passed validation must not reach out of this machine.
BASE = {"base_url": "http://127.0.0.1:9", "start_date": "2025-01-01T00:00:00Z"}


def run_cli(tmp_path: Path, config: dict[str, Any], *args: str) -> subprocess.CompletedProcess:
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    return subprocess.run(
        [sys.executable, "-m", "tap_capillary", "--config", str(config_file), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (BASE, "No credentials: set client_key and client_secret (OAuth) or username and password"),
        ({**BASE, **OAUTH, **TILL}, "Configure exactly one auth mode"),
        ({**BASE, "client_key": "k"}, "OAuth needs both client_key and client_secret"),
        ({**BASE, **OAUTH, "base_url": "127.0.0.1:9"}, "base_url must be a cluster host"),
        ({**BASE, **OAUTH, "base_url": "http://127.0.0.1:9/v2"}, "base_url must be a cluster host"),
        ({**BASE, **OAUTH, "base_url": "http://eu.api.capillarytech.com"}, "base_url must use https"),
        ({**BASE, **TILL, "base_url": "http://10.0.0.8"}, "credentials would travel in cleartext to 10.0.0.8"),
        ({**BASE, **OAUTH, "ca_bundle": "/nonexistent/ca.pem"}, "ca_bundle names no readable file"),
        ({**BASE, **OAUTH, "max_retries": -1}, "max_retries must not be negative"),
        ({**BASE, **OAUTH, "retry_budget_seconds": 0}, "retry_budget_seconds must be at least 1"),
        ({**BASE, **OAUTH, "cluster_timezone": "Mars/Olympus_Mons"}, "cluster_timezone must be an IANA time zone"),
        ({**BASE, **OAUTH, "max_workers": 0}, "max_workers must be at least 1"),
        ({**BASE, **OAUTH, "start_date": "last tuesday"}, "start_date must be an ISO 8601 date-time"),
        ({**BASE, **OAUTH, "api_requests_per_minute": {"v2/transaction/{id}": 60}},
         "api_requests_per_minute names unknown APIs ['v2/transaction/{id}']; the APIs are ["),
        ({**BASE, **OAUTH, "api_requests_per_minute": {"v2/transactions/{id}": 0}},
         "api_requests_per_minute['v2/transactions/{id}'] must be a whole number of requests, at least 1"),
        ({**BASE, **OAUTH, "shard_count": 4, "shard_index": 4}, "shard_index must be 0 to shard_count - 1 (3), got 4"),
        ({**BASE, **OAUTH, "shard_index": 1}, "shard_index must be 0 to shard_count - 1 (0), got 1"),
        ({**BASE, **OAUTH, "shard_count": 0}, "shard_count must be at least 1"),
    ],
    ids=["no-auth", "both-auth", "half-oauth", "no-scheme", "with-path", "cleartext-oauth", "cleartext-basic",
         "no-ca-bundle", "negative-retries", "zero-budget", "bad-timezone", "zero-workers", "bad-date",
         "unknown-api", "zero-api-budget", "shard-index-out-of-range", "shard-index-without-count", "no-shards"],
)  # fmt: skip
def test_bad_config_is_refused_with_a_clear_message(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigValidationError) as caught:
        TapCapillary(config=config)
    assert any(message in error for error in caught.value.errors)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (BASE, "No credentials"),
        ({**BASE, **OAUTH, "base_url": "127.0.0.1:9"}, "base_url must be a cluster host"),
        ({**BASE, **OAUTH, "base_url": "http://eu.api.capillarytech.com"}, "base_url must use https"),
        ({**BASE, **OAUTH, "cluster_timezone": "Mars/Olympus_Mons"}, "cluster_timezone must be an IANA time zone"),
    ],
    ids=["no-auth", "bad-base-url", "cleartext", "bad-timezone"],
)
def test_bad_config_exits_non_zero(tmp_path: Path, config: dict[str, Any], message: str) -> None:
    result = run_cli(tmp_path, config)
    assert result.returncode != 0
    assert message in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "base_url", ["https://eu.api.capillarytech.com", "http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9"]
)
def test_http_is_accepted_for_loopback_hosts_only(base_url: str) -> None:
    assert TapCapillary(config={**BASE, **OAUTH, "base_url": base_url}).config["base_url"] == base_url


@pytest.mark.capillary(customers=3)
def test_first_run_without_start_date_exits_with_a_clear_message(
    tmp_path: Path, capillary_emulator: BackgroundServer
) -> None:
    config = {k: v for k, v in tap_config(capillary_emulator).items() if k != "start_date"}
    result = run_cli(tmp_path, config)
    assert result.returncode != 0
    assert "start_date is required" in result.stderr


def test_about_markdown_is_in_the_readme() -> None:
    about = subprocess.run(
        [sys.executable, "-m", "tap_capillary", "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    settings = about[about.index("| Setting |") : about.index("| stream_maps |")]
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    assert settings in readme
