"""Each stream's records against the emulator's canonical data (types converted, UTC times)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from emulators.capillary import ADMIN
from emulators.launch import start_capillary
from emulators.server import REQUEST_LOG, BackgroundServer
from tests.support import Run, instant, past_anchor, run_tap, tap_config


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    # A non-UTC cluster: v1.1 naive times are Asia/Kolkata, v2 times carry +05:30.
    server = start_capillary(customers=30, seed=7, cluster_timezone="Asia/Kolkata", anchor_time=past_anchor())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def run(server: BackgroundServer) -> Run:
    return run_tap(tap_config(server))


@pytest.fixture(scope="module")
def canonical(server: BackgroundServer) -> dict[int, dict[str, Any]]:
    admin = server.app[ADMIN]
    ids = server.call(admin.changed_customers, 0)
    return {i: server.call(admin.customer, i) for i in ids}


def active(canonical: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in canonical.values() if c["status"] == "ACTIVE"]


def by(records: list[dict[str, Any]], *keys: str) -> dict[Any, dict[str, Any]]:
    index = {tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]: r for r in records}
    assert len(index) == len(records), "duplicate primary keys"
    return index


def test_all_times_are_utc(run: Run) -> None:
    for stream, records in run.records.items():
        for record in records:
            for name, value in record.items():
                if name.endswith("_at") and value is not None:
                    assert value.endswith("+00:00"), (stream, name, value)


def test_customers(run: Run, canonical: dict[int, dict[str, Any]]) -> None:
    records = by(run.records["customers"], "customer_id")
    assert set(records) == {c["id"] for c in active(canonical)}
    for c in active(canonical):
        r = records[c["id"]]
        assert (r["first_name"], r["last_name"], r["email"], r["mobile"]) == (
            c["firstname"],
            c["lastname"],
            c["email"],
            c["mobile"],
        )
        assert r["external_id"] == c["external_id"]
        assert r["loyalty_points"] == pytest.approx(c["loyalty_points"])
        assert r["lifetime_points"] == pytest.approx(c["lifetime_points"])
        assert r["lifetime_purchases"] == pytest.approx(c["lifetime_purchases"])
        assert r["current_slab"] == c["current_slab"]
        assert r["program_id"] == c["program_id"]
        assert r["fraud_status"] == c["fraud_status"]
        assert r["registered_store_code"] == c["registered_store_code"]
        assert instant(r["registered_at"]) == instant(c["registered_on"])
        assert instant(r["updated_at"]) == instant(c["updated_on"])
        assert r["extended_fields"]["city"] == c["extended_fields"]["city"]
        assert r["custom_fields"] == {k: str(v) for k, v in c["custom_fields"].items()}
        assert isinstance(r["redeemed_points"], float)


def test_transactions(run: Run, canonical: dict[int, dict[str, Any]]) -> None:
    records = by(run.records["transactions"], "transaction_id")
    expected = [(c, t) for c in active(canonical) for t in c["transactions"]]
    assert set(records) == {t["id"] for _, t in expected}
    kinds = Counter()
    for c, t in expected:
        r = records[t["id"]]
        kinds[r["type"]] += 1
        assert r["customer_id"] == c["id"]
        # No bill response has a currency: the billing store's base currency, from organization/entities.
        assert (r["bill_number"], r["type"], r["currency_code"]) == (t["number"], t["type"], t["currency"])
        assert (r["amount"], r["gross_amount"], r["discount"]) == pytest.approx(
            (t["amount"], t["gross_amount"], t["discount"])
        )
        assert instant(r["billed_at"]) == instant(t["billing_time"])
        assert instant(r["updated_at"]) == instant(t["auto_update_time"])
        assert (r["store_code"], r["till_code"]) == (t["store_code"], t["till_code"])
        assert r["return_type"] == (t["return_type"] if t["type"] == "RETURN" else None)
        assert (r["points_issued"], r["points_redeemed"], r["points_returned"]) == (None, None, None), "undocumented"
        lines = [
            (x["item_code"], x["description"], x["qty"], x["rate"], x["value"], x["discount"], x["amount"])
            for x in t["line_items"]
        ]
        assert [
            (x["item_code"], x["description"], x["qty"], x["rate"], x["value"], x["discount"], x["amount"])
            for x in r["line_items"]
        ] == lines
    assert kinds["REGULAR"] > 0
    assert kinds["RETURN"] > 0, "return bills are covered"


def test_points_ledger(run: Run, canonical: dict[int, dict[str, Any]]) -> None:
    records = by(run.records["points_ledger"], "event_log_id", "entry_index")
    expected = [(c, e) for c in active(canonical) for e in c["ledger"]]
    assert set(records) == {(e["id"], 0) for _, e in expected}
    for c, e in expected:
        r = records[(e["id"], 0)]
        assert (r["customer_id"], r["event_name"], r["ledger_entry_type"]) == (
            c["id"],
            e["event_name"],
            e["entry_type"],
        )
        assert r["points"] == pytest.approx(e["points"])
        assert r["program_id"] == e["program_id"]
        assert r["transaction_id"] == e["transaction_id"]
        assert instant(r["created_at"]) == instant(e["created_on"])


def test_tier_history(run: Run, canonical: dict[int, dict[str, Any]]) -> None:
    records = by(run.records["tier_history"], "customer_id", "program_id", "changed_at", "to_tier")
    expected = [(c, t) for c in active(canonical) for t in c["tier_changes"]]
    assert len(records) == len(expected)
    for c, t in expected:
        key = (c["id"], t["program_id"], instant(t["changed_on"]).isoformat(), t["to"])
        r = records[key]
        assert (r["from_tier"], r["change_type"]) == (t["from"], t["type"])
    assert {r["change_type"] for r in records.values()} <= {"UPGRADE", "DOWNGRADE", "RENEW"}


def test_redemptions(run: Run, canonical: dict[int, dict[str, Any]]) -> None:
    records = run.records["redemptions"]
    points = by([r for r in records if r["redemption_type"] == "POINTS"], "redemption_ref")
    coupons = by([r for r in records if r["redemption_type"] == "COUPON"], "coupon_code")
    expected_points = [(c, r) for c in active(canonical) for r in c["redemptions"]]
    expected_coupons = [(c, k) for c in active(canonical) for k in c["coupons"] if k["redeemed_on"]]
    assert set(points) == {r["redemption_id"] for _, r in expected_points}
    assert set(coupons) == {k["code"] for _, k in expected_coupons}
    for c, e in expected_points:
        r = points[e["redemption_id"]]
        assert r["customer_id"] == c["id"]
        assert r["points_redeemed"] == pytest.approx(e["points"])
        assert r["program_id"] == e["program_id"]
        assert instant(r["redeemed_at"]) == instant(e["redeemed_on"])
    for c, k in expected_coupons:
        r = coupons[k["code"]]
        assert r["customer_id"] == c["id"]
        assert r["coupon_series_id"] == k["series_id"]
        assert instant(r["redeemed_at"]) == instant(k["redeemed_on"])


def test_coupons(run: Run, canonical: dict[int, dict[str, Any]]) -> None:
    records = by(run.records["coupons"], "coupon_id")
    expected = [(c, k) for c in active(canonical) for k in c["coupons"]]
    assert set(records) == {k["id"] for _, k in expected}
    for c, k in expected:
        r = records[k["id"]]
        assert (r["customer_id"], r["code"], r["series_id"]) == (c["id"], k["code"], k["series_id"])
        assert instant(r["issued_at"]) == instant(k["issued_on"])
        assert instant(r["valid_till"]) == instant(k["valid_till"])
        last = k["redeemed_on"]
        assert (instant(r["last_redeemed_at"]) if r["last_redeemed_at"] else None) == (instant(last) if last else None)
        assert instant(r["updated_at"]) == max(
            instant(k["issued_on"]), instant(last) if last else instant(k["issued_on"])
        )


def test_reward_issuals(run: Run, canonical: dict[int, dict[str, Any]]) -> None:
    records = by(run.records["reward_issuals"], "reward_transaction_id")
    expected = [(c, w) for c in active(canonical) for w in c["rewards"]]
    assert set(records) == {w["id"] for _, w in expected}
    for c, w in expected:
        r = records[w["id"]]
        assert (r["customer_id"], r["reward_id"], r["success"]) == (c["id"], w["reward_id"], w["success"])
        assert instant(r["transaction_at"]) == instant(w["issued_on"])


def test_stores(run: Run, server: BackgroundServer) -> None:
    counts = server.call(server.app[ADMIN].counts)
    records = by(run.records["stores"], "store_id")
    assert len(records) == counts["stores"]
    assert all(r["type"] == "STORE" and isinstance(r["is_active"], bool) for r in records.values())


def test_gone_customers_are_item_errors(run: Run, canonical: dict[int, dict[str, Any]]) -> None:
    """Merged customers are still found by entity search; every stream skips them and counts the error."""
    merged = sum(c["status"] == "MERGED" for c in canonical.values())
    assert merged, "the emulator generated merged customers"
    per_stream = Counter()
    for (stream, _code), n in run.tap.item_errors.counts.items():
        per_stream[stream] += n
    for stream in ("customers", "transactions", "points_ledger", "tier_history", "redemptions", "coupons"):
        assert per_stream[stream] == merged, stream


def test_cluster_timezone_is_how_naive_times_are_read(server: BackgroundServer, run: Run) -> None:
    """Read as UTC, the Asia/Kolkata cluster's v1.1 times come out 5:30 late; v2 times (with offsets) do not."""
    misread = run_tap(tap_config(server, cluster_timezone="UTC"))
    right = by(run.records["customers"], "customer_id")
    for record in misread.records["customers"]:
        shift = instant(record["registered_at"]) - instant(right[record["customer_id"]]["registered_at"])
        assert shift == timedelta(hours=5, minutes=30)
    bills = by(run.records["transactions"], "transaction_id")
    assert all(r["billed_at"] == bills[r["transaction_id"]]["billed_at"] for r in misread.records["transactions"])


