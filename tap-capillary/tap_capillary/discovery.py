"""Which customers to read in a discovery window, found once per run and shared by all streams.

Capillary has no org-wide "changed since" listing. Entity search (``POST /v2/search/entity``,
Cortex; needs the EntitySearch access group) can filter customers on ``lastUpdatedOn``, which
moves with every profile or loyalty change; it pages by 20 at most. Orgs without entity search
list their customers in ``customer_identifiers_path`` instead (ids, mobiles, emails or external
ids; the latter are resolved to ids with batched ``v1.1/customer/get``).

Found ids go to a private temporary SQLite database, so memory stays flat for millions of customers. A sharded
run keeps the ids of its own shard (``shards.py``).
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from singer_sdk.exceptions import ConfigValidationError, FatalAPIError

from tap_capillary.client import CapillaryStream, V11CustomersStream, parse_json
from tap_capillary.convert import integer
from tap_capillary.errors import Action
from tap_capillary.pagination import OffsetPaginator
from tap_capillary.windows import Window

if TYPE_CHECKING:
    from tap_capillary.tap import TapCapillary


SEARCH_PAGE_MAX = 20  # entity search "limit (max 20)" (capillary-api.md 2.6)
LOOKUP_BATCH = 10  # identifiers per v1.1 customer/get call when resolving the identifiers file
IDENTIFIER_KEYS = ("id", "mobile", "email", "external_id")
STABLE_LISTING_TRIES = 3  # listings of a window (or piece) whose total moved, before it is halved
MAX_LISTING_SPLITS = 6  # halvings of a window that keeps moving (pieces of 1/64) before the run fails
FAR_FUTURE_MS = 253402300799000  # 9999-12-31T23:59:59Z: upper bound of the open-ended last window


def _search_details(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for block in body.get("data") or [] for d in block.get("customerSearchDetails") or []]


class CustomerSearchStream(CapillaryStream):
    """Entity search for customers by ``lastUpdatedOn`` range (an internal helper, not in the catalog)."""

    name = "customer_search"
    path = "/v2/search/entity"
    http_method = "POST"
    schema = {"type": "object", "properties": {"customer_id": {"type": "integer"}}}
    primary_keys = ("customer_id",)
    access_group = "EntitySearch"

    def __init__(self, tap: TapCapillary) -> None:
        super().__init__(tap=tap)
        self.totals: set[int] = set()

    @property
    def page_size(self) -> int:
        return self.page_limit(SEARCH_PAGE_MAX)

    def get_new_paginator(self) -> OffsetPaginator:
        return OffsetPaginator(self.page_size, lambda body: len(_search_details(body)))

    def get_url_params(self, context: Any, next_page_token: Any) -> dict[str, Any]:
        # The parameter table says requiredTotal, every curl example of the docs sends totalRequired.
        # Paging relies on neither (``pagination.py``).
        return {"totalRequired": "true", "requiredTotal": "true"}

    def prepare_request_payload(self, context: Any, next_page_token: Any) -> dict[str, Any]:
        return {
            "entityType": "CUSTOMER",
            "limit": self.page_size,
            "offset": next_page_token or 0,
            "searchConditions": [
                {"fieldId": "lastUpdatedOn", "operator": "RANGE", "values": [context["from_ms"], context["to_ms"]]}
            ],
            # Required by the docs' table; empty lists ask for no enrichment (the ids are all the tap reads).
            "enrichmentFields": {"enrichedFields": [], "customFields": [], "extendedFields": []},
        }

    def validate_response(self, response: requests.Response) -> None:
        try:
            super().validate_response(response)
        except FatalAPIError as exc:
            if self.verdict(response).action != Action.NO_ACCESS:
                raise
            msg = (
                f"{exc} Entity search is not enabled for every org; without it, list the customers in "
                "customer_identifiers_path instead."
            )
            raise FatalAPIError(msg) from None

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        body = parse_json(response)
        self.records_at(response, "data")
        sent = response.request.body
        offset = (json.loads(sent).get("offset") if isinstance(sent, (bytes, str)) else None) or 0
        details = _search_details(body)
        # A total that is only this page's count (the server ignored the total parameter) says nothing of
        # the listing; an overall total is at least what has been read.
        total = integer((body.get("pagination") or {}).get("total"))
        if total is not None and total >= offset + len(details):
            self.totals.add(total)
        for detail in details:
            yield {"customer_id": int(detail["entityId"])}

    def window_ids(self, window: Window) -> Iterator[int]:
        """The ids of one window, page by page; ``totals`` tells whether the listing moved meanwhile."""
        to_ms = FAR_FUTURE_MS if window.end is None else int(window.end.timestamp() * 1000) - 1
        context = {"from_ms": int(window.start.timestamp() * 1000), "to_ms": to_ms}
        self.totals = set()
        for record in self.request_records(context):
            yield record["customer_id"]


class CustomerLookupStream(V11CustomersStream):
    """Resolves mobiles, emails and external ids of the identifiers file to Capillary ids."""

    name = "customer_lookup"
    path = "/v1.1/customer/get"
    schema = {"type": "object", "properties": {"customer_id": {"type": "integer"}}}
    primary_keys = ("customer_id",)

    def get_new_paginator(self) -> None:
        return None

    def get_url_params(self, context: Any, next_page_token: Any) -> dict[str, Any]:
        return {"format": "json", context["identifier"]: ",".join(context["values"]), "user_id": "true"}

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        for customer in super().parse_response(response):
            customer_id = self.customer_id(customer)
            if customer_id is None:
                subject = ", ".join(f"{k} {customer.get(k)}" for k in IDENTIFIER_KEYS if customer.get(k))
                self.item_error("no user_id", "a customer came back without user_id or id", subject or "a customer")
                continue
            yield {"customer_id": customer_id}


def read_identifiers(path: str) -> Iterator[tuple[str, str]]:
    """(identifier type, value) pairs from a CSV with a header row or a JSONL file."""
    file = Path(path)
    if not file.is_file():
        msg = f"customer_identifiers_path {path!r} is not a readable file."
        raise ConfigValidationError(msg, errors=[msg])
    with file.open(encoding="utf-8", newline="") as handle:
        if file.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            rows: Iterable[dict[str, Any]] = (json.loads(line) for line in handle if line.strip())
        else:
            rows = csv.DictReader(handle)
        for number, row in enumerate(rows, start=1):
            pair = next(((k, str(row[k]).strip()) for k in IDENTIFIER_KEYS if row.get(k) not in (None, "")), None)
            if pair is None:
                msg = f"{path} row {number} has none of the columns {', '.join(IDENTIFIER_KEYS)}."
                raise ConfigValidationError(msg, errors=[msg])
            yield pair


def _span(window: Window) -> str:
    return f"customers updated from {window.start.isoformat()} to {window.end.isoformat() if window.end else 'now'}"


def _halves(window: Window, now: datetime) -> tuple[Window, Window] | None:
    """A window's two halves on a whole second (an open-ended one is halved up to ``now`` and its second half
    stays open), or None when it spans less than two seconds."""
    end = window.end or now
    span = int((end - window.start).total_seconds())
    if span < 2:
        return None
    middle = window.start + timedelta(seconds=span // 2)
    return Window(window.start, middle), Window(middle, window.end)


class ChangedCustomers:
    """Customer ids per discovery window, cached for the run (all streams read the same windows) in a private
    temporary SQLite database: SQLite keeps it in its page cache and spills to an unnamed temporary file, which
    it deletes when the connection closes, and which no other process sees (a killed run leaves nothing)."""

    def __init__(self, tap: TapCapillary) -> None:
        self._tap = tap
        self._db: sqlite3.Connection | None = None
        self._windows: dict[Window | None, int] = {}

    @cached_property
    def _search(self) -> CustomerSearchStream:
        return CustomerSearchStream(self._tap)

    @property
    def from_file(self) -> bool:
        return bool(self._tap.config.get("customer_identifiers_path"))

    def ids(self, window: Window) -> Iterator[int]:
        """The window's customer ids in ascending order (all listed customers in identifiers-file mode)."""
        key = None if self.from_file else window  # the file's customers are the same for every window
        if key not in self._windows:
            self._windows[key] = len(self._windows)
            if key is None:
                self._store(self._windows[key], self._file_ids())
            else:
                self._store_search(self._windows[key], window)
        yield from self._read(self._windows[key])

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect("", isolation_level=None)  # "": private, temporary, on disk
            self._db.execute(
                "CREATE TABLE found (window INTEGER, customer_id INTEGER, PRIMARY KEY (window, customer_id))"
            )
        return self._db

    def _store(self, window_key: int, ids: Iterable[int]) -> None:
        """Keep the found ids of this run's shard."""
        shard = self._tap.shard
        db = self._connection()
        db.execute("BEGIN")
        db.executemany("INSERT OR IGNORE INTO found VALUES (?, ?)", ((window_key, i) for i in ids if shard.includes(i)))
        db.execute("COMMIT")
        count = db.execute("SELECT COUNT(*) FROM found WHERE window = ?", (window_key,)).fetchone()[0]
        of = f" ({shard})" if shard.count > 1 else ""
        self._tap.logger.info("Discovery window %d: %d customers to read%s", window_key, count, of)

    def _read(self, window_key: int, chunk: int = 1000) -> Iterator[int]:
        db = self._connection()
        last = -1
        while True:
            rows = db.execute(
                "SELECT customer_id FROM found WHERE window = ? AND customer_id > ? ORDER BY customer_id LIMIT ?",
                (window_key, last, chunk),
            ).fetchall()
            if not rows:
                return
            for (customer_id,) in rows:
                yield customer_id
            last = rows[-1][0]

    def _store_search(self, window_key: int, window: Window, splits: int = 0) -> None:
        """List a window; again if its total moved while paging (offsets shift, so a customer could be missed);
        then in halves, which page less and so move less. A piece still moving after ``MAX_LISTING_SPLITS``
        halvings stops the run: no STATE passes a window listed incompletely."""
        search = self._search
        for attempt in range(1, STABLE_LISTING_TRIES + 1):
            if splits == 0:  # a window's listing replaces the last one
                self._connection().execute("DELETE FROM found WHERE window = ?", (window_key,))
            # A piece's listings add up: at worst, a customer who moved on to a later window is read twice.
            self._store(window_key, search.window_ids(window))
            if len(search.totals) <= 1:
                return
            self._tap.warnings.add(search.name, "listing_moved")
            self._tap.logger.info("Customers changed while listing %s (try %d); listing again", _span(window), attempt)
        halves = _halves(window, self._tap.run_started_at)
        if halves is None or splits >= MAX_LISTING_SPLITS:
            msg = (
                f"Customers kept changing while entity search listed {_span(window)}, even halved {splits} times: "
                "one could be missed, so the run stops before the window's STATE; the next run lists it again."
            )
            raise FatalAPIError(msg)
        self._tap.logger.warning("%s kept changing while listed; listing its two halves", _span(window))
        if splits == 0:
            self._connection().execute("DELETE FROM found WHERE window = ?", (window_key,))
        for half in halves:
            self._store_search(window_key, half, splits + 1)

    def _file_ids(self) -> Iterator[int]:
        lookup = CustomerLookupStream(tap=self._tap)
        pending: dict[str, list[str]] = {}
        for identifier, value in read_identifiers(self._tap.config["customer_identifiers_path"]):
            if identifier == "id":
                yield int(value)
                continue
            pending.setdefault(identifier, []).append(value)
            if len(pending[identifier]) >= LOOKUP_BATCH:
                yield from _resolve(lookup, identifier, pending.pop(identifier))
        for identifier, values in pending.items():
            yield from _resolve(lookup, identifier, values)


def _resolve(lookup: CustomerLookupStream, identifier: str, values: list[str]) -> Iterator[int]:
    for record in lookup.request_records({"identifier": identifier, "values": values}):
        yield record["customer_id"]
