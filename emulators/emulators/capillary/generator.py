"""Deterministic loyalty data: what one customer's history looks like, and bill baskets.

Everything is drawn from ``random.Random`` instances seeded from the configuration seed,
so the same seed and scale give the same rows. Baskets (line items) are not stored: a bill
stores a basket seed and line count, and ``basket()`` re-derives the lines when rendering.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

DAY = 86_400
RETURN_SHARE = 0.08


@cache
def reference() -> dict[str, Any]:
    """Names, programs, stores' locations, products... (``reference.json``)."""
    return json.loads(resources.files(__package__).joinpath("reference.json").read_text(encoding="utf-8"))


def program(program_id: int) -> dict[str, Any]:
    return next(p for p in reference()["programs"] if p["id"] == program_id)


def _price(base: float, currency: str) -> float:
    value = base * reference()["price_multipliers"][currency]
    return float(round(value)) if currency == "INR" else round(value, 2)


def basket(seed: int, line_count: int, currency: str) -> list[dict[str, Any]]:
    """The line items of a regular bill, derived from its basket seed."""
    rng = random.Random(seed)
    products = reference()["products"]
    lines = []
    for serial in range(1, line_count + 1):
        product = products[rng.randrange(len(products))]
        qty = rng.choice((1, 1, 1, 2, 3))
        rate = _price(product["price"], currency)
        value = round(rate * qty, 2)
        discount = round(value * rng.choice((0, 0, 0, 0.05, 0.1)), 2)
        lines.append(
            {
                "serial": serial,
                "item_code": product["item_code"],
                "description": product["description"],
                "category": product["category"],
                "qty": qty,
                "rate": rate,
                "value": value,
                "discount": discount,
                "amount": round(value - discount, 2),
            }
        )
    return lines


def returned_lines(parent_lines: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """The lines a RETURN bill gives back: a non-empty subset of its regular bill's lines."""
    rng = random.Random(seed)
    if len(parent_lines) == 1 or rng.random() < 0.3:
        return parent_lines
    count = rng.randint(1, len(parent_lines) - 1)
    return sorted(rng.sample(parent_lines, count), key=lambda line: line["serial"])


def totals(lines: list[dict[str, Any]]) -> tuple[float, float, float]:
    """(amount, gross amount, discount) of a bill."""
    gross = round(sum(line["value"] for line in lines), 2)
    discount = round(sum(line["discount"] for line in lines), 2)
    return round(gross - discount, 2), gross, discount


@dataclass
class Ids:
    """Next free id per table; ids look like Capillary's (large, distinct ranges)."""

    customer: int = 500_000_001
    transaction: int = 880_000_001
    ledger: int = 600_000_001
    tier_change: int = 1
    redemption: int = 1
    coupon: int = 1_100_000_001
    reward: int = 100_001

    def take(self, name: str) -> int:
        value = getattr(self, name)
        setattr(self, name, value + 1)
        return value


def short_code(rng: random.Random, length: int = 6) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))


def stores(config: Any) -> list[dict[str, Any]]:
    """Stores (type STORE) and their two tills each (type TILL)."""
    rng = random.Random(f"{config.seed}:stores")
    locations = reference()["locations"]
    anchor = config.anchor_epoch
    rows = []
    for index in range(config.stores):
        location = index % len(locations)
        city = locations[location]["city"]
        code = f"{city.lower().replace(' ', '_')}_{index + 1}"
        created = anchor - config.history_days * DAY - rng.randrange(30 * DAY)
        updated = anchor - rng.randrange(config.history_days * DAY)
        store_id = 50_000_001 + index
        active = 0 if index and index % 9 == 0 else 1
        rows.append((store_id, "STORE", code, f"{city} store {index + 1}", None, location, active, created, updated))
        for till in (1, 2):
            rows.append(
                (
                    50_100_001 + index * 2 + till - 1,
                    "TILL",
                    f"{code}.till_{till}",
                    f"{code}.till_{till}",
                    store_id,
                    location,
                    active,
                    created,
                    updated - rng.randrange(DAY),
                )
            )
    return rows


