"""Rows to Capillary's response shapes, in each API generation's dialect.

v1.1: naive cluster-local times ("2020-04-01 00:00:00"), many numbers and booleans as strings,
wrapped lists (``transactions.transaction[]``). v2: ISO times with the cluster's UTC offset.
Rewards: epoch milliseconds and UTC ISO. Field types follow the doc samples of each endpoint
(they are not uniform: e.g. ``customer/get`` returns ``loyalty_points`` as a number).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from emulators.capillary.generator import basket, program, reference, returned_lines, totals

#: The members of ``billPoints`` the listing's BILL_POINTS table names.
BILL_POINTS_MEMBERS = (
    "pointsBreakup",
    "aggregatedBillPoints",
    "alternateCurrenciesBreakup",
    "aggregatedBillAlternateCurrencies",
)


class Clock:
    """Formats and parses times in the cluster's time zone."""

    def __init__(self, tz_name: str) -> None:
        self.tz = ZoneInfo(tz_name)

    def local(self, epoch: int) -> datetime:
        return datetime.fromtimestamp(epoch, self.tz)

    def v11(self, epoch: int | None) -> str:
        return "" if epoch is None else self.local(epoch).strftime("%Y-%m-%d %H:%M:%S")

    def v2(self, epoch: int | None) -> str | None:
        return None if epoch is None else self.local(epoch).isoformat(timespec="seconds")

    def ledger(self, epoch: int) -> str:
        return self.local(epoch).strftime("%Y-%m-%d %H:%M:%S.0")

    @staticmethod
    def utc(epoch: int | None) -> str | None:
        return None if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @staticmethod
    def utc_millis(epoch: int) -> str:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def parse_local(self, text: str, formats: tuple[str, ...]) -> int:
        """Epoch of a naive cluster-local time in one of ``formats``; ValueError otherwise."""
        for fmt in formats:
            try:
                parsed = datetime.strptime(text, fmt)
            except ValueError:
                continue
            return int(parsed.replace(tzinfo=self.tz).timestamp())
        msg = f"unsupported date format: {text!r}"
        raise ValueError(msg)


def num(value: float) -> str:
    """v1.1 string numbers: integral values without a fraction."""
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def pts(value: float) -> str:
    return f"{value:.3f}"


def fields_list(mapping: dict[str, Any]) -> dict[str, list]:
    return {"field": [{"name": k, "value": "" if v is None else str(v)} for k, v in mapping.items()]}


