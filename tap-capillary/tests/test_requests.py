"""Auth modes, token renewal, each retry class, fatal errors and item-level errors, against the emulator."""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from singer_sdk.exceptions import FatalAPIError

from emulators.capillary import ADMIN
from emulators.server import REQUEST_LOG, BackgroundServer
from tap_capillary import streams
from tap_capillary.streams import CustomerDataStream
from tap_capillary.tap import TapCapillary
from tests.support import OAUTH, TILL, FakeClock, Run, instant, past_anchor, run_tap, run_tap_to_the_end, tap_config

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


@pytest.mark.capillary(**SMALL, token_ttl_seconds=300)
def test_token_is_renewed_before_it_expires(capillary_emulator: BackgroundServer) -> None:
    """A fifth of the lifetime, at most 60 s, before it ends: at 240 s of a 300 s token."""
    tap = TapCapillary(config=tap_config(capillary_emulator))
    tap.clock = clock = FakeClock()
    tokens = tap.authenticator
    first = tokens.token()
    clock.time += 239
    assert tokens.token() == first
    clock.time += 2
    assert tokens.token() != first
    assert len(requests_log(capillary_emulator, "/v3/oauth/token/generate")) == 2


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
    rule = {"path": "/v1.1/organization/entities", "status_rates": {429: 1.0}, "retry_after": 7, "max_faults": 1}
    capillary_emulator.set_faults({"rules": [rule]})
    run = run_tap(tap_config(capillary_emulator))
    first, second = requests_log(capillary_emulator, "/v1.1/organization/entities")[:2]
    assert (first["status"], second["status"]) == (429, 200)
    assert run.clock.waits == [7.0]


@pytest.mark.capillary(**SMALL)
def test_retries_are_bounded_then_fatal_naming_the_endpoint(capillary_emulator: BackgroundServer) -> None:
    rule = {"path": "/v1.1/organization/entities", "status_rates": {503: 1.0}, "retry_after": 0}
    capillary_emulator.set_faults({"rules": [rule]})
    config = tap_config(capillary_emulator, max_retries=3)
    with pytest.raises(FatalAPIError) as caught:
        run_tap(config)
    message = str(caught.value)
    assert re.match(r"Giving up after 4 tries in \d+\.\d s: HTTP 503 from GET /v1.1/organization/entities", message)
    assert "Authorization status is unavailable" in message
    assert message.endswith("(max_retries 3, retry_budget_seconds 300, Retry-After 0 s)")
    assert len(requests_log(capillary_emulator, "/v1.1/organization/entities")) == 4
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
    # The emulator answers the authorization-flow page's sample: {"data": null, "errors": [{"code": 320001, …}]}.
    with pytest.raises(FatalAPIError, match=r"refused to generate an OAuth token.*code 320001: Invalid client key"):
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


