"""Capillary's paginations, none of which may stop early on a total the server omits or misstates.

Every paginator advances by the rows that came back (servers may return fewer than asked) and follows one
rule (``more_pages``): an empty page ends a listing; a full page always asks for the next one, whatever a
total says; a short page ends it unless a total says there is more, or there is no total to ask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from singer_sdk.pagination import BaseAPIPaginator

from tap_capillary.client import parse_json
from tap_capillary.convert import boolean, integer, listed


def more_pages(returned: int, asked: int, total_says_more: bool | None) -> bool:
    """Whether to ask for the next page, given the rows returned and asked for and what a total says (None:
    no total)."""
    if returned == 0:
        return False
    if returned >= asked:
        return True
    return total_says_more is not False


def _rows(value: Any) -> int:
    return len(value) if isinstance(value, list) else 0


class OffsetPaginator(BaseAPIPaginator[int]):
    """v2 ``limit``/``offset`` (customer transactions, entity search) with ``pagination.total``."""

    def __init__(self, page_size: int, rows: Callable[[dict[str, Any]], int]) -> None:
        super().__init__(start_value=0)
        self.page_size = page_size
        self._rows = rows

    def get_next(self, response: requests.Response) -> int | None:
        body = parse_json(response)
        returned = self._rows(body)
        total = integer((body.get("pagination") or {}).get("total"))
        read = self.current_value + returned
        return read if more_pages(returned, self.page_size, None if total is None else read < total) else None


class LedgerPaginator(BaseAPIPaginator[int]):
    """``offset`` is a 0-based page number with ``ledgerDetails.pageCount``; asking past the last page is
    documented as code 11003, an empty page (``errors.py``)."""

    def __init__(self, page_size: int) -> None:
        super().__init__(start_value=0)
        self.page_size = page_size

    def get_next(self, response: requests.Response) -> int | None:
        body = parse_json(response)
        page_count = integer((body.get("ledgerDetails") or {}).get("pageCount"))
        says_more = None if page_count is None else self.current_value + 1 < page_count
        following = self.current_value + 1
        return following if more_pages(_rows(body.get("ledgerEntries")), self.page_size, says_more) else None


class RewardsPaginator(BaseAPIPaginator[int]):
    """0-based ``page``/``size`` with Spring's ``pagingDto.last``."""

    def __init__(self, page_size: int) -> None:
        super().__init__(start_value=0)
        self.page_size = page_size

    def get_next(self, response: requests.Response) -> int | None:
        body = parse_json(response)
        try:
            last = boolean((body.get("pagingDto") or {}).get("last"))
        except ValueError:
            last = None  # unreadable: the rows decide
        says_more = None if last is None else not last
        returned = _rows(body.get("rewardIssueTransactions"))
        return self.current_value + 1 if more_pages(returned, self.page_size, says_more) else None


class RedemptionPaginator(BaseAPIPaginator[dict[str, int]]):
    """v1.1 redemptions page each part (``parts``: response key -> item key) with its own 1-based row number
    (``points_start_id``, ``coupons_start_id``) and count (``points_count``, ``coupons_count``). The first
    request asks for every part; later ones only for the parts with rows left."""

    def __init__(self, page_size: int, parts: dict[str, str]) -> None:
        super().__init__(start_value=dict.fromkeys(parts, 1))
        self.page_size = page_size
        self.parts = parts

    def get_next(self, response: requests.Response) -> dict[str, int] | None:
        customer = (parse_json(response).get("response") or {}).get("customer") or {}
        redemptions = customer.get("redemptions") or {}
        following = {}
        for part, start in self.current_value.items():
            returned = len(listed(redemptions.get(part), self.parts[part]))
            count = integer(customer.get(f"{part}_count"))
            if more_pages(returned, self.page_size, None if count is None else start + returned <= count):
                following[part] = start + returned
        return following or None


class EntityPaginator(BaseAPIPaginator[int]):
    """``organization/entities`` returns ids >= ``start_id`` in id order; the next page starts after the last
    id. ``pagination.total`` counts the entities from ``start_id`` on."""

    def __init__(self, page_size: int) -> None:
        super().__init__(start_value=0)
        self.page_size = page_size

    def get_next(self, response: requests.Response) -> int | None:
        body = parse_json(response).get("response") or {}
        entities = listed((body.get("organization") or {}).get("entities"), "entity")
        total = integer((body.get("pagination") or {}).get("total"))
        says_more = None if total is None else len(entities) < total
        if not more_pages(len(entities), self.page_size, says_more):
            return None
        return int(entities[-1]["id"]) + 1
