"""Generated data: reproducible, internally consistent, and changing "now" on request."""

from __future__ import annotations

import argparse
import dataclasses
import time

import pytest
import requests
from test_capillary_support import ANCHOR, api_fixture, customer_ids, query  # noqa: F401

from emulators.capillary import CapillaryConfig, add_cli_arguments, config_from_cli
from emulators.capillary.api import RESPONSE_CACHE
from emulators.capillary.store import LoyaltyStore

TABLES = ("customers", "transactions", "ledger", "tiers", "redemptions", "coupons", "rewards", "entities")


def dump(config: CapillaryConfig) -> dict[str, list[tuple]]:
    store = LoyaltyStore(config)
    try:
        return {t: [tuple(r) for r in store.db.execute(f"SELECT * FROM {t} ORDER BY id")] for t in TABLES}
    finally:
        store.close()


def test_default_config_is_small():
    store = LoyaltyStore(CapillaryConfig())
    try:
        assert store.counts()["customers"] == 40
    finally:
        store.close()


def test_same_seed_same_data_other_seed_other_data():
    config = CapillaryConfig(anchor_time=ANCHOR)
    first, second = dump(config), dump(config)
    assert first == second
    assert dump(dataclasses.replace(config, seed=7))["transactions"] != first["transactions"]


def test_scale_knobs_drive_the_counts():
    store = LoyaltyStore(CapillaryConfig(anchor_time=ANCHOR, customers=30, transactions_per_customer=10, stores=3))
    try:
        counts = store.counts()
    finally:
        store.close()
    assert counts["customers"] == 30
    assert (counts["stores"], counts["tills"]) == (3, 6)
    assert 150 < counts["transactions"] < 450  # 0..2x the mean per customer
    assert 0 < counts["returns"] < counts["transactions"] / 4


def test_reusing_a_db_file_skips_generation(tmp_path):
    config = CapillaryConfig(anchor_time=ANCHOR, db_path=str(tmp_path / "org.sqlite"))
    first = LoyaltyStore(config)
    first.activity({"new_customers": 1})
    first.close()
    again = LoyaltyStore(config)
    try:
        assert again.counts()["customers"] == 41  # kept, not regenerated
    finally:
        again.close()


def test_updated_on_is_the_latest_change_of_each_customer(capillary_emulator):
    rows = query(
        capillary_emulator,
        """
        SELECT c.id, c.updated_on, MAX(c.profile_updated_on,
            COALESCE((SELECT MAX(auto_update_time) FROM transactions WHERE customer_id = c.id), 0),
            COALESCE((SELECT MAX(created_on) FROM ledger WHERE customer_id = c.id), 0),
            COALESCE((SELECT MAX(changed_on) FROM tiers WHERE customer_id = c.id), 0),
            COALESCE((SELECT MAX(redeemed_on) FROM redemptions WHERE customer_id = c.id), 0),
            COALESCE((SELECT MAX(MAX(issued_on, COALESCE(redeemed_on, 0))) FROM coupons WHERE customer_id = c.id), 0),
            COALESCE((SELECT MAX(issued_on) FROM rewards WHERE customer_id = c.id), 0)) AS latest
        FROM customers c
        """,
    )
    assert all(r["updated_on"] == r["latest"] for r in rows)


def test_unicode_names(capillary_emulator):
    names = {r["firstname"] for r in query(capillary_emulator, "SELECT firstname FROM customers")}
    assert any(not n.isascii() for n in names)


def test_activity_is_found_by_an_incremental_search(api):
    before = requests.get(f"{api.server.base_url}/_emulator/counts", timeout=5).json()
    result = requests.post(
        f"{api.server.base_url}/_emulator/activity",
        json={
            "new_customers": 2,
            "updated_customers": 2,
            "new_transactions": 3,
            "new_returns": 1,
            "ledger_entries": 2,
            "tier_changes": 1,
            "redemptions": 1,
            "coupons": 1,
            "rewards": 1,
            "store_updates": 1,
        },
        timeout=10,
    ).json()
    after = requests.get(f"{api.server.base_url}/_emulator/counts", timeout=5).json()
    assert after["customers"] == before["customers"] + 2
    assert after["transactions"] == before["transactions"] + len(result["transactions_added"]) + len(
        result["returns_added"]
    )
    assert after["ledger"] == before["ledger"] + len(result["ledger_added"])
    assert (len(result["transactions_added"]), len(result["returns_added"])) == (3, 1)

    # What an incremental run would do: search customers updated since the run began...
    since_ms = result["at_epoch"] * 1000
    body = api.search(
        "CUSTOMER",
        [{"fieldId": "lastUpdatedOn", "operator": "RANGE", "values": [since_ms, since_ms + 3_600_000]}],
        limit=20,
    ).json()
    found = sorted(int(d["entityId"]) for d in body["data"][0]["customerSearchDetails"])
    assert found == result["changed_customers"]
    # ...then read their new bills by time window.
    local_now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(result["at_epoch"] + 19_800))  # Asia/Kolkata
    new_bills = set()
    for customer_id in found:
        data = api.get(f"/v2/customers/{customer_id}/transactions", startDate=local_now).json()["data"]
        new_bills |= {t["id"] for t in data}
    assert new_bills == set(result["transactions_added"]) | set(result["returns_added"])
    # The new store shows up with modified_since.
    stores = api.get("/v1.1/organization/entities", type="STORE", modified_since=local_now).json()
    assert [int(e["id"]) for e in stores["response"]["organization"]["entities"]["entity"]] == result["stores_updated"]


