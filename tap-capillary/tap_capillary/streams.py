"""The tap's streams: per-customer loyalty data read window by window, and stores."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from importlib import resources
from itertools import islice
from typing import TYPE_CHECKING, Any

import requests
from singer_sdk import SchemaDirectory, StreamSchema

from tap_capillary.client import CapillaryStream, ItemUnavailableError, V11CustomersStream, parse_json
from tap_capillary.convert import TimeConverter, boolean, integer, listed, name_values, number, text
from tap_capillary.pagination import (
    EntityPaginator,
    LedgerPaginator,
    OffsetPaginator,
    RedemptionPaginator,
    RewardsPaginator,
)
from tap_capillary.sdk_adapter import WindowBookmarksStream
from tap_capillary.windows import Pass, Window, complete_window, plan_pass

if TYPE_CHECKING:
    from tap_capillary.tap import TapCapillary

SCHEMAS = SchemaDirectory(resources.files("tap_capillary") / "schemas")

V11_BATCH = 50  # customers per v1.1 customer/get and customer/coupons call (the limit is undocumented)
LEDGER_PAGE_MAX = 100
TRANSACTIONS_PAGE_MAX = 1000
REWARDS_PAGE_MAX = 100
REDEMPTIONS_PAGE_MAX = 100
COUPONS_LIMIT = 1000  # customer/coupons has a limit but no offset (README, Limits)
# customer/redemptions parts: response key -> (list item key, redemption_type). Each part has its own
# ``<part>_limit``/``<part>_start_id``/``<part>_count``, so one request reads both (no ``type``).
REDEMPTION_PARTS = {"points": ("point", "POINTS"), "coupons": ("coupon", "COUPON")}
ENTITIES_PAGE_MAX = 500


def _ordered_map(fn: Callable[[Any], Any], items: Iterable[Any], workers: int) -> Iterator[Any]:
    """``fn`` over ``items`` on a thread pool; results in input order, at most ``2 * workers`` in flight."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="capillary")
    pending: deque[Future] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class WindowedStream(CapillaryStream, WindowBookmarksStream):
    """An incremental stream whose bookmark moves when a discovery window completes (``windows.py``),
    never per record, and whose records are kept only inside the pass's ``[since, until)``."""

    pass_: Pass
    replication_key: str

    @property
    def times(self) -> TimeConverter:
        return self.capillary_tap.times

    def utc(self, value: Any) -> str | None:
        return self.times.to_utc(value)

    def get_replication_key_signpost(self, context: Any = None) -> None:
        return None  # the pass's ``until`` bounds the bookmark instead

    def plan(self, *, single_window: bool) -> Pass:
        config = self.config
        self.pass_ = plan_pass(
            self.stream_state,
            stream_name=self.name,
            start_date=config.get("start_date"),
            end_date=config.get("end_date"),
            now=self.capillary_tap.run_started_at,
            window_days=config["backfill_window_days"],
            lookback_minutes=config["lookback_minutes"],
            cluster_timezone=self.times.cluster_timezone,
            single_window=single_window,
        )
        self.logger.info(
            "Stream %s: records from %s to %s, found in %d discovery window(s)",
            self.name,
            self.pass_.since.isoformat(),
            self.pass_.until.isoformat(),
            len(self.pass_.windows),
        )
        return self.pass_

    def in_pass(self, record: dict) -> bool:
        moment = self.times.to_datetime(record[self.replication_key])
        if moment is None:  # belongs to no pass: counted and logged, never dropped unnoticed
            key = {name: record.get(name) for name in self.primary_keys}
            self.item_error(f"no {self.replication_key}", f"the API gave no {self.replication_key}", f"record {key}")
            return False
        return self.pass_.includes(moment)

    def complete(self, window: Window) -> None:
        """Record a finished window and write it out as a STATE message (the SDK writes a state only when it
        changed). Runs on the main thread after the SDK wrote every record the window yielded. While every
        customer of the stream so far failed alike, the STATE waits: for a customer read, or the stream's end
        (``customer_outcome``)."""
        complete_window(self.stream_state, self.replication_key, self.pass_, window, self.capillary_tap.shard.layout)
        if not self.capillary_tap.customer_outcomes.all_failed(self.name):
            self.capillary_tap.state_writer.write_state(self.tap_state)


