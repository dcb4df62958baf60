"""Handlers of the emulated Capillary endpoints (paths as in docs.capillarytech.com).

Error codes are the documented ones (sources in docs/capillary.md); where the docs give
none for a limit, the request-level code 400 "invalid input" is used.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from emulators.capillary.auth import TOKEN_PATH, Authenticator
from emulators.capillary.cache import ResponseCache
from emulators.capillary.dialects import error_body, v2_errors, v11_status
from emulators.capillary.doc_samples import sample_bytes
from emulators.capillary.render import Clock, Renderer
from emulators.capillary.store import LoyaltyStore

STORE = web.AppKey("capillary_store", LoyaltyStore)
AUTH = web.AppKey("capillary_auth", Authenticator)
CLOCK = web.AppKey("capillary_clock", Clock)
CONFIG = web.AppKey("capillary_config", object)
RESPONSE_CACHE = web.AppKey("capillary_response_cache", ResponseCache)

DAY = 86_400
V11_BATCH_LIMIT = 100  # customer/get ids per call; past it: 1060 "batch limit exceeded" (limit value undocumented)
V11_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d+%H:%M:%S", "%Y-%m-%d")
V2_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d")
LEDGER_DATE_FORMATS = ("%Y-%m-%dT%H:%M:%S",)
TXN_EMBEDS = {"BILL_CF", "BILL_EF", "ATTRIBUTION", "PAYMENT_MODES", "CREDIT_NOTES", "BILL_STORE_DETAILS", "BILL_POINTS"}
TXN_TYPES = {"REGULAR", "RETURN", "NOT_INTERESTED", "NOT_INTERESTED_RETURN"}
CUSTOMER_SEARCH_DATES = {"lastUpdatedOn": "updated_on", "registeredDate": "registered_on"}
CUSTOMER_SEARCH_TEXT = {
    "firstName": "firstname",
    "lastName": "lastname",
    "email": "email",
    "mobile": "mobile",
    "externalId": "external_id",
}
TXN_SEARCH_DATES = {"billDate": "billing_time"}
TXN_SEARCH_TEXT = {"billNumber": "number", "outlierStatus": "outlier_status"}


class ApiError(Exception):
    """A request the emulated API refuses; ``body`` is already in the endpoint's dialect."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def v2_error(status: int, code: int, message: str) -> ApiError:
    return ApiError(status, v2_errors(code, message))


def v11_error(status: int, code: int, message: str) -> ApiError:
    return ApiError(status, v11_status(code, message))


def int_param(query: Any, name: str, default: int, error: ApiError) -> int:
    raw = query.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise error from None


def flag(query: Any, name: str) -> bool:
    return query.get(name, "").lower() in {"true", "1", "yes"}


def renderer(request: web.Request) -> Renderer:
    return Renderer(request.app[CLOCK], request.app[STORE].entities)


