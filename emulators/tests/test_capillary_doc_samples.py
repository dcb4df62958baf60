"""Responses match Capillary's published samples both ways (``emulators/capillary/doc_samples``): every key of a
sample is served with its JSON type, and every key served appears in a sample or response table of the
endpoint, or in the deliberate extras of emulators/README.md, with a value of the type that table publishes."""

from __future__ import annotations

import pytest
import requests
from test_capillary_support import (  # noqa: F401
    ANCHOR,
    api_fixture,
    assert_documented,
    assert_shape,
    busiest,
    customer_ids,
    documented_paths,
    key_paths,
    query,
)

from emulators.capillary.doc_samples import sample, sample_bytes, sample_names, table_keys, table_names

pytestmark = pytest.mark.capillary(anchor_time=ANCHOR)

CUSTOMER_GET = [n for n in sample_names() if n.startswith("v11_customer_get")]
# Only the failed items of the HTTP 500 sample carry an "id" (the identifier asked for): not a found customer's key.
CUSTOMER_FOUND = [n for n in CUSTOMER_GET if "failed" not in n]
LEDGER = [n for n in sample_names() if n.startswith("v2_points_ledger")]
REWARDS = [n for n in sample_names() if n.startswith("rewards_issuals")]
SEARCH = ["v2_search_entity__customer.json", "v2_search_entity__transaction.json"]
ALL_EMBEDS = "BILL_CF,BILL_EF,ATTRIBUTION,PAYMENT_MODES,CREDIT_NOTES,BILL_STORE_DETAILS,BILL_POINTS"


def test_every_sample_has_its_source_and_the_json_ones_parse():
    readme = sample_bytes("README.md").decode()
    for name in sample_names():
        assert f"| `{name}` |" in readme, f"{name} has no source in doc_samples/README.md"
        if name.endswith(".json"):
            sample(name)


def test_every_response_table_key_has_json_types_or_none():
    json_types = {"array", "boolean", "integer", "null", "number", "object", "string"}
    assert table_names()
    for name in table_names():
        for key, types in table_keys(name).items():
            assert types is None or (types and set(types) <= json_types), f"{name}: {key}: {types}"


def test_a_value_its_response_table_types_otherwise_is_refused():
    body = {"pagination": {"total": "2"}}
    with pytest.raises(AssertionError, match=r"\$\.pagination\.total: '2' is not integer"):
        assert_documented("GET /v2/customers/{id}/transactions", body, [], ["v2_customer_transactions.keys.json"])


def test_oauth_token(capillary_emulator):
    body = requests.post(
        f"{capillary_emulator.base_url}/v3/oauth/token/generate",
        json={"key": "emulator-key", "secret": "emulator-secret"},
        timeout=5,
    ).json()
    assert_shape(sample("v3_oauth_token_generate.json"), body)
    assert_documented("POST /v3/oauth/token/generate", body, ["v3_oauth_token_generate.json"])
    assert body["errors"] is None


def test_customer_get_with_every_flag_the_tap_sends(api):
    customer_id = busiest(api.server, "tiers")
    flags = {"user_id": "true", "slab_history": "true", "mlp": "true", "points_summary": "true", "transactions": "true"}
    body = api.get("/v1.1/customer/get", id=customer_id, **flags).json()
    assert_shape(sample("v11_customer_get__slab_history.json"), body)
    assert_shape(sample("v11_customer_get__user_id.json"), body)
    assert_documented("GET /v1.1/customer/get", body, CUSTOMER_FOUND, ["v11_customer_get.keys.json"])
    customer = body["response"]["customers"]["customer"][0]
    assert customer["slab_history"]["history"]
    assert customer["user_id"] == str(customer_id)
    summary = customer["points_summaries"]["points_summary"][0]
    assert set(summary) <= {key.rpartition(".")[2] for key in table_keys("v11_customer_get.keys.json")}


def test_customer_get_slab_history_needs_mlp(api):
    """The docs: slab_history "Prerequisite: Set mlp=true"."""
    customer_id = busiest(api.server, "tiers")
    body = api.get("/v1.1/customer/get", id=customer_id, slab_history="true").json()
    assert "slab_history" not in body["response"]["customers"]["customer"][0]


def test_customer_get_all_failed(api):
    deleted = customer_ids(api.server, "DELETED")[0]
    response = api.get("/v1.1/customer/get", id=f"{deleted},12345", user_id="true")
    assert response.status_code == 500
    assert_shape(sample("v11_customer_get__all_failed_500.json"), response.json())
    assert_documented("GET /v1.1/customer/get", response.json(), CUSTOMER_GET)


def test_customer_redemptions(api):
    customer_id = query(
        api.server,
        "SELECT r.customer_id FROM redemptions r JOIN coupons k ON k.customer_id = r.customer_id "
        "WHERE k.redeemed_on IS NOT NULL LIMIT 1",
    )[0]["customer_id"]
    body = api.get("/v1.1/customer/redemptions", id=customer_id, mlp="true").json()
    # coupons_start_id is "" in the sample, whose coupon part is empty; with rows it is a number, as points_start_id.
    assert_shape(
        sample("v11_customer_redemptions.json"), body, ignore=frozenset({"$.response.customer.coupons_start_id"})
    )
    assert body["response"]["customer"]["redemptions"]["coupons"]["coupon"], "coupon rows are checked too"
    keys = ["v11_customer_redemptions.keys.json"]
    assert_documented("GET /v1.1/customer/redemptions", body, ["v11_customer_redemptions.json"], keys)