class CustomerDataStream(WindowedStream):
    """A stream read per customer, for the customers that discovery finds in each window.

    Workers (``max_workers``) read customers concurrently through the SDK's request machinery;
    records outside the pass's ``[since, until)`` are dropped (the lookback margin, or data newer
    than the run).
    """

    #: Customers per request (endpoints taking a comma-separated id list).
    customers_per_request = 1
    #: Whether ``parse_response`` counts each customer's outcome (v1.1 answers an item per customer).
    counts_customer_items = False

    def get_records(self, context: Any) -> Iterable[dict]:
        self.capillary_tap.prepare_run()
        discovery = self.capillary_tap.changed_customers
        workers = self.config["max_workers"]
        # A customer's independent requests (bill details, ledger ranges) share this pool: ``fan_out``.
        self._fan_out_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="capillary-fan-out")
        try:
            for window in self.plan(single_window=discovery.from_file).windows:
                batches = _chunks(discovery.ids(window), self.customers_per_request)
                for records in _ordered_map(self._read_customers, batches, workers):
                    yield from records
                self.complete(window)
        finally:
            self._fan_out_pool.shutdown(wait=True, cancel_futures=True)
        self.capillary_tap.state_writer.write_state(self.tap_state)  # what ``complete`` held back, if anything
        self.log_item_errors()

    def fan_out(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """``fn`` over one customer's independent requests side by side; results in input order. The transport's
        request slots keep the run's requests within ``max_workers``."""
        items = list(items)
        if len(items) == 1:
            return [fn(items[0])]  # nothing to overlap: spare the hand-over to another thread
        futures = [self._fan_out_pool.submit(fn, item) for item in items]
        try:
            return [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()  # after a failure: drop what has not started

    def _read_customers(self, customer_ids: list[int]) -> list[dict]:
        """Worker: the pass's records of these customers."""
        try:
            records = self.read(customer_ids)
        except ItemUnavailableError as exc:
            if len(customer_ids) > 1:  # a request-level "not found" for a batch names no customer: one by one
                self.logger.info("%s for %d customers at once; reading them one by one", exc, len(customer_ids))
                return [record for one in customer_ids for record in self._read_customers([one])]
            self.item_error(exc.code, exc, f"customer {customer_ids[0]}")
            self.customer_outcome(exc.code)
            return []
        if not self.counts_customer_items:
            self.customer_outcome(None)
        return [r for r in records if self.in_pass(r)]

    def read(self, customer_ids: list[int]) -> list[dict]:
        """Mapped records of these customers (before the pass filter)."""
        return self.read_context(self.customer_context(customer_ids))

    def read_context(self, context: dict) -> list[dict]:
        """Mapped records of one request context, all pages."""
        return [record for raw in self.request_records(context) for record in self.map(raw, context)]

    @staticmethod
    def customer_context(customer_ids: list[int]) -> dict[str, Any]:
        """Request context: ``customer_ids`` for batch endpoints, ``customer_id`` (the first) for the others."""
        return {"customer_ids": customer_ids, "customer_id": customer_ids[0]}

    def map(self, raw: dict, context: dict) -> Iterable[dict]:
        """Schema records from one parsed API item of a request for ``context``'s customers."""
        raise NotImplementedError


class V11BatchStream(V11CustomersStream, CustomerDataStream):
    """v1.1 endpoints taking several customer ids; each returned customer names its id (``customer_id``)."""

    customers_per_request = V11_BATCH
    counts_customer_items = True

    def get_new_paginator(self) -> None:
        return None

    def map(self, customer: dict, context: dict) -> Iterable[dict]:
        customer_id = self.customer_id(customer, context["customer_ids"])
        if customer_id is None:  # cannot be placed with its customer: counted and logged
            asked = f"customers {context['customer_ids'][0]}..{context['customer_ids'][-1]}"
            self.item_error("no user_id", "a customer came back without user_id or id", f"one of {asked}")
            return
        yield from self.customer_records(customer, customer_id)

    def customer_records(self, customer: dict, customer_id: int) -> Iterable[dict]:
        raise NotImplementedError


class CustomersStream(V11BatchStream):
    name = "customers"
    path = "/v1.1/customer/get"
    primary_keys = ("customer_id",)
    replication_key = "updated_at"
    schema = StreamSchema(SCHEMAS)

    def get_url_params(self, context: Any, next_page_token: Any) -> dict[str, Any]:
        return {
            "format": "json",
            "id": ",".join(map(str, context["customer_ids"])),
            "user_id": "true",  # the customer's id comes back only then
            "points_summary": "true",
            "card_details": "true",
        }

    def customer_records(self, c: dict, customer_id: int) -> Iterable[dict]:
        summaries = [
            {
                "program_id": integer(s.get("programId")),
                "program_name": text(s.get("program_title")),
                "loyalty_points": number(s.get("loyaltyPoints")),
                "lifetime_points": number(s.get("lifetimePoints")),
                "redeemed_points": number(s.get("redeemed")),
                "expired_points": number(s.get("expired")),
                "current_slab": text(s.get("currentSlab")),
                "slab_expiry_at": self.utc(s.get("slabExpiryDate")),
            }
            for s in listed(c.get("points_summaries"), "points_summary")
        ]
        identifiers = [
            {"type": text(i.get("type")), "value": text(i.get("value"))}
            for i in c.get("identifiers") or []
            if isinstance(i, dict)
        ]
        cards = [i["value"] for i in identifiers if (i["type"] or "").lower() in ("cardnumber", "card_number")]
        cards += [text(d.get("card_number")) for d in listed(c.get("card_details"), "card") if d.get("card_number")]
        main = summaries[0] if summaries else {}
        extended_fields = name_values(c.get("extended_fields"))
        registered_store = c.get("registered_store") or {}
        yield {
            "customer_id": customer_id,
            "mobile": text(c.get("mobile")),
            "email": text(c.get("email")),
            "external_id": text(c.get("external_id")),
            "card_numbers": cards,
            "identifiers": identifiers,
            "first_name": text(c.get("firstname")),
            "last_name": text(c.get("lastname")),
            "gender": text(c.get("gender") or extended_fields.get("gender")),
            "source": text(c.get("source")),
            "loyalty_type": text(c.get("type")),
            "fraud_status": text((c.get("fraud_details") or {}).get("status")),
            "registered_at": self.utc(c.get("registered_on")),
            "registered_by": text(c.get("registered_by")),
            "registered_store_code": text(registered_store.get("code")),
            "registered_store_name": text(registered_store.get("name")),
            "registered_till_code": text((c.get("registered_till") or {}).get("code")),
            "updated_at": self.utc(c.get("updated_on")),
            "loyalty_points": number(c.get("loyalty_points")),
            "lifetime_points": number(c.get("lifetime_points")),
            "lifetime_purchases": number(c.get("lifetime_purchases")),
            "redeemed_points": main.get("redeemed_points"),
            "expired_points": main.get("expired_points"),
            "current_slab": text(c.get("current_slab")),
            "program_id": main.get("program_id"),
            "program_name": main.get("program_name"),
            "points_summaries": summaries,
            "custom_fields": name_values(c.get("custom_fields")),
            "extended_fields": extended_fields,
        }


class TierHistoryStream(V11BatchStream):
    name = "tier_history"
    path = "/v1.1/customer/get"
    primary_keys = ("customer_id", "program_id", "changed_at", "to_tier")
    replication_key = "changed_at"
    schema = StreamSchema(SCHEMAS)

    def get_url_params(self, context: Any, next_page_token: Any) -> dict[str, Any]:
        return {
            "format": "json",
            "id": ",".join(map(str, context["customer_ids"])),
            "user_id": "true",
            "slab_history": "true",
            "mlp": "true",  # the documented prerequisite of slab_history
        }

    def customer_records(self, c: dict, customer_id: int) -> Iterable[dict]:
        for change in listed(c.get("slab_history"), "history"):
            store = change.get("store") or {}
            yield {
                "customer_id": customer_id,
                "program_id": integer(change.get("program_id")),
                "changed_at": self.utc(change.get("changed_on")),
                "to_tier": text(change.get("to")),
                "from_tier": text(change.get("from")),
                "change_type": text(change.get("type")),
                "notes": text(change.get("notes")),
                "store_code": text(store.get("code")),
                "store_name": text(store.get("name")),
            }


class CouponsStream(V11BatchStream):
    """All coupons of a customer: ``start_date`` filters on issue time only, and a redemption
    can update an old coupon, so coupons are filtered client-side on ``updated_at``."""

    name = "coupons"
    path = "/v1.1/customer/coupons"
    primary_keys = ("coupon_id",)
    replication_key = "updated_at"
    schema = StreamSchema(SCHEMAS)

    def get_url_params(self, context: Any, next_page_token: Any) -> dict[str, Any]:
        return {
            "format": "json",
            "id": ",".join(map(str, context["customer_ids"])),
            "limit": COUPONS_LIMIT,
            "order_by": "created_date",
            "sort_order": "desc",
        }

    def customer_records(self, c: dict, customer_id: int) -> Iterable[dict]:
        coupons = listed(c.get("coupons"), "coupon")
        if len(coupons) >= COUPONS_LIMIT:  # customer/coupons has no offset: the older ones cannot be read
            message = f"{COUPONS_LIMIT} coupons or more; only the {COUPONS_LIMIT} newest are read"
            self.item_error("coupon_limit", message, f"customer {customer_id}")
        for k in coupons:
            redemptions: list[dict[str, Any]] = [
                {
                    "redemption_id": integer(r.get("id")),
                    "redeemed_at": self.utc(r.get("date")),
                    "transaction_number": text(r.get("transaction_number")),
                    "store_code": text((r.get("redeemed_at") or {}).get("code")),
                    "store_name": text((r.get("redeemed_at") or {}).get("name")),
                }
                for r in listed(k.get("redemptions"), "redemption")
            ]
            issued_at = self.utc(k.get("created_date"))
            redeemed = [r["redeemed_at"] for r in redemptions if r["redeemed_at"]]
            last_redeemed = max(redeemed, key=datetime.fromisoformat) if redeemed else None  # all RFC 3339 UTC
            issued_store = k.get("issued_at") or {}
            yield {
                "coupon_id": int(k["id"]),
                "customer_id": customer_id,
                "code": text(k.get("code")),
                "series_id": integer(k.get("series_id")),
                "series_name": text(k.get("series_name")),
                "issued_at": issued_at,
                "valid_till": self.utc(k.get("valid_till")),
                "issued_store_code": text(issued_store.get("code")),
                "issued_store_name": text(issued_store.get("name")),
                "transaction_number": text(k.get("transaction_number")),
                "purpose": text(k.get("purpose")),
                "redemption_count": integer(k.get("redemption_count")),
                "last_redeemed_at": last_redeemed,
                "redemptions": redemptions,
                "custom_properties": name_values(k.get("custom_properties"), "custom_property"),
                "updated_at": max(filter(None, [issued_at, last_redeemed]), key=datetime.fromisoformat, default=None),
            }


class TransactionsStream(CustomerDataStream):
    """Bills from ``v2/customers/{id}/transactions`` (store, tenders), line items from ``v2/transactions/{id}``.
    The listing filters on billing time but a bill can be updated later, so a customer's whole listing is read
    and filtered on ``updated_at``.

    The listing's tables document no ``autoUpdateTime``: a bill's update time is the listing's
    ``autoUpdateTime`` or ``attribution.modifiedDate`` (``embed=ATTRIBUTION``), else the detail call's, else
    its billing time. Bills placed from the listing are filtered before their detail call; the others after.

    No v2 bill response documents a currency or the contents of ``billPoints``: the currency is the billing
    store's base currency (``StoreLookupStream``); points are left null (the points ledger has them).
    """

    name = "transactions"
    path = "/v2/customers/{customer_id}/transactions"
    primary_keys = ("transaction_id",)
    replication_key = "updated_at"
    schema = StreamSchema(SCHEMAS)

    def get_new_paginator(self) -> OffsetPaginator:
        return OffsetPaginator(self.page_limit(TRANSACTIONS_PAGE_MAX), lambda body: len(body.get("data") or []))

    def get_url_params(self, context: Any, next_page_token: Any) -> dict[str, Any]:
        return {
            "limit": self.page_limit(TRANSACTIONS_PAGE_MAX),
            "offset": next_page_token or 0,
            "sortBy": "BILLING_TIME",
            "sortOrder": "ASC",
            "embed": "BILL_STORE_DETAILS,ATTRIBUTION,PAYMENT_MODES,BILL_CF,BILL_EF",
        }

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        yield from self.records_at(response, "data") or []

    @property
    def details(self) -> TransactionDetailStream:
        return self.capillary_tap.transaction_details

    @staticmethod
    def update_time(bill: dict) -> Any:
        """A bill's update time as the listing or the detail gives it, if it does."""
        return bill.get("autoUpdateTime") or (bill.get("attribution") or {}).get("modifiedDate")

    def read(self, customer_ids: list[int]) -> list[dict]:
        context = self.customer_context(customer_ids)
        bills = [
            bill
            for bill in self.request_records(context)
            if self.update_time(bill) is None or self.pass_.includes(self.times.to_datetime(self.update_time(bill)))
        ]
        # The listing has no line items: one detail call per bill, side by side on the shared pool.
        details = self.fan_out(self.detail, bills)
        return [
            self.record(bill, detail, context["customer_id"])
            for bill, detail in zip(bills, details, strict=True)
            if detail is not None
        ]

    def detail(self, bill: dict) -> dict | None:
        """The bill's detail; None (an item error, counted) when the API cannot return it."""
        try:
            return next(iter(self.details.request_records({"id": bill["id"], "type": bill.get("type")})))
        except ItemUnavailableError as exc:
            self.item_error(exc.code, exc, f"bill {bill['id']}")
            return None

    def record(self, bill: dict, detail: dict, customer_id: int) -> dict:
        bill_details = detail.get("billDetails") or {}
        store = bill.get("billingStore") or bill_details.get("billingStore") or {}
        till = (bill.get("attribution") or detail.get("attribution") or {}).get("createdBy") or {}
        billed_at = bill.get("billingTime") or bill_details.get("billingTime")
        return {
            "transaction_id": int(bill["id"]),
            "customer_id": customer_id,
            "bill_number": text(bill.get("billNumber")),
            "type": text(bill.get("type")),
            "return_type": text(bill.get("returnType")),
            "billed_at": self.utc(billed_at),
            # No time at all: ``in_pass`` counts and logs the bill as an item error.
            "updated_at": self.utc(self.update_time(bill) or self.update_time(detail) or billed_at),
            "amount": number(bill.get("amount")),
            "gross_amount": number(bill.get("grossAmount")),
            "discount": number(bill.get("discount")),
            "basket_size": number(detail.get("basketSize")),
            "currency_code": self.capillary_tap.store_lookup.currency(integer(store.get("id"))),
            "note": text(bill.get("notes")),
            "outlier_status": text(bill.get("outlierStatus")),
            "store_code": text(store.get("code")),
            "store_name": text(store.get("name")),
            "till_code": text(till.get("code")),
            "till_name": text(till.get("name")),
            # No documented v2 bill response carries the bill's points (README, Streams).
            "points_issued": None,
            "points_redeemed": None,
            "points_returned": None,
            "line_items": [self.line_item(line) for line in detail.get("lineItems") or []],
            "payment_modes": [
                {"mode": text(p.get("mode")), "amount": number(p.get("amount"))}
                for p in bill.get("paymentModes") or detail.get("paymentModes") or []
            ],
            "custom_fields": name_values(bill.get("customFields") or detail.get("customFields")),
            "extended_fields": name_values(bill.get("extendedFields") or detail.get("extendedFields")),
        }

    @staticmethod
    def line_item(line: dict) -> dict:
        d = line.get("details") or {}
        return {
            "line_item_id": integer(line.get("id")),
            "serial": integer(d.get("serial")),
            "item_code": text(d.get("itemCode")),
            "description": text(d.get("description")),
            "qty": number(d.get("qty")),
            "rate": number(d.get("rate")),
            "value": number(d.get("value")),
            "discount": number(d.get("discount")),
            "amount": number(d.get("amount")),
            "outlier_status": text(line.get("outlierStatus")),
            "returnable": boolean(d.get("returnable")),
            "attributes": name_values(d.get("attributes")),
            "extended_fields": name_values(d.get("extendedFields")),
        }


class TransactionDetailStream(CapillaryStream):
    """``GET /v2/transactions/{id}`` (line items); a helper of ``transactions``, not in the catalog."""

    name = "transaction_detail"
    path = "/v2/transactions/{id}"
    schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    primary_keys = ("id",)
    access_group = "Transaction"

    def get_new_paginator(self) -> None:
        return None

    def get_url_params(self, context: Any, next_page_token: Any) -> dict[str, Any]:
        # A RETURN bill is only found with type=RETURN (the type defaults to REGULAR).
        return {"type": context.get("type") or "REGULAR", "tenders": "true"}

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        self.records_at(response, "id")
        yield parse_json(response)


class PointsLedgerStream(CustomerDataStream):
    """Ledger entries, alternate currencies included (``includeAlternateCurrencies``): an entry naming an
    ``alternateCurrencyName`` carries that currency's amount, never points."""

    name = "points_ledger"
    path = "/v2/pointsLedger/getCustomerLedgerInfo"
    primary_keys = ("event_log_id", "entry_index")
    replication_key = "created_at"
    schema = StreamSchema(SCHEMAS)
    access_group = "Points"

    def get_new_paginator(self) -> LedgerPaginator:
        return LedgerPaginator(self.page_limit(LEDGER_PAGE_MAX))

    def get_url_params(self, context: Any, next_page_token: Any) -> dict[str, Any]:
        return {
            "identifierName": "id",
            "identifierValue": context["customer_id"],
            "source": "INSTORE",
            "limit": self.page_limit(LEDGER_PAGE_MAX),
            "offset": next_page_token or 0,
            "startDate": self.times.to_cluster(context["start"], "%Y-%m-%dT%H:%M:%S"),
            "endDate": self.times.to_cluster(context["end"], "%Y-%m-%dT%H:%M:%S"),
            "sortOrder": "ASC",
            "includeAlternateCurrencies": "true",
        }

    def read(self, customer_ids: list[int]) -> list[dict]:
        """The pass in ranges of at most ``ledger_window_days`` (the API's limit), read side by side.

        ``endDate`` is inclusive and times may have fractions of a second, so each range asks up to its end
        and keeps ``[start, end)``: an entry at a boundary is kept once, by the range that starts there.
        """
        # An hour short of the limit: across a daylight-saving change the local span is an hour longer.
        window = timedelta(days=self.config["ledger_window_days"], hours=-1)
        contexts, start = [], self.pass_.since
        while start < self.pass_.until:
            end = min(start + window, self.pass_.until)
            contexts.append({**self.customer_context(customer_ids), "start": start, "end": end})
            start = end
        return [record for records in self.fan_out(self._read_range, contexts) for record in records]

    def _read_range(self, context: dict) -> list[dict]:
        in_range = Pass(context["start"], context["end"], ()).includes
        # A record without its time goes on to ``in_pass``, which reports it.
        return [r for r in self.read_context(context)
                if (moment := self.times.to_datetime(r[self.replication_key])) is None or in_range(moment)]  # fmt: skip

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        yield from self.records_at(response, "ledgerEntries") or []

    def map(self, e: dict, context: dict) -> Iterable[dict]:
        txn = e.get("transactionDetails") or {}
        event = e.get("eventDetails") or {}
        alternate = e.get("netAlternateCurrenciesOnEvent")
        for index, entry in enumerate(e.get("entryDetails") or []):
            currency = text(entry.get("alternateCurrencyName"))
            amount = number(entry.get("points"))
            yield {
                "event_log_id": int(e["eventLogId"]),
                "entry_index": index,
                "customer_id": context["customer_id"],  # the docs' samples show -2860 and null here
                "event_name": text(e.get("eventName")),
                "event_display_name": text(event.get("eventDisplayName")),
                "created_at": self.utc(e.get("ledgerCreatedDate")),
                "event_at": self.utc(event.get("eventDate")),
                "ledger_entry_type": text(entry.get("ledgerEntryType")),
                "points": None if currency else amount,
                "alternate_currency": currency,
                "alternate_currency_amount": amount if currency else None,
                "points_category": text(entry.get("pointsCategory")),
                "program_id": integer(entry.get("programId")),
                "program_name": text(entry.get("programName")),
                "source_program_id": integer(e.get("sourceProgramId")),
                "source_program_name": text(e.get("sourceProgramName")),
                "net_points_on_event": number(e.get("netPointsOnEvent")),
                "net_alternate_currencies_on_event": (
                    None if alternate is None else {name: number(v) for name, v in alternate.items()}
                ),
                "transaction_id": integer(txn.get("transactionId")),
                "transaction_number": text(txn.get("transactionNumber")),
                "store_code": text(e.get("storeCode")),
                "till_code": text(e.get("tillCode")),
                "promotion_id": integer(event.get("promotionId")),
                "promotion_name": text(event.get("promotionName")),
            }


class RedemptionsStream(CustomerDataStream):
    name = "redemptions"
    path = "/v1.1/customer/redemptions"
    primary_keys = ("redemption_type", "redemption_ref", "redeemed_at")
    replication_key = "redeemed_at"
    schema = StreamSchema(SCHEMAS)

    def get_new_paginator(self) -> RedemptionPaginator:
        items = {part: item for part, (item, _) in REDEMPTION_PARTS.items()}
        return RedemptionPaginator(self.page_limit(REDEMPTIONS_PAGE_MAX), items)

    def get_url_params(self, context: Any, next_page_token: dict[str, int] | None) -> dict[str, Any]:
        limit = self.page_limit(REDEMPTIONS_PAGE_MAX)
        starts = next_page_token or dict.fromkeys(REDEMPTION_PARTS, 1)
        params: dict[str, Any] = {
            "format": "json",
            "id": context["customer_id"],
            "limit": limit,
            "start_date": self.times.to_cluster(self.pass_.since),
            "end_date": self.times.to_cluster(self.pass_.until),
            "order": "asc",
            "mlp": "true",  # every program's redemptions, not only those of the till's default program
        }
        if len(starts) == 1:  # only one part has rows left (without a type, both are read)
            params["type"] = next(iter(starts)).upper()
        for part, start in starts.items():
            params[f"{part}_limit"] = limit
            params[f"{part}_start_id"] = start
        return params

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        customer = self.records_at(response, "response", "customer") or {}
        redemptions = customer.get("redemptions") or {}
        for part, (item_key, _) in REDEMPTION_PARTS.items():
            for row in listed(redemptions.get(part), item_key):
                yield {"part": part, "row": row}

    def map(self, item: dict, context: dict) -> Iterable[dict]:
        part, r = item["part"], item["row"]
        is_points = part == "points"
        store, till = r.get("redeemed_store") or {}, r.get("redeemed_till") or {}
        yield {
            "redemption_type": REDEMPTION_PARTS[part][1],
            "redemption_ref": text(r.get("redemption_id") if is_points else r.get("code")),
            "redeemed_at": self.utc(r.get("redeemed_time")),
            "customer_id": context["customer_id"],  # the response names the customer by mobile/email only
            "program_id": integer(r.get("program_id")),
            "points_redeemed": number(r.get("points_redeemed")),
            "coupon_id": None if is_points else integer(r.get("coupon_id")),
            "coupon_code": None if is_points else text(r.get("code")),
            "coupon_series_id": None if is_points else integer(r.get("series_id")),
            "transaction_number": text(r.get("transaction_number")),
            "bill_id": None if str(r.get("bill_id")) == "-1" else integer(r.get("bill_id")),  # -1: no bill
            "store_code": text(store.get("code")),
            "store_name": text(store.get("name")),
            "till_code": text(till.get("code")),
            "till_name": text(till.get("name")),
            "purpose": text(r.get("redemption_purpose")),
            "notes": text(r.get("notes")),
            "external_reference_number": text(r.get("external_reference_number")),
            "custom_fields": name_values(r.get("custom_fields")),
        }


class RewardIssualsStream(CustomerDataStream):
    """Reward catalog issuance attempts; the endpoint has no date filter, so all are read and filtered.

    An issual's own ``status`` is its outcome (failed attempts are records, ``success`` false); the response's
    top-level ``status`` is the request's."""

    name = "reward_issuals"
    path = "/api_gateway/rewards/core/v1/management/customer/{customer_id}/issuals"
    primary_keys = ("reward_transaction_id",)
    replication_key = "transaction_at"
    schema = StreamSchema(SCHEMAS)
    access_group = "Rewards catalog"

    def get_new_paginator(self) -> RewardsPaginator:
        return RewardsPaginator(self.page_limit(REWARDS_PAGE_MAX))

    def get_url_params(self, context: Any, next_page_token: Any) -> dict[str, Any]:
        return {"page": next_page_token or 0, "size": self.page_limit(REWARDS_PAGE_MAX)}

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        yield from self.records_at(response, "rewardIssueTransactions") or []

    def map(self, r: dict, context: dict) -> Iterable[dict]:
        status = r.get("status") or {}
        reward = r.get("rewardDetails") or {}
        yield {
            "reward_transaction_id": int(r["rewardTransactionId"]),
            "customer_id": context["customer_id"],
            "reward_issue_ref_id": text(r.get("rewardIssueRefId")),
            "transaction_at": self.utc(r.get("rewardTransactionDate")),
            "event_at": self.utc(r.get("eventDateTime")),
            "issued_at": self.utc(r.get("issueDateTime")),
            "success": boolean(status.get("success")),
            "status_code": integer(status.get("code")),
            "status_message": text(status.get("message")),
            "reward_id": integer(reward.get("rewardId")),
            "reward_name": text(reward.get("name")),
            "reward_description": text(reward.get("description")),
            "reward_language_code": text(reward.get("languageCode")),
            "reward_enabled": boolean(reward.get("enabled")),
            "reward_rank": integer(reward.get("rewardRank")),
            "owner_type": text(r.get("ownerType")),
            "owner_id": text(r.get("ownerId")),
            "points_redemption_ref_ids": [str(x) for x in r.get("pointsRedemptionRefIds") or []],
            "fulfillment_status": text(r.get("fulfillmentStatus")),
            "redemption_type": text(r.get("redemptionType")),
        }


class OrganizationEntitiesStream(CapillaryStream):
    """``GET /v1.1/organization/entities``: the entities of a page, each read by its own ``item_status``."""

    path = "/v1.1/organization/entities"
    access_group = "Organization"

    @staticmethod
    def _entities(body: Any) -> list[dict]:
        envelope = body.get("response") if isinstance(body, dict) else None
        organization = envelope.get("organization") if isinstance(envelope, dict) else None
        entities = organization.get("entities") if isinstance(organization, dict) else None
        return [e for e in listed(entities, "entity") if isinstance(e, dict)]

    def item_statuses(self, body: Any) -> list[Any]:
        return [e["item_status"] for e in self._entities(body) if "item_status" in e]

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        self.records_at(response, "response", "organization")
        for entity in self._entities(parse_json(response)):
            if "item_status" not in entity or (
                self.skipped_item(entity["item_status"], f"entity {entity.get('id')}", response) is None
            ):
                yield entity


def base_currency(entity: dict) -> str | None:
    return text(((entity.get("currencies") or {}).get("base_currency") or {}).get("label"))


class StoreLookupStream(OrganizationEntitiesStream):
    """One store by ``id`` (a helper of ``transactions``, not in the catalog): no v2 bill response documents a
    currency, so a bill's is its billing store's base currency. Lookups are cached for the run."""

    name = "store_lookup"
    schema = {"type": "object", "properties": {"store_id": {"type": "integer"}}}
    primary_keys = ("store_id",)

    def __init__(self, tap: TapCapillary) -> None:
        super().__init__(tap=tap)
        self._currencies: dict[int, str | None] = {}
        self._lock = threading.Lock()  # one lookup per store: workers wait for it rather than repeat it

    def get_new_paginator(self) -> None:
        return None

    def get_url_params(self, context: Any, next_page_token: Any) -> dict[str, Any]:
        return {"format": "json", "type": "STORE", "id": context["store_id"]}

    def currency(self, store_id: int | None) -> str | None:
        """The base currency of the store, None when the API does not return that store."""
        if store_id is None:
            return None
        if store_id in self._currencies:  # looked up: no lock, so no worker waits behind another store's lookup
            return self._currencies[store_id]
        with self._lock:
            if store_id not in self._currencies:
                found = [e for e in self.request_records({"store_id": store_id}) if integer(e.get("id")) == store_id]
                self._currencies[store_id] = base_currency(found[0]) if found else None
            return self._currencies[store_id]


class StoresStream(OrganizationEntitiesStream, WindowedStream):
    """Stores changed since the bookmark (``modified_since``, the one documented org-wide change filter)."""

    name = "stores"
    primary_keys = ("store_id",)
    replication_key = "updated_at"
    schema = StreamSchema(SCHEMAS)

    def get_new_paginator(self) -> EntityPaginator:
        return EntityPaginator(self.page_limit(ENTITIES_PAGE_MAX))

    def get_records(self, context: Any) -> Iterable[dict]:
        self.capillary_tap.prepare_run()
        shard = self.capillary_tap.shard
        if not shard.reads_org_streams:
            self.logger.info("Stream %s is read by shard 0 only; this run is %s", self.name, shard)
            return
        for window in self.plan(single_window=True).windows:
            for entity in self.request_records({"modified_since": window.start}):
                record = self.record(entity)
                if self.in_pass(record):
                    yield record
            self.complete(window)
        self.log_item_errors()

    def get_url_params(self, context: Any, next_page_token: Any) -> dict[str, Any]:
        return {
            "format": "json",
            "type": "STORE",
            "start_id": next_page_token or 0,
            "limit": self.page_limit(ENTITIES_PAGE_MAX),
            "modified_since": self.times.to_cluster(context["modified_since"]),
        }

    def record(self, e: dict) -> dict:
        return {
            "store_id": int(e["id"]),
            "code": text(e.get("code")),
            "name": text(e.get("name")),
            "description": text(e.get("description")),
            "type": text(e.get("type")),
            "is_active": boolean(e.get("is_active")),
            "external_id": text(e.get("external_id")),
            "external_id_1": text(e.get("external_id_1")),
            "external_id_2": text(e.get("external_id_2")),
            "timezone": text(((e.get("timezones") or {}).get("base_timezone") or {}).get("label")),
            "currency_code": base_currency(e),
            "language_locale": text(e.get("language_locale")),
            "country_code": text(e.get("country_code")),
            "updated_at": self.utc(e.get("last_updated_on")),
            "updated_by": integer(e.get("last_updated_by")),
            "custom_fields": name_values(e.get("custom_fields")),
        }