@pytest.mark.capillary(**{**SMALL, "coupons_per_customer": 3})
def test_coupons_past_the_limit_are_a_counted_item_error(
    capillary_emulator: BackgroundServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """customer/coupons has no offset: a customer with as many coupons as the limit may have older ones, which
    cannot be read. Each is an item error of its own code, so the stream's summary shows it."""
    monkeypatch.setattr(streams, "COUPONS_LIMIT", 2)
    with caplog.at_level(logging.WARNING):
        run = run_tap(tap_config(capillary_emulator))
    admin = capillary_emulator.app[ADMIN]
    ids = capillary_emulator.call(admin.changed_customers, 0)
    coupons = {i: len(capillary_emulator.call(admin.customer, i)["coupons"]) for i in ids}
    at_limit = {i for i, n in coupons.items() if n >= 2}
    assert at_limit, "customers at the limit"
    assert set(coupons) - at_limit, "and below it"
    assert run.tap.item_errors.for_stream("coupons") == {"coupon_limit": len(at_limit)}
    read = Counter(r["customer_id"] for r in run.records["coupons"])
    assert all(read[i] == min(n, 2) for i, n in coupons.items())
    messages = [r.getMessage() for r in caplog.records]
    assert all(any("coupon_limit" in m and f"customer {i}" in m for m in messages) for i in at_limit)
    assert f"Stream coupons skipped items with Capillary error codes: {{'coupon_limit': {len(at_limit)}}}" in messages


@pytest.mark.capillary(customers=24, seed=3, merged_customer_rate=0.0, deleted_customer_rate=0.0,
                       anchor_time=past_anchor())  # fmt: skip
def test_a_stream_whose_first_customers_all_fail_alike_stops_the_run(capillary_emulator: BackgroundServer) -> None:
    """Every ledger call answers the documented "customer not found" (a wrong cluster or org would): the run stops
    after the stream's first 20 customers, naming the likely cause, with no STATE for the stream."""
    envelope = {"v2_error__customer_not_found.json": 1.0}
    capillary_emulator.set_faults({"rules": [{"path": "/v2/pointsLedger/*", "envelopes": envelope}]})
    run, error = run_tap_to_the_end(tap_config(capillary_emulator, backfill_window_days=30))
    assert isinstance(error, FatalAPIError)
    assert re.search(r"Stream points_ledger: its first 20 customers all failed with Capillary code 8015 \(customer "
                     r"not found for the given identifiers\).*base_url is the org's cluster", str(error))  # fmt: skip
    assert run.tap.item_errors.for_stream("points_ledger")["8015"] >= 20  # and those read meanwhile by other workers
    # No window holding a customer was written as done: the windows' STATE waited for a customer read.
    admin = capillary_emulator.app[ADMIN]
    ids = capillary_emulator.call(admin.changed_customers, 0)
    first_change = min(instant(capillary_emulator.call(admin.customer, i)["updated_on"]) for i in ids)
    written = [instant(state["bookmarks"]["points_ledger"]["replication_key_value"]) for state in run.states
               if "points_ledger" in state["bookmarks"]]  # fmt: skip
    assert all(end <= first_change for end in written), "no STATE for the stream's customers"
    done = {name for name, bookmark in run.state["bookmarks"].items() if "pass_since" not in bookmark}
    assert done == {"coupons", "customers"}, "the streams before it completed"


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
def test_token_generation_is_retried_in_one_layer_then_fatal(capillary_emulator: BackgroundServer) -> None:
    """The token request is a call of its own: its own retries, and none again inside the retries of the API
    request that needed it (that multiplied them: 6 token requests per try, 36 in all)."""
    token_path = "/v3/oauth/token/generate"
    rule = {"path": token_path, "status_rates": {503: 1.0}, "retry_after": 0, "max_faults": 2}
    capillary_emulator.set_faults({"rules": [rule]})
    assert run_tap(tap_config(capillary_emulator, max_retries=2)).count("customers") > 0
    capillary_emulator.set_faults({"rules": [{**rule, "status_rates": {500: 1.0}, "max_faults": None}]})
    capillary_emulator.call(capillary_emulator.app[REQUEST_LOG].clear)
    with pytest.raises(FatalAPIError, match=r"^Giving up after 3 tries in .* s: HTTP 500 from POST /v3/oauth"):
        run_tap(tap_config(capillary_emulator, max_retries=2))
    assert len(requests_log(capillary_emulator, token_path)) == 3
    assert requests_log(capillary_emulator) == requests_log(capillary_emulator, token_path), "no API request sent"


@pytest.mark.capillary(**SMALL)
def test_a_storm_of_429_and_5xx_is_ridden_out(capillary_emulator: BackgroundServer) -> None:
    """10 % 429 and 10 % 5xx on every path (the token's too), seeded: with the default max_retries the run
    reads what a quiet run reads (6 tries lost a request in one run out of three)."""
    baseline = run_tap(tap_config(capillary_emulator))
    storm = {"status_rates": {429: 0.1, 500: 0.04, 503: 0.03, 502: 0.03}, "retry_after": 0}
    capillary_emulator.set_faults({"seed": 13, "rules": [storm]})
    run = run_tap(tap_config(capillary_emulator))
    assert record_keys(run) == record_keys(baseline)
    faulted = [e for e in requests_log(capillary_emulator) if e["fault"]]
    assert len(faulted) >= 10
    assert len(run.clock.waits) == len(faulted)


@pytest.mark.capillary(**SMALL)
def test_the_default_retries_ride_out_six_failures_in_a_row(capillary_emulator: BackgroundServer) -> None:
    """One request failing six times in a row: the fixed six tries the tap once had gave up there (what made one
    storm run in three fail); the default max_retries (10) sends it a seventh time and reads everything."""
    baseline = run_tap(tap_config(capillary_emulator))
    path = "/v1.1/organization/entities"
    capillary_emulator.set_faults(
        {"rules": [{"path": path, "status_rates": {503: 1.0}, "retry_after": 0, "max_faults": 6}]}
    )
    capillary_emulator.call(capillary_emulator.app[REQUEST_LOG].clear)
    run = run_tap(tap_config(capillary_emulator))
    assert [e["status"] for e in requests_log(capillary_emulator, path)][:7] == [503] * 6 + [200]
    assert record_keys(run) == record_keys(baseline)


@pytest.mark.capillary(**SMALL)
def test_a_dead_service_fails_within_the_retry_budget(capillary_emulator: BackgroundServer) -> None:
    capillary_emulator.set_faults({"rules": [{"path": "/v2/search/*", "status_rates": {502: 1.0}}]})
    config = tap_config(capillary_emulator, max_retries=1000, retry_budget_seconds=120)
    run, error = run_tap_to_the_end(config)
    assert error is not None
    assert re.fullmatch(
        r"Giving up after \d+ tries in \d+\.\d s: HTTP 502 from POST /v2/search/entity \(.*\) "
        r"\(max_retries 1000, retry_budget_seconds 120\)",
        str(error),
    )
    assert run.clock.time - 1000 <= 120
    assert 5 < len(requests_log(capillary_emulator, "/v2/search/")) < 20


def track_requests_in_flight(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Peak number of HTTP requests in flight at once: ``all``, and ``details`` (``/v2/transactions/{id}``)."""
    lock, active, peak = threading.Lock(), Counter(), Counter()
    original = requests.Session.send

    def tracking(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        kinds = ["all"] + (["details"] if "/v2/transactions/" in str(request.url) else [])
        with lock:
            active.update(kinds)
            for kind in kinds:
                peak[kind] = max(peak[kind], active[kind])
        try:
            return original(self, request, **kwargs)
        finally:
            with lock:
                active.subtract(kinds)

    monkeypatch.setattr(requests.Session, "send", tracking)
    return peak


@pytest.mark.capillary(**SMALL)
def test_bill_details_are_fetched_side_by_side_within_max_workers(
    capillary_emulator: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A customer's bill details run on the shared pool, yet never more than max_workers requests at once."""
    capillary_emulator.set_faults({"rules": [{"path": "/v2/transactions/*", "latency_ms": 40}]})
    peak = track_requests_in_flight(monkeypatch)
    # One customer at a time: any concurrency of detail calls comes from fanning out one customer's bills.
    one = run_tap(tap_config(capillary_emulator, max_workers=1))
    assert peak == {"all": 1, "details": 1}
    assert one.count("transactions") > 0
    peak.clear()
    three = run_tap(tap_config(capillary_emulator, max_workers=3))
    assert peak == {"all": 3, "details": 3}, "details of several bills in flight together, within max_workers"
    assert three.records["transactions"] == one.records["transactions"], "same records, same order"


@pytest.mark.capillary(**SMALL)
def test_requests_in_flight_never_exceed_max_workers(
    capillary_emulator: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    capillary_emulator.set_faults({"rules": [{"path": "/v*", "latency_ms": 20}]})
    peak = track_requests_in_flight(monkeypatch)
    run_tap(tap_config(capillary_emulator, max_workers=3, backfill_window_days=1000))
    assert peak["all"] == 3


@pytest.mark.capillary(**SMALL)
def test_proxy_from_the_environment_is_used_and_read_once(
    capillary_emulator: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator doubles as the HTTP proxy of a loopback port where nothing listens: records arrive only
    through the proxy."""
    baseline = run_tap(tap_config(capillary_emulator))
    reads = []
    original = requests.utils.get_environ_proxies
    monkeypatch.setattr(requests.utils, "get_environ_proxies", lambda *a, **k: reads.append(a) or original(*a, **k))
    monkeypatch.setenv("HTTP_PROXY", capillary_emulator.base_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    run = run_tap(tap_config(capillary_emulator, base_url="http://localhost:9"))
    assert record_keys(run) == record_keys(baseline)
    api_requests = [e for e in requests_log(capillary_emulator) if not e["path"].startswith("/v3/oauth")]
    assert len(reads) <= 2 < len(api_requests) / 2, "once for the API session (and once per OAuth token)"


def test_no_proxy_and_ca_bundle_from_the_environment_apply(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corporate.pem")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    config = {"base_url": "https://eu.api.capillarytech.com", **OAUTH}
    session = TapCapillary(config=config).transport.session
    assert session.proxies.get("https") == "http://proxy.example:3128"
    assert session.verify == "/etc/ssl/corporate.pem"
    bundle = tmp_path / "ca.pem"
    bundle.write_text("a PEM file")
    assert TapCapillary(config={**config, "ca_bundle": str(bundle)}).transport.session.verify == str(bundle)
    monkeypatch.setenv("NO_PROXY", ".capillarytech.com")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    session = TapCapillary(config=config).transport.session
    assert session.proxies == {}
    assert session.verify is True, "TLS verification stays on"


@pytest.mark.capillary(**SMALL)
def test_per_request_metrics_only_at_debug(
    capillary_emulator: BackgroundServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def metrics_logged() -> Counter:
        return Counter(r.args[0].metric.value for r in caplog.records if r.name == "singer_sdk.metrics")

    with caplog.at_level(logging.DEBUG):
        run_tap(tap_config(capillary_emulator))
    at_info = metrics_logged()
    assert at_info["record_count"] > 0
    assert at_info["sync_duration"] > 0
    assert at_info["http_request_duration"] == at_info["http_request_count"] == 0
    caplog.clear()
    monkeypatch.setenv("TAP_CAPILLARY_LOGLEVEL", "DEBUG")
    with caplog.at_level(logging.DEBUG):
        run_tap(tap_config(capillary_emulator))
    api_requests = [e for e in requests_log(capillary_emulator) if not e["path"].startswith("/v3/oauth")]
    assert metrics_logged()["http_request_duration"] == len(api_requests) / 2, "both runs' requests are logged"


@pytest.mark.capillary(**SMALL)
def test_one_redemptions_request_and_few_ledger_requests_per_customer(capillary_emulator: BackgroundServer) -> None:
    """Both redemption parts come in one request; the ledger is read in the documented 90-day ranges."""
    run = run_tap(tap_config(capillary_emulator))
    log = requests_log(capillary_emulator)
    redemptions = Counter(e["query"]["id"] for e in log if e["path"] == "/v1.1/customer/redemptions")
    assert run.count("redemptions") > 0
    assert set(redemptions.values()) == {1}
    assert all("type" not in e["query"] for e in log if e["path"] == "/v1.1/customer/redemptions")
    ledger = [e["query"] for e in log if e["path"].startswith("/v2/pointsLedger")]
    spans = {instant(q["endDate"]) - instant(q["startDate"]) for q in ledger}
    assert max(spans) == timedelta(days=90, hours=-1)
    capillary_emulator.call(capillary_emulator.app[REQUEST_LOG].clear)
    narrow = run_tap(tap_config(capillary_emulator, ledger_window_days=30))
    narrow_ledger = [e for e in requests_log(capillary_emulator) if e["path"].startswith("/v2/pointsLedger")]
    assert len(narrow_ledger) > len(ledger)
    assert narrow.records["points_ledger"] == run.records["points_ledger"]