def test_activity_via_python_and_inspection(api):
    customer_id = customer_ids(api.server)[0]
    result = api.admin("activity", {"new_transactions": 1, "customer_ids": [customer_id], "at": 1_750_000_000})
    assert result["changed_customers"] == [customer_id]
    assert result["at"] == "2025-06-15T15:06:40Z"
    canonical = requests.get(f"{api.server.base_url}/_emulator/customers/{customer_id}", timeout=5).json()
    bill = next(t for t in canonical["transactions"] if t["id"] == result["transactions_added"][0])
    assert bill["billing_time"] == "2025-06-15T15:06:40Z"
    assert canonical["updated_on"] == "2025-06-15T15:06:40Z"
    assert round(sum(li["amount"] for li in bill["line_items"]), 2) == bill["amount"]
    assert any(e["transaction_id"] == bill["id"] for e in canonical["ledger"])
    changed = requests.get(
        f"{api.server.base_url}/_emulator/changed-customers", params={"since": 1_750_000_000}, timeout=5
    ).json()
    assert customer_id in changed["customer_ids"]


@pytest.mark.capillary(response_cache_mb=1)
def test_response_cache_serves_repeats_until_the_data_changes(api):
    cache = api.server.app[RESPONSE_CACHE]
    customer_id = customer_ids(api.server)[0]
    path = f"/v2/customers/{customer_id}/transactions"
    first = api.get(path, limit=100, offset=0)
    again = api.get(path, offset=0, limit=100)  # same query in another order: the same entry
    assert (first.status_code, again.content, cache.hits) == (200, first.content, 1)
    # Authentication still runs on every request.
    assert (
        requests.get(f"{api.server.base_url}{path}", params={"limit": 100, "offset": 0}, timeout=5).status_code == 401
    )
    # New data drops the cache: the new bill is in the next answer.
    result = api.admin("activity", {"new_transactions": 1, "customer_ids": [customer_id]})
    after = api.get(path, limit=100, offset=0).json()["data"]
    assert {t["id"] for t in after} - {t["id"] for t in first.json()["data"]} == set(result["transactions_added"])
    assert cache.hits == 1


def test_activity_rejects_unknown_fields(capillary_emulator):
    response = requests.post(f"{capillary_emulator.base_url}/_emulator/activity", json={"new_bills": 1}, timeout=5)
    assert response.status_code == 400


def test_cli_options_cover_every_field():
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    args = parser.parse_args(
        [
            "--capillary-customers", "7",
            "--capillary-token-ttl-seconds", "2.5",
            "--capillary-entity-search-enabled", "false",
            "--capillary-oauth-clients", '{"a": "b"}',
            "--capillary-cluster-timezone", "Europe/Dublin",
            "--capillary-rate-limits", '{"*": "300", "v2/transactions/{id}": 600}',
            "--capillary-rate-limit-window-seconds", "10",
        ]
    )  # fmt: skip
    config = config_from_cli(args)
    assert (config.customers, config.token_ttl_seconds, config.entity_search_enabled) == (7, 2.5, False)
    assert config.oauth_clients == {"a": "b"}
    assert config.rate_limits == {"*": 300, "v2/transactions/{id}": 600}
    assert config.rate_limit_window_seconds == 10
    assert config.cluster_timezone == "Europe/Dublin"
    assert config.seed == CapillaryConfig().seed
    help_text = parser.format_help()
    for field in dataclasses.fields(CapillaryConfig):
        assert "--capillary-" + field.name.replace("_", "-") in help_text


def test_times_stay_ordered_after_activity(api):
    api.admin("activity", {"new_transactions": 20, "coupons": 20, "redemptions": 5})
    assert not query(api.server, "SELECT id FROM transactions WHERE auto_update_time < billing_time")
    assert not query(api.server, "SELECT id FROM coupons WHERE redeemed_on < issued_on")
    assert not query(api.server, "SELECT id FROM customers WHERE loyalty_points < -0.001")