class Renderer:
    """Builds response bodies from store rows; ``entities`` maps store/till ids to their rows."""

    def __init__(self, clock: Clock, entities: dict[int, dict[str, Any]]) -> None:
        self.clock = clock
        self.entities = entities
        self.ref = reference()

    # -- shared pieces ------------------------------------------------------------------------------------

    def till(self, till_id: int | None) -> dict[str, Any]:
        return self.entities.get(till_id or 0, {"code": "", "name": "", "parent_id": None})

    def store_of(self, till_id: int | None) -> dict[str, Any]:
        return self.entities.get(self.till(till_id).get("parent_id") or 0, {"code": "", "name": ""})

    def code_name(self, entity: dict[str, Any]) -> dict[str, str]:
        return {"code": entity["code"], "name": entity["name"]}

    def v2_entity(self, entity: dict[str, Any]) -> dict[str, Any]:
        currency = self.ref["locations"][entity["location"]]["currency"] if "location" in entity else "INR"
        return {
            "id": entity.get("id"),
            "code": entity["code"],
            "description": entity["name"],
            "name": entity["name"],
            "type": entity.get("type", "STORE"),
            "adminType": "GENERAL",
            "isActive": bool(entity.get("is_active", 1)),
            "isOuEnabled": False,
            "timeZoneId": 191,
            "currencyId": self.ref["currencies"][currency]["id"],
            "languageId": 1,
        }

    @staticmethod
    def customer_extended(customer: dict[str, Any]) -> dict[str, Any]:
        extended = json.loads(customer["extended"])
        extended["gender"] = customer["gender"]
        extended["dob"] = f"{customer['dob']} 00:00:00"
        return extended

    def lines(self, txn: dict[str, Any], parent: dict[str, Any] | None) -> list[dict[str, Any]]:
        if txn["type"] == "RETURN" and parent is not None:
            parent_lines = basket(parent["basket_seed"], parent["line_count"], parent["currency"])
            return returned_lines(parent_lines, txn["basket_seed"])
        return basket(txn["basket_seed"], txn["line_count"], txn["currency"])

    # -- v1.1 customer/get --------------------------------------------------------------------------------

    def v11_customer(self, c: dict[str, Any], extras: dict[str, Any], *, user_id: bool) -> dict[str, Any]:
        """A customer of ``customer/get``: its id only as ``user_id`` and only with ``user_id=true``, as in the
        docs' samples (none has an ``id``)."""
        till = self.till(c["registered_till"])
        store = self.store_of(c["registered_till"])
        body = {
            "firstname": c["firstname"],
            "lastname": c["lastname"],
            "mobile": c["mobile"] or "",
            "email": c["email"] or "",
            "external_id": c["external_id"],
            "lifetime_points": c["lifetime_points"],
            "lifetime_purchases": c["lifetime_purchases"],
            "loyalty_points": c["loyalty_points"],
            "current_slab": c["slab"],
            "registered_on": self.clock.v11(c["registered_on"]),
            "updated_on": self.clock.v11(c["updated_on"]),
            "type": "LOYALTY",
            "source": "instore",
            "identifiers": [],
            "gender": None,
            "registered_by": store["name"],
            "registered_store": self.code_name(store),
            "registered_till": self.code_name(till),
            "user_groups2": [],
            "fraud_details": {"status": c["fraud_status"], "marked_by": "", "modified_on": "", "reason": ""},
            "trackers": "",
            **({"user_id": str(c["id"])} if user_id else {}),
            "current_nps_status": None,
            "custom_fields": fields_list(json.loads(c["custom"])),
            "extended_fields": fields_list(self.customer_extended(c)),
            "transactions": {"transaction": extras.get("transactions", [])},
            "coupons": {"coupon": extras.get("coupons", [])},
            "notes": [],
            "points_summaries": {"points_summary": extras.get("points_summary", [])},
            "item_status": self.v11_item_status(True, "1000", "Customer successfully retrieved"),
        }
        if "slab_history" in extras:
            body["slab_history"] = {"history": extras["slab_history"]}
        return body

    @staticmethod
    def v11_item_status(success: bool, code: str, message: str) -> dict[str, Any]:
        return {
            "success": "true" if success else "false",
            "code": code,
            "message": message,
            "warnings": {"warning": []},
        }

    def v11_slab_change(self, t: dict[str, Any]) -> dict[str, Any]:
        return {
            "to": t["to_slab"],
            "from": t["from_slab"],
            "store": self.code_name(self.store_of(t["till_id"])),
            "type": t["type"],
            "changed_on": self.clock.v11(t["changed_on"]),
            "notes": t["notes"],
            "program_id": str(t["program_id"]),
        }

    def v11_points_summary(self, c: dict[str, Any], expiry: int) -> dict[str, Any]:
        tiers = program(c["program_id"])["tiers"]
        index = tiers.index(c["slab"])
        has_next = index + 1 < len(tiers)
        return {
            "programId": str(c["program_id"]),
            "redeemed": num(c["redeemed"]),
            "expired": "0",
            "returned": num(c["returned"]),
            "adjusted": "0",
            "lifetimePoints": num(c["lifetime_points"]),
            "loyaltyPoints": num(c["loyalty_points"]),
            "cumulativePurchases": num(c["lifetime_purchases"]),
            "currentSlab": c["slab"],
            "nextSlab": tiers[index + 1] if has_next else "",
            "nextSlabSerialNumber": str(index + 2) if has_next else "",
            "nextSlabDescription": tiers[index + 1] if has_next else "",
            "slabSNo": str(index + 1),
            "slabExpiryDate": self.clock.v11(expiry),
            "totalPoints": "",
        }

    def v11_customer_transaction(self, t: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(t["id"]),
            "number": t["number"],
            "type": t["type"],
            "created_date": self.clock.v11(t["billing_time"]),
            "store": self.till(t["till_id"])["code"],
        }

    def v11_customer_coupon(self, k: dict[str, Any]) -> dict[str, Any]:
        series = self.series(k["series_id"])
        return {
            "id": str(k["id"]),
            "series_id": str(k["series_id"]),
            "code": k["code"],
            "description": series["description"],
            "created_date": self.clock.v11(k["issued_on"]),
            "valid_till": self.clock.v11(k["valid_till"]),
            "redeemed": "true" if k["redeemed_on"] else "false",
            "same_user_multiple_redeem": "false",
        }

    def series(self, series_id: int) -> dict[str, Any]:
        return next(s for s in self.ref["coupon_series"] if s["series_id"] == series_id)

    # -- v1.1 customer/coupons ----------------------------------------------------------------------------

    def v11_coupon(self, k: dict[str, Any]) -> dict[str, Any]:
        series = self.series(k["series_id"])
        body = {
            "id": str(k["id"]),
            "series_id": str(k["series_id"]),
            "series_name": series["series_name"],
            "redemption_count": 1 if k["redeemed_on"] else 0,
            # Capillary's sample: created_date is UTC ISO with millis, valid_till naive local.
            "created_date": self.clock.utc_millis(k["issued_on"]),
            "valid_till": self.clock.v11(k["valid_till"]),
            "code": k["code"],
            "transaction_number": None,
            "issued_at": self.code_name(self.store_of(k["issued_till"])),
            "purpose": "",
            "custom_properties": {"custom_property": []},
            "redemptions": {},
        }
        if k["redeemed_on"]:
            body["redemptions"] = {
                "redemption": [
                    {
                        "id": str(k["id"] - 1_000_000_000),
                        "date": self.clock.utc_millis(k["redeemed_on"]),
                        "transaction_number": k["redeemed_bill"],
                        "redeemed_at": self.code_name(self.store_of(k["redeemed_till"])),
                    }
                ]
            }
        return body

    def v11_coupon_redemption(self, k: dict[str, Any], row_id: int) -> dict[str, Any]:
        """A coupon row: the keys of the endpoint's response table (its sample's coupon part is empty)."""
        series = self.series(k["series_id"])
        return {
            "id": row_id,
            "code": k["code"],
            "series_id": k["series_id"],
            "description": series["description"],
            "transaction_number": k["redeemed_bill"],
            "redeemed_time": self.clock.v11(k["redeemed_on"]),
            "redeemed_at": self.till(k["redeemed_till"])["code"],
        }

    # -- v1.1 customer/redemptions ------------------------------------------------------------------------

    def v11_points_redemption(self, r: dict[str, Any], row_id: int) -> dict[str, Any]:
        till = self.till(r["till_id"])
        return {
            "id": row_id,
            "program_id": r["program_id"],
            "points_redeemed": int(r["points"]) if float(r["points"]).is_integer() else r["points"],
            "transaction_number": r["bill_number"],
            "bill_id": str(r["transaction_id"]) if r["transaction_id"] else "-1",
            "validation_code": r["validation_code"],
            "redeemed_time": self.clock.v11(r["redeemed_on"]),
            "redeemed_at": till["code"],
            "redemption_purpose": r["purpose"],
            "notes": r["notes"],
            "external_reference_number": "",
            "redemption_id": r["redemption_id"],
            "redeemed_store": self.code_name(self.store_of(r["till_id"])),
            "redeemed_till": self.code_name(till),
            "custom_fields": {"field": []},
            "reversals": [],
            "redemption_breakup_by_program": [],
        }

    # -- v1.1 organization/entities -----------------------------------------------------------------------

    def v11_entity(self, e: dict[str, Any]) -> dict[str, Any]:
        place = self.ref["locations"][e["location"]]
        currency = self.ref["currencies"][place["currency"]]
        local_offset = datetime.fromtimestamp(e["last_updated_on"], ZoneInfo(place["timezone"])).strftime("%z")
        return {
            "item_status": {"success": "true", "code": 3200, "message": "Entity search successful"},
            "id": str(e["id"]),
            "is_active": str(e["is_active"]),
            "code": e["code"],
            "name": e["name"],
            "description": e["name"],
            "last_updated_by": "50154735",
            "last_updated_on": self.clock.v11(e["last_updated_on"]),
            "custom_fields": {"field": [{"name": "city", "value": place["city"]}]},
            "language_translations": {"field": []},
            "time_zone_id": "0",
            "currency_id": str(currency["id"]),
            "language_id": "0",
            "timezones": {
                "base_timezone": {"label": place["timezone"], "offset": f"{local_offset[:3]}:{local_offset[3:]}"}
            },
            "currencies": {"base_currency": {"symbol": currency["symbol"], "label": place["currency"]}},
            "language_code": "",
            "language_locale": place["country"],
            "languages": {"base_language": {"lang": "", "locale": place["country"]}},
            "parent": {},  # as in the docs' sample (a till's): the keys of a filled one are not documented
            "country_code": place["country"],
            "username": e["code"] if e["type"] == "TILL" else "",
            "last_login": "",
            "parent_external_id": "",
            "parent_external_id_1": "",
            "parent_external_id_2": "",
            "type": e["type"],
        }

    # -- v2 transactions ----------------------------------------------------------------------------------

    def v2_transaction_summary(self, t: dict[str, Any], embed: set[str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": t["id"],
            "customerId": t["customer_id"],
            "loyaltyLogId": t["id"],
            "billingTime": self.clock.v2(t["billing_time"]),
            "billNumber": t["number"],
            "type": t["type"],
            "notes": t["notes"],
            "amount": t["amount"],
            "grossAmount": t["gross_amount"],
            "discount": t["discount"],
            "outlierStatus": t["outlier_status"],
            # The tables list no autoUpdateTime (ATTRIBUTION's modifiedDate is there) and no currency.
        }
        if t["type"] == "RETURN":
            body["returnType"] = t["return_type"]
        store = self.store_of(t["till_id"])
        if "BILL_STORE_DETAILS" in embed:
            body["billingStore"] = self.v2_entity(store)
        if "BILL_EF" in embed:
            body["extendedFields"] = self.bill_extended(t)
        if "BILL_CF" in embed:
            body["customFields"] = {"channel": "instore"}
        if "ATTRIBUTION" in embed:
            body["attribution"] = self.attribution(t)
        if "PAYMENT_MODES" in embed:
            body["paymentModes"] = self.payment_modes(t)
        if "CREDIT_NOTES" in embed:
            body["creditNotes"] = []
        if "BILL_POINTS" in embed:
            body["billPoints"] = self.bill_points()
        return body

    def bill_extended(self, t: dict[str, Any]) -> dict[str, Any]:
        return {"amount_excluding_tax": round(t["amount"] / 1.18, 2)}

    def attribution(self, t: dict[str, Any]) -> dict[str, Any]:
        till = dict(self.till(t["till_id"]))
        return {
            "createDate": self.clock.v2(t["billing_time"]),
            "createdBy": self.v2_entity(till),
            "modifiedBy": {},
            "modifiedDate": self.clock.v2(t["auto_update_time"]),
        }

    def payment_modes(self, t: dict[str, Any]) -> list[dict[str, Any]]:
        if t["type"] == "RETURN":
            return []
        mode = self.ref["payment_modes"][t["payment_mode"]]
        return [
            {
                "amount": t["amount"],
                "attributes": [],
                "id": t["id"] * 10,
                "mode": mode["mode"],
                "notes": "",
                "orgPaymentModeId": mode["org_payment_mode_id"],
            }
        ]

    @staticmethod
    def bill_points() -> dict[str, Any]:
        """``embed=BILL_POINTS``: the table names billPoints' four members but not what they hold, so they are
        served empty (emulators/README.md); a bill's points are in the points ledger."""
        return {member: [] for member in BILL_POINTS_MEMBERS}

    def v2_transaction(self, t: dict[str, Any], parent: dict[str, Any] | None, tenders: bool) -> dict[str, Any]:
        lines = self.lines(t, parent)
        amount, gross, discount = totals(lines)
        store = self.store_of(t["till_id"])
        return_details: dict[str, Any] = {"canceled": False}
        if t["type"] == "RETURN":
            return_details["returnType"] = t["return_type"]
        body = {
            "attribution": self.attribution(t),
            "billDetails": {
                "amount": amount,
                "billingStore": self.v2_entity(store),
                "billNumber": t["number"],
                "billingTime": self.clock.v2(t["billing_time"]),
                "discount": discount,
                "grossAmount": gross,
                "note": t["notes"],
                "returnDetails": return_details,
                "niReturnDetails": {},
                "invalidBill": False,
            },
            "customFields": {"channel": "instore"},
            "customerId": t["customer_id"],
            "id": t["id"],
            "lineItems": [self.v2_line(t, line) for line in lines],
            "outlierStatus": t["outlier_status"],
            "type": t["type"],
            "lifeTimePurchases": 0,
            "ignorePoints": False,
            "extendedFields": self.bill_extended(t),
            "autoUpdateTime": self.clock.v2(t["auto_update_time"]),
            "niReturnDetails": {},
            "basketSize": float(sum(line["qty"] for line in lines)),
            "returnDetails": return_details,
            "warnings": [],
        }
        if tenders:
            body["paymentModes"] = self.payment_modes(t)
        return body

    @staticmethod
    def v2_line(t: dict[str, Any], line: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": t["id"] * 100 + line["serial"],
            "customerId": 0,
            "details": {
                "amount": line["amount"],
                "description": line["description"],
                "discount": line["discount"],
                "itemCode": line["item_code"],
                "qty": float(line["qty"]),
                "rate": line["rate"],
                "serial": line["serial"],
                "value": line["value"],
                "returnable": True,
                "returnableDays": -1,
                "attributes": {"category": line["category"]},
                "extendedFields": {},
                "attributesSet": [{"category": line["category"]}],
            },
            "outlierStatus": "NORMAL",
            "returnDetails": {},
            "valid": True,
            "returnLineItemsDtos": [],
            "niReturnLineItemsDtos": [],
            "addonDetails": [],
            "splitItemsDetails": [],
            "niReturn": False,
        }

    # -- v2 points ledger ---------------------------------------------------------------------------------

    def ledger_entry(self, row: dict[str, Any], txn: dict[str, Any] | None) -> dict[str, Any]:
        prog = program(row["program_id"])
        till = self.till(row["till_id"])
        store = self.store_of(row["till_id"])
        details = json.loads(row["details"] or "{}")
        event_details: dict[str, Any] = {}
        if "promotionName" in details:
            event_details = {
                "eventDisplayName": details["promotionName"],
                "promotionName": details["promotionName"],
                "promotionDescription": details["promotionName"],
                "promotionIdentifier": f"promo-{row['id']}",
                "promotionId": row["id"] % 1_000_000,
                "eventDate": self.clock.ledger(row["created_on"]),
            }
        elif "reason" in details:
            event_details = {"reason": details["reason"]}
        elif txn is not None:
            event_details = {"eventDate": self.clock.ledger(row["created_on"])}
        sign = {"CREDIT": 1, "DEBIT": -1}.get(row["entry_type"], 0)
        return {
            "eventLogId": row["id"],
            "eventName": row["event_name"],
            "customerId": row["customer_id"],
            "ledgerCreatedDate": self.clock.ledger(row["created_on"]),
            "customerDetails": None,
            "entryDetails": [
                {
                    "ledgerEntryType": row["entry_type"],
                    "points": pts(row["points"]),
                    "pointsCategory": "Main",
                    "programName": prog["name"],
                    "programId": prog["id"],
                }
            ],
            "netPointsOnEvent": pts(sign * row["points"]),
            "transactionDetails": {}
            if txn is None
            else {
                "transactionId": txn["id"],
                "transactionNumber": txn["number"],
                "date": self.clock.ledger(txn["billing_time"]),
                "amount": txn["amount"],
                "grossBillAmount": txn["gross_amount"],
                "source": "instore",
            },
            "store": store["name"],
            "storeCode": store["code"],
            "tillCode": till["code"],
            "eventDetails": event_details,
            "sourceProgramId": prog["id"],
            "sourceProgramName": prog["name"],
            "orgId": None,
        }

    # -- rewards ------------------------------------------------------------------------------------------

    def reward_issual(self, r: dict[str, Any]) -> dict[str, Any]:
        reward = next(x for x in self.ref["rewards"] if x["rewardId"] == r["reward_id"])
        ok = bool(r["success"])
        issued = self.clock.utc(r["issued_on"])
        return {
            "rewardTransactionId": str(r["id"]),
            "rewardIssueRefId": r["ref_id"],
            "rewardTransactionDate": r["issued_on"] * 1000,
            "status": {
                "success": ok,
                "code": 200 if ok else 500,
                "message": "Reward issued successfully" if ok else "Reward issue failed: insufficient points",
            },
            "rewardDetails": {
                "rewardId": reward["rewardId"],
                "languageCode": "en",
                "name": reward["name"],
                "description": reward["description"],
                "termNConditionsId": f"tnc-{reward['rewardId']}",
                "termNConditionsUrl": f"https://rewards.example.com/tnc/{reward['rewardId']}.html",
                "imageId": f"img-{reward['rewardId']}",
                "imageUrl": f"https://rewards.example.com/img/{reward['rewardId']}.jpeg",
                "thumbnailId": f"thumb-{reward['rewardId']}",
                "thumbnailUrl": f"https://rewards.example.com/thumb/{reward['rewardId']}.jpeg",
                "enabled": True,
                "groups": [],
                "rewardRank": 2,
            },
            "ownerType": None,
            "ownerId": "",
            "pointsRedemptionRefIds": [r["points_ref"]] if ok else [],
            "fulfillmentStatus": None,
            "redemptionType": None,
            "eventDateTime": issued,
            "issueDateTime": issued,
        }