def handler(fn: Callable[[web.Request], Any]) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wraps a function returning (body, status), sync or async; an ApiError becomes its response.

    With the response cache on (benchmark mode), a GET answered before is sent from the cache.
    """

    async def wrapped(request: web.Request) -> web.Response:
        cache = request.app.get(RESPONSE_CACHE) if request.method == "GET" else None
        key = ResponseCache.key(request) if cache is not None else None
        cached = cache.get(key) if cache is not None else None
        if cached is not None:
            status, body = cached
        else:
            try:
                result = fn(request)
                data, status = await result if inspect.isawaitable(result) else result
            except ApiError as exc:
                data, status = exc.body, exc.status
            body = orjson.dumps(data)
            if cache is not None:
                cache.put(key, status, body)
        return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")

    return wrapped


# -- OAuth ----------------------------------------------------------------------------------------------------


async def generate_token(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    try:
        body = await request.json()
        key, secret = str(body["key"]), str(body["secret"])
    except (ValueError, KeyError, TypeError):
        return web.json_response(error_body(TOKEN_PATH, 400, "key and secret are required"), status=400)
    token = auth.issue(key, secret)
    if token is None:  # the authorization-flow page's sample, as published
        body = sample_bytes("v3_oauth_token_generate__invalid_key.json")
        return web.Response(body=body, status=401, content_type="application/json")
    ttl = auth.ttl_seconds
    return web.json_response(
        {"data": {"accessToken": token, "ttlSeconds": int(ttl) if float(ttl).is_integer() else ttl}, "errors": None}
    )


# -- v1.1 customer/get ----------------------------------------------------------------------------------------

V11_IDENTIFIERS = ("id", "mobile", "email", "external_id")


def _v11_identifier(query: Any) -> tuple[str, str]:
    for name in V11_IDENTIFIERS:
        if query.get(name):
            return name, query[name]
    name, value = query.get("identifierName"), query.get("identifierValue")
    if name in V11_IDENTIFIERS and value:
        return name, value
    raise v11_error(400, 400, "Input is invalid, Please check request parameters or input xml/json")


def _unavailable(customer: dict[str, Any] | None) -> tuple[str, str] | None:
    """(v1.1 item code, message) when a customer cannot be returned."""
    if customer is None:
        return "1012", "Customer not found"
    if customer["status"] == "DELETED":
        return "8109", "Customer is deleted after PII delete request"
    if customer["status"] == "MERGED":
        return "1012", f"Customer not found: merged into customer {customer['merged_into']}"
    return None


@handler
def v11_customer_get(request: web.Request) -> tuple[dict, int]:
    query = request.query
    identifier, raw = _v11_identifier(query)
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if len(values) > V11_BATCH_LIMIT:
        raise v11_error(400, 1060, f"Batch limit exceeded: at most {V11_BATCH_LIMIT} customers per request")
    store, render = request.app[STORE], renderer(request)
    coupon_limit = int_param(query, "coupon_limit", 10, v11_error(400, 400, "Invalid coupon_limit"))
    coupon_offset = int_param(query, "coupon_offset", 0, v11_error(400, 400, "Invalid coupon_offset"))
    items, ok = [], 0
    for value in values:
        customer = store.find_customer(identifier, value)
        problem = _unavailable(customer)
        if problem is not None:
            items.append({identifier: value, "item_status": render.v11_item_status(False, *problem)})
            continue
        ok += 1
        cid = customer["id"]
        extras: dict[str, Any] = {
            "coupons": [
                render.v11_customer_coupon(k)
                for k in store.select(
                    "SELECT * FROM coupons WHERE customer_id = ? ORDER BY issued_on DESC, id DESC LIMIT ? OFFSET ?",
                    (cid, coupon_limit, coupon_offset),
                )
            ]
        }
        if flag(query, "slab_history") and flag(query, "mlp"):  # the docs: "Prerequisite: Set mlp=true"
            extras["slab_history"] = [
                render.v11_slab_change(t)
                for t in store.select(
                    "SELECT * FROM tiers WHERE customer_id = ? ORDER BY changed_on DESC, id DESC", (cid,)
                )
            ]
        if flag(query, "points_summary"):
            expiry = request.app[CONFIG].anchor_epoch + 365 * DAY
            extras["points_summary"] = [render.v11_points_summary(customer, expiry)]
        if flag(query, "transactions"):
            extras["transactions"] = [
                render.v11_customer_transaction(t)
                for t in store.select(
                    "SELECT * FROM transactions WHERE customer_id = ? ORDER BY billing_time DESC, id DESC LIMIT 100",
                    (cid,),
                )
            ]
        items.append(render.v11_customer(customer, extras, user_id=flag(query, "user_id")))
    total = len(values)
    if ok == total:
        status, code, success, message = 200, 200, "true", "Success"
    elif ok:
        status, code, success, message = 200, 201, "true", "Some requests have failed due to errors"
    else:
        status, code, success, message = 500, 500, "false", "All requests have failed due to errors"
    body = {
        "response": {
            "status": {
                "success": success,
                "code": code,
                "message": message,
                "total": str(total),
                "success_count": str(ok),
            },
            "customers": {"customer": items},
        }
    }
    return body, status


# -- v2 entity search -----------------------------------------------------------------------------------------


def _epoch(value: Any) -> int:
    """Entity search date values are epoch: milliseconds (13 digits) or seconds."""
    number = int(str(value))
    return number // 1000 if number >= 100_000_000_000 else number


def _search_where(entity: str, conditions: Any, entities: dict[int, dict[str, Any]]) -> tuple[str, list[Any]]:
    dates, texts = (
        (CUSTOMER_SEARCH_DATES, CUSTOMER_SEARCH_TEXT) if entity == "CUSTOMER" else (TXN_SEARCH_DATES, TXN_SEARCH_TEXT)
    )
    if not isinstance(conditions, list) or not conditions:
        raise v2_error(400, 1027, "Search conditions must be present")
    clauses, params, ranges = [], [], 0
    for condition in conditions:
        if not isinstance(condition, dict) or not condition:
            raise v2_error(400, 1023, "Some search conditions are null or empty")
        field, operator, values = condition.get("fieldId"), condition.get("operator"), condition.get("values")
        if not field:
            raise v2_error(400, 1024, "Field identifier is missing")
        if not operator:
            raise v2_error(400, 1025, "Search operator is missing")
        if values in (None, "", []):
            raise v2_error(400, 1026, "Search values are missing")
        values = values if isinstance(values, list) else [values]
        if operator == "RANGE":
            ranges += 1
            if ranges > 1:
                raise v2_error(400, 1042, "Maximum range operators allowed per search exceeded")
            if field not in dates:
                raise v2_error(400, 1043, "Range search only supported on date fields")
            if len(values) != 2:
                raise v2_error(400, 1007, "Problems with search conditions: RANGE takes two values")
            try:
                low, high = (_epoch(v) for v in values)
            except ValueError:
                raise v2_error(400, 1044, "Range search on date field only allowed with values in epoch") from None
            clauses.append(f"{dates[field]} BETWEEN ? AND ?")
            params += [low, high]
        elif operator in ("EQUALS", "STARTS_WITH"):
            if operator == "EQUALS" and len(values) > 1:
                raise v2_error(400, 1028, "Only one value supported for equals operator")
            value = str(values[0])
            if entity == "CUSTOMER" and field == "search_prefix":
                columns = list(CUSTOMER_SEARCH_TEXT.values())
            elif entity == "TRANSACTION" and field == "storecode":
                columns = ["till_id"]
            elif field in texts:
                columns = [texts[field]]
            else:
                raise v2_error(400, 1029, f"Indexed fields are missing from search conditions: {field}")
            if columns == ["till_id"]:
                stores = {e["id"] for e in entities.values() if e["type"] == "STORE" and e["code"] == value}
                tills = [e["id"] for e in entities.values() if e["parent_id"] in stores]
                clauses.append(f"till_id IN ({','.join('?' * len(tills)) or 'NULL'})")
                params += tills
                continue
            if operator == "EQUALS":
                clauses.append("(" + " OR ".join(f"{c} = ?" for c in columns) + ")")
                params += [value] * len(columns)
            else:
                clauses.append("(" + " OR ".join(f"substr({c}, 1, ?) = ?" for c in columns) + ")")
                for _ in columns:
                    params += [len(value), value]
        else:
            raise v2_error(400, 1007, f"Problems with search conditions: unsupported operator {operator}")
    return " AND ".join(clauses), params


def _wanted(names: Any) -> set[str] | None:
    """Requested enrichment names; None means all ("*")."""
    if names in (None, ""):
        return set()
    names = names if isinstance(names, list) else [names]
    return None if "*" in names else {str(n) for n in names}


def _pick(mapping: dict[str, Any], wanted: set[str] | None) -> dict[str, Any]:
    return dict(mapping) if wanted is None else {k: v for k, v in mapping.items() if k in wanted}


@handler
async def search_entity(request: web.Request) -> tuple[dict, int]:
    config = request.app[CONFIG]
    if not config.entity_search_enabled:
        raise v2_error(403, 403, "Access denied: EntitySearch is not enabled for this org")
    try:
        payload = await request.json()
    except ValueError:
        raise v2_error(400, 400, "Invalid JSON body") from None
    if not isinstance(payload, dict):
        raise v2_error(400, 400, "Invalid JSON body")
    entity = payload.get("entityType")
    if entity not in ("CUSTOMER", "TRANSACTION"):
        raise v2_error(400, 1002, "Entity type cannot be empty (CUSTOMER or TRANSACTION)")
    try:
        limit, offset = int(payload.get("limit", 10)), int(payload.get("offset", 0))
    except (TypeError, ValueError):
        raise v2_error(400, 400, "limit and offset must be integers") from None
    if offset < 0:
        raise v2_error(400, 1011, "Offset cannot be negative")
    if not 1 <= limit <= config.search_max_limit:
        raise v2_error(400, 400, f"limit must be between 1 and {config.search_max_limit}")
    store, clock = request.app[STORE], request.app[CLOCK]
    where, params = _search_where(entity, payload.get("searchConditions"), store.entities)
    enrichment = payload.get("enrichmentFields") or {}
    enriched = _wanted(enrichment.get("enrichedFields"))
    custom, extended = _wanted(enrichment.get("customFields")), _wanted(enrichment.get("extendedFields"))
    table = "customers" if entity == "CUSTOMER" else "transactions"
    if entity == "CUSTOMER":
        where += " AND status != 'DELETED'"  # "Deleted customers are not included in the search results."
    # The page's ids first, then their rows: sorting whole rows for every page cost seconds per deep page at 1M.
    page = f"SELECT id FROM {table} WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?"
    rows = store.select(f"SELECT * FROM {table} WHERE id IN ({page}) ORDER BY id DESC", [*params, limit, offset])
    total_required = flag(request.query, "requiredTotal") or flag(request.query, "totalRequired")
    total = store.scalar(f"SELECT COUNT(*) FROM {table} WHERE {where}", params) if total_required else len(rows)
    render = renderer(request)
    if entity == "CUSTOMER":
        details = []
        for c in rows:
            store_entity = render.store_of(c["registered_till"])
            fields = {
                "customerStatus": "ACTIVE" if c["status"] == "ACTIVE" else c["status"],
                "statusLabel": c["status"].title(),
                "registeredDate": clock.v2(c["registered_on"]),
                "loyaltyStatus": "LOYALTY",
                "registeredStoreCode": store_entity["code"],
                "registeredStoreName": store_entity["name"],
                "lastUpdatedOn": clock.v2(c["updated_on"]),
            }
            enrichment_out = _pick(fields, enriched)
            if extended is None or extended:
                enrichment_out["extendedFields"] = _pick(render.customer_extended(c), extended)
            if custom is None or custom:
                enrichment_out["customFields"] = _pick(json.loads(c["custom"]), custom)
            details.append(
                {
                    "entityId": str(c["id"]),
                    "profiles": [{"source": "INSTORE", "firstName": c["firstname"], "lastName": c["lastname"]}],
                    "enrichedFields": enrichment_out,
                }
            )
        data = [{"entityType": "CUSTOMER", "customerSearchDetails": details}] if details else []
    else:
        details = []
        for t in rows:
            fields = {
                "payment_mode": [m["mode"] for m in render.payment_modes(t)],
                "outlier_status": t["outlier_status"],
                "transaction_notes": t["notes"],
                "last_updated_on_date_time": clock.v2(t["auto_update_time"]),
            }
            out = _pick(fields, enriched)
            out["customFields"] = _pick({"channel": "instore"}, custom) if custom is None or custom else {}
            out["paymentModes"] = []
            details.append({"entityId": str(t["id"]), "transactionEnrichedFields": out})
        data = [{"entityType": "TRANSACTION", "transactionSearchDetails": details}] if details else []
    pagination = {"limit": limit, "offset": offset, "sortBy": "ID", "sortOrder": "DESC", "total": total}
    return {"pagination": pagination, "data": data, "warnings": [], "errors": []}, 200


# -- v2 customer transactions / transaction detail ------------------------------------------------------------


def _v2_customer(store: LoyaltyStore, raw: str) -> dict[str, Any]:
    try:
        customer = store.customer(int(raw))
    except ValueError:
        customer = None
    if customer is None or customer["status"] == "DELETED":
        raise v2_error(404, 8015, "Customer not found for the given identifiers")
    if customer["status"] == "MERGED":
        raise v2_error(404, 8069, f"Customer is merged into customer {customer['merged_into']}")
    return customer


@handler
def v2_customer_transactions(request: web.Request) -> tuple[dict, int]:
    query, config, store, clock = request.query, request.app[CONFIG], request.app[STORE], request.app[CLOCK]
    customer = _v2_customer(store, request.match_info["customer_id"])
    bad = v2_error(400, 400, "Invalid input: limit and offset must be integers")
    limit, offset = int_param(query, "limit", 20, bad), int_param(query, "offset", 0, bad)
    if not 1 <= limit <= config.transactions_max_limit:
        raise v2_error(400, 400, f"Invalid input: limit must be between 1 and {config.transactions_max_limit}")
    if offset < 0:
        raise v2_error(400, 400, "Invalid input: offset cannot be negative")
    sort_by, sort_order = query.get("sortBy", "BILLING_TIME"), query.get("sortOrder", "DESC").upper()
    if sort_by != "BILLING_TIME" or sort_order not in ("ASC", "DESC"):
        raise v2_error(400, 400, "Invalid input: only sortBy=BILLING_TIME and sortOrder ASC|DESC are supported")
    embed = {e.strip().upper() for e in query.get("embed", "").split(",") if e.strip()}
    if embed - TXN_EMBEDS:
        raise v2_error(400, 400, f"Invalid embed: {sorted(embed - TXN_EMBEDS)}")
    where, params = "customer_id = ?", [customer["id"]]
    for name, op in (("startDate", ">="), ("endDate", "<=")):
        if query.get(name):
            try:
                params.append(clock.parse_local(query[name], V2_DATE_FORMATS))
            except ValueError:
                raise v2_error(400, 400, f"Invalid {name}: expected YYYY-MM-DD HH:MM:SS") from None
            where += f" AND billing_time {op} ?"
    if query.get("endDate") and len(query["endDate"]) == 10:
        params[-1] += DAY - 1  # a date-only endDate includes that whole day
    rows = store.select(
        f"SELECT * FROM transactions WHERE {where} "
        f"ORDER BY billing_time {sort_order}, id {sort_order} LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    total = store.scalar(f"SELECT COUNT(*) FROM transactions WHERE {where}", params)
    render = renderer(request)
    data = []
    for row in rows:
        row["program_id"] = customer["program_id"]
        data.append(render.v2_transaction_summary(row, embed))
    pagination = {"limit": limit, "offset": offset, "sortBy": "BILLING_TIME", "sortOrder": sort_order, "total": total}
    return {"pagination": pagination, "data": data, "warnings": [], "errors": []}, 200


@handler
def v2_transaction(request: web.Request) -> tuple[dict, int]:
    store = request.app[STORE]
    txn_type = request.query.get("type", "REGULAR").upper()
    if txn_type not in TXN_TYPES:
        raise v2_error(400, 605, "Invalid transaction type passed")
    try:
        rows = store.select("SELECT * FROM transactions WHERE id = ?", (int(request.match_info["txn_id"]),))
    except ValueError:
        rows = []
    # The type defaults to REGULAR: a RETURN bill is only found with type=RETURN.
    if not rows or rows[0]["type"] != txn_type:
        raise v2_error(404, 620, "Transaction id is invalid")
    txn = rows[0]
    parent = None
    if txn["return_of"]:
        parent = store.select("SELECT * FROM transactions WHERE id = ?", (txn["return_of"],))[0]
    body = renderer(request).v2_transaction(txn, parent, tenders=flag(request.query, "tenders"))
    return body, 200


# -- v2 points ledger ---------------------------------------------------------------------------------------

LEDGER_IDENTIFIERS = {"id": "id", "email": "email", "mobile": "mobile", "externalId": "external_id"}
LEDGER_ENTRY_TYPES = {"CREDIT", "DEBIT", "OPENING_BALANCE"}
POINT_CATEGORIES = {"REGULAR", "PROMISED", "TRIGGER_BASED"}


@handler
def v2_points_ledger(request: web.Request) -> tuple[dict, int]:
    query, config, store, clock = request.query, request.app[CONFIG], request.app[STORE], request.app[CLOCK]
    name, value, source = query.get("identifierName"), query.get("identifierValue"), query.get("source")
    if not (name and value and source):
        raise v2_error(400, 11013, "identifierName, identifierValue, source can not be empty")
    if name not in LEDGER_IDENTIFIERS:
        raise v2_error(400, 8013, "Lookup, Invalid identifier passed")
    customer = store.find_customer(LEDGER_IDENTIFIERS[name], value)
    if _unavailable(customer) is not None:
        raise v2_error(400, 11012, "Invalid userId passed in request")
    bad_int = v2_error(400, 400, "Invalid input: limit and offset must be integers")
    limit, page = int_param(query, "limit", 10, bad_int), int_param(query, "offset", 0, bad_int)
    if limit > config.ledger_max_limit:
        # Code per the endpoint's error table (11029); the Points Ledger overview says 11006 / max 10.
        raise v2_error(400, 11029, f"Limit cannot be greater than {config.ledger_max_limit}")
    if limit < 1 or page < 0:
        raise v2_error(400, 400, "Invalid input: limit must be positive and offset (page number) non-negative")
    entry_type, category = query.get("ledgerEntryType"), query.get("pointCategoryType")
    if entry_type and entry_type not in LEDGER_ENTRY_TYPES:
        raise v2_error(400, 11007, "Invalid ledgerEntryType passed in request")
    if category and category not in POINT_CATEGORIES:
        raise v2_error(400, 11008, "Invalid pointCategoryType passed in request")
    program_id = query.get("programId")
    if program_id and program_id != str(customer["program_id"]):
        raise v2_error(400, 11005, "Invalid programId passed in request")
    where, params = "customer_id = ?", [customer["id"]]
    start, end = _ledger_window(query, config, clock)
    if start is not None:
        where += " AND created_on BETWEEN ? AND ?"
        params += [start, end]
    if entry_type:
        where += " AND entry_type = ?"
        params.append(entry_type)
    if category and category != "REGULAR":
        where += " AND 0"  # every generated entry is in the Main (REGULAR) category
    order = "ASC" if (query.get("sortOrder") or query.get("sort") or "DESC").upper() == "ASC" else "DESC"
    total = store.scalar(f"SELECT COUNT(*) FROM ledger WHERE {where}", params)
    page_count = math.ceil(total / limit)
    if total and page >= page_count:
        raise v2_error(
            400, 11003, "There are no ledger entries present for the given parameters. Try removing parameters"
        )
    rows = store.select(
        f"SELECT * FROM ledger WHERE {where} ORDER BY created_on {order}, id {order} LIMIT ? OFFSET ?",
        [*params, limit, page * limit],
    )
    txn_ids = [r["transaction_id"] for r in rows if r["transaction_id"]]
    txns = {
        t["id"]: t
        for t in store.select(f"SELECT * FROM transactions WHERE id IN ({','.join('?' * len(txn_ids))})", txn_ids)
    }
    render = renderer(request)
    body = {
        "customerDetails": {
            "firstName": customer["firstname"],
            "lastName": customer["lastname"],
            "userId": customer["id"],
            "externalId": customer["external_id"],
            "entityType": "CUSTOMER",
        },
        "ledgerDetails": {"pageNumber": page, "pageSize": limit, "totalEntries": total, "pageCount": page_count},
        "ledgerEntries": [render.ledger_entry(r, txns.get(r["transaction_id"])) for r in rows],
        "warnings": [],
    }
    return body, 200


def _ledger_window(query: Any, config: Any, clock: Clock) -> tuple[int | None, int | None]:
    """The created-time window; at most ``ledger_max_window_days`` (docs: 90; 1 year with includeLastOneYearData)."""
    raw_start, raw_end = query.get("startDate"), query.get("endDate")
    try:
        start = clock.parse_local(raw_start, LEDGER_DATE_FORMATS) if raw_start else None
        end = clock.parse_local(raw_end, LEDGER_DATE_FORMATS) if raw_end else None
    except ValueError:
        raise v2_error(
            400, 11011, "The date format used is not supported. Enter the date in (yyyy-MM-ddTHH:mm:ss) format"
        ) from None
    span = (365 if flag(query, "includeLastOneYearData") else config.ledger_max_window_days) * DAY
    if start is None and end is None:
        return None, None
    if start is not None and end is not None:
        if start > end:
            raise v2_error(400, 11009, "Startdate is after endDate")
        if end - start > config.ledger_max_window_days * DAY:
            raise v2_error(
                400,
                11010,
                f"Time interval between startDate and endDate is greater than {config.ledger_max_window_days} days",
            )
        return start, end
    if start is not None:
        return start, start + span
    return end - span, end


# -- v1.1 customer/redemptions ----------------------------------------------------------------------------


def _v11_single_customer(request: web.Request) -> dict[str, Any]:
    identifier, value = _v11_identifier(request.query)
    customer = request.app[STORE].find_customer(identifier, value)
    problem = _unavailable(customer)
    if problem is not None:
        raise v11_error(400, int(problem[0]), problem[1])
    return customer


def _v11_range(query: Any, clock: Clock, column: str) -> tuple[str, list[int]]:
    where, params = "", []
    for name, op in (("start_date", ">="), ("end_date", "<=")):
        raw = query.get(name)
        if not raw:
            continue
        try:
            value = clock.parse_local(raw, V11_DATE_FORMATS)
        except ValueError:
            raise v11_error(400, 400, f"Invalid {name}: expected YYYY-MM-DD or YYYY-MM-DD HH:MM:SS") from None
        if name == "end_date" and len(raw) == 10:
            value += DAY - 1
        where += f" AND {column} {op} ?"
        params.append(value)
    return where, params


@handler
def v11_customer_redemptions(request: web.Request) -> tuple[dict, int]:
    query, store, clock = request.query, request.app[STORE], request.app[CLOCK]
    customer = _v11_single_customer(request)
    kind = query.get("type", "").upper()
    if kind not in ("", "POINTS", "COUPONS", "ALL"):
        raise v11_error(400, 400, "Invalid type: POINTS or COUPONS")
    bad = v11_error(400, 400, "Invalid limit or start id")
    limit = int_param(query, "limit", 10, bad)
    order = "ASC" if query.get("order", "desc").lower() == "asc" else "DESC"
    render = renderer(request)
    body_customer: dict[str, Any] = {
        "mobile": customer["mobile"] or "",
        "email": customer["email"] or "",
        "external_id": customer["external_id"],
        "firstname": customer["firstname"],
        "lastname": customer["lastname"],
        "user_groups2": [],
        "rows": 0,
        "coupons_count": None,
        "points_count": None,
        "coupons_start_id": "",
        "points_start_id": "",
        "redemptions": {"coupons": {"coupon": None}, "points": {"point": None}},
    }
    # Rows are numbered from 1 in the order returned; *_start_id is the number of the first row wanted.
    for part, table, column, where_extra in (
        ("points", "redemptions", "redeemed_on", ""),
        ("coupons", "coupons", "redeemed_on", " AND redeemed_on IS NOT NULL"),
    ):
        if kind not in ("", "ALL", part.upper()):
            continue
        part_limit = int_param(query, f"{part}_limit", limit, bad)
        start_id = int_param(query, f"{part}_start_id", 1, bad)
        if part_limit < 1 or start_id < 1:
            raise bad
        where, params = _v11_range(query, clock, column)
        where = f"customer_id = ?{where_extra}{where}"
        params = [customer["id"], *params]
        total = store.scalar(f"SELECT COUNT(*) FROM {table} WHERE {where}", params)
        rows = store.select(
            f"SELECT * FROM {table} WHERE {where} ORDER BY {column} {order}, id {order} LIMIT ? OFFSET ?",
            [*params, part_limit, start_id - 1],
        )
        if part == "points":
            items = [render.v11_points_redemption(r, start_id + i) for i, r in enumerate(rows)]
            body_customer["redemptions"]["points"]["point"] = items or None
        else:
            items = [render.v11_coupon_redemption(r, start_id + i) for i, r in enumerate(rows)]
            body_customer["redemptions"]["coupons"]["coupon"] = items or None
        # As in the docs' sample: a part without rows has a null count and an empty start id.
        body_customer[f"{part}_count"] = total or None
        body_customer[f"{part}_start_id"] = start_id if items else ""
        body_customer["rows"] += len(items)
    body = {"response": {"status": {"success": True, "code": 200, "message": "Success"}, "customer": body_customer}}
    return body, 200


# -- v1.1 customer/coupons ------------------------------------------------------------------------------------


@handler
def v11_customer_coupons(request: web.Request) -> tuple[dict, int]:
    query, store, clock = request.query, request.app[STORE], request.app[CLOCK]
    identifier, raw = _v11_identifier(query)
    limit = int_param(query, "limit", 100, v11_error(400, 400, "Invalid limit"))
    if limit < 1:
        raise v11_error(400, 400, "Invalid limit")
    order_by = query.get("order_by", "created_date")
    column = {"created_date": "issued_on", "valid_till": "valid_till", "id": "id"}.get(order_by)
    if column is None:
        raise v11_error(400, 400, "Invalid order_by: created_date, valid_till or id")
    order = "ASC" if query.get("sort_order", "desc").lower() == "asc" else "DESC"
    status_filter = query.get("status", "").upper()
    status_sql = {"": "", "REDEEMED": " AND redeemed_on IS NOT NULL", "UNREDEEMED": " AND redeemed_on IS NULL"}
    if status_filter not in status_sql:
        raise v11_error(400, 400, "Invalid status: REDEEMED or UNREDEEMED")
    # start_date/end_date select coupons issued in the range.
    where_range, range_params = _v11_range(query, clock, "issued_on")
    render = renderer(request)
    items, ok, total = [], 0, 0
    for value in [v.strip() for v in raw.split(",") if v.strip()]:
        customer = store.find_customer(identifier, value)
        problem = _unavailable(customer)
        if problem is not None:
            items.append({identifier: value, "item_status": {"success": "false", "code": int(problem[0]),
                                                             "message": problem[1]}})  # fmt: skip
            continue
        ok += 1
        where = f"customer_id = ?{where_range}{status_sql[status_filter]}"
        params = [customer["id"], *range_params]
        total += store.scalar(f"SELECT COUNT(*) FROM coupons WHERE {where}", params)
        coupons = store.select(
            f"SELECT * FROM coupons WHERE {where} ORDER BY {column} {order}, id {order} LIMIT ?", [*params, limit]
        )
        items.append(
            {
                "firstname": customer["firstname"],
                "lastname": customer["lastname"],
                "email": customer["email"] or "",
                "external_id": customer["external_id"],
                "mobile": customer["mobile"] or "",
                "id": str(customer["id"]),
                "coupons": {"coupon": [render.v11_coupon(k) for k in coupons]},
                "item_status": {"success": "true", "code": 1000, "message": "Coupons retrieved successfully"},
            }
        )
    success = "true" if ok else "false"
    code, status = (200, 200) if ok else (500, 500)
    body = {
        "response": {
            "pagination": {"limit": str(limit), "offset": "0", "total": total},
            "status": {"success": success, "code": code, "message": "Success" if ok else "All requests have failed"},
            "customers": {"customer": items},
        }
    }
    return body, status


# -- v1.1 organization/entities -------------------------------------------------------------------------------


@handler
def v11_org_entities(request: web.Request) -> tuple[dict, int]:
    query, store, clock = request.query, request.app[STORE], request.app[CLOCK]
    entity_type = query.get("type", "").upper()
    if entity_type not in ("STORE", "TILL", "ZONE", "CONCEPT"):
        raise v11_error(400, 400, "Invalid type: STORE, TILL, ZONE or CONCEPT")
    bad = v11_error(400, 400, "Invalid start_id or limit")
    start_id, limit = int_param(query, "start_id", 0, bad), int_param(query, "limit", 500, bad)
    if limit < 1:
        raise bad
    where, params = "type = ? AND id >= ?", [entity_type, start_id]
    if query.get("id"):  # "pass each ID separating with ,"
        try:
            ids = [int(x) for x in query["id"].split(",")]
        except ValueError:
            raise v11_error(400, 400, "Invalid id") from None
        where += f" AND id IN ({','.join('?' * len(ids))})"
        params += ids
    if query.get("modified_since"):
        try:
            since = clock.parse_local(query["modified_since"], V11_DATE_FORMATS)
        except ValueError:
            raise v11_error(400, 400, "Invalid modified_since: expected YYYY-MM-DD HH:MM:SS") from None
        where += " AND last_updated_on >= ?"
        params.append(since)
    if flag(query, "active_only"):
        where += " AND is_active = 1"
    total = store.scalar(f"SELECT COUNT(*) FROM entities WHERE {where}", params)
    rows = store.select(f"SELECT * FROM entities WHERE {where} ORDER BY id LIMIT ?", [*params, limit])
    render = renderer(request)
    body = {
        "response": {
            "pagination": {"limit": str(limit), "offset": "0", "total": total},
            "status": {"success": True, "code": 200, "message": "SUCCESS"},
            "organization": {"entities": {"entity": [render.v11_entity(e) for e in rows]}},
        }
    }
    return body, 200


# -- Rewards catalog issuals ----------------------------------------------------------------------------------


@handler
def reward_issuals(request: web.Request) -> tuple[dict, int]:
    query, store = request.query, request.app[STORE]
    try:
        customer = store.customer(int(request.match_info["customer_id"]))
    except ValueError:
        customer = None
    if _unavailable(customer) is not None:
        body = {
            "status": {"success": False, "code": 404, "message": "Customer not found"},
            "rewardIssueTransactions": [],
        }
        raise ApiError(404, body)
    bad = ApiError(400, error_body(request.path, 400, "Invalid page or size"))
    page, size = int_param(query, "page", 0, bad), int_param(query, "size", 100, bad)
    if page < 0 or size < 1:
        raise bad
    where, params = "customer_id = ?", [customer["id"]]
    if query.get("status") in ("true", "false"):
        where += " AND success = ?"
        params.append(1 if query["status"] == "true" else 0)
    if query.get("rewardId"):
        ids = [int(x) for x in query["rewardId"].split(",") if x.strip().isdigit()]
        where += f" AND reward_id IN ({','.join('?' * len(ids)) or 'NULL'})"
        params += ids
    total = store.scalar(f"SELECT COUNT(*) FROM rewards WHERE {where}", params)
    rows = store.select(
        f"SELECT * FROM rewards WHERE {where} ORDER BY issued_on DESC, id DESC LIMIT ? OFFSET ?",
        [*params, size, page * size],
    )
    render = renderer(request)
    pages = math.ceil(total / size)
    body = {
        "status": {"success": True, "code": 200, "message": "Reward issue transactions fetched successfully"},
        "rewardIssueTransactions": [render.reward_issual(r) for r in rows],
        "pagingDto": {
            "last": page >= pages - 1,
            "totalElements": total,
            "totalPages": pages,
            "numberOfElements": len(rows),
            "first": page == 0,
            "size": size,
            "number": page,
        },
    }
    return body, 200


def add_routes(app: web.Application) -> None:
    app.router.add_post(TOKEN_PATH, generate_token)
    app.router.add_get("/v1.1/customer/get", v11_customer_get)
    app.router.add_get("/v1.1/customer/redemptions", v11_customer_redemptions)
    app.router.add_get("/v1.1/customer/coupons", v11_customer_coupons)
    app.router.add_get("/v1.1/organization/entities", v11_org_entities)
    app.router.add_post("/v2/search/entity", search_entity)
    app.router.add_get("/v2/customers/{customer_id}/transactions", v2_customer_transactions)
    app.router.add_get("/v2/transactions/{txn_id}", v2_transaction)
    app.router.add_get("/v2/pointsLedger/getCustomerLedgerInfo", v2_points_ledger)
    app.router.add_get("/api_gateway/rewards/core/v1/management/customer/{customer_id}/issuals", reward_issuals)
