"""Documented quirks and limits of each endpoint, and their error codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from test_capillary_support import ANCHOR, api_fixture, busiest, customer_ids, query  # noqa: F401

pytestmark = pytest.mark.capillary(anchor_time=ANCHOR)
FAR_FUTURE_MS = 4_102_444_800_000
LEDGER = "/v2/pointsLedger/getCustomerLedgerInfo"


def error_code(response) -> int:
    return response.json()["errors"][0]["code"]


# -- entity search ----------------------------------------------------------------------------------------------

ALL_TIME = [{"fieldId": "lastUpdatedOn", "operator": "RANGE", "values": [0, FAR_FUTURE_MS]}]


def test_search_pages_of_at_most_20_cover_all_non_deleted_customers(api):
    seen, offset = [], 0
    while True:
        response = api.search("CUSTOMER", ALL_TIME, limit=20, offset=offset)
        assert response.status_code == 200
        body = response.json()
        page = body["data"][0]["customerSearchDetails"] if body["data"] else []
        seen += [int(d["entityId"]) for d in page]
        if len(page) < 20:
            break
        offset += 20
    expected = query(api.server, "SELECT id FROM customers WHERE status != 'DELETED' ORDER BY id DESC")
    assert seen == [r["id"] for r in expected]  # sorted by id, newest first; deleted customers excluded
    assert body["pagination"]["total"] == len(expected)


def test_search_limit_over_20_is_refused(api):
    assert api.search("CUSTOMER", ALL_TIME, limit=21).status_code == 400
    assert api.search("CUSTOMER", ALL_TIME, limit=20).status_code == 200


@pytest.mark.parametrize(
    ("conditions", "code"),
    [
        ([], 1027),
        ([*ALL_TIME, {"fieldId": "registeredDate", "operator": "RANGE", "values": [0, 1]}], 1042),
        ([{"fieldId": "firstName", "operator": "RANGE", "values": [0, 1]}], 1043),
        ([{"fieldId": "lastUpdatedOn", "operator": "RANGE", "values": ["2025-01-01", "2025-02-01"]}], 1044),
        ([{"fieldId": "firstName", "operator": "EQUALS", "values": ["Zoë", "José"]}], 1028),
        ([{"operator": "EQUALS", "values": ["x"]}], 1024),
        ([{"fieldId": "firstName", "values": ["x"]}], 1025),
    ],
)
def test_search_condition_errors(api, conditions, code):
    response = api.search("CUSTOMER", conditions)
    assert response.status_code == 400
    assert error_code(response) == code


def test_search_negative_offset_and_missing_entity_type(api):
    assert error_code(api.search("CUSTOMER", ALL_TIME, offset=-1)) == 1011
    assert error_code(api.post("/v2/search/entity", {"searchConditions": ALL_TIME})) == 1002


def test_search_last_updated_window_and_enrichment(api):
    row = query(api.server, "SELECT id, updated_on FROM customers WHERE status = 'ACTIVE' LIMIT 1")[0]
    window = [row["updated_on"] * 1000, row["updated_on"] * 1000]
    body = api.search(
        "CUSTOMER",
        [{"fieldId": "lastUpdatedOn", "operator": "RANGE", "values": window}],
        enrichmentFields={"enrichedFields": ["lastUpdatedOn", "customerStatus"]},
    ).json()
    details = body["data"][0]["customerSearchDetails"]
    assert row["id"] in [int(d["entityId"]) for d in details]
    enriched = next(d for d in details if int(d["entityId"]) == row["id"])["enrichedFields"]
    assert datetime.fromisoformat(enriched["lastUpdatedOn"]).timestamp() == row["updated_on"]
    assert enriched["customerStatus"] == "ACTIVE"


def test_search_total_only_when_required(api):
    body = api.post("/v2/search/entity", {"entityType": "CUSTOMER", "searchConditions": ALL_TIME, "limit": 5}).json()
    assert body["pagination"]["total"] == 5
    body = api.search("CUSTOMER", ALL_TIME, limit=5).json()
    assert body["pagination"]["total"] > 5


def test_transaction_search_by_bill_date_in_epoch(api):
    txn = query(api.server, "SELECT id, billing_time FROM transactions LIMIT 1")[0]
    t = txn["billing_time"]
    body = api.search(
        "TRANSACTION", [{"fieldId": "billDate", "operator": "RANGE", "values": [t * 1000, t * 1000]}]
    ).json()
    assert txn["id"] in [int(d["entityId"]) for d in body["data"][0]["transactionSearchDetails"]]


@pytest.mark.capillary(entity_search_enabled=False)
def test_search_disabled_for_the_org(api):
    response = api.search("CUSTOMER", ALL_TIME)
    assert response.status_code == 403


# -- v1.1 customer/get --------------------------------------------------------------------------------------------


def test_customer_get_batch_with_unknown_merged_and_deleted_ids(api):
    active = customer_ids(api.server)[:2]
    merged, deleted = customer_ids(api.server, "MERGED")[0], customer_ids(api.server, "DELETED")[0]
    response = api.get("/v1.1/customer/get", id=",".join(map(str, [*active, 12345, merged, deleted])), user_id="true")
    assert response.status_code == 200
    status = response.json()["response"]["status"]
    assert status == {
        "success": "true",
        "code": 201,
        "message": "Some requests have failed due to errors",
        "total": "5",
        "success_count": "2",
    }
    items = response.json()["response"]["customers"]["customer"]
    assert [i["item_status"]["code"] for i in items] == ["1000", "1000", "1012", "1012", "8109"]
    assert [i["item_status"]["success"] for i in items] == ["true", "true", "false", "false", "false"]
    # The docs return a customer's id as user_id, and only with user_id=true; failed items echo the identifier.
    assert [i["user_id"] for i in items[:2]] == [str(a) for a in active]
    assert [i.get("id") for i in items] == [None, None, "12345", str(merged), str(deleted)]
    without = api.get("/v1.1/customer/get", id=active[0]).json()["response"]["customers"]["customer"][0]
    assert "user_id" not in without
    assert "id" not in without


def test_customer_get_by_email_or_mobile_and_times_are_cluster_local(api):
    row = query(api.server, "SELECT * FROM customers WHERE status = 'ACTIVE' AND email IS NOT NULL LIMIT 1")[0]
    body = api.get("/v1.1/customer/get", email=row["email"], points_summary="true").json()
    customer = body["response"]["customers"]["customer"][0]
    local = datetime.fromtimestamp(row["updated_on"], ZoneInfo("Asia/Kolkata")).strftime("%Y-%m-%d %H:%M:%S")
    assert customer["updated_on"] == local  # naive, in the cluster's zone (not UTC)
    summary = customer["points_summaries"]["points_summary"][0]
    assert summary["currentSlab"] == row["slab"] == customer["current_slab"]
    assert isinstance(summary["loyaltyPoints"], str)


def test_customers_with_missing_email_or_mobile_exist(api):
    rows = query(api.server, "SELECT email, mobile FROM customers")
    assert any(r["email"] is None for r in rows)
    assert any(r["mobile"] is None for r in rows)
    assert all(r["email"] or r["mobile"] for r in rows)


def test_customer_get_without_identifier_is_invalid(api):
    response = api.get("/v1.1/customer/get")
    assert response.status_code == 400
    assert response.json()["response"]["status"]["success"] == "false"


# -- v2 customer transactions and transaction detail --------------------------------------------------------------


def test_v2_transactions_limit_paging_and_total(api):
    customer_id = busiest(api.server, "transactions")
    path = f"/v2/customers/{customer_id}/transactions"
    assert api.get(path, limit=1001).status_code == 400
    full = api.get(path, limit=1000).json()
    ids = [t["id"] for t in full["data"]]
    assert full["pagination"]["total"] == len(ids) > 2
    paged = []
    for offset in range(0, len(ids), 2):
        paged += [t["id"] for t in api.get(path, limit=2, offset=offset).json()["data"]]
    assert paged == ids
    times = [datetime.fromisoformat(t["billingTime"]) for t in full["data"]]
    assert times == sorted(times, reverse=True)  # default sortOrder DESC
    assert all(t["billingTime"].endswith("+05:30") for t in full["data"])


def test_v2_transactions_date_window_is_cluster_local(api):
    customer_id = busiest(api.server, "transactions")
    rows = query(api.server, "SELECT billing_time FROM transactions WHERE customer_id = ? ORDER BY 1", (customer_id,))
    pivot = rows[len(rows) // 2]["billing_time"]
    local = datetime.fromtimestamp(pivot, ZoneInfo("Asia/Kolkata")).strftime("%Y-%m-%d %H:%M:%S")
    body = api.get(f"/v2/customers/{customer_id}/transactions", startDate=local, sortOrder="ASC", limit=1000).json()
    assert body["pagination"]["total"] == sum(1 for r in rows if r["billing_time"] >= pivot)
    assert datetime.fromisoformat(body["data"][0]["billingTime"]).timestamp() == pivot
    assert api.get(f"/v2/customers/{customer_id}/transactions", startDate="01/02/2025").status_code == 400


def test_v2_transactions_of_unknown_and_merged_customers(api):
    assert error_code(api.get("/v2/customers/12345/transactions")) == 8015
    merged = customer_ids(api.server, "MERGED")[0]
    assert error_code(api.get(f"/v2/customers/{merged}/transactions")) == 8069


def test_transaction_detail_line_items_add_up(api):
    txn = query(api.server, "SELECT * FROM transactions WHERE type = 'REGULAR' AND line_count >= 3 LIMIT 1")[0]
    body = api.get(f"/v2/transactions/{txn['id']}").json()
    lines = body["lineItems"]
    assert len(lines) == txn["line_count"]
    assert round(sum(line["details"]["amount"] for line in lines), 2) == body["billDetails"]["amount"] == txn["amount"]


def test_a_bills_currency_is_its_billing_stores(api):
    """No v2 bill response documents a currency: organization/entities, asked for the billing store by ``id``,
    gives its base currency."""
    txn = query(api.server, "SELECT * FROM transactions WHERE type = 'REGULAR' LIMIT 1")[0]
    store = api.get(f"/v2/transactions/{txn['id']}").json()["billDetails"]["billingStore"]
    other = query(api.server, "SELECT id FROM entities WHERE type = 'STORE' AND id != ? LIMIT 1", (store["id"],))[0]
    body = api.get("/v1.1/organization/entities", type="STORE", id=f"{store['id']},{other['id']}").json()
    entities = body["response"]["organization"]["entities"]["entity"]
    assert sorted(int(e["id"]) for e in entities) == sorted([store["id"], other["id"]])
    mine = next(e for e in entities if int(e["id"]) == store["id"])
    assert mine["currencies"]["base_currency"]["label"] == txn["currency"]


def test_return_bill_references_its_regular_bill(api):
    ret = query(api.server, "SELECT * FROM transactions WHERE type = 'RETURN' LIMIT 1")[0]
    parent = query(api.server, "SELECT * FROM transactions WHERE id = ?", (ret["return_of"],))[0]
    # The type defaults to REGULAR: a RETURN bill is not found without type=RETURN.
    assert error_code(api.get(f"/v2/transactions/{ret['id']}")) == 620
    body = api.get(f"/v2/transactions/{ret['id']}", type="RETURN").json()
    regular = api.get(f"/v2/transactions/{parent['id']}").json()
    assert body["type"] == "RETURN"
    assert body["billDetails"]["billNumber"] == regular["billDetails"]["billNumber"]
    returned = {(li["details"]["itemCode"], li["details"]["serial"]) for li in body["lineItems"]}
    bought = {(li["details"]["itemCode"], li["details"]["serial"]) for li in regular["lineItems"]}
    assert returned
    assert returned <= bought
    assert body["billDetails"]["returnDetails"]["returnType"] in ("FULL", "LINE_ITEM")


def test_several_currencies_programs_and_tiers(api):
    currencies = {r["currency"] for r in query(api.server, "SELECT DISTINCT currency FROM transactions")}
    assert len(currencies) >= 3
    programs = query(api.server, "SELECT DISTINCT program_id FROM customers")
    assert len(programs) >= 2
    kinds = {r["type"] for r in query(api.server, "SELECT DISTINCT type FROM tiers")}
    assert kinds == {"UPGRADE", "DOWNGRADE", "RENEW"}


# -- points ledger -------------------------------------------------------------------------------------------------


def ledger(api, customer_id, **params):
    return api.get(LEDGER, identifierName="id", identifierValue=customer_id, source="INSTORE", **params)


def test_ledger_limit_100_and_page_number_offset(api):
    customer_id = busiest(api.server, "ledger")
    assert error_code(ledger(api, customer_id, limit=101)) == 11029
    everything = ledger(api, customer_id, limit=100).json()
    ids = [e["eventLogId"] for e in everything["ledgerEntries"]]
    details = everything["ledgerDetails"]
    assert details["totalEntries"] == len(ids)
    assert details["pageCount"] == 1
    pages = []
    for page in range(-(-len(ids) // 2)):
        body = ledger(api, customer_id, limit=2, offset=page).json()
        assert body["ledgerDetails"]["pageNumber"] == page
        pages += [e["eventLogId"] for e in body["ledgerEntries"]]
    assert pages == ids  # offset is a page number, not a row offset
    beyond = ledger(api, customer_id, limit=2, offset=-(-len(ids) // 2))
    assert error_code(beyond) == 11003


def test_ledger_window_at_most_90_days(api):
    customer_id = busiest(api.server, "ledger")
    start = datetime(2025, 1, 1)
    fmt = "%Y-%m-%dT%H:%M:%S"
    ok = ledger(api, customer_id, startDate=start.strftime(fmt), endDate=(start + timedelta(days=90)).strftime(fmt))
    assert ok.status_code == 200
    too_long = ledger(
        api, customer_id, startDate=start.strftime(fmt), endDate=(start + timedelta(days=91)).strftime(fmt)
    )
    assert error_code(too_long) == 11010
    backwards = ledger(api, customer_id, startDate="2025-02-01T00:00:00", endDate="2025-01-01T00:00:00")
    assert error_code(backwards) == 11009
    assert error_code(ledger(api, customer_id, startDate="2025-01-01")) == 11011


def test_ledger_window_selects_entries_by_created_time(api):
    customer_id = busiest(api.server, "ledger")
    rows = query(api.server, "SELECT id, created_on FROM ledger WHERE customer_id = ?", (customer_id,))
    tz = ZoneInfo("Asia/Kolkata")
    end = datetime.fromisoformat(ANCHOR).astimezone(tz).replace(tzinfo=None)
    start = end - timedelta(days=90)
    body = ledger(api, customer_id, limit=100, startDate=start.isoformat(), endDate=end.isoformat()).json()
    low, high = start.replace(tzinfo=tz).timestamp(), end.replace(tzinfo=tz).timestamp()
    expected = sorted((r["id"] for r in rows if low <= r["created_on"] <= high), reverse=True)
    assert [e["eventLogId"] for e in body["ledgerEntries"]] == expected


def test_ledger_identifier_errors(api):
    assert error_code(api.get(LEDGER, identifierName="id", identifierValue="1")) == 11013
    assert error_code(api.get(LEDGER, identifierName="card", identifierValue="1", source="INSTORE")) == 8013
    assert error_code(api.get(LEDGER, identifierName="id", identifierValue="12345", source="INSTORE")) == 11012
    assert error_code(ledger(api, customer_ids(api.server)[0], ledgerEntryType="BONUS")) == 11007


def test_ledger_balances_match_customer_points(api):
    for customer_id in customer_ids(api.server)[:10]:
        body = ledger(api, customer_id, limit=100).json()
        net = sum(float(e["netPointsOnEvent"]) for e in body["ledgerEntries"])
        loyalty = api.get("/v1.1/customer/get", id=customer_id).json()["response"]["customers"]["customer"][0]
        assert round(net, 2) == round(loyalty["loyalty_points"], 2)


# -- redemptions, coupons, rewards, org entities ------------------------------------------------------------------


def test_redemptions_rows_are_numbered_from_start_id(api):
    customer_id = busiest(api.server, "redemptions")
    total = len(query(api.server, "SELECT id FROM redemptions WHERE customer_id = ?", (customer_id,)))
    body = api.get("/v1.1/customer/redemptions", id=customer_id, type="POINTS", points_limit=1).json()
    customer = body["response"]["customer"]
    assert customer["points_count"] == total
    first = customer["redemptions"]["points"]["point"]
    assert [p["id"] for p in first] == [1]
    if total > 1:
        second = api.get("/v1.1/customer/redemptions", id=customer_id, type="POINTS", points_limit=1, points_start_id=2)
        point = second.json()["response"]["customer"]["redemptions"]["points"]["point"][0]
        assert point["id"] == 2
        assert point["redemption_id"] != first[0]["redemption_id"]


def test_coupons_issued_in_a_date_range(api):
    customer_id = busiest(api.server, "coupons")
    rows = query(api.server, "SELECT issued_on FROM coupons WHERE customer_id = ?", (customer_id,))
    pivot = sorted(r["issued_on"] for r in rows)[len(rows) // 2]
    day = datetime.fromtimestamp(pivot, ZoneInfo("Asia/Kolkata")).strftime("%Y-%m-%d")
    body = api.get("/v1.1/customer/coupons", id=customer_id, start_date=day).json()
    coupons = body["response"]["customers"]["customer"][0]["coupons"]["coupon"]
    assert 0 < len(coupons) <= len(rows)
    assert body["response"]["pagination"]["total"] == len(coupons)


def test_reward_issuals_page_and_size(api):
    customer_id = busiest(api.server, "rewards")
    total = len(query(api.server, "SELECT id FROM rewards WHERE customer_id = ?", (customer_id,)))
    path = f"/api_gateway/rewards/core/v1/management/customer/{customer_id}/issuals"
    seen = []
    for page in range(total):
        body = api.get(path, page=page, size=1).json()
        seen += [r["rewardTransactionId"] for r in body["rewardIssueTransactions"]]
        assert body["pagingDto"]["first"] == (page == 0)
        assert body["pagingDto"]["last"] == (page == total - 1)
        assert body["pagingDto"]["totalElements"] == total
    assert len(set(seen)) == total
    assert body["rewardIssueTransactions"][0]["issueDateTime"].endswith("Z")


def test_org_entities_modified_since_and_start_id(api):
    all_tills = api.get("/v1.1/organization/entities", type="TILL").json()["response"]
    entities = all_tills["organization"]["entities"]["entity"]
    assert all_tills["pagination"]["total"] == len(entities) > 2
    newest = max(e["last_updated_on"] for e in entities)
    recent = api.get("/v1.1/organization/entities", type="TILL", modified_since=newest).json()["response"]
    assert [e["id"] for e in recent["organization"]["entities"]["entity"]] == [
        e["id"] for e in entities if e["last_updated_on"] >= newest
    ]
    page = api.get("/v1.1/organization/entities", type="TILL", start_id=entities[1]["id"], limit=1).json()
    assert [e["id"] for e in page["response"]["organization"]["entities"]["entity"]] == [entities[1]["id"]]


def test_v2_times_carry_the_offset_and_v11_times_are_naive(api):
    customer_id = busiest(api.server, "transactions")
    v2 = api.get(f"/v2/customers/{customer_id}/transactions", sortOrder="ASC").json()["data"][0]
    v11 = api.get("/v1.1/customer/get", id=customer_id, transactions="true").json()
    items = v11["response"]["customers"]["customer"][0]["transactions"]["transaction"]
    same = next(t for t in items if t["id"] == str(v2["id"]))
    aware = datetime.fromisoformat(v2["billingTime"])
    naive = datetime.strptime(same["created_date"], "%Y-%m-%d %H:%M:%S")
    assert aware.utcoffset() == timedelta(hours=5, minutes=30)
    assert naive == aware.replace(tzinfo=None)
    assert aware.astimezone(UTC).replace(tzinfo=None) != naive
