"""The tap against Capillary's published sample responses, served unmodified (``tests/replay.py``).

Expected records are derived by hand from the samples: naive v1.1 and ledger times are cluster-local
(Asia/Kolkata here, UTC+05:30), v2 times carry their offset, rewards times are epoch milliseconds or UTC;
v1.1 numbers and booleans come as strings, lists come wrapped, and ``{}``, ``""`` and ``null`` are empties.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from emulators.capillary.doc_samples import sample, sample_names
from tests.replay import ReplayServer, Reply
from tests.support import Run, run_tap, run_tap_to_the_end

CUSTOMER = 98662653  # Tom Sawyer, the customer of the docs' customer/get (user_id) and customer/coupons samples
NOW = datetime(2025, 9, 1, tzinfo=UTC)


def listing_of_detail_sample(**extra: Any) -> bytes:
    """``GET /v2/customers/{id}/transactions`` publishes no sample, only response tables: this listing holds the
    bill of the v2 transaction-detail sample, with the keys the listing's tables document (no ``autoUpdateTime``)."""
    detail = sample("v2_transaction.json")
    bill = detail["billDetails"]
    row = {
        "id": detail["id"],
        "customerId": detail["customerId"],
        "billingTime": bill["billingTime"],
        "billNumber": bill["billNumber"],
        "type": detail["type"],
        "notes": bill["note"],
        "amount": bill["amount"],
        "grossAmount": bill["grossAmount"],
        "discount": bill["discount"],
        "outlierStatus": detail["outlierStatus"],
        "billingStore": bill["billingStore"],
        "extendedFields": detail["extendedFields"],
        **extra,
    }
    pagination = {"limit": 1000, "offset": 0, "sortBy": "BILLING_TIME", "sortOrder": "ASC", "total": 1}
    return json.dumps({"pagination": pagination, "data": [row], "warnings": [], "errors": []}).encode()


def doc_routes(**overrides: Reply | list[Reply]) -> dict[str, Reply | list[Reply]]:
    """Each endpoint the tap calls, answered with its published sample (or by ``overrides`` of these routes)."""
    routes: dict[str, Reply | list[Reply]] = {
        "POST /v3/oauth/token/generate": Reply("v3_oauth_token_generate.json"),
        "POST /v2/search/entity": Reply("v2_search_entity__customer.json"),
        "GET /v1.1/customer/get?slab_history=true": Reply("v11_customer_get__slab_history.json"),
        "GET /v1.1/customer/get": Reply("v11_customer_get__user_id.json"),
        "GET /v1.1/customer/coupons": Reply("v11_customer_coupons.json"),
        "GET /v1.1/customer/redemptions": Reply("v11_customer_redemptions.json"),
        "GET /v2/customers/*/transactions": Reply(body=listing_of_detail_sample()),
        "GET /v2/transactions/*": Reply("v2_transaction.json"),
        "GET /v2/pointsLedger/getCustomerLedgerInfo": Reply("v2_points_ledger.json"),
        "GET /api_gateway/rewards/core/v1/management/customer/*/issuals": Reply("rewards_issuals.json"),
        "GET /v1.1/organization/entities?start_id=0": Reply("v11_organization_entities.json"),  # stores
        "GET /v1.1/organization/entities": Reply("v11_organization_entities.json"),  # a bill's store, by id
    }
    assert set(overrides) <= set(routes), "overrides replace routes in place (the first matching route answers)"
    return {**routes, **overrides}


def replay_config(server: ReplayServer, tmp_path: Path, ids: tuple[int, ...] | None = (CUSTOMER,)) -> dict[str, Any]:
    config = {
        "base_url": server.base_url,
        "client_key": "doc-key",
        "client_secret": "doc-secret",
        "start_date": "2010-01-01T00:00:00Z",
        "cluster_timezone": "Asia/Kolkata",
        "lookback_minutes": 0,
        "max_workers": 2,
        "requests_per_minute": 100_000,
        "backfill_window_days": 10_000,  # one discovery window: the search sample answers every window the same
    }
    if ids is not None:
        path = tmp_path / "customers.csv"
        path.write_text("id\n" + "".join(f"{i}\n" for i in ids))
        config["customer_identifiers_path"] = str(path)
    return config


def replay(
    tmp_path: Path, state: dict | None = None, settings: dict | None = None, **overrides: Reply | list[Reply]
) -> tuple[Run, ReplayServer]:
    with ReplayServer(doc_routes(**overrides)) as server:
        return run_tap({**replay_config(server, tmp_path), **(settings or {})}, state, now=NOW), server


