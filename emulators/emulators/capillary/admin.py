"""Admin and inspection API of the Capillary emulator, under ``/_emulator/``.

``CapillaryAdmin`` is the Python-level form (``server.call(server.app[ADMIN].activity, {...})``);
the routes expose the same operations over HTTP. Inspection returns the emulator's canonical
data: plain field names, UTC ISO times, line items expanded, so tests can compare a tap's
output to what the emulator holds.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from emulators.capillary.auth import Authenticator
from emulators.capillary.generator import program
from emulators.capillary.render import Clock, Renderer
from emulators.capillary.store import LoyaltyStore
from emulators.faults import ADMIN_PREFIX

utc = Clock.utc


class CapillaryAdmin:
    def __init__(self, store: LoyaltyStore, auth: Authenticator, renderer: Renderer) -> None:
        self.store = store
        self.auth = auth
        self.renderer = renderer

    def counts(self) -> dict[str, int]:
        return self.store.counts()

    def activity(self, request: dict[str, Any] | None = None, **counts: Any) -> dict[str, Any]:
        """See ``LoyaltyStore.activity``; counts may be given as a dict or as keywords."""
        result = self.store.activity({**(request or {}), **counts})
        self.renderer.entities = self.store.entities
        return {**result, "at": utc(result["at"]), "at_epoch": result["at"]}

    def revoke_tokens(self) -> None:
        self.auth.revoke_all()

    def changed_customers(self, since: int, until: int | None = None) -> list[int]:
        """Ids of customers whose ``updated_on`` is in [since, until] (deleted ones included)."""
        sql = "SELECT id FROM customers WHERE updated_on >= ?" + (" AND updated_on <= ?" if until else "")
        params = [since, until] if until else [since]
        return [r["id"] for r in self.store.select(sql + " ORDER BY id", params)]

    def customer(self, customer_id: int) -> dict[str, Any] | None:
        """One customer and all their loyalty data, normalised (UTC ISO times)."""
        store, render = self.store, self.renderer
        c = store.customer(customer_id)
        if c is None:
            return None
        by_customer = "WHERE customer_id = ? ORDER BY id"
        transactions = store.select(f"SELECT * FROM transactions {by_customer}", (customer_id,))
        by_id = {t["id"]: t for t in transactions}
        return {
            "id": c["id"],
            "status": c["status"],
            "merged_into": c["merged_into"],
            "firstname": c["firstname"],
            "lastname": c["lastname"],
            "email": c["email"],
            "mobile": c["mobile"],
            "external_id": c["external_id"],
            "gender": c["gender"],
            "dob": c["dob"],
            "program_id": c["program_id"],
            "program_name": program(c["program_id"])["name"],
            "current_slab": c["slab"],
            "loyalty_points": c["loyalty_points"],
            "lifetime_points": c["lifetime_points"],
            "lifetime_purchases": c["lifetime_purchases"],
            "fraud_status": c["fraud_status"],
            "registered_on": utc(c["registered_on"]),
            "profile_updated_on": utc(c["profile_updated_on"]),
            "updated_on": utc(c["updated_on"]),
            "registered_store_code": render.store_of(c["registered_till"])["code"],
            "extended_fields": render.customer_extended(c),
            "custom_fields": json.loads(c["custom"]),
            "transactions": [self._transaction(t, by_id.get(t["return_of"])) for t in transactions],
            "ledger": [
                {
                    "id": r["id"],
                    "event_name": r["event_name"],
                    "entry_type": r["entry_type"],
                    "points": r["points"],
                    "program_id": r["program_id"],
                    "transaction_id": r["transaction_id"],
                    "created_on": utc(r["created_on"]),
                }
                for r in store.select(f"SELECT * FROM ledger {by_customer}", (customer_id,))
            ],
            "tier_changes": [
                {
                    "id": t["id"],
                    "program_id": t["program_id"],
                    "from": t["from_slab"],
                    "to": t["to_slab"],
                    "type": t["type"],
                    "changed_on": utc(t["changed_on"]),
                }
                for t in store.select(f"SELECT * FROM tiers {by_customer}", (customer_id,))
            ],
            "redemptions": [
                {
                    "id": r["id"],
                    "redemption_id": r["redemption_id"],
                    "program_id": r["program_id"],
                    "points": r["points"],
                    "bill_number": r["bill_number"],
                    "redeemed_on": utc(r["redeemed_on"]),
                }
                for r in store.select(f"SELECT * FROM redemptions {by_customer}", (customer_id,))
            ],
            "coupons": [
                {
                    "id": k["id"],
                    "series_id": k["series_id"],
                    "code": k["code"],
                    "issued_on": utc(k["issued_on"]),
                    "valid_till": utc(k["valid_till"]),
                    "redeemed_on": utc(k["redeemed_on"]),
                }
                for k in store.select(f"SELECT * FROM coupons {by_customer}", (customer_id,))
            ],
            "rewards": [
                {
                    "id": r["id"],
                    "reward_id": r["reward_id"],
                    "success": bool(r["success"]),
                    "issued_on": utc(r["issued_on"]),
                }
                for r in store.select(f"SELECT * FROM rewards {by_customer}", (customer_id,))
            ],
        }

    def _transaction(self, t: dict[str, Any], parent: dict[str, Any] | None) -> dict[str, Any]:
        till = self.renderer.till(t["till_id"])
        return {
            "id": t["id"],
            "number": t["number"],
            "type": t["type"],
            "return_of": t["return_of"],
            "return_type": t["return_type"],
            "currency": t["currency"],
            "amount": t["amount"],
            "gross_amount": t["gross_amount"],
            "discount": t["discount"],
            "points": t["points"],
            "billing_time": utc(t["billing_time"]),
            "auto_update_time": utc(t["auto_update_time"]),
            "store_code": self.renderer.store_of(t["till_id"])["code"],
            "till_code": till["code"],
            "line_items": self.renderer.lines(t, parent),
        }


ADMIN = web.AppKey("capillary_admin", CapillaryAdmin)


async def _counts(request: web.Request) -> web.Response:
    return web.json_response(request.app[ADMIN].counts())


async def _activity(request: web.Request) -> web.Response:
    try:
        payload = await request.json() if request.can_read_body else {}
        result = request.app[ADMIN].activity(payload)
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(result)


async def _customer(request: web.Request) -> web.Response:
    try:
        customer = request.app[ADMIN].customer(int(request.match_info["customer_id"]))
    except ValueError:
        customer = None
    if customer is None:
        return web.json_response({"error": "no such customer"}, status=404)
    return web.json_response(customer, dumps=lambda v: json.dumps(v, ensure_ascii=False))


async def _changed(request: web.Request) -> web.Response:
    try:
        since = int(request.query["since"])
        until = int(request.query["until"]) if "until" in request.query else None
    except (KeyError, ValueError):
        return web.json_response({"error": "since (and optional until) are epoch seconds"}, status=400)
    return web.json_response({"customer_ids": request.app[ADMIN].changed_customers(since, until)})


def add_admin_routes(app: web.Application) -> None:
    app.router.add_get(f"{ADMIN_PREFIX}/counts", _counts)
    app.router.add_post(f"{ADMIN_PREFIX}/activity", _activity)
    app.router.add_get(f"{ADMIN_PREFIX}/customers/{{customer_id}}", _customer)
    app.router.add_get(f"{ADMIN_PREFIX}/changed-customers", _changed)