def test_every_paginator_gives_the_same_records_with_small_pages(server: BackgroundServer, run: Run) -> None:
    server.call(server.app[REQUEST_LOG].clear)
    paged = run_tap(tap_config(server, page_size=1))
    for stream, records in run.records.items():
        assert sorted(map(repr, paged.records[stream])) == sorted(map(repr, records)), stream
    log = server.call(lambda: list(server.app[REQUEST_LOG].entries))

    def second_pages(path: str, param: str, first: str) -> int:
        return sum(e["path"].startswith(path) and e["query"].get(param, first) != first for e in log)

    assert second_pages("/v2/customers/", "offset", "0")
    assert second_pages("/v2/pointsLedger/", "offset", "0")
    assert second_pages("/v1.1/customer/redemptions", "points_start_id", "1")
    assert second_pages("/v1.1/customer/redemptions", "coupons_start_id", "1")
    assert second_pages("/api_gateway/rewards/", "page", "0")
    assert second_pages("/v1.1/organization/entities", "start_id", "0")


def test_a_record_without_its_time_is_counted_and_logged(run: Run, caplog: pytest.LogCaptureFixture) -> None:
    """A record the API gives without its replication time belongs to no pass: an item error, not a silent drop."""
    stream = run.tap.streams["redemptions"]
    record = {**run.records["redemptions"][0], stream.replication_key: None}
    before = run.tap.item_errors.counts[("redemptions", f"no {stream.replication_key}")]
    with caplog.at_level("WARNING"):
        assert stream.in_pass(record) is False
    assert run.tap.item_errors.counts[("redemptions", f"no {stream.replication_key}")] == before + 1
    assert f"the API gave no {stream.replication_key}" in caplog.text


@pytest.mark.parametrize("how", ["omit", "understate", "overstate"])
def test_every_paginator_reads_everything_when_the_server_misstates_its_totals(
    server: BackgroundServer, run: Run, how: str
) -> None:
    """Entity search, transactions, ledger, redemptions, rewards and stores, in pages of 1, with every total
    omitted, understated (this page is all there is) or overstated (pages that do not exist)."""
    server.set_faults({"rules": [{"path": "*", "total": how}]})
    try:
        paged = run_tap(tap_config(server, page_size=1))
    finally:
        server.set_faults({"rules": []})
    for stream, records in run.records.items():
        assert sorted(map(repr, paged.records[stream])) == sorted(map(repr, records)), stream
    # The same item errors (gone customers), besides the count another test adds to the shared run's tally.
    assert paged.tap.item_errors.counts == Counter(
        {k: n for k, n in run.tap.item_errors.counts.items() if k[1].isdigit()}
    )
