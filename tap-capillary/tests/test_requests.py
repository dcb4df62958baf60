"""Auth modes, token renewal, each retry class, fatal errors and item-level errors, against the emulator."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from pyrate_limiter import Limiter
from singer_sdk.exceptions import FatalAPIError

from emulators.server import REQUEST_LOG, BackgroundServer
from tap_capillary.streams import CustomerDataStream
from tap_capillary.tap import TapCapillary
from tests.support import OAUTH, TILL, Run, past_anchor, run_tap, tap_config

SMALL = {
    "customers": 6,
    "seed": 5,
    "merged_customer_rate": 0.0,
    "deleted_customer_rate": 0.0,
    "anchor_time": past_anchor(),
}


def requests_log(server: BackgroundServer, path: str = "") -> list[dict[str, Any]]:
    return [e for e in server.call(lambda: list(server.app[REQUEST_LOG].entries)) if e["path"].startswith(path)]


def record_keys(run: Run) -> dict[str, int]:
    return {stream: len(records) for stream, records in run.records.items()}


@pytest.mark.capillary(**SMALL)
def test_oauth_and_till_auth_read_the_same_data(capillary_emulator: BackgroundServer) -> None:
    oauth = run_tap(tap_config(capillary_emulator))
    tokens = len(requests_log(capillary_emulator, "/v3/oauth"))
    till_config = {k: v for k, v in tap_config(capillary_emulator).items() if k not in OAUTH}
    till = run_tap({**till_config, **TILL})
    assert tokens == 1
    assert len(requests_log(capillary_emulator, "/v3/oauth")) == tokens, "Basic auth needs no token"
    assert record_keys(oauth) == record_keys(till)
    assert sum(record_keys(oauth).values()) > 50
    assert all(e["status"] != 401 for e in requests_log(capillary_emulator))


@pytest.mark.capillary(**SMALL, token_ttl_seconds=1)
def test_token_is_renewed_before_it_expires(capillary_emulator: BackgroundServer) -> None:
    capillary_emulator.set_faults({"rules": [{"path": "/v*", "latency_ms": 30}]})
    run = run_tap(tap_config(capillary_emulator, max_workers=1))
    tokens = [e for e in requests_log(capillary_emulator, "/v3/oauth/token/generate") if e["status"] == 200]
    assert len(tokens) >= 2, "the 1 s token was renewed during the run"
    assert all(e["status"] != 401 for e in requests_log(capillary_emulator)), "never used an expired token"
    assert run.count("transactions") > 0


@pytest.mark.capillary(**SMALL)
def test_revoked_token_is_replaced_once(capillary_emulator: BackgroundServer) -> None:
    baseline = run_tap(tap_config(capillary_emulator))
    # Tokens revoked twice during the run, each time before a different request.
    rules = [{"path": p, "revoke_token_rate": 1.0, "max_faults": 1} for p in ("/v2/search/*", "/v2/customers/*")]
    capillary_emulator.set_faults({"rules": rules})
    run = run_tap(tap_config(capillary_emulator))
    assert sum(e["status"] == 401 for e in requests_log(capillary_emulator)) >= 2
    assert record_keys(run) == record_keys(baseline)


@pytest.mark.capillary(**SMALL)
def test_token_refused_again_after_renewal_is_fatal(capillary_emulator: BackgroundServer) -> None:
    capillary_emulator.set_faults({"rules": [{"path": "/v1.1/organization/entities", "revoke_token_rate": 1.0}]})
    with pytest.raises(FatalAPIError, match=r"HTTP 401 from GET /v1.1/organization/entities .*new OAuth token"):
        run_tap(tap_config(capillary_emulator))


@pytest.mark.parametrize(
    "rule",
    [
        {"status_rates": {429: 1.0}, "retry_after": 0},
        {"status_rates": {500: 1.0}},
        {"status_rates": {503: 1.0}, "retry_after": 0},
        {"status_rates": {461: 1.0}},
        {"status_rates": {521: 1.0}},
        {"drop_rate": 1.0},
    ],
    ids=["429", "500", "503", "461", "521", "connection-dropped"],
)
@pytest.mark.capillary(**SMALL)
def test_retry_classes_are_retried(capillary_emulator: BackgroundServer, rule: dict[str, Any]) -> None:
    baseline = run_tap(tap_config(capillary_emulator, max_workers=1))
    paths = ["/v2/search/entity", "/v1.1/customer/get", "/v2/pointsLedger/*", "/api_gateway/*"]
    capillary_emulator.set_faults({"rules": [{"path": p, **rule, "max_faults": 2} for p in paths]})
    run = run_tap(tap_config(capillary_emulator, max_workers=1))
    faulted = [e for e in requests_log(capillary_emulator) if e["fault"]]
    assert len(faulted) == 2 * len(paths)
    assert record_keys(run) == record_keys(baseline)


@pytest.mark.capillary(**SMALL)
def test_retry_after_is_honoured(capillary_emulator: BackgroundServer) -> None:
    rule = {"path": "/v1.1/organization/entities", "status_rates": {429: 1.0}, "retry_after": 1, "max_faults": 1}
    capillary_emulator.set_faults({"rules": [rule]})
    run_tap(tap_config(capillary_emulator))
    first, second = requests_log(capillary_emulator, "/v1.1/organization/entities")[:2]
    assert (first["status"], second["status"]) == (429, 200)
    assert second["time"] - first["time"] >= 0.95


@pytest.mark.capillary(**SMALL)
def test_retries_are_bounded_then_fatal_naming_the_endpoint(capillary_emulator: BackgroundServer) -> None:
    rule = {"path": "/v1.1/organization/entities", "status_rates": {503: 1.0}, "retry_after": 0}
    capillary_emulator.set_faults({"rules": [rule]})
    config = tap_config(capillary_emulator)
    with pytest.raises(FatalAPIError) as caught:
        run_tap(config)
    message = str(caught.value)
    assert message.startswith("Giving up after 6 tries: HTTP 503 from GET /v1.1/organization/entities")
    assert "Authorization status is unavailable" in message
    assert len(requests_log(capillary_emulator, "/v1.1/organization/entities")) == 6
    assert config["client_secret"] not in message


@pytest.mark.capillary(**SMALL, ledger_max_limit=10)
def test_other_client_errors_are_fatal_with_capillary_code(capillary_emulator: BackgroundServer) -> None:
    """The ledger's documented limits conflict (100 vs 10); an org enforcing 10 fails clearly."""
    with pytest.raises(FatalAPIError, match=r"HTTP 400 from GET /v2/pointsLedger/getCustomerLedgerInfo .*11029"):
        run_tap(tap_config(capillary_emulator))
    asked = [
        (e["query"]["identifierValue"], e["query"]["startDate"])
        for e in requests_log(capillary_emulator, "/v2/")
        if e["path"].startswith("/v2/pointsLedger")
    ]
    assert len(asked) == len(set(asked)), "not retried"


