"""The emulated org's data in SQLite: generation (streamed, bounded memory), queries, activity.

Times are stored as UTC epoch seconds; rendering converts them to the cluster's dialects.
A customer's ``updated_on`` moves whenever their profile or loyalty state changes (bill,
ledger entry, tier change, redemption, coupon, reward): that is what entity search's
``lastUpdatedOn`` filters on, so incremental extraction can discover changed customers.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import tempfile
import time
from typing import Any

from emulators.capillary.generator import CustomerFactory, Ids, stores

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entities (
    id INTEGER PRIMARY KEY, type TEXT NOT NULL, code TEXT NOT NULL, name TEXT NOT NULL, parent_id INTEGER,
    location INTEGER NOT NULL, is_active INTEGER NOT NULL, created_on INTEGER NOT NULL,
    last_updated_on INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
    id INTEGER PRIMARY KEY, firstname TEXT, lastname TEXT, email TEXT, mobile TEXT, external_id TEXT, gender TEXT,
    dob TEXT, location INTEGER, program_id INTEGER, slab TEXT, status TEXT, merged_into INTEGER,
    registered_on INTEGER, registered_till INTEGER, profile_updated_on INTEGER, updated_on INTEGER,
    loyalty_points REAL, lifetime_points REAL, lifetime_purchases REAL, redeemed REAL, returned REAL,
    fraud_status TEXT, extended TEXT, custom TEXT);
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, number TEXT NOT NULL, type TEXT NOT NULL,
    return_of INTEGER, return_type TEXT, till_id INTEGER NOT NULL, currency TEXT NOT NULL, amount REAL,
    gross_amount REAL, discount REAL, points REAL, billing_time INTEGER NOT NULL, auto_update_time INTEGER NOT NULL,
    basket_seed INTEGER NOT NULL, line_count INTEGER NOT NULL, payment_mode INTEGER, notes TEXT,
    outlier_status TEXT);
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, event_name TEXT NOT NULL, entry_type TEXT NOT NULL,
    points REAL NOT NULL, program_id INTEGER NOT NULL, created_on INTEGER NOT NULL, transaction_id INTEGER,
    till_id INTEGER, details TEXT);
CREATE TABLE IF NOT EXISTS tiers (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, program_id INTEGER NOT NULL, from_slab TEXT,
    to_slab TEXT, type TEXT, changed_on INTEGER NOT NULL, till_id INTEGER, notes TEXT);
CREATE TABLE IF NOT EXISTS redemptions (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, program_id INTEGER, points REAL, transaction_id INTEGER,
    bill_number TEXT, validation_code TEXT, redemption_id TEXT, redeemed_on INTEGER NOT NULL, till_id INTEGER,
    purpose TEXT, notes TEXT);
CREATE TABLE IF NOT EXISTS coupons (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, series_id INTEGER, code TEXT, issued_on INTEGER NOT NULL,
    valid_till INTEGER, issued_till INTEGER, redeemed_on INTEGER, redeemed_till INTEGER, redeemed_bill TEXT);
CREATE TABLE IF NOT EXISTS rewards (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, reward_id INTEGER, ref_id TEXT, issued_on INTEGER NOT NULL,
    success INTEGER, points_ref TEXT);
"""

# Created after the bulk load (faster inserts); one per column the API filters or sorts on.
INDEXES = """
CREATE INDEX IF NOT EXISTS entities_updated ON entities(last_updated_on);
CREATE INDEX IF NOT EXISTS customers_updated_status ON customers(updated_on, status);  -- search pages and totals
CREATE INDEX IF NOT EXISTS customers_registered ON customers(registered_on);
CREATE INDEX IF NOT EXISTS customers_email ON customers(email);
CREATE INDEX IF NOT EXISTS customers_mobile ON customers(mobile);
CREATE INDEX IF NOT EXISTS customers_external ON customers(external_id);
CREATE INDEX IF NOT EXISTS transactions_customer ON transactions(customer_id, billing_time);
CREATE INDEX IF NOT EXISTS transactions_billing ON transactions(billing_time);
CREATE INDEX IF NOT EXISTS transactions_updated ON transactions(auto_update_time);
CREATE INDEX IF NOT EXISTS transactions_number ON transactions(number);
CREATE INDEX IF NOT EXISTS ledger_customer ON ledger(customer_id, created_on);
CREATE INDEX IF NOT EXISTS ledger_created ON ledger(created_on);
CREATE INDEX IF NOT EXISTS tiers_customer ON tiers(customer_id, changed_on);
CREATE INDEX IF NOT EXISTS redemptions_customer ON redemptions(customer_id, redeemed_on);
CREATE INDEX IF NOT EXISTS coupons_customer ON coupons(customer_id, issued_on);
CREATE INDEX IF NOT EXISTS rewards_customer ON rewards(customer_id, issued_on);
"""