def test_customer_coupons(api):
    customer_id = query(api.server, "SELECT customer_id FROM coupons WHERE redeemed_on IS NOT NULL LIMIT 1")[0]
    body = api.get("/v1.1/customer/coupons", id=customer_id["customer_id"]).json()
    assert_shape(sample("v11_customer_coupons.json"), body)
    assert_documented("GET /v1.1/customer/coupons", body, ["v11_customer_coupons.json"])
    coupons = body["response"]["customers"]["customer"][0]["coupons"]["coupon"]
    assert any(c["redemptions"] for c in coupons)


@pytest.mark.parametrize("entity_type", ["STORE", "TILL"])
def test_organization_entities(api, entity_type):
    body = api.get("/v1.1/organization/entities", type=entity_type).json()
    assert_shape(sample("v11_organization_entities.json"), body)
    assert_documented("GET /v1.1/organization/entities", body, ["v11_organization_entities.json"])


def test_points_ledger(api):
    customer_id = busiest(api.server, "ledger")
    body = api.get(
        "/v2/pointsLedger/getCustomerLedgerInfo", identifierName="id", identifierValue=customer_id, source="INSTORE"
    ).json()
    # Entries differ by event (promotion details only on promotion events): compare the envelope and one entry.
    promotion = sample("v2_points_ledger__promotion.json")
    entry = promotion["ledgerEntries"][0]
    assert_shape({**promotion, "ledgerEntries": []}, body)
    promotions = [e for e in body["ledgerEntries"] if e["eventName"] == "TargetCompleted"]
    for item in promotions or body["ledgerEntries"][:1]:
        assert_shape(entry, item, ignore=frozenset() if promotions else frozenset({"$.eventDetails"}))
    assert_documented("GET /v2/pointsLedger/getCustomerLedgerInfo", body, LEDGER)


def test_entity_search_customer(api):
    body = api.search(
        "CUSTOMER",
        [{"fieldId": "lastUpdatedOn", "operator": "RANGE", "values": [0, 4_102_444_800_000]}],
        enrichmentFields={"enrichedFields": ["*"], "customFields": ["*"], "extendedFields": ["age", "city"]},
    ).json()
    expected = sample("v2_search_entity__customer.json")
    expected["data"][0]["customerSearchDetails"][0]["enrichedFields"]["extendedFields"] = {"city": "Bengaluru"}
    expected["warnings"] = []  # the emulator has no warnings to give
    assert_shape(expected, body)
    assert_documented("POST /v2/search/entity", body, SEARCH, ["v2_search_entity.keys.json"])


def test_entity_search_transaction(api):
    number = query(api.server, "SELECT number FROM transactions WHERE type = 'REGULAR' LIMIT 1")[0]["number"]
    body = api.search(
        "TRANSACTION",
        [{"fieldId": "billNumber", "operator": "EQUALS", "values": [number]}],
        enrichmentFields={"enrichedFields": ["*"], "customFields": ["channel"]},
    ).json()
    expected = sample("v2_search_entity__transaction.json")
    expected["data"][0]["transactionSearchDetails"][0]["transactionEnrichedFields"]["customFields"] = {"channel": ""}
    assert_shape(expected, body)
    assert_documented("POST /v2/search/entity", body, SEARCH, ["v2_search_entity.keys.json"])


def test_customer_transactions_listing(api):
    """No sample is published: the listing's keys are those of its response tables, and those tables' keys are
    served (billPoints' members empty: the tables do not say what they hold)."""
    customer_id = query(api.server, "SELECT customer_id FROM transactions WHERE type = 'RETURN' LIMIT 1")[0]
    body = api.get(f"/v2/customers/{customer_id['customer_id']}/transactions", embed=ALL_EMBEDS).json()
    keys = ["v2_customer_transactions.keys.json"]
    assert_documented("GET /v2/customers/{id}/transactions", body, [], keys)
    missing = documented_paths([], keys) - key_paths(body)
    assert missing == {
        "$.data[].creditNotes[].number",  # no credit notes are generated: the list is empty
        "$.data[].creditNotes[].amount",
        "$.data[].creditNotes[].notes",
        "$.data[].creditNotes[].referenceId",
    }
    assert all("autoUpdateTime" not in bill for bill in body["data"]), "not in the listing's tables"
    assert all(not any(bill["billPoints"].values()) for bill in body["data"]), "their contents are not documented"


def test_transaction_detail(api):
    txn = query(api.server, "SELECT id FROM transactions WHERE type = 'REGULAR' AND line_count > 1 LIMIT 1")[0]
    body = api.get(f"/v2/transactions/{txn['id']}", tenders="true").json()
    # Flags of Capillary's internal request object that leak into its sample; not modelled.
    ignore = {f"$.{k}" for k in ("useDefaultFleetGroup", "creditNote", "addWithLocalCurrency", "async", "useV2")}
    assert_shape(sample("v2_transaction.json"), body, ignore=frozenset(ignore))
    assert_documented("GET /v2/transactions/{id}", body, ["v2_transaction.json"])


def test_reward_issuals(api):
    customer_id = busiest(api.server, "rewards")
    body = api.get(f"/api_gateway/rewards/core/v1/management/customer/{customer_id}/issuals").json()
    assert_shape(sample("rewards_issuals.json"), body)
    assert_documented("GET /api_gateway/rewards/core/v1/management/customer/{id}/issuals", body, REWARDS)
