"""Every built-in preset against the tap's stream schemas and the emulator's XDM schemas, values checked."""

from __future__ import annotations

import json
from pathlib import Path

import fastjsonschema
import pytest
import requests
from conftest import SAMPLES, STREAMS, Aep, stream_messages, tap_schema

from target_adobe_aep.mapping import compile_mapping, load_document, missing_source_paths
from target_adobe_aep.xdm_schema import XdmValidator, closed, reduced

NAMESPACES = {"email": "Email", "phone": "Phone", "customer_id": "CapillaryCustomerId"}
STORES_AS_EVENTS = Path(__file__).parent.parent / "examples" / "stores-as-events.json"
EVENT_STREAMS = ("transactions", "points_ledger", "tier_history", "redemptions", "coupons", "reward_issuals")


def _mapping(stream: str, tenant: str = "capillarydemo"):
    document, origin = load_document(stream, None)
    return compile_mapping(stream, document, origin, tenant_id=tenant, identity_namespaces=NAMESPACES)


@pytest.mark.parametrize("stream", STREAMS)
def test_samples_follow_the_tap_schema_and_presets_read_only_declared_fields(stream: str) -> None:
    validate = fastjsonschema.compile(tap_schema(stream))
    for record in SAMPLES[stream]:
        validate(record)
    assert missing_source_paths(_mapping(stream), tap_schema(stream)) == []


def test_all_presets_are_accepted_by_aep(aep: Aep) -> None:
    messages = [m for stream in STREAMS for m in stream_messages(stream, SAMPLES[stream])]
    run = aep.run([*messages, {"type": "STATE", "value": {"done": 1}}])

    assert run.states == [{"done": 1}]
    assert aep.dead_letters() == []
    cfg = aep.server.config
    profiles = aep.stored(cfg.profile_dataset_id)
    events = aep.stored(cfg.event_dataset_id)
    assert len(profiles) == len(SAMPLES["customers"])
    assert len(events) == sum(len(SAMPLES[s]) for s in EVENT_STREAMS)
    assert aep.failed(cfg.profile_dataset_id) == []
    assert aep.failed(cfg.event_dataset_id) == []
    stats = run.target.stats
    assert stats["stores"].skipped == len(SAMPLES["stores"])
    assert stats["stores"].sent == 0
    assert all(stats[s].accepted == len(SAMPLES[s]) for s in ("customers", *EVENT_STREAMS))


def test_customers_preset_values() -> None:
    full, sparse = (_mapping("customers").convert(r) for r in SAMPLES["customers"])
    assert full["identityMap"] == {
        "CapillaryCustomerId": [{"id": "4211", "primary": True, "authenticatedState": "ambiguous"}],
        "Email": [{"id": "zoe.muller@example.com", "primary": False, "authenticatedState": "ambiguous"}],
        "Phone": [{"id": "919876543210", "primary": False, "authenticatedState": "ambiguous"}],
    }
    assert full["person"] == {
        "name": {"firstName": "Zoë", "lastName": "Müller", "fullName": "Zoë Müller"},
        "gender": "female",
    }
    assert full["personalEmail"] == {"address": "Zoe.Muller@Example.com"}
    assert full["mobilePhone"] == {"number": "919876543210"}
    assert full["loyalty"] == {
        "loyaltyID": ["4211"],
        "program": "Default Program",
        "tier": "Gold",
        "points": 1250.5,
        "pointsRedeemed": 2000,
        "expiredPoints": 149.5,
        "lifetimePoints": 3400,
        "lifetimePurchases": 18250.75,
        "joinDate": "2023-02-11T03:45:00Z",
        "cardsDetails": [{"number": "CARD-0001"}],
    }
    assert full["_capillarydemo"]["capillary"] == {
        "customerId": "4211",
        "externalId": "EXT-4211",
        "loyaltyType": "loyalty",
        "registeredOn": "2023-02-11T03:45:00Z",
        "registeredStore": "blr-01",
        "registeredTill": "blr-01-t1",
        "updatedOn": "2024-06-01T12:00:00Z",
        "cardNumbers": ["CARD-0001"],
        "customFields": {"preferred_language": "en", "kids": "2"},
        "extendedFields": {"city": "Bengaluru", "dob_verified": "true"},
    }
    # Nulls, empty strings, empty lists and empty objects are left out at every depth.
    assert "Email" not in sparse["identityMap"]
    assert "personalEmail" not in sparse
    assert sparse["person"] == {"name": {"firstName": "李雷", "fullName": "李雷"}, "gender": "non_specific"}
    assert sparse["loyalty"] == {"loyaltyID": ["4212"], "points": 0, "lifetimePoints": 0}
    assert sparse["_capillarydemo"]["capillary"] == {
        "customerId": "4212",
        "loyaltyType": "non_loyalty",
        "updatedOn": "2024-06-02T00:30:00Z",
    }


