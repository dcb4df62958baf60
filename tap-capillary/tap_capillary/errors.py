"""One classification of what Capillary reports, whatever the HTTP status it comes with.

Capillary reports errors in the body, in several forms (samples in ``emulators/capillary/doc_samples``):
v1.1 ``response.status`` and per-item ``item_status`` (codes as strings or numbers, ``success`` as
``"true"``/``"false"`` or booleans, and ``"success": "true"`` on an invalid token), v2 ``errors[]`` and
``warnings[]``, the rewards API's ``status``, OAuth's ``errors[]``, and, as the docs print them, bodies that
are not JSON at all (the token envelopes' curly quotes and missing brace, the access errors'
``errorCode=4000`` lines). The body's codes decide (``CODES``); the HTTP status decides when the body has
none. ``success`` flags are never trusted: the documented invalid-token envelope says ``"success": "true"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from http import HTTPStatus
from typing import Any


class Action(IntEnum):
    """What the tap does; when a body reports several codes, the highest action wins. (Warnings are not
    codes of a response's outcome: they come in lists of their own, and are counted and logged.)"""

    OK = 0
    NO_DATA = 1  # nothing (more) for these parameters: an empty page
    ITEM_ERROR = 2  # this customer or bill cannot be read (gone, merged): counted, logged, skipped
    RETRY = 3  # transient: retried with backoff, then fatal
    FATAL = 4  # the run stops, naming the endpoint and the code
    NO_ACCESS = 5  # fatal, naming the endpoint and the access group resource it needs
    RENEW_TOKEN = 6  # the OAuth token was refused: a new one is generated and the request sent again


OK, NO_DATA, ITEM_ERROR = Action.OK, Action.NO_DATA, Action.ITEM_ERROR
RETRY, FATAL, NO_ACCESS, RENEW_TOKEN = Action.RETRY, Action.FATAL, Action.NO_ACCESS, Action.RENEW_TOKEN

#: Documented codes (request-level and item-level share one numbering) -> (action, what the docs say).
#: A code not listed here is fatal. Warnings (v2 ``warnings[]``, v1.1 ``warnings.warning[]``) are
#: counted and logged whatever their code. The tap README's error table is this table.
CODES: dict[int, tuple[Action, str]] = {
    200: (OK, "success (v1.1, v2, rewards)"),
    201: (OK, "some items failed: each item's own code decides"),
    600: (OK, "transaction retrieved"),
    1000: (OK, "customer retrieved; coupons retrieved"),
    1052: (OK, "transactions fetched"),
    3200: (OK, "entity search successful"),
    401: (RENEW_TOKEN, 'authentication failed / invalid token (documented in HTTP 200 with success "true")'),
    498: (RENEW_TOKEN, "token expired"),
    403: (NO_ACCESS, "access denied: the client's access group lacks the resource"),
    4000: (NO_ACCESS, "Not authorized. Access is denied!"),
    429: (RETRY, "too many requests"),
    461: (RETRY, "search engine busy"),
    500: (RETRY, "requests have failed due to errors (with per-item codes: the items decide)"),
    502: (RETRY, "bad gateway"),
    503: (RETRY, "authorization status unavailable"),
    504: (RETRY, "gateway timeout"),
    521: (RETRY, "multiple actions running for the same customer"),
    4001: (RETRY, "Authorization status unavailable!"),
    11002: (RETRY, "points ledger: events pending"),
    1012: (ITEM_ERROR, "cannot find customer (also: merged into another customer)"),
    8015: (ITEM_ERROR, "customer not found for the given identifiers"),
    8069: (ITEM_ERROR, "merged customer found"),
    8109: (ITEM_ERROR, "customer is deleted after PII delete request"),
    11012: (ITEM_ERROR, "points ledger: invalid userId"),
    404: (ITEM_ERROR, "resource not found (in a body: the customer or bill asked for)"),
    620: (ITEM_ERROR, "transaction id is invalid"),
    11003: (NO_DATA, "points ledger: no entries for the parameters (a page past the last)"),
    400: (FATAL, "invalid input"),
    1060: (FATAL, "batch limit exceeded"),
    11010: (FATAL, "points ledger: date range too long (lower ledger_window_days)"),
    11029: (FATAL, "points ledger: limit cannot be greater than 100 (lower page_size)"),
    320001: (FATAL, "invalid client key and secret (OAuth)"),
}

# Codes and messages in bodies that are not JSON: '"code": "498"', 'errorCode=4000', '"message": "…"'.
_CODE_IN_TEXT = re.compile(r"""(?:["“]code["”]\s*:\s*["“]?|errorCode\s*=\s*)(-?\d+)""")
_MESSAGE_IN_TEXT = re.compile(r"""(?:["“]message["”]\s*:\s*["“]([^"”\n]*)|errorMessage\s*=\s*([^\n]*))""")


@dataclass(frozen=True)
class Report:
    """One code (and message) a body reports."""

    code: int | None
    message: str | None = None

    @property
    def action(self) -> Action:
        if self.code is None:
            return FATAL
        return CODES.get(self.code, (FATAL, ""))[0]

    def __str__(self) -> str:
        return f"code {self.code}: {self.message}" if self.message else f"code {self.code}"


@dataclass(frozen=True)
class Verdict:
    action: Action
    reports: tuple[Report, ...] = ()  # the body's codes that led to ``action`` (none: the HTTP status did)

    @property
    def code(self) -> int | None:
        return self.reports[0].code if self.reports else None

    def describe(self) -> str:
        return "; ".join(map(str, self.reports))


def _code(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _report(status: Any, *, coded: bool = True) -> Report | None:
    """A status block as a report; without a code only when ``coded`` is False (an ``errors[]`` entry)."""
    if not isinstance(status, dict) or (coded and status.get("code") in (None, "")):
        return None
    message = status.get("message")
    return Report(_code(status.get("code")), None if message is None else str(message))


def _warnings(value: Any) -> list[Report]:
    """``[{"code", "message"}]`` (v2) or v1.1's ``{"warning": ["91001", …]}`` -> reports."""
    if isinstance(value, dict):
        value = value.get("warning")
    if not isinstance(value, list):
        return []
    found = []
    for warning in value:
        report = _report(warning) if isinstance(warning, dict) else Report(_code(warning), None)
        if report is not None:
            found.append(report)
    return found


@dataclass(frozen=True)
class Reports:
    """The request-level codes and warnings of one body."""

    errors: tuple[Report, ...]
    warnings: tuple[Report, ...]


def read_reports(body: Any, text: bytes) -> Reports:
    """What a body reports at request level. ``body`` is the decoded JSON (None when ``text`` is not JSON)."""
    if body is None:
        decoded = text.decode("utf-8", "replace")
        codes = _CODE_IN_TEXT.findall(decoded)
        messages = [a or b for a, b in _MESSAGE_IN_TEXT.findall(decoded)]
        return Reports((Report(int(codes[0]), messages[0].strip() if messages else None),) if codes else (), ())
    if not isinstance(body, dict):
        return Reports((), ())
    errors: list[Report] = []
    warnings: list[Report] = []
    envelope = body.get("response")
    if isinstance(envelope, dict):  # v1.1
        status = envelope.get("status")
        errors += filter(None, [_report(status)])
        warnings += _warnings(status.get("warnings")) if isinstance(status, dict) else []
    v2_errors = body.get("errors")
    errors += filter(None, (_report(e, coded=False) for e in v2_errors if e)) if isinstance(v2_errors, list) else []
    errors += filter(None, [_report(body.get("status"))])  # rewards
    warnings += _warnings(body.get("warnings"))
    return Reports(tuple(errors), tuple(warnings))


def item_reports(item_status: Any) -> Reports:
    """A v1.1 ``item_status`` (and its ``warnings.warning[]``)."""
    report = _report(item_status)
    warnings = _warnings(item_status.get("warnings")) if isinstance(item_status, dict) else []
    return Reports((report,) if report else (), tuple(warnings))


def by_http_status(status: int) -> Action:
    """The action when the body reports no code."""
    if status in (HTTPStatus.UNAUTHORIZED, 498):
        return RENEW_TOKEN
    if status == HTTPStatus.FORBIDDEN:
        return NO_ACCESS
    if status in (HTTPStatus.TOO_MANY_REQUESTS, 461, 521) or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return RETRY
    return OK if status < HTTPStatus.BAD_REQUEST else FATAL


#: v1.1 request-level codes that only sum up the items' codes ("All requests have failed", HTTP 500 included).
ITEM_SUMMARIES = frozenset({200, 201, 500})


def classify(http_status: int, reports: tuple[Report, ...], *, items_decide: bool = False) -> Verdict:
    """The action for a response: the highest action among the body's codes, else the HTTP status's.

    ``items_decide``: the body lists items with their own codes, so its summary codes and HTTP status say
    nothing more (the documented "All requests have failed" comes with HTTP 500).
    """
    considered = [r for r in reports if not (items_decide and r.code in ITEM_SUMMARIES)]
    worst = max((r.action for r in considered), default=OK)
    if worst > OK:
        return Verdict(worst, tuple(r for r in considered if r.action == worst))
    return Verdict(OK if items_decide else by_http_status(http_status))