CUSTOMER_COLUMNS = (
    "id",
    "firstname",
    "lastname",
    "email",
    "mobile",
    "external_id",
    "gender",
    "dob",
    "location",
    "program_id",
    "slab",
    "status",
    "merged_into",
    "registered_on",
    "registered_till",
    "profile_updated_on",
    "updated_on",
    "loyalty_points",
    "lifetime_points",
    "lifetime_purchases",
    "redeemed",
    "returned",
    "fraud_status",
    "extended",
    "custom",
)
TABLE_WIDTH = {
    "entities": 9,
    "transactions": 19,
    "ledger": 10,
    "tiers": 9,
    "redemptions": 12,
    "coupons": 10,
    "rewards": 7,
}
EVENT_TABLES = ("transactions", "ledger", "tiers", "redemptions", "coupons", "rewards")
CHUNK = 20_000
# activity request field -> (factory event, kind passed to it)
ACTIVITY_EVENTS = {
    "new_transactions": ("bill", "REGULAR"),
    "new_returns": ("bill", "RETURN"),
    "ledger_entries": ("ledger", ""),
    "tier_changes": ("tier", ""),
    "redemptions": ("redemption", ""),
    "coupons": ("coupon", ""),
    "rewards": ("reward", ""),
}


class LoyaltyStore:
    """SQLite-backed data of one emulated org. Use from one thread at a time (the server loop)."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self._owns_file = config.db_path is None
        if self._owns_file:
            handle, self.path = tempfile.mkstemp(prefix="capillary-emulator-", suffix=".sqlite")
            os.close(handle)
        else:
            self.path = config.db_path
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA cache_size=-16000;")
        self.db.executescript(SCHEMA)
        fingerprint = json.dumps(config.scale(), sort_keys=True)
        if self._meta("scale") != fingerprint:
            self._generate()
            self._set_meta("scale", fingerprint)
        self.entities = {row["id"]: dict(row) for row in self.db.execute("SELECT * FROM entities")}
        self.data_version = 0  # bumped by every change after generation (drops the response cache)

    def close(self) -> None:
        self.db.close()
        if self._owns_file:
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.path + suffix):
                    os.remove(self.path + suffix)

    # -- generation -------------------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _insert(self, table: str, rows: list[tuple]) -> None:
        if not rows:
            return
        if table == "customers":
            marks = ", ".join(f":{c}" for c in CUSTOMER_COLUMNS)
            self.db.executemany(f"INSERT INTO customers ({', '.join(CUSTOMER_COLUMNS)}) VALUES ({marks})", rows)
        else:
            marks = ", ".join("?" * TABLE_WIDTH[table])
            self.db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)

    def _generate(self) -> None:
        """Fill the tables from the seed, streaming rows in chunks so memory stays bounded."""
        config = self.config
        db = self.db
        db.execute("BEGIN")
        for table in ("entities", "customers", *EVENT_TABLES):
            db.execute(f"DELETE FROM {table}")
        entity_rows = stores(config)
        self._insert("entities", entity_rows)
        tills = [(r[0], r[5]) for r in entity_rows if r[1] == "TILL" and r[6]]
        ids = Ids()
        factory = CustomerFactory(config, tills, ids)
        buffers: dict[str, list] = {t: [] for t in ("customers", *EVENT_TABLES)}
        pending = 0
        status_rng = random.Random(f"{config.seed}:status")
        for index in range(config.customers):
            rng = random.Random(f"{config.seed}:customer:{index}")
            history = factory.history(ids.take("customer"), rng)
            customer = history.pop("customer")[0]
            roll = status_rng.random()
            if index and roll < config.merged_customer_rate:
                customer["status"] = "MERGED"
                customer["merged_into"] = customer["id"] - 1 - status_rng.randrange(min(index, 50))
            elif index and roll < config.merged_customer_rate + config.deleted_customer_rate:
                customer["status"] = "DELETED"
            buffers["customers"].append(customer)
            for table, rows in history.items():
                buffers[table].extend(rows)
                pending += len(rows)
            if pending >= CHUNK:
                self._flush(buffers)
                pending = 0
        self._flush(buffers)
        self._set_meta("ids", json.dumps(vars(ids)))
        self._set_meta("activity_runs", "0")
        db.execute("COMMIT")
        db.executescript(INDEXES)
        db.execute("ANALYZE")

    def _flush(self, buffers: dict[str, list]) -> None:
        for table, rows in buffers.items():
            self._insert(table, rows)
            rows.clear()

    # -- activity "now" -----------------------------------------------------------------------------------

    def activity(self, request: dict[str, Any]) -> dict[str, Any]:
        """New and changed data stamped ``at`` (default: now). Returns exactly what was added or changed.

        ``request`` counts: new_customers, updated_customers, new_transactions, new_returns,
        ledger_entries, tier_changes, redemptions, coupons, rewards, store_updates; optional
        ``at`` (epoch seconds) and ``customer_ids`` (restrict changes to these customers).
        """
        known = {"new_customers", "updated_customers", "store_updates", "at", "customer_ids", *ACTIVITY_EVENTS}
        unknown = set(request) - known
        if unknown:
            msg = f"unknown activity fields: {sorted(unknown)}"
            raise ValueError(msg)
        db = self.db
        runs = int(self._meta("activity_runs") or 0) + 1
        rng = random.Random(f"{self.config.seed}:activity:{runs}")
        latest = db.execute("SELECT MAX(updated_on) FROM customers").fetchone()[0] or 0
        at = int(request.get("at") or max(time.time(), latest + 1))
        ids = Ids(**json.loads(self._meta("ids") or "{}"))
        tills = [(e["id"], e["location"]) for e in self.entities.values() if e["type"] == "TILL" and e["is_active"]]
        factory = CustomerFactory(self.config, tills, ids)
        result: dict[str, Any] = {"at": at}
        changed: set[int] = set()
        db.execute("BEGIN")
        added = []
        for _ in range(int(request.get("new_customers", 0))):
            customer = factory.profile(rng, ids.take("customer"), at)
            rows = {t: [] for t in EVENT_TABLES}
            factory.ledger_event(rows, customer, "CustomerRegistration", "OPENING_BALANCE", 0.0, at, None)
            self._insert("customers", [customer])
            self._insert("ledger", rows["ledger"])
            added.append(customer["id"])
        result["customers_added"] = added
        changed.update(added)
        pool = request.get("customer_ids") or [
            r[0] for r in db.execute("SELECT id FROM customers WHERE status = 'ACTIVE' ORDER BY id")
        ]
        updated = []
        for _ in range(int(request.get("updated_customers", 0))):
            customer_id = rng.choice(pool)
            place = rng.randrange(len(factory.ref["locations"]))
            extended = json.loads(self._customer_row(customer_id)["extended"])
            extended["city"] = factory.ref["locations"][place]["city"]
            db.execute(
                "UPDATE customers SET lastname = ?, extended = ?, profile_updated_on = ?, updated_on = ? WHERE id = ?",
                (rng.choice(factory.ref["last_names"]), json.dumps(extended, ensure_ascii=False), at, at, customer_id),
            )
            updated.append(customer_id)
        result["customers_updated"] = sorted(set(updated))
        changed.update(updated)
        ledger_added = [ledger for customer_id in added for ledger in self._ids("ledger", customer_id)]
        for field, (event, kind) in ACTIVITY_EVENTS.items():
            created_ids = []
            for _ in range(int(request.get(field, 0))):
                customer_id = rng.choice(pool)
                created = self._customer_event(factory, customer_id, event, kind, at, rng)
                if not created:  # e.g. a redemption without points to redeem
                    continue
                created_ids.append(created[0])
                ledger_added.extend(created if event == "ledger" else created[1:])
                changed.add(customer_id)
            result[field.removeprefix("new_") + "_added"] = created_ids
        result["ledger_added"] = ledger_added
        stores_updated = []
        store_ids = sorted(e for e in self.entities if self.entities[e]["type"] == "STORE")
        for _ in range(int(request.get("store_updates", 0))):
            store_id = rng.choice(store_ids)
            db.execute(
                "UPDATE entities SET last_updated_on = ? WHERE id = ? OR parent_id = ?", (at, store_id, store_id)
            )
            stores_updated.append(store_id)
        result["stores_updated"] = sorted(set(stores_updated))
        result["changed_customers"] = sorted(changed)
        self._set_meta("ids", json.dumps(vars(ids)))
        self._set_meta("activity_runs", str(runs))
        db.execute("COMMIT")
        self.data_version += 1
        self.entities = {row["id"]: dict(row) for row in db.execute("SELECT * FROM entities")}
        return result

    def _customer_event(self, factory, customer_id, event, kind, at, rng) -> list:
        customer = dict(self._customer_row(customer_id))
        rows: dict[str, list] = {t: [] for t in EVENT_TABLES}
        rows["transactions"] = [
            tuple(r) for r in self.db.execute("SELECT * FROM transactions WHERE customer_id = ?", (customer_id,))
        ]
        before = {t: len(rows[t]) for t in EVENT_TABLES}
        method = getattr(factory, event)
        created = method(rows, customer, at, rng, kind) if event == "bill" else method(rows, customer, at, rng)
        if not created:
            return []
        customer["updated_on"] = at
        for table in EVENT_TABLES:
            self._insert(table, rows[table][before[table] :])
        assignments = ", ".join(f"{c} = :{c}" for c in CUSTOMER_COLUMNS[1:])
        self.db.execute(f"UPDATE customers SET {assignments} WHERE id = :id", customer)
        return created

    # -- queries ---------------------------------------------------------------------------------------------

    def _customer_row(self, customer_id: int) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM customers WHERE id = ?", (customer_id,)).fetchone()

    def customer(self, customer_id: int) -> dict[str, Any] | None:
        row = self._customer_row(customer_id)
        return dict(row) if row else None

    def find_customer(self, identifier: str, value: str) -> dict[str, Any] | None:
        """By ``id``, ``email``, ``mobile`` or ``external_id``."""
        column = {"id": "id", "email": "email", "mobile": "mobile", "external_id": "external_id"}[identifier]
        if column == "id":
            try:
                return self.customer(int(value))
            except ValueError:
                return None
        row = self.db.execute(f"SELECT * FROM customers WHERE {column} = ? LIMIT 1", (value,)).fetchone()
        return dict(row) if row else None

    def select(self, sql: str, params: tuple | list = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute(sql, params)]

    def scalar(self, sql: str, params: tuple | list = ()) -> Any:
        return self.db.execute(sql, params).fetchone()[0]

    def counts(self) -> dict[str, int]:
        counts = {t: self.scalar(f"SELECT COUNT(*) FROM {t}") for t in ("customers", *EVENT_TABLES)}
        counts["returns"] = self.scalar("SELECT COUNT(*) FROM transactions WHERE type = 'RETURN'")
        counts["stores"] = self.scalar("SELECT COUNT(*) FROM entities WHERE type = 'STORE'")
        counts["tills"] = self.scalar("SELECT COUNT(*) FROM entities WHERE type = 'TILL'")
        for status in ("MERGED", "DELETED"):
            counts[f"{status.lower()}_customers"] = self.scalar(
                "SELECT COUNT(*) FROM customers WHERE status = ?", (status,)
            )
        return counts

    def _ids(self, table: str, customer_id: int) -> list[int]:
        return [r[0] for r in self.db.execute(f"SELECT id FROM {table} WHERE customer_id = ?", (customer_id,))]