def distinct(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records in first-seen order without repeats (a replayed page repeats its sample)."""
    seen, out = set(), []
    for record in records:
        key = json.dumps(record, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(record)
    return out


# -- expectations, by hand from the samples ------------------------------------------------------------------

EXPECTED_CUSTOMER = {
    "customer_id": 98662653,  # "user_id": "98662653" (sent because the tap asks user_id=true)
    "mobile": "9988776655",
    "email": "tom.sawyer@gmail.com",
    "external_id": None,
    "card_numbers": [],
    "identifiers": [],
    "first_name": "Tom",
    "last_name": "Sawyer",
    "gender": "Male",  # "gender": null; the extended field gender is "Male"
    "source": "instore",
    "loyalty_type": "LOYALTY",
    "fraud_status": "NOT_FRAUD",
    "registered_at": "2019-04-14T06:02:30+00:00",  # "2019-04-14 11:32:30" IST
    "registered_by": "FG",
    "registered_store_code": "changi",
    "registered_store_name": "FG",
    "registered_till_code": "changi.str.till_3",
    "updated_at": "2023-09-11T02:58:08+00:00",  # "2023-09-11 08:28:08" IST
    "loyalty_points": 12869,
    "lifetime_points": 26447.104,
    "lifetime_purchases": 183159,
    "redeemed_points": None,  # "points_summaries": {"points_summary": []}
    "expired_points": None,
    "current_slab": "Platinum",
    "program_id": None,
    "program_name": None,
    "points_summaries": [],
    "custom_fields": {
        "gender": "M",
        "age_group": None,
        "dateofbirth": None,
        "anniversary": None,
        "tnc": "yes",
        "kid_name": None,
        "kid_birthday": None,
    },
    "extended_fields": {
        "newsletter_sms": "Optin",
        "newsletter_email": "Optin",
        "gender": "Male",
        "city": "Bangalore",
        "state": "Karnataka",
        "newsletter_mobile_push": "Optin",
    },
}

DOWNGRADE_NOTES = "points_engine_tier_downgrade visits: {} purchase: {}"
# (to, from, type, changed_on IST -> UTC, notes, store code, store name); program "469" everywhere.
EXPECTED_TIER_CHANGES = [
    ("Rhodium", "Rhodium", "RENEW", "2023-12-31T21:00:03+00:00", DOWNGRADE_NOTES.format(9, "422976.0"),
     "teststore", "test"),
    ("Rhodium", "Base", "UPGRADE", "2023-06-28T12:21:43+00:00",
     "Upgrading to Slab : Slab[6]: Name [Platinum] Description [Platinum] , Criteria: Secondary", None, None),
    ("Base", "Bronze", "DOWNGRADE", "2022-07-31T21:00:01+00:00", DOWNGRADE_NOTES.format(3, "16131.000"), None, None),
    ("Bronze", "Bronze", "RENEW", "2022-06-30T21:00:03+00:00", DOWNGRADE_NOTES.format(3, "16131.0"), None, None),
    ("Bronze", "Bronze", "RENEW", "2022-05-31T21:00:01+00:00", DOWNGRADE_NOTES.format(3, "16131.0"), None, None),
    ("Bronze", "Bronze", "RENEW", "2022-04-30T21:00:03+00:00", DOWNGRADE_NOTES.format(5, "16831.0"), None, None),
    ("Bronze", "Base", "UPGRADE", "2021-04-14T07:58:30+00:00",
     "Upgrading to Slab : Slab[2]: Name [Gold] Description [Gold] , Criteria: Primary", None, None),
    ("Base", "Silver", "DOWNGRADE", "2021-03-31T21:00:44+00:00", DOWNGRADE_NOTES.format(9, "29199.000"), None, None),
    ("Silver", "Silver", "RENEW", "2021-02-28T21:02:13+00:00", DOWNGRADE_NOTES.format(11, "52782.0"), None, None),
    ("Silver", "Silver", "RENEW", "2021-01-31T21:00:59+00:00", DOWNGRADE_NOTES.format(11, "52782.0"),
     "webstore", "Hamilton"),
    ("Silver", "Silver", "RENEW", "2020-12-31T21:02:16+00:00", DOWNGRADE_NOTES.format(14, "58921.0"),
     "webstore", "Hamilton"),
    ("Silver", "Silver", "RENEW", "2020-11-30T21:02:06+00:00", DOWNGRADE_NOTES.format(11, "57020.0"),
     "webstore", "Hamilton"),
    ("Silver", "Silver", "RENEW", "2020-10-31T21:00:20+00:00", DOWNGRADE_NOTES.format(10, "53020.0"), "changi", "FG"),
    ("Silver", "Bronze", "UPGRADE", "2020-04-02T09:02:53+00:00",
     "Upgrading to Slab : Slab[3]: Name [Albatross Elite] Description [Albatross Elite] ",
     "international_business_park", "International Business Park"),
    ("Bronze", "Base", "UPGRADE", "2019-12-09T02:42:19+00:00",
     "Upgrading to Slab : Slab[2]: Name [Eagle Premium] Description [Eagle Premium] ", "webstore", "Hamilton"),
]  # fmt: skip

# Two of the 26 coupons in full: one redeemed (issued at a store), one with custom properties and no store.
EXPECTED_COUPONS = {
    370179951: {
        "coupon_id": 370179951,
        "customer_id": 98662653,  # the customer item's "id": "98662653"
        "code": "PT4I43YN",
        "series_id": 12313,
        "series_name": "10 units",
        "issued_at": "2021-05-17T19:06:03+00:00",  # "2021-05-17T19:06:03.000Z"
        "valid_till": "2119-07-10T18:29:59+00:00",  # "2119-07-10 23:59:59" IST
        "issued_store_code": "international_business_park",
        "issued_store_name": "International Business Park",
        "transaction_number": None,
        "purpose": None,  # ""
        "redemption_count": 1,
        "last_redeemed_at": "2021-05-17T19:07:54+00:00",
        "redemptions": [
            {
                "redemption_id": 4359526,
                "redeemed_at": "2021-05-17T19:07:54+00:00",
                "transaction_number": "ZDCsddfg",
                "store_code": "international_business_park",
                "store_name": "International Business Park",
            }
        ],
        "custom_properties": {},  # {"custom_property": []}
        "updated_at": "2021-05-17T19:07:54+00:00",  # the later of issue and last redemption
    },
    1207251260: {
        "coupon_id": 1207251260,
        "customer_id": 98662653,
        "code": "3577101158",
        "series_id": 520410,
        "series_name": "$20 Reward for Fleet Farm Credit Card Signup",
        "issued_at": "2024-05-02T12:07:38+00:00",
        "valid_till": "2024-06-01T18:29:59+00:00",
        "issued_store_code": None,  # no "issued_at"
        "issued_store_name": None,
        "transaction_number": None,
        "purpose": None,
        "redemption_count": 0,
        "last_redeemed_at": None,
        "redemptions": [],  # "redemptions": {}
        "custom_properties": {
            "standard_image_1": None,
            "milestone": None,
            "trackerid": None,
            "standard_image_2": None,
            "standard_description": "$20 Reward for Fleet Farm Credit Card Signup",
            "standard_image_3": None,
            "uks": None,
            "standard_terms_and_conditions": "t&c",
        },
        "updated_at": "2024-05-02T12:07:38+00:00",
    },
}
COUPON_IDS = {
    162721625, 163267982, 163527438, 163527441, 163527444, 163527446, 163527447, 163527448, 163527449, 243522343,
    243522398, 243522491, 252563269, 270322657, 370179948, 370179949, 370179950, 370179951, 454473807, 475506448,
    475850391, 483783581, 483792674, 1117721175, 1130991112, 1207251260,
}  # fmt: skip


def points_redemption(row: int, ref: str, time_utc: str, till: str, **changes: Any) -> dict[str, Any]:
    """A row of the customer/redemptions sample: one point of program 973, redeemed at store doc123."""
    transfer = {"point_transferred_to": "9988221101"}
    return {
        "redemption_type": "POINTS",
        "redemption_ref": ref,
        "redeemed_at": time_utc,
        "customer_id": 98662653,  # the customer asked for (the response names it by mobile/email only)
        "program_id": 973,
        "points_redeemed": 1,
        "coupon_id": None,
        "coupon_code": None,
        "coupon_series_id": None,
        "transaction_number": "bilnum100000",
        "bill_id": None,  # "-1"
        "store_code": "doc123",
        "store_name": "DocStore",
        "till_code": till,
        "till_name": {"naman_doc": "naman"}.get(till, till),
        "purpose": None,
        "notes": "Redeemed to transfer points to the friend",
        "external_reference_number": None,
        "custom_fields": transfer,
        **changes,
    }


EXPECTED_REDEMPTIONS = [
    points_redemption(1, "cLrg1k", "2025-07-25T06:49:54+00:00", "divya_doc"),
    points_redemption(2, "EPGufA", "2025-07-25T06:48:43+00:00", "divya_doc"),
    points_redemption(3, "3i2Vjv", "2025-06-26T06:46:03+00:00", "naman_doc"),
    points_redemption(4, "czJqLu", "2025-06-23T06:52:32+00:00", "sant.p_123"),
    points_redemption(5, "NZVAt9", "2025-06-12T04:10:56+00:00", "sant.p_123", transaction_number="billnumber333",
                      bill_id=1234567891234567, purpose="testing123", custom_fields={}),
    points_redemption(6, "meXt7G", "2025-06-12T04:04:00+00:00", "sant.p_123", transaction_number="billnumber333",
                      bill_id=12345678901, purpose="testing123", custom_fields={}),
    points_redemption(7, "1MC89B", "2025-05-20T17:31:53+00:00", "sant.p_123", transaction_number=None,
                      custom_fields={}),
    points_redemption(8, "Ex8hCb", "2025-05-20T17:31:33+00:00", "sant.p_123"),
    points_redemption(9, "diLpuX", "2025-05-20T17:30:57+00:00", "sant.p_123"),
    points_redemption(10, "blQjRR", "2025-05-20T16:18:58+00:00", "sant.p_123"),
]  # fmt: skip


def transaction(**changes: Any) -> dict[str, Any]:
    """The bill of the v2 transaction-detail sample."""
    return {
        "transaction_id": 2147866485,
        "customer_id": 98662653,  # the customer asked for (the sample's bill names 316726161)
        "bill_number": "num-6682855857799",
        "type": "REGULAR",
        "return_type": None,
        "billed_at": "2021-09-09T06:19:14+00:00",  # "2021-09-09T11:49:14+05:30"
        "updated_at": "2021-09-09T06:19:17+00:00",  # the detail's "autoUpdateTime": "2021-09-09T11:49:17+05:30"
        "amount": 200.0,
        "gross_amount": 110.0,
        "discount": 10.0,
        "basket_size": 10.0,
        "currency_code": None,  # its billing store, 50006795, is not the organization/entities sample's 50156992
        "note": "this is test",
        "outlier_status": "NORMAL",
        "store_code": "storecode",
        "store_name": "webstore1",
        "till_code": "mobilepush.1",  # attribution.createdBy, a TILL
        "till_name": "mobilepush.1",
        "points_issued": None,  # no documented v2 bill response has its points
        "points_redeemed": None,
        "points_returned": None,
        "line_items": [
            {
                "line_item_id": 2153881142,
                "serial": 0,
                "item_code": "sku_486741_2",
                "description": None,  # ""
                "qty": 1.0,
                "rate": 100.5,
                "value": 0.0,
                "discount": 0.0,
                "amount": 100.5,
                "outlier_status": "NORMAL",
                "returnable": True,
                "attributes": {},
                "extended_fields": {"paymentmode": "cash"},
            },
            {
                "line_item_id": 2153881151,
                "serial": 0,
                "item_code": "sku_486741_10",
                "description": None,
                "qty": 1.0,
                "rate": 100.5,
                "value": 0.0,
                "discount": 0.0,
                "amount": 100.5,
                "outlier_status": "NORMAL",
                "returnable": True,
                "attributes": {"POINTS_ELIGIBILITY": "Yes", "pathy_name": None, "product_form": None},
                "extended_fields": {},
            },
        ],
        "payment_modes": [{"mode": "UPI", "amount": 1000.0}],  # the detail's paymentModes (tenders=true)
        "custom_fields": {"gender": "male"},
        "extended_fields": {"boarding_status": "Boarded", "product_class": "EP"},
        **changes,
    }


def ledger_entry(event_log_id: int, created_at: str, points: float | None, **changes: Any) -> dict[str, Any]:
    """An entry of the first points-ledger sample (a goodwill credit of program 469, store teststore)."""
    return {
        "event_log_id": event_log_id,
        "entry_index": 0,
        "customer_id": 98662653,  # the customer asked for, not the sample's "customerId": -2860
        "event_name": "AllocateGoodwillPoints",
        "event_display_name": None,
        "created_at": created_at,
        "event_at": None,  # "eventDetails": {"reason": "POINTS_ISSUE"}
        "ledger_entry_type": "CREDIT",
        "points": points,  # "350.000"
        "alternate_currency": None,
        "alternate_currency_amount": None,
        "points_category": "Main",
        "program_id": 469,
        "program_name": "Default Program",
        "source_program_id": None,  # not in this sample
        "source_program_name": None,
        "net_points_on_event": points,
        "net_alternate_currencies_on_event": None,
        "transaction_id": None,  # "transactionDetails": {}
        "transaction_number": None,
        "store_code": "teststore",
        "till_code": "neestoretillssnee23",
        "promotion_id": None,
        "promotion_name": None,
        **changes,
    }


EXPECTED_LEDGER = [
    ledger_entry(508308379, "2023-06-21T08:04:16+00:00", 350.0),  # "2023-06-21 13:34:16.0" IST
    ledger_entry(508308319, "2023-06-21T08:02:44+00:00", 100.0),
]


def reward(transaction_id: int, ref: str, at: str, reward_id: int, name: str, description: str, rank: int | None,
           message: str, points_ref: str) -> dict[str, Any]:  # fmt: skip
    return {
        "reward_transaction_id": transaction_id,
        "customer_id": 98662653,
        "reward_issue_ref_id": ref,
        "transaction_at": at,  # rewardTransactionDate, epoch ms
        "event_at": at,  # eventDateTime, UTC
        "issued_at": at,
        "success": True,
        "status_code": 200,
        "status_message": message,
        "reward_id": reward_id,
        "reward_name": name,
        "reward_description": description,
        "reward_language_code": "en",
        "reward_enabled": True,
        "reward_rank": rank,
        "owner_type": None,
        "owner_id": None,  # ""
        "points_redemption_ref_ids": [points_ref],
        "fulfillment_status": None,
        "redemption_type": None,
    }


HANDBAGS, MOCHA, FLAT100 = "150 off on handbags and wallets", "Buy One Iced Mocha Get one free", "Flat Rs.100 off"
FLAT100_TEXT = "Get Rs.100 off when you buy items worth Rs.2000 and more"
EXPECTED_REWARDS = [
    reward(106046, "TX6910268", "2023-11-13T19:30:48+00:00", 13, HANDBAGS, HANDBAGS, 2,
           "Reward issued successfully", "62TXWX"),
    reward(104616, "TX8347787", "2023-11-08T10:09:37+00:00", 13, HANDBAGS, HANDBAGS, 2,
           "Reward issued successfully", "VE0Bdc"),
    reward(104603, "TX1348483", "2023-11-08T09:58:08+00:00", 82520, MOCHA, MOCHA, None,
           "Promotion issued successfully", "wB75ca"),
    reward(104602, "TX1653611", "2023-11-08T09:57:02+00:00", 69702, FLAT100, FLAT100_TEXT, None,
           "Promotion issued successfully", "25TXlN"),
    reward(104601, "TX5106292", "2023-11-08T09:57:01+00:00", 69702, FLAT100, FLAT100_TEXT, None,
           "Promotion issued successfully", "fLZzLu"),
]  # fmt: skip

EXPECTED_STORE = {
    "store_id": 50156992,
    "code": "new_till",
    "name": "new_till",
    "description": "Testing description",
    "type": "TILL",  # the docs' only sample of organization/entities is a till
    "is_active": True,  # "1"
    "external_id": None,
    "external_id_1": None,
    "external_id_2": None,
    "timezone": "Asia/Kolkata",
    "currency_code": "INR",
    "language_locale": "IN",
    "country_code": "IN",
    "updated_at": "2024-06-04T03:33:20+00:00",  # "2024-06-04 09:03:20" IST
    "updated_by": 50154735,
    "custom_fields": {"cf_1": "15"},
}


def assert_records(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Field by field, so a failure names the field."""
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert set(got) == set(want)
        for name, value in want.items():
            assert got[name] == value, (name, got[name], value)
            assert type(got[name]) is type(value), (name, got[name], value)


# -- the full sync -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_sync(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, ReplayServer]:
    return replay(tmp_path_factory.mktemp("replay"))


def test_full_sync_of_the_doc_samples_emits_every_documented_record(full_sync: tuple[Run, ReplayServer]) -> None:
    run, _ = full_sync
    assert_records(run.records["customers"], [EXPECTED_CUSTOMER])
    tiers = [
        {"customer_id": CUSTOMER, "program_id": 469, "changed_at": at, "to_tier": to, "from_tier": frm,
         "change_type": kind, "notes": notes, "store_code": code, "store_name": name}
        for to, frm, kind, at, notes, code, name in EXPECTED_TIER_CHANGES
    ]  # fmt: skip
    assert_records(run.records["tier_history"], tiers)
    coupons = {r["coupon_id"]: r for r in run.records["coupons"]}
    assert len(run.records["coupons"]) == len(coupons) == len(COUPON_IDS)
    assert set(coupons) == COUPON_IDS
    for coupon_id, expected in EXPECTED_COUPONS.items():
        assert_records([coupons[coupon_id]], [expected])
    assert_records(distinct(run.records["redemptions"]), EXPECTED_REDEMPTIONS)
    assert_records(run.records["transactions"], [transaction()])
    assert_records(run.records["points_ledger"], EXPECTED_LEDGER)
    assert_records(run.records["reward_issuals"], EXPECTED_REWARDS)
    assert_records(run.records["stores"], [EXPECTED_STORE])
    assert run.tap.item_errors.counts == Counter()
    assert set(run.state["bookmarks"]) == {t.name for t in run.tap.streams.values()}
    assert all("pass_since" not in b for b in run.state["bookmarks"].values()), "every pass completed"


def test_full_sync_sends_what_the_docs_require(full_sync: tuple[Run, ReplayServer]) -> None:
    _, server = full_sync
    gets = server.requests("/v1.1/customer/get")
    assert {r.query.get("user_id") for r in gets} == {"true"}, "user_id=true: the docs return the id only then"
    assert [r.query.get("mlp") for r in gets if r.query.get("slab_history") == "true"] == ["true"], (
        "slab_history has the prerequisite mlp=true"
    )
    redemptions = server.requests("/v1.1/customer/redemptions")
    assert {r.query.get("mlp") for r in redemptions} == {"true"}, "redemptions of every program, not the till's"
    # points_count 12 and 10 rows returned: rows 11 and 12 are asked for.
    assert [r.query["points_start_id"] for r in redemptions] == ["1", "11"]
    assert server.requests("/v2/transactions/*")[0].query == {"type": "REGULAR", "tenders": "true"}


# -- every documented error envelope, in HTTP 200 and with an error status --------------------------------------

LEDGER_ROUTE = "GET /v2/pointsLedger/getCustomerLedgerInfo"
TRANSACTIONS_ROUTE = "GET /v2/customers/*/transactions"
REWARDS_ROUTE = "GET /api_gateway/rewards/core/v1/management/customer/*/issuals"
CUSTOMERS_ROUTE = "GET /v1.1/customer/get"
ENTITIES_ROUTE = "GET /v1.1/organization/entities?start_id=0"
COUPONS_ROUTE = "GET /v1.1/customer/coupons"
REDEMPTIONS_ROUTE = "GET /v1.1/customer/redemptions"
TOKEN_ROUTE = "POST /v3/oauth/token/generate"

RECOVERS = "recovers"
# (envelope, HTTP statuses, route answered with it once, what the run does: RECOVERS, a named item error
# ("item error", stream, code), or ("fatal", regex of the message naming the endpoint and the code)).
ENVELOPES = [
    ("v11_envelope__invalid_token.txt", (200, 401), CUSTOMERS_ROUTE, RECOVERS),
    ("v11_envelope__token_expired.txt", (200, 401, 498), ENTITIES_ROUTE, RECOVERS),
    ("v11_envelope__no_access.json", (200, 403), ENTITIES_ROUTE,
     ("fatal", r"No access: HTTP \d+ from GET /v1.1/organization/entities \(code 403: Client doesn't have access"
               r".*Organization resource")),
    ("access_error__4000.txt", (200, 403), LEDGER_ROUTE,
     ("fatal", r"No access: HTTP \d+ from GET /v2/pointsLedger/getCustomerLedgerInfo \(code 4000: Not authorized"
               r".*Points resource")),
    ("access_error__4001.txt", (200, 503), REWARDS_ROUTE, RECOVERS),
    ("v2_error__customer_not_found.json", (200, 404), LEDGER_ROUTE, ("item error", "points_ledger", "8015")),
    ("v2_error__customer_not_found.json", (200, 404), TRANSACTIONS_ROUTE, ("item error", "transactions", "8015")),
    ("v2_error__customer_not_found_errors_only.json", (200, 404), REWARDS_ROUTE,
     ("item error", "reward_issuals", "8015")),
    ("v11_customer_get__all_failed_500.json", (200, 500), CUSTOMERS_ROUTE,
     ("fatal", r"HTTP \d+ from GET /v1.1/customer/get \(code 400: Input is invalid")),
    ("rewards_error__400.json", (200, 400), REWARDS_ROUTE,
     ("fatal", r"HTTP \d+ from GET /api_gateway/rewards/.*/issuals \(code 400: size should be")),
    ("v11_customer_coupons__400.json", (400,), COUPONS_ROUTE,
     ("fatal", r"HTTP 400 from GET /v1.1/customer/coupons \(Bad Request\)")),
    ("v11_customer_coupons__400.json", (200,), COUPONS_ROUTE,
     ("fatal", r"Unexpected response from GET /v1.1/customer/coupons \(HTTP 200\): no response")),
    ("v11_customer_redemptions__400.json", (400,), REDEMPTIONS_ROUTE,
     ("fatal", r"HTTP 400 from GET /v1.1/customer/redemptions \(Bad Request\)")),
    ("v11_customer_redemptions__400.json", (200,), REDEMPTIONS_ROUTE,
     ("fatal", r"Unexpected response from GET /v1.1/customer/redemptions \(HTTP 200\): no response")),
    ("v11_organization_entities__400.json", (400,), ENTITIES_ROUTE,
     ("fatal", r"HTTP 400 from GET /v1.1/organization/entities \(Bad Request\)")),
    ("v11_organization_entities__400.json", (200,), ENTITIES_ROUTE,
     ("fatal", r"Unexpected response from GET /v1.1/organization/entities \(HTTP 200\): no response")),
    ("v3_oauth_token_generate__invalid_key.json", (200, 401), TOKEN_ROUTE,
     ("fatal", r"refused to generate an OAuth token \(HTTP \d+ from POST /v3/oauth/token/generate: code 320001")),
]  # fmt: skip
CASES = [
    pytest.param(envelope, status, route, outcome, id=f"{envelope.split('.')[0]}-{status}-{route.split('/')[-1]}")
    for envelope, statuses, route, outcome in ENVELOPES
    for status in statuses
]


def stream_of(route: str) -> str:
    streams = {LEDGER_ROUTE: "points_ledger", TRANSACTIONS_ROUTE: "transactions", REWARDS_ROUTE: "reward_issuals",
               CUSTOMERS_ROUTE: "customers", ENTITIES_ROUTE: "stores", COUPONS_ROUTE: "coupons",
               REDEMPTIONS_ROUTE: "redemptions"}  # fmt: skip
    return streams[route]


@pytest.mark.parametrize(("envelope", "status", "route", "outcome"), CASES)
def test_each_documented_error_envelope(
    full_sync: tuple[Run, ReplayServer], tmp_path: Path, envelope: str, status: int, route: str, outcome: Any
) -> None:
    """The run recovers and emits everything, or counts a named item error, or stops naming the endpoint and the
    code, and never writes a STATE past what it did not read."""
    baseline, _ = full_sync
    normal = doc_routes()[route]
    with ReplayServer(doc_routes(**{route: [Reply(envelope, status), normal]})) as server:
        run, error = run_tap_to_the_end(replay_config(server, tmp_path), now=NOW)
    if outcome == RECOVERS:
        assert error is None
        for stream, records in baseline.records.items():
            assert distinct(run.records[stream]) == distinct(records), stream
        assert run.tap.item_errors.counts == Counter()
        if "token" in envelope:
            assert len(server.requests("/v3/oauth/token/generate")) == 2, "a new token was generated"
    elif outcome[0] == "item error":
        _, stream, code = outcome
        assert error is None
        assert run.tap.item_errors.counts == Counter({(stream, code): 1})
        assert run.records[stream] == [], "the one customer's records could not be read"
        assert "pass_since" not in run.state["bookmarks"][stream], "the window ended in a counted item error"
    else:
        assert error is not None
        assert re.search(outcome[1], str(error)), str(error)
        if route == TOKEN_ROUTE:  # no token, nothing read
            assert run.states == [], "no STATE at all"
        else:
            failed = stream_of(route)
            assert all(failed not in state.get("bookmarks", {}) for state in run.states), "no STATE for unread data"
        assert "doc-secret" not in str(error)


def test_http_498_renews_the_token(tmp_path: Path) -> None:
    """An expired token as the HTTP status alone (498, no body) is renewed and the request sent again."""
    routes = {LEDGER_ROUTE: [Reply(body=b"", status=498), Reply("v2_points_ledger.json")]}
    run, server = replay(tmp_path, **routes)
    assert_records(run.records["points_ledger"], EXPECTED_LEDGER)
    assert len(server.requests("/v3/oauth/token/generate")) == 2, "a new token was generated"


# -- discovery, warnings, alternate currencies and bills, from the samples --------------------------------------


def test_entity_search_discovery_and_its_warnings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The search sample's six customers are read; its nine warnings are counted and logged; the docs' table and
    curl examples disagree on the total parameter, so both are sent, with the required enrichmentFields."""
    with ReplayServer(doc_routes()) as server, caplog.at_level("WARNING"):
        run = run_tap(replay_config(server, tmp_path, ids=None), now=NOW)
    search = server.requests("/v2/search/entity")
    assert len(search) == 1, "six rows of the ten asked for: a short page ends the listing"
    assert search[0].query == {"totalRequired": "true", "requiredTotal": "true"}
    assert search[0].body["enrichmentFields"] == {"enrichedFields": [], "customFields": [], "extendedFields": []}
    asked = {r.query["id"] for r in server.requests("/v1.1/customer/get")}
    assert asked == {"565040882,565041081,565041087,565070880,565070883,565070886"}
    assert run.tap.warnings.for_stream("customer_search") == {"91310": 6, "91313": 3}
    logged = [r.getMessage() for r in caplog.records if "Capillary warning" in r.getMessage()]
    assert any("code 91310: Custom field not present" in m for m in logged)
    assert any("code 91313: Customer status not found" in m for m in logged)
    # Six customers asked in one batch, one customer answered without user_id: it cannot be placed.
    assert run.tap.item_errors.counts[("tier_history", "no user_id")] == 1
    assert run.records["tier_history"] == []
    summary = "Stream customer_search had Capillary warnings: {'91310': 6, '91313': 3}"
    assert summary in [r.getMessage() for r in caplog.records], "the helper stream's tallies end the run's log"


def test_a_batch_answered_not_found_as_a_whole_is_read_customer_by_customer(tmp_path: Path) -> None:
    """A request-level "customer not found" (8015) for a v1.1 batch names no customer: each is asked alone, the
    found one read, the other counted."""
    other = CUSTOMER + 1
    not_found = Reply("v2_error__customer_not_found.json", 404)
    replies = [not_found, Reply("v11_customer_get__user_id.json"), not_found]  # the batch, then one by one
    with ReplayServer(doc_routes(**{CUSTOMERS_ROUTE: replies})) as server:
        run = run_tap(replay_config(server, tmp_path, ids=(CUSTOMER, other)), now=NOW)
        asked = [r.query["id"] for r in server.requests("/v1.1/customer/get") if "slab_history" not in r.query]
    assert asked == [f"{CUSTOMER},{other}", str(CUSTOMER), str(other)]
    assert_records(run.records["customers"], [EXPECTED_CUSTOMER])
    assert run.tap.item_errors.for_stream("customers") == {"8015": 1}
    assert "pass_since" not in run.state["bookmarks"]["customers"]


def test_item_status_warning_is_counted_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The customer/transactions page documents an item_status with code 1052 and warning 91001 ("Transactions
    fetched successfully, Failed to get point details", a snippet): put into the customer/get sample."""
    body = sample("v11_customer_get__user_id.json")
    body["response"]["customers"]["customer"][0]["item_status"] = {
        "success": "true",
        "code": "1052",
        "message": "Transactions fetched successfully, Failed to get point details",
        "warnings": {"warning": ["91001"]},
    }
    routes = {"GET /v1.1/customer/get": Reply(body=json.dumps(body).encode())}
    with caplog.at_level("WARNING"):
        run, _ = replay(tmp_path, **routes)
    assert_records(run.records["customers"], [EXPECTED_CUSTOMER])
    assert run.tap.warnings.for_stream("customers") == {"91001": 1}
    assert any("Capillary warning code 91001" in r.getMessage() for r in caplog.records)
    assert any("Stream customers had Capillary warnings: {'91001': 1}" in r.getMessage() for r in caplog.records)


# The ledger's error table: 11003, asking past the last page (no sample of the body is published).
NO_MORE_ENTRIES = {"status": False, "code": 11003, "message": "There are no ledger entries present for the given "
                   "parameters. Try removing parameters to widen the search"}  # fmt: skip


def test_alternate_currency_entries_keep_their_currency(tmp_path: Path) -> None:
    """The sample pages by 3 of 64 entries (pageCount 22): its page comes once, and the next page answers 11003.
    The pass spans the sample's day in one ledger date range."""
    routes = {LEDGER_ROUTE: [Reply("v2_points_ledger__alternate_currency.json"),
                             Reply(body=json.dumps({"errors": [NO_MORE_ENTRIES]}).encode())]}  # fmt: skip
    window = {"start_date": "2025-01-15T00:00:00Z", "end_date": "2025-03-01T00:00:00Z"}
    run, server = replay(tmp_path, settings=window, **routes)
    assert [r.query["offset"] for r in server.requests("/v2/pointsLedger/*")] == ["0", "1"]
    common = {"customer_id": CUSTOMER, "points_category": "Main", "program_id": 973, "program_name":
              "DocDemoDefaultProgram", "source_program_id": 983, "source_program_name": "DocTransferPoints",
              "store_code": "doc123", "till_code": "naman_doc", "ledger_entry_type": "CREDIT"}  # fmt: skip

    def add(event_log_id: int, created_at: str, txn: tuple[int, str], index: int, **fields: Any) -> dict[str, Any]:
        points = fields.pop("points", 20000.0)
        return ledger_entry(event_log_id, created_at, points, entry_index=index, event_name="TransactionAdd",
                            event_at="2025-01-29T18:30:00+00:00", net_points_on_event=20000.0,
                            net_alternate_currencies_on_event={"DocCoin": 20000.0}, transaction_id=txn[0],
                            transaction_number=txn[1], **{**common, **fields})  # fmt: skip

    doc_coin = {"points": None, "alternate_currency": "DocCoin", "alternate_currency_amount": 20000.0}
    expected = [
        add(616394199, "2025-01-30T02:08:34+00:00", (881425574, "RET101"), 0),  # "2025-01-30 07:38:34.0" IST
        add(616394199, "2025-01-30T02:08:34+00:00", (881425574, "RET101"), 1, **doc_coin),
        # A DocCoin debit on a return: no points at all ("netPointsOnEvent": "0").
        ledger_entry(616394145, "2025-01-30T02:07:19+00:00", None, event_name="ReturnBill",
                     event_at="2025-01-30T06:30:00+00:00", net_points_on_event=0.0,
                     net_alternate_currencies_on_event={"DocCoin": -10909.09}, transaction_id=881425422,
                     transaction_number="BILL100", **{**common, "ledger_entry_type": "DEBIT",
                                                      "alternate_currency": "DocCoin",
                                                      "alternate_currency_amount": 10909.09}),
        add(616394144, "2025-01-30T02:07:18+00:00", (881425544, "RET100"), 0),
        add(616394144, "2025-01-30T02:07:18+00:00", (881425544, "RET100"), 1, **doc_coin),
    ]  # fmt: skip
    assert_records(run.records["points_ledger"], expected)
    assert sum(r["points"] or 0 for r in run.records["points_ledger"]) == 40000.0, "DocCoin is never points"


ATTRIBUTION = sample("v2_transaction.json")["attribution"]  # modifiedDate "2021-09-09T11:49:17+05:30"
SINCE_2022 = {"bookmarks": {"transactions": {"replication_key": "updated_at",
                                             "replication_key_value": "2022-01-01T00:00:00+00:00"}}}  # fmt: skip


def test_a_bills_currency_is_its_billing_stores(tmp_path: Path) -> None:
    """No v2 bill response documents a currency: the bill's is its billing store's base currency, asked of
    organization/entities by id (once per store and run). The listing's bill is put at the store of the entities
    sample, 50156992, whose currency is INR."""
    store = {**sample("v2_transaction.json")["billDetails"]["billingStore"], "id": 50156992}
    run, server = replay(tmp_path, **{TRANSACTIONS_ROUTE: Reply(body=listing_of_detail_sample(billingStore=store))})
    assert_records(run.records["transactions"], [transaction(currency_code="INR")])
    lookups = [r.query for r in server.requests("/v1.1/organization/entities") if "id" in r.query]
    assert lookups == [{"format": "json", "type": "STORE", "id": "50156992"}]


@pytest.mark.parametrize("listed", [True, False], ids=["listing-has-modifiedDate", "detail-has-autoUpdateTime"])
def test_bill_update_time_from_the_listing_or_the_detail(tmp_path: Path, listed: bool) -> None:
    extra = {"attribution": ATTRIBUTION} if listed else {}
    listing = Reply(body=listing_of_detail_sample(**extra))
    run, server = replay(tmp_path, **{TRANSACTIONS_ROUTE: listing})
    assert_records(run.records["transactions"], [transaction()])
    # A later pass: the bill, updated in 2021, is not in it. From the listing's time no detail is asked.
    later, server = replay(tmp_path, SINCE_2022, **{TRANSACTIONS_ROUTE: listing})
    assert later.records["transactions"] == []
    assert len(server.requests("/v2/transactions/*")) == (0 if listed else 1)
    assert later.tap.item_errors.counts == Counter()


def test_a_bill_without_detail_or_time_is_a_counted_item_error(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    # The transaction status codes: 620 "Invalid Transaction ID" (no sample of the body is published).
    invalid = {"errors": [{"status": False, "code": 620, "message": "Invalid Transaction ID"}], "warnings": []}
    with caplog.at_level("WARNING"):
        run, _ = replay(tmp_path, **{"GET /v2/transactions/*": Reply(body=json.dumps(invalid).encode(), status=404)})
    assert run.records["transactions"] == []
    assert run.tap.item_errors.counts == Counter({("transactions", "620"): 1})
    assert any("item error 620" in r.getMessage() and "bill 2147866485" in r.getMessage() for r in caplog.records)
    # No time anywhere: the listing's bill without billingTime, a detail without its times.
    detail = sample("v2_transaction.json")
    detail.pop("autoUpdateTime")
    detail.pop("attribution")
    detail["billDetails"].pop("billingTime")
    listing = json.loads(listing_of_detail_sample())
    listing["data"][0].pop("billingTime")
    timeless = {"GET /v2/transactions/*": Reply(body=json.dumps(detail).encode()),
                TRANSACTIONS_ROUTE: Reply(body=json.dumps(listing).encode())}  # fmt: skip
    run, _ = replay(tmp_path, **timeless)
    assert run.records["transactions"] == []
    assert run.tap.item_errors.counts == Counter({("transactions", "no updated_at"): 1})


# -- every other published sample: customer/get, points-ledger and reward-issual variants -----------------------

RITA_JOHN = {
    "customer_id": 98662653,  # the sample has neither user_id nor id: the one customer asked for
    "mobile": "44700900999",
    "email": "rita.john@example.com",
    "external_id": "XYPZ006",
    "card_numbers": [],
    "identifiers": [],
    "first_name": "Rita",
    "last_name": "John",
    "gender": "Female",  # "gender": null; the extended field gender is "Female"
    "source": "instore",
    "loyalty_type": "LOYALTY",
    "fraud_status": "NONE",
    "registered_at": "2012-09-11T05:41:15+00:00",  # "2012-09-11 11:11:15" IST
    "registered_by": "Hamilton",
    "registered_store_code": "webstore",
    "registered_store_name": "Hamilton",
    "registered_till_code": "Mobile App",
    "updated_at": "2022-02-18T02:52:34+00:00",  # "2022-02-18 08:22:34" IST
    "loyalty_points": 500,
    "lifetime_points": 500,
    "lifetime_purchases": 0,
    "redeemed_points": None,  # "points_summaries": {"points_summary": []}
    "expired_points": None,
    "current_slab": "Member Tier ",  # as sent
    "program_id": None,
    "program_name": None,
    "points_summaries": [],
    "custom_fields": {},  # {"field": []}
    "extended_fields": {"gender": "Female", "city": "Bangalore", "dob": "1998-09-01 00:00:00"},
}
CUSTOMER_SAMPLES = [
    ("v11_customer_get.json", RITA_JOHN),
    # Tom Sawyer again, without user_id: the one customer asked for.
    ("v11_customer_get__coupon_order_by.json", EXPECTED_CUSTOMER),
    ("v11_customer_get__program_summary.json", {
        **EXPECTED_CUSTOMER,
        "updated_at": "2024-04-24T13:20:06+00:00",  # "2024-04-24 18:50:06" IST
        "loyalty_points": 2412,
        "lifetime_points": 27169.104,
        "lifetime_purchases": 554135,
        "current_slab": "Rhodium",
        "custom_fields": {**EXPECTED_CUSTOMER["custom_fields"], "reco_prod_1": "SKUNU671"},
    }),
]  # fmt: skip


@pytest.mark.parametrize(("name", "expected"), CUSTOMER_SAMPLES, ids=[name for name, _ in CUSTOMER_SAMPLES])
def test_every_customer_get_sample(tmp_path: Path, name: str, expected: dict[str, Any]) -> None:
    run, _ = replay(tmp_path, **{CUSTOMERS_ROUTE: Reply(name)})
    assert_records(run.records["customers"], [expected])
    assert run.tap.item_errors.counts == Counter()


def doc_demo(event_log_id: int, event_name: str, at: str, entry_type: str, points: float, net: float,
             txn: tuple[int, str] | tuple[None, None] = (None, None), **changes: Any) -> dict[str, Any]:  # fmt: skip
    """An entry of the ledger samples of the docs' "DocDemo" org: program and source program 973
    DocDemoDefaultProgram, store doc123, till naman_doc, category Main; ``at`` is both ledgerCreatedDate and
    eventDate (IST) in UTC unless ``changes`` say otherwise."""
    program = "DocDemoDefaultProgram"
    fields = {"event_name": event_name, "event_at": at, "ledger_entry_type": entry_type, "net_points_on_event": net,
              "transaction_id": txn[0], "transaction_number": txn[1], "program_id": 973, "program_name": program,
              "source_program_id": 973, "source_program_name": program, "store_code": "doc123",
              "till_code": "naman_doc"}  # fmt: skip
    return ledger_entry(event_log_id, at, points, **{**fields, **changes})


JAN_7 = "2025-01-06T18:30:00+00:00"  # eventDate "2025-01-07 00:00:00.0" IST
JAN_2 = "2025-01-02T08:16:12+00:00"  # eventDate "2025-01-02 13:46:12.0" IST
ADD, ADJUST = "TransactionAdd", "ManualPointsAdjustment"
# eventLogId -> its records (one per entryDetails item), times: "YYYY-MM-DD HH:MM:SS.0" IST -> UTC.
DOC_DEMO = {
    605981603: [doc_demo(605981603, ADD, "2025-01-08T05:37:57+00:00", "CREDIT", 10000.0, 10000.0,
                         (880577676, "Transaction5"), event_at=JAN_7, till_code="neeraj.doc")],
    605981588: [doc_demo(605981588, ADD, "2025-01-08T05:37:45+00:00", "CREDIT", 10000.0, 10000.0,
                         (880577668, "Transaction4"), event_at=JAN_7, till_code="neeraj.doc")],
    605869443: [doc_demo(605869443, ADD, "2025-01-06T23:47:02+00:00", "CREDIT", 2000.0, 2000.0,
                         (880530176, "txn-01"), event_at="2025-01-07T05:15:12+00:00")],
    605869373: [doc_demo(605869373, ADD, "2025-01-06T23:42:21+00:00", "CREDIT", 2000.0, 2000.0,
                         (880530167, "1736226743"), event_at="2025-01-07T05:10:12+00:00")],
    605476079: [doc_demo(605476079, ADD, "2025-01-03T01:29:21+00:00", "CREDIT", 5000.0, 5000.0,
                         (880350461, "num-1234573"), event_at=JAN_2)],
    605475852: [doc_demo(605475852, ADD, "2025-01-03T01:18:54+00:00", "CREDIT", 2000.0, 2000.0,
                         (880350400, "num-1234572"), event_at=JAN_2)],
    605475815: [doc_demo(605475815, ADD, "2025-01-03T01:16:01+00:00", "CREDIT", 2000.0, 2000.0,
                         (880350390, "num-1234571"), event_at=JAN_2)],
    605376466: [doc_demo(605376466, ADD, "2025-01-02T05:13:07+00:00", "CREDIT", 2000.0, 2000.0,
                         (880304800, "num-1234570"), event_at=JAN_2)],
    605376309: [doc_demo(605376309, ADD, "2025-01-02T05:11:01+00:00", "CREDIT", 155.5, 155.5,
                         (880304718, "num-1234569"), event_at=JAN_2)],
    603664762: [doc_demo(603664762, ADJUST, "2024-12-18T05:47:11+00:00", "DEBIT", 10.54, -10.54)],
    603664759: [doc_demo(603664759, ADJUST, "2024-12-18T05:47:08+00:00", "DEBIT", 10.54, -10.54)],
    603664753: [doc_demo(603664753, ADJUST, "2024-12-18T05:47:01+00:00", "DEBIT", 10.54, -10.54)],
    602851749: [doc_demo(602851749, ADD, "2024-12-11T01:19:30+00:00", "CREDIT", 23.34, 23.34,
                         (879297556, "1733899770"))],
    602851518: [doc_demo(602851518, ADD, "2024-12-11T01:08:51+00:00", "CREDIT", 46.69, 46.688,
                         (879297472, "1733899131"))],
    602850907: [doc_demo(602850907, ADD, "2024-12-11T01:01:00+00:00", "CREDIT", 4665.0, 4665.0,
                         (879297038, "1733898660"))],
    602850504: [doc_demo(602850504, "ReturnBill", "2024-12-11T00:59:14+00:00", "DEBIT", 311.03, -311.034,
                         (879296586, "1733898428"))],
    602850229: [doc_demo(602850229, ADD, "2024-12-11T00:57:08+00:00", "CREDIT", 311.03, 311.034,
                         (879296586, "1733898428"))],
    602849630: [  # three entries: the credit and two opening balances of other point categories
        doc_demo(602849630, ADD, "2024-12-11T00:52:37+00:00", "CREDIT", 311.0, 311.0, (879296042, "1733898157")),
        doc_demo(602849630, ADD, "2024-12-11T00:52:37+00:00", "OPENING_BALANCE", 0.0, 311.0,
                 (879296042, "1733898157"), entry_index=1, points_category="DelayedAccrualPointCategory"),
        doc_demo(602849630, ADD, "2024-12-11T00:52:37+00:00", "OPENING_BALANCE", 0.0, 311.0,
                 (879296042, "1733898157"), entry_index=2, points_category="ExternalTriggerBasedPointCategory"),
    ],
    602847320: [doc_demo(602847320, "CustomerRegistration", "2024-12-11T00:34:22+00:00", "OPENING_BALANCE", 0.0,
                         0.0)],
}  # fmt: skip
DOC_DEMO_WINDOW = {"start_date": "2024-12-01T00:00:00Z", "end_date": "2025-02-01T00:00:00Z"}  # one ledger range
PROMOTION = ledger_entry(
    12379266, "2024-06-19T06:28:07+00:00", 100.0,  # "2024-06-19 11:58:07.0" IST
    event_name="TargetCompleted", event_display_name="TargetCompletePromos",
    event_at="2024-06-19T06:27:37+00:00",  # "2024-06-19 11:57:37.0" IST
    program_id=890, program_name="DefaultProgram", source_program_id=890, source_program_name="DefaultProgram",
    store_code="tillhuhu", till_code="tillhuhu", promotion_id=1120363, promotion_name="TargetCompletePromos",
)  # fmt: skip


def stars_and_coins(index: int, currency: str) -> dict[str, Any]:
    """An opening balance of 0 in an alternate currency: no points."""
    return ledger_entry(
        569437706, "2024-04-25T09:04:52+00:00", None,  # "2024-04-25 14:34:52.0" IST
        entry_index=index, event_name="CustomerUpdate", ledger_entry_type="OPENING_BALANCE",
        alternate_currency=currency, alternate_currency_amount=0.0, net_points_on_event=0.0,
        source_program_id=805, source_program_name="Seven Entertainment", store_code="demostorebukl",
        till_code="demostorebukl.1",  # and program 469 "Default Program", category Main; "eventDetails": {}
    )  # fmt: skip


LEDGER_SAMPLES = [
    # (sample, pass, its entries, the pages asked: a pageCount of 2 asks for page 1, which answers 11003)
    ("v2_points_ledger__promotion.json", {"start_date": "2024-06-01T00:00:00Z", "end_date": "2024-07-01T00:00:00Z"},
     [PROMOTION], ["0"]),
    ("v2_points_ledger__alternate_currencies_only.json",
     {"start_date": "2024-04-01T00:00:00Z", "end_date": "2024-05-01T00:00:00Z"},
     [stars_and_coins(0, "Stars"), stars_and_coins(1, "Coins")], ["0"]),
    ("v2_points_ledger__till_id.json", DOC_DEMO_WINDOW, [605981603, 605981588], ["0"]),
    ("v2_points_ledger__till_ids.json", DOC_DEMO_WINDOW,
     [605981603, 605981588, 605869443, 605869373, 605476079, 605475852, 605475815, 605376466, 605376309, 603664762],
     ["0", "1"]),
    ("v2_points_ledger__store_code.json", DOC_DEMO_WINDOW,
     [605869443, 605869373, 605476079, 605475852, 605475815, 605376466, 605376309, 603664762, 603664759, 603664753],
     ["0", "1"]),
    ("v2_points_ledger__store_id.json", DOC_DEMO_WINDOW,
     [603664762, 603664759, 603664753, 602851749, 602851518, 602850907, 602850504, 602850229, 602849630, 602847320],
     ["0"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "window", "entries", "pages"), LEDGER_SAMPLES, ids=[s[0] for s in LEDGER_SAMPLES])
def test_every_points_ledger_sample(tmp_path: Path, name: str, window: dict, entries: list, pages: list[str]) -> None:
    """Each sample answers the pass's one ledger range; a later page answers 11003 (no more entries)."""
    routes = {LEDGER_ROUTE: [Reply(name), Reply(body=json.dumps({"errors": [NO_MORE_ENTRIES]}).encode())]}
    run, server = replay(tmp_path, settings=window, **routes)
    expected = [r for e in entries for r in (DOC_DEMO[e] if isinstance(e, int) else [e])]
    assert_records(run.records["points_ledger"], expected)
    assert [r.query["offset"] for r in server.requests("/v2/pointsLedger/*")] == pages
    assert run.tap.item_errors.counts == Counter()


def issual(transaction_id: int, ref: str, at: str, reward_id: int, **changes: Any) -> dict[str, Any]:
    """An issual of the rewards samples' filter variants: "testreward1" (rank 1, enabled, "en"), issued
    successfully; ``at`` is rewardTransactionDate (epoch ms) in UTC; no eventDateTime or issueDateTime."""
    return {
        "reward_transaction_id": transaction_id,
        "customer_id": 98662653,
        "reward_issue_ref_id": ref,
        "transaction_at": at,
        "event_at": None,
        "issued_at": None,
        "success": True,
        "status_code": 200,
        "status_message": "Reward issued successfully",
        "reward_id": reward_id,
        "reward_name": "testreward1",
        "reward_description": "testreward1",
        "reward_language_code": "en",
        "reward_enabled": True,
        "reward_rank": 1,
        "owner_type": None,
        "owner_id": None,  # ""
        "points_redemption_ref_ids": [],  # null
        "fulfillment_status": None,
        "redemption_type": None,
        **changes,
    }


def failed_issual(transaction_id: int, ref: str, at: str, code: int, message: str) -> dict[str, Any]:
    """A failed issual of the rewardId sample: its own status is its outcome (reward 38774, no rank)."""
    return issual(transaction_id, ref, at, 38774, event_at=at, issued_at=at, success=False, status_code=code,
                  status_message=message, reward_name=" INTOUCH Enabled", reward_description="Description",
                  reward_rank=None, redemption_type="CART_PROMOTION")  # fmt: skip


NO_REDEMPTION = "redemption id passed doesn't exist"
CONSTRAINT = ("Reward constraint evaluation failed. Request failed. Max limit for the DAYS is reached. Allowed limit "
              "is 2 For Level CUSTOMER")  # fmt: skip
NOV_26 = "2024-11-26T10:47:03+00:00"  # 1732618023000
REWARD_SAMPLES = [
    ("rewards_issuals__group_name.json", [issual(289752, "1732091931", "2024-11-20T08:38:51+00:00", 268608)]),
    ("rewards_issuals__points_ref_ids.json", [
        issual(293260, "transactionNumber", NOV_26, 272383, owner_type=" LOYALTY_PROGRAM", owner_id="123",
               points_redemption_ref_ids=["4xyMsS"])]),  # no redemptionType key
    ("rewards_issuals__redemption_type.json", [
        issual(293260, "transactionNumber", NOV_26, 272383, redemption_type="MILES"),
        issual(293259, "transactionNumber", "2024-11-26T10:46:39+00:00", 272383, redemption_type="MILES"),
        issual(293175, "transactionNumber", "2024-11-26T07:15:02+00:00", 272383, redemption_type="MILES"),
        issual(286244, "107", "2024-11-14T06:11:01+00:00", 265893, redemption_type="INTOUCH_REWARD"),
        issual(213560, "107", "2024-07-11T12:57:19+00:00", 198827, redemption_type="INTOUCH_REWARD"),
    ]),
    ("rewards_issuals__reward_id.json", [
        failed_issual(93926, "1743490093", "2025-04-01T06:48:13+00:00", 1010, NO_REDEMPTION),
        failed_issual(93925, "1743490092", "2025-04-01T06:48:13+00:00", 1010, NO_REDEMPTION),
        failed_issual(93924, "Transaction-1743490091000", "2025-04-01T06:48:12+00:00", 12005, CONSTRAINT),
        failed_issual(93923, "1743490091", "2025-04-01T06:48:11+00:00", 1010, NO_REDEMPTION),
    ]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "expected"), REWARD_SAMPLES, ids=[name for name, _ in REWARD_SAMPLES])
def test_every_reward_issuals_sample(tmp_path: Path, name: str, expected: list[dict[str, Any]]) -> None:
    """Failed issuals are records (``success`` false, their own code), not errors of the request."""
    run, server = replay(tmp_path, **{REWARDS_ROUTE: Reply(name)})
    assert_records(run.records["reward_issuals"], expected)
    assert len(server.requests("/api_gateway/*")) == 1, '"last": true ends the listing'
    assert run.tap.item_errors.counts == Counter()


def test_every_collected_sample_is_served_to_the_tap() -> None:
    """Each published sample of an endpoint the tap calls is replayed above (the tap searches customers only)."""
    served = set(re.findall(r'\(\s*"(\w+\.(?:json|txt))"', Path(__file__).read_text(encoding="utf-8")))
    assert sorted(set(sample_names()) - served) == ["v2_search_entity__transaction.json"]