@pytest.mark.capillary(**SMALL)
def test_wrong_credentials_are_fatal(capillary_emulator: BackgroundServer) -> None:
    with pytest.raises(FatalAPIError, match=r"refused to generate an OAuth token.*Failed to generate OAuth token"):
        run_tap(tap_config(capillary_emulator, client_secret="wrong"))
    till_config = {k: v for k, v in tap_config(capillary_emulator).items() if k not in OAUTH}
    with pytest.raises(FatalAPIError, match=r"HTTP 401 from .*Invalid till credentials"):
        run_tap({**till_config, "username": "store123", "password": "wrong"})


@pytest.mark.capillary(
    customers=20, seed=9, merged_customer_rate=0.2, deleted_customer_rate=0.1, anchor_time=past_anchor()
)
def test_item_level_errors_are_logged_counted_and_skipped(
    capillary_emulator: BackgroundServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        run = run_tap(tap_config(capillary_emulator))
    counts = run.tap.item_errors.counts
    assert counts[("customers", "1012")] > 0
    assert counts[("transactions", "8069")] == counts[("customers", "1012")]
    assert counts[("points_ledger", "11012")] == counts[("customers", "1012")]
    warnings = [r.getMessage() for r in caplog.records if "Capillary item error" in r.getMessage()]
    assert any("1012" in w and "merged into customer" in w for w in warnings)
    assert run.count("customers") > 0


@pytest.mark.capillary(**SMALL)
def test_every_request_passes_the_shared_rate_limit(
    capillary_emulator: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    acquired = []
    original = Limiter.try_acquire

    def counting(self: Limiter, *args: Any, **kwargs: Any) -> Any:
        acquired.append(threading.current_thread().name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Limiter, "try_acquire", counting)
    run_tap(tap_config(capillary_emulator))
    api_requests = [e for e in requests_log(capillary_emulator) if not e["path"].startswith("/v3/oauth")]
    assert len(acquired) == len(api_requests)
    assert any(name.startswith("capillary") for name in acquired), "worker threads share the limiter"


def test_requests_per_minute_bounds_the_limiter() -> None:
    tap = TapCapillary(config={"base_url": "http://127.0.0.1:9", **OAUTH, "requests_per_minute": 3})
    assert [tap.rate_limiter.try_acquire("capillary", blocking=False) for _ in range(4)] == [True, True, True, False]


@pytest.mark.capillary(**SMALL)
def test_customers_are_read_concurrently_up_to_max_workers(
    capillary_emulator: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    capillary_emulator.set_faults({"rules": [{"path": "/v2/pointsLedger/*", "latency_ms": 60}]})
    lock, active, peak = threading.Lock(), [0], [0]
    original = CustomerDataStream._read_customers

    def tracking(self: CustomerDataStream, customer_ids: list[int]) -> list[dict]:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            return original(self, customer_ids)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(CustomerDataStream, "_read_customers", tracking)
    run_tap(tap_config(capillary_emulator, max_workers=3, backfill_window_days=1000))
    assert peak[0] == 3


@pytest.mark.capillary(**SMALL)
def test_token_generation_is_retried_then_fatal(capillary_emulator: BackgroundServer) -> None:
    token_path = "/v3/oauth/token/generate"
    rule = {"path": token_path, "status_rates": {503: 1.0}, "retry_after": 0, "max_faults": 2}
    capillary_emulator.set_faults({"rules": [rule]})
    assert run_tap(tap_config(capillary_emulator)).count("customers") > 0
    capillary_emulator.set_faults({"rules": [{**rule, "status_rates": {500: 1.0}, "max_faults": None}]})
    with pytest.raises(FatalAPIError, match=r"refused to generate an OAuth token \(HTTP 500 from /v3/oauth"):
        run_tap(tap_config(capillary_emulator))
