"""The ``total`` fault: responses whose paging totals are omitted, understated or overstated.

Each Capillary dialect states "how much is left" its own way: v2 and v1.1 ``pagination.total``, the ledger's
``ledgerDetails.pageCount``/``totalEntries``, the rewards API's ``pagingDto``, and v1.1 redemptions'
``points_count``/``coupons_count``. A client that stops on them stops early when they are wrong; this lets the
tests say so. "Understate" reports this page as all there is, "overstate" promises pages that do not exist,
"drift" moves a v2 listing's total from page to page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from emulators.faults import FAULT_DECISION

MORE = 5  # pages or rows an overstated total promises beyond the real ones


def _page_rows(body: dict[str, Any]) -> int:
    """Rows on a v2 page: transactions ``data[]``, or entity search's details inside ``data[]``."""
    rows = 0
    for item in body.get("data") or []:
        details = item.get("customerSearchDetails") or item.get("transactionSearchDetails")
        rows += len(details) if isinstance(details, list) else 1
    return rows


def _pagination(pagination: dict[str, Any], how: str, rows: int) -> None:
    if how == "omit":
        pagination.pop("total", None)
    elif how == "understate":
        pagination["total"] = rows
    else:
        pagination["total"] = int(pagination.get("total") or 0) + MORE


def _drift(pagination: dict[str, Any]) -> None:
    """v2 ``pagination``: page n (``offset / limit``) reports n more rows than there are, as a listing whose
    matches change while it is paged does; a listing of one page keeps its true total."""
    limit = int(pagination.get("limit") or 0)
    if limit and "total" in pagination:
        pagination["total"] = int(pagination["total"]) + int(pagination.get("offset") or 0) // limit


def misstate(body: Any, how: str) -> None:
    """Change ``body``'s totals in place (``how``: omit, understate, overstate, or drift: v2 listings only)."""
    if not isinstance(body, dict):
        return
    if how == "drift":
        if isinstance(body.get("pagination"), dict) and "response" not in body:
            _drift(body["pagination"])
        return
    envelope = body.get("response")
    if isinstance(envelope, dict):
        if isinstance(envelope.get("pagination"), dict):  # organization/entities
            entities = ((envelope.get("organization") or {}).get("entities") or {}).get("entity") or []
            _pagination(envelope["pagination"], how, len(entities))
        customer = envelope.get("customer")
        if isinstance(customer, dict):  # customer/redemptions
            for part, item in (("points", "point"), ("coupons", "coupon")):
                rows = len(((customer.get("redemptions") or {}).get(part) or {}).get(item) or [])
                count = customer.get(f"{part}_count")
                customer[f"{part}_count"] = {"omit": None, "understate": rows or None}.get(how, (count or 0) + MORE)
    if isinstance(body.get("pagination"), dict):  # v2 transactions, entity search
        _pagination(body["pagination"], how, _page_rows(body))
    details = body.get("ledgerDetails")
    if isinstance(details, dict):
        if how == "omit":
            details.pop("pageCount", None)
            details.pop("totalEntries", None)
        else:
            page = int(details.get("pageNumber") or 0)
            details["pageCount"] = page + 1 if how == "understate" else int(details.get("pageCount") or 0) + MORE
    paging = body.get("pagingDto")
    if isinstance(paging, dict):
        if how == "omit":
            del body["pagingDto"]
        else:
            paging["last"] = how == "understate"
            paging["totalPages"] = int(paging.get("number") or 0) + (1 if how == "understate" else MORE)


@web.middleware
async def totals_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    decision = request.get(FAULT_DECISION)
    how = decision.total if decision is not None else None
    if how is None or response.status != 200 or not isinstance(response, web.Response) or response.body is None:
        return response
    body = orjson.loads(response.body)
    misstate(body, how)
    return web.Response(body=orjson.dumps(body), status=200, content_type="application/json", charset="utf-8")