def test_transactions_preset_values_and_returns() -> None:
    purchase, refund = (_mapping("transactions").convert(r) for r in SAMPLES["transactions"])
    assert purchase["eventType"] == "commerce.purchases"
    assert purchase["timestamp"] == "2024-05-30T13:15:10Z"
    assert purchase["commerce"] == {
        "purchases": {"value": 1},
        "order": {
            "purchaseID": "BLR-90001",
            "priceTotal": 128.0,
            "discountAmount": 10.0,
            "currencyCode": "INR",
            "lastUpdatedDate": "2024-05-30T13:15:10Z",
            "payments": [
                {"paymentType": "CARD", "paymentAmount": 100.0, "currencyCode": "INR"},
                {"paymentType": "CASH", "paymentAmount": 28.0, "currencyCode": "INR"},
            ],
        },
    }
    assert purchase["productListItems"] == [
        {"SKU": "SKU-TEE-001", "_id": "1", "name": "Organic cotton T-shirt", "quantity": 2, "priceTotal": 38.0,
         "discountAmount": 0, "currencyCode": "INR"},
        {"SKU": "SKU-SHOE-203", "_id": "2", "name": "Running shoes", "quantity": 1, "priceTotal": 90.0,
         "discountAmount": 10.0, "currencyCode": "INR"},
    ]  # fmt: skip
    tenant = purchase["_capillarydemo"]["capillary"]
    assert tenant["customerId"] == "4211"
    assert tenant["transaction"] == {
        "transactionId": "90001",
        "billType": "REGULAR",
        "billNumber": "BLR-90001",
        "storeCode": "blr-01",
        "storeName": "Bengaluru MG Road",
        "tillCode": "blr-01-t1",
        "grossAmount": 138.0,
        "discountAmount": 10.0,
        "netAmount": 128.0,
        "pointsIssued": 6.4,
        "pointsRedeemed": 0,
        "customFields": {"channel": "pos"},
    }
    # A return is a credit memo: no purchase measure, refund totals instead.
    assert refund["eventType"] == "commerce.backofficeCreditMemoIssued"
    assert "purchases" not in refund["commerce"]
    assert refund["commerce"]["order"]["refundTotal"] == 38.0
    assert refund["commerce"]["order"]["returns"] == {"returnID": "90002", "purchaseID": "BLR-90002"}
    assert refund["productListItems"][0]["refundAmount"] == 38.0
    assert refund["productListItems"][0]["returnItem"] == {"returnQuantityReceived": 2}
    assert "returns" not in purchase["commerce"]["order"]
    assert all("returnItem" not in line for line in purchase["productListItems"])
    assert refund["_capillarydemo"]["capillary"]["transaction"]["billType"] == "RETURN"
    assert refund["_capillarydemo"]["capillary"]["transaction"]["notes"] == "size too small"


@pytest.mark.parametrize(
    ("stream", "event_types", "tenant_key", "expected_first"),
    [
        ("points_ledger", ["loyalty.pointsCredited", "loyalty.pointsDebited", "loyalty.pointsDebited"], "pointsLedger",
         {"entryId": "7001-0", "eventName": "TransactionAdd", "entryType": "CREDIT", "points": 6.4,
          "pointsCategory": "REGULAR", "programId": "469", "programName": "Default Program", "transactionId": "90001"}),
        ("tier_history", ["loyalty.tierUpgraded", "loyalty.tierChanged"], "tierChange",
         {"fromTier": "Silver", "toTier": "Gold", "changeType": "UPGRADE", "reason": "Crossed 3000 lifetime points",
          "programId": "469"}),
        ("redemptions", ["loyalty.pointsRedeemed", "loyalty.couponRedeemed"], "redemption",
         {"redemptionId": "RDM-501", "redemptionType": "POINTS", "points": 200, "billNumber": "BLR-90001",
          "transactionId": "90001", "storeCode": "blr-01", "tillCode": "blr-01-t1", "programId": "469"}),
        ("coupons", ["loyalty.couponIssued", "loyalty.couponIssued"], "coupon",
         {"couponId": "3301", "couponCode": "SPIN-7KQ2", "seriesId": "12360", "seriesName": "Spin_The_Wheel",
          "status": "REDEEMED", "issuedOn": "2024-05-02T10:00:00Z", "validTill": "2024-09-29T23:59:59Z",
          "redeemedOn": "2024-06-01T04:31:00Z", "issuedStore": "blr-01"}),
        ("reward_issuals", ["loyalty.rewardIssued", "loyalty.rewardIssueFailed"], "reward",
         {"rewardTransactionId": "880", "rewardId": "38774", "rewardName": "Lounge access", "rewardType": "POINTS",
          "status": "FULFILLED", "issuedOn": "2024-05-31T09:00:01Z"}),
    ],
)  # fmt: skip
def test_loyalty_event_presets(stream: str, event_types: list[str], tenant_key: str, expected_first: dict) -> None:
    mapping = _mapping(stream)
    events = [mapping.convert(r) for r in SAMPLES[stream]]
    assert [e["eventType"] for e in events] == event_types
    first = events[0]
    assert first["identityMap"] == {
        "CapillaryCustomerId": [
            {"id": str(SAMPLES[stream][0]["customer_id"]), "primary": True, "authenticatedState": "ambiguous"}
        ]
    }
    assert first["_capillarydemo"]["capillary"][tenant_key] == expected_first
    assert all(len(e["_id"]) == 64 and e["timestamp"].endswith("Z") for e in events)