class CustomerFactory:
    """Builds a customer and the whole history of their loyalty activity as table rows."""

    def __init__(self, config: Any, tills: list[tuple[int, int]], ids: Ids) -> None:
        self.config = config
        self.tills = tills  # (till id, location index) of active tills
        self.ids = ids
        self.ref = reference()

    def profile(self, rng: random.Random, customer_id: int, registered_on: int) -> dict[str, Any]:
        ref = self.ref
        first = rng.choice(ref["first_names"])
        last = rng.choice(ref["last_names"])
        till_id, location = rng.choice(self.tills)
        program_id = rng.choice(ref["programs"])["id"]
        has_email, has_mobile = rng.random() > 0.12, rng.random() > 0.12
        if not (has_email or has_mobile):
            has_email = True
        ascii_first = first.encode("ascii", "ignore").decode().lower() or "member"
        place = ref["locations"][location]
        return {
            "id": customer_id,
            "firstname": first,
            "lastname": last,
            "email": f"{ascii_first}.{customer_id}@{rng.choice(ref['email_domains'])}" if has_email else None,
            "mobile": f"91{rng.randrange(7_000_000_000, 9_999_999_999)}" if has_mobile else None,
            "external_id": f"EXT{customer_id}",
            "gender": rng.choice(ref["genders"]),
            "dob": f"{rng.randrange(1950, 2005)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
            "location": location,
            "program_id": program_id,
            "slab": program(program_id)["tiers"][0],
            "status": "ACTIVE",
            "merged_into": None,
            "registered_on": registered_on,
            "registered_till": till_id,
            "profile_updated_on": registered_on,
            "updated_on": registered_on,
            "loyalty_points": 0.0,
            "lifetime_points": 0.0,
            "lifetime_purchases": 0.0,
            "redeemed": 0.0,
            "returned": 0.0,
            "fraud_status": "NOT_FRAUD" if rng.random() < 0.97 else "MARKED",
            "extended": json.dumps(
                {"gender": None, "city": place["city"], "state": place["state"], "country": place["country"]},
                ensure_ascii=False,
            ),
            "custom": json.dumps({"tnc": "yes", "preferred_language": rng.choice(["en", "hi", "de", "ar", "zh"])}),
        }

    def history(self, customer_id: int, rng: random.Random) -> dict[str, list[tuple]]:
        """A customer generated from scratch: profile row plus every event row."""
        config = self.config
        anchor = config.anchor_epoch
        span = config.history_days * DAY
        registered_on = anchor - span + int(rng.random() ** 2 * span * 0.5)
        customer = self.profile(rng, customer_id, registered_on)
        rows: dict[str, list[tuple]] = {k: [] for k in ("transactions", "ledger", "tiers", "redemptions")}
        rows["coupons"], rows["rewards"] = [], []
        self.ledger_event(rows, customer, "CustomerRegistration", "OPENING_BALANCE", 0.0, registered_on, None)

        def times(mean: int) -> list[int]:
            count = rng.randint(0, 2 * mean) if mean else 0
            return [rng.randrange(registered_on + 60, anchor) for _ in range(count)]

        events = [(t, "bill") for t in times(config.transactions_per_customer)]
        events += [(t, "redemption") for t in times(config.redemptions_per_customer)]
        events += [(t, "tier") for t in times(config.tier_changes_per_customer)]
        events += [(t, "ledger") for t in times(config.ledger_entries_per_customer)]
        events += [(t, "coupon") for t in times(config.coupons_per_customer)]
        events += [(t, "reward") for t in times(config.rewards_per_customer)]
        for at, kind in sorted(events):
            self.event(rows, customer, kind, at, rng)
        if rng.random() < 0.3:
            customer["profile_updated_on"] = rng.randrange(registered_on, anchor)
            customer["updated_on"] = max(customer["updated_on"], customer["profile_updated_on"])
        return {"customer": [customer], **rows}

    def event(self, rows: dict[str, list], customer: dict[str, Any], kind: str, at: int, rng: random.Random) -> list:
        """Apply one event to ``customer`` and append its rows; returns the ids it created."""
        created = getattr(self, kind)(rows, customer, at, rng)
        if created:  # e.g. no redemption without points to redeem
            customer["updated_on"] = max(customer["updated_on"], at)
        return created

    def bill(
        self, rows: dict[str, list], customer: dict[str, Any], at: int, rng: random.Random, kind: str = ""
    ) -> list:
        """A bill: REGULAR, or (``kind`` "RETURN", or by chance) a RETURN of an earlier regular bill."""
        returned = {r[4] for r in rows["transactions"] if r[3] == "RETURN"}
        regular = [r for r in rows["transactions"] if r[3] == "REGULAR" and r[0] not in returned]
        if kind == "RETURN" and not regular:
            return []  # nothing left to return
        if regular and (kind == "RETURN" or (not kind and rng.random() < RETURN_SHARE)):
            return self.return_bill(rows, customer, at, rng, rng.choice(regular))
        till_id, location = self.home_till(customer, rng)
        currency = self.ref["locations"][location]["currency"]
        seed, count = rng.randrange(2**31), rng.choice((1, 1, 2, 2, 3, 4, 6))
        amount, gross, discount = totals(basket(seed, count, currency))
        points = round(amount * program(customer["program_id"])["points_per_unit"], 3)
        txn_id = self.ids.take("transaction")
        number = f"BILL-{txn_id}"
        # Some historical bills are updated later (never past the anchor; activity bills are "now").
        anchor = self.config.anchor_epoch
        updated = at if at >= anchor or rng.random() < 0.9 else min(at + rng.randrange(3 * DAY), anchor)
        payment = rng.randrange(len(self.ref["payment_modes"]))
        rows["transactions"].append(
            (txn_id, customer["id"], number, "REGULAR", None, None, till_id, currency, amount, gross, discount,
             points, at, updated, seed, count, payment, "", "NORMAL")
        )  # fmt: skip
        customer["updated_on"] = max(customer["updated_on"], updated)  # a later bill update changes the customer
        customer["lifetime_purchases"] = round(customer["lifetime_purchases"] + amount, 2)
        ledger = self.ledger_event(rows, customer, "TransactionAdd", "CREDIT", points, at, txn_id)
        return [txn_id, ledger]

    def return_bill(self, rows, customer, at, rng, parent) -> list:
        (parent_id, _, number, _, _, _, till_id, currency, _, _, _, parent_points, _, _, seed, count) = parent[:16]
        return_seed = rng.randrange(2**31)
        lines = returned_lines(basket(seed, count, currency), return_seed)
        amount, gross, discount = totals(lines)
        parent_amount = totals(basket(seed, count, currency))[0]
        points = round(parent_points * amount / parent_amount, 3) if parent_amount else 0.0
        points = min(points, customer["loyalty_points"])
        return_type = "FULL" if len(lines) == count else "LINE_ITEM"
        txn_id = self.ids.take("transaction")
        rows["transactions"].append(
            (txn_id, customer["id"], number, "RETURN", parent_id, return_type, till_id, currency, amount, gross,
             discount, -points, at, at, return_seed, len(lines), 0, "Customer return", "NORMAL")
        )  # fmt: skip
        customer["lifetime_purchases"] = round(customer["lifetime_purchases"] - amount, 2)
        customer["returned"] = round(customer["returned"] + points, 3)
        ledger = self.ledger_event(rows, customer, "ReturnBill", "DEBIT", points, at, txn_id)
        return [txn_id, ledger]

    def redemption(self, rows: dict[str, list], customer: dict[str, Any], at: int, rng: random.Random) -> list:
        balance = customer["loyalty_points"]
        if balance < 1:
            return []
        points = float(max(1, int(balance * rng.choice((0.1, 0.25, 0.5, 1.0)))))
        redemption_id = self.ids.take("redemption")
        bills = [r for r in rows["transactions"] if r[12] <= at]
        bill = rng.choice(bills) if bills and rng.random() < 0.6 else None
        till_id, _ = self.home_till(customer, rng)
        rows["redemptions"].append(
            (redemption_id, customer["id"], customer["program_id"], points, bill[0] if bill else None,
             bill[2] if bill else f"RED-{redemption_id}", short_code(rng).upper(), short_code(rng), at, till_id,
             rng.choice(self.ref["redemption_purposes"]), "Redeemed at checkout")
        )  # fmt: skip
        customer["redeemed"] = round(customer["redeemed"] + points, 3)
        ledger = self.ledger_event(rows, customer, "PointsRedemption", "DEBIT", points, at, None)
        return [redemption_id, ledger]

    def tier(self, rows: dict[str, list], customer: dict[str, Any], at: int, rng: random.Random) -> list:
        tiers = program(customer["program_id"])["tiers"]
        current = tiers.index(customer["slab"])
        roll = rng.random()
        if current + 1 < len(tiers) and (roll < 0.55 or current == 0):
            new, kind = current + 1, "UPGRADE"
            notes = f"Upgrading to Slab : Slab[{new + 1}]: Name [{tiers[new]}]"
        elif current > 0 and roll < 0.8:
            new, kind = current - 1, "DOWNGRADE"
            notes = f"points_engine_tier_downgrade purchase: {customer['lifetime_purchases']}"
        else:
            new, kind = current, "RENEW"
            notes = f"points_engine_tier_downgrade purchase: {customer['lifetime_purchases']}"
        till_id, _ = self.home_till(customer, rng)
        change_id = self.ids.take("tier_change")
        rows["tiers"].append(
            (change_id, customer["id"], customer["program_id"], tiers[current], tiers[new], kind, at, till_id, notes)
        )
        customer["slab"] = tiers[new]
        return [change_id]

    def ledger(self, rows: dict[str, list], customer: dict[str, Any], at: int, rng: random.Random) -> list:
        event = rng.choice(self.ref["ledger_events"])
        points = float(rng.choice((25, 50, 100, 250, 350)))
        if event["ledgerEntryType"] == "DEBIT":
            points = min(points, customer["loyalty_points"])
        details = {k: v for k, v in event.items() if k not in ("eventName", "ledgerEntryType")}
        return [
            self.ledger_event(rows, customer, event["eventName"], event["ledgerEntryType"], points, at, None, details)
        ]

    def coupon(self, rows: dict[str, list], customer: dict[str, Any], at: int, rng: random.Random) -> list:
        series = rng.choice(self.ref["coupon_series"])
        till_id, _ = self.home_till(customer, rng)
        coupon_id = self.ids.take("coupon")
        valid_till = at + series["validity_days"] * DAY
        redeemed_on = redeemed_till = redeemed_bill = None
        anchor = self.config.anchor_epoch
        if at < anchor and rng.random() < 0.35:  # historical coupons may be redeemed before the anchor
            redeemed_on = min(at + rng.randrange(series["validity_days"] * DAY), anchor)
            redeemed_till = till_id
            redeemed_bill = f"BILL-C{coupon_id}"
        if redeemed_on:
            customer["updated_on"] = max(customer["updated_on"], redeemed_on)
        code = short_code(rng, 10).upper()
        rows["coupons"].append(
            (coupon_id, customer["id"], series["series_id"], code, at, valid_till, till_id, redeemed_on,
             redeemed_till, redeemed_bill)
        )  # fmt: skip
        return [coupon_id]

    def reward(self, rows: dict[str, list], customer: dict[str, Any], at: int, rng: random.Random) -> list:
        reward = rng.choice(self.ref["rewards"])
        reward_id = self.ids.take("reward")
        success = 1 if rng.random() < 0.9 else 0
        rows["rewards"].append(
            (reward_id, customer["id"], reward["rewardId"], f"TX{rng.randrange(10**6, 10**7)}", at, success,
             short_code(rng))
        )  # fmt: skip
        return [reward_id]

    def ledger_event(self, rows, customer, name, entry_type, points, at, txn_id, details=None) -> int:
        ledger_id = self.ids.take("ledger")
        sign = {"CREDIT": 1, "DEBIT": -1}.get(entry_type, 0)
        customer["loyalty_points"] = round(customer["loyalty_points"] + sign * points, 3)
        if entry_type == "CREDIT":
            customer["lifetime_points"] = round(customer["lifetime_points"] + points, 3)
        till_id = customer["registered_till"]
        if txn_id is not None:
            till_id = next(r[6] for r in reversed(rows["transactions"]) if r[0] == txn_id)
        rows["ledger"].append(
            (ledger_id, customer["id"], name, entry_type, points, customer["program_id"], at, txn_id, till_id,
             json.dumps(details or {}, ensure_ascii=False))
        )  # fmt: skip
        return ledger_id

    def home_till(self, customer: dict[str, Any], rng: random.Random) -> tuple[int, int]:
        """Mostly the customer's home city, sometimes anywhere (travel, other currencies)."""
        local = [t for t in self.tills if t[1] == customer["location"]]
        if local and rng.random() < 0.85:
            return rng.choice(local)
        return rng.choice(self.tills)