def test_points_ledger_timestamp_falls_back_to_created_at() -> None:
    debit = _mapping("points_ledger").convert(SAMPLES["points_ledger"][1])
    assert debit["timestamp"] == "2024-06-01T04:30:02Z"


def test_points_ledger_alternate_currency_entries_keep_their_currency() -> None:
    """An alternate-currency entry (the tap writes points null) is never sent as points."""
    entry = _mapping("points_ledger").convert(SAMPLES["points_ledger"][2])["_capillarydemo"]["capillary"]
    assert entry["pointsLedger"]["alternateCurrency"] == "DocCoin"
    assert entry["pointsLedger"]["alternateCurrencyAmount"] == 10909.09
    assert "points" not in entry["pointsLedger"]


def test_stores_are_counted_not_sent() -> None:
    assert _mapping("stores").target == "none"


def test_every_preset_passes_aep_sync_validation(aep: Aep) -> None:
    """Each preset's envelope, as the target would send it, passes DCS's synchronous validation."""
    messages = [m for stream in STREAMS for m in stream_messages(stream, SAMPLES[stream])]
    dry_run_path = aep.tmp_path / "dry-run"
    aep.run(messages, dry_run=True, dry_run_path=str(dry_run_path), mappings={"stores": str(STORES_AS_EVENTS)})
    token = requests.post(
        aep.config["ims_url"],
        data={k: aep.config[k] for k in ("client_id", "client_secret")} | {"grant_type": "client_credentials"},
        timeout=10,
    ).json()["access_token"]
    envelopes = [json.loads(line) for path in sorted(dry_run_path.glob("*.jsonl")) for line in path.open()]
    assert len(envelopes) == sum(len(SAMPLES[s]) for s in STREAMS)
    for envelope in envelopes:
        response = requests.post(
            aep.config["inlet_url"],
            params={"syncValidation": "true"},
            json=envelope,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert response.json()["syncValidation"] == {"status": "pass"}


def _leaves(node: dict, path: tuple = ()) -> list[tuple]:
    """Paths of the string/number leaves of an XDM entity (list elements by index)."""
    found = []
    for key, value in node.items():
        items = enumerate(value) if isinstance(value, list) else [(key, value)]
        for step, item in items:
            where = (*path, key, step) if isinstance(value, list) else (*path, key)
            if isinstance(item, dict):
                found += _leaves(item, where)
            elif isinstance(item, (str, int, float)) and not isinstance(item, bool):
                found.append(where)
    return found


def _with(entity: dict, path: tuple, value: object) -> dict:
    copy = json.loads(json.dumps(entity))
    node = copy
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return copy


@pytest.mark.parametrize("stream", ["customers", *EVENT_STREAMS])
def test_validators_pruned_to_a_mapping_give_the_whole_schemas_verdicts(aep: Aep, stream: str) -> None:
    """Validation runs against the schema reduced to what the mapping writes: same verdict and message as the
    whole schema for valid entities, wrong types in written fields, missing required fields and extra keys."""
    mapping = _mapping(stream)
    dataset = aep.config[f"{mapping.target}_dataset_id"]
    schema = aep.state.dcs.schema(dataset).body
    whole, pruned = XdmValidator("whole", closed(schema)), XdmValidator("pruned", reduced(schema, mapping.output_tree))
    tenant = mapping.output_tree["_capillarydemo"]
    assert len(json.dumps(reduced(schema, mapping.output_tree))) < len(json.dumps(schema)) / 2

    entities = [mapping.convert(record) for record in SAMPLES[stream]]
    variants = list(entities)
    for entity in entities[:3]:
        variants += [_with(entity, leaf, {"not": "a leaf"}) for leaf in _leaves(entity)]
        variants += [_with(entity, leaf, True) for leaf in _leaves(entity)]
        variants += [_with(entity, ("_capillarydemo", "unknownField"), "x"), _with(entity, ("unknownTop",), 1)]
        variants += [{k: v for k, v in entity.items() if k != key} for key in entity]
    verdicts = [(whole.error(v), pruned.error(v)) for v in variants]

    assert tenant, "the mapping writes tenant fields"
    assert all(full == part for full, part in verdicts), [pair for pair in verdicts if pair[0] != pair[1]][:3]
    assert all(full is None for full, _ in verdicts[: len(entities)])
    assert sum(full is not None for full, _ in verdicts) > len(variants) // 2


def test_validation_on_and_off_send_the_same_bytes(aep: Aep) -> None:
    """Validation is a check: it never writes into the data. This mapping writes fields whose XDM schema has a
    default (person.maritalStatus "not_specified", mobilePhone.status and homeAddress.status "active") from
    fields the records do not have; with validation on, the messages must be byte for byte those without it."""
    document, _ = load_document("customers", None)
    document["fields"] += [
        {"to": "person.maritalStatus", "from": "marital_status"},
        {"to": "mobilePhone.status", "from": "mobile_status"},
        {"to": "homeAddress.status", "from": "address_status"},
        {"to": "homeAddress.city", "from": "extended_fields.city"},
    ]
    written = {}
    for validate in (True, False):
        path = aep.tmp_path / f"dry-run-{validate}"
        aep.run(stream_messages("customers", SAMPLES["customers"]), dry_run=True, dry_run_path=str(path),
                validate_xdm=validate, mappings={"customers": document})  # fmt: skip
        written[validate] = (path / "customers.jsonl").read_bytes()
    assert aep.dead_letters() == []
    assert written[True] == written[False]
    first = json.loads(written[True].splitlines()[0])["body"]["xdmEntity"]
    assert first["homeAddress"] == {"city": "Bengaluru"}
    assert "maritalStatus" not in first["person"]
    assert "status" not in first["mobilePhone"]


@pytest.mark.parametrize(
    ("path", "value", "valid"),
    [
        (("personalEmail", "address"), "john.doe@gmail", True),  # RFC 5321 needs no top-level domain
        (("personalEmail", "address"), "zoë@exämple.com", True),  # RFC 6531
        (("personalEmail", "address"), "john.doe", False),
        (("person", "birthDate"), "1990-02-28", True),
        (("person", "birthDate"), "1990-02-30", False),  # matches a date pattern, is no date
        (("loyalty", "joinDate"), "2024-02-29T10:00:00+05:30", True),
        (("loyalty", "joinDate"), "2023-02-29T10:00:00Z", False),
        (("loyalty", "joinDate"), "2023-01-01 10:00:00Z", False),
    ],
)
def test_formats_are_checked_as_json_schema_defines_them(aep: Aep, path: tuple, value: str, valid: bool) -> None:
    schema = aep.state.dcs.schema(aep.config["profile_dataset_id"]).body
    entity = {"_id": "p-1"}
    node = entity
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    error = XdmValidator("profile", closed(schema)).error(entity)
    assert (error is None) is valid, error


def test_presets_trim_text_as_capillary_sends_it() -> None:
    """Values from Capillary's own customer/get sample (CapDocs references/customer-v11.json): "current_slab":
    "Member Tier ", a next slab "Silver ", an empty "marked_by"; plus a blank first name."""
    record = {**SAMPLES["customers"][0], "first_name": "   ", "last_name": "John", "email": "rita.john@example.com ",
              "current_slab": "Member Tier ", "program_name": " Default Program", "registered_store_code": "webstore ",
              "extended_fields": {"city": "Bangalore ", "marked_by": ""}}  # fmt: skip
    customer = _mapping("customers").convert(record)
    assert customer["person"]["name"] == {"lastName": "John", "fullName": "John"}
    assert customer["loyalty"]["tier"] == "Member Tier"
    assert customer["loyalty"]["program"] == "Default Program"
    assert customer["personalEmail"] == {"address": "rita.john@example.com"}
    capillary = customer["_capillarydemo"]["capillary"]
    assert (capillary["registeredStore"], capillary["extendedFields"]) == ("webstore", {"city": "Bangalore"})
    bill = {**SAMPLES["transactions"][1], "type": "RETURN ", "store_code": " blr-01 ", "note": "  "}
    event = _mapping("transactions").convert(bill)
    assert event["eventType"] == "commerce.backofficeCreditMemoIssued"
    assert event["_capillarydemo"]["capillary"]["transaction"]["storeCode"] == "blr-01"
    assert "notes" not in event["_capillarydemo"]["capillary"]["transaction"]
