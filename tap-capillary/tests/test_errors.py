"""The one classification of what Capillary reports (``errors.py``), on the docs' own envelopes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from emulators.capillary.dialects import error_body, token_refused_body
from emulators.capillary.doc_samples import sample_bytes
from tap_capillary.errors import CODES, Action, Report, classify, item_reports, read_reports

README = Path(__file__).parents[1] / "README.md"


def reports_of(name: str) -> tuple[Report, ...]:
    text = sample_bytes(name)
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    return read_reports(body, text).errors


@pytest.mark.parametrize(
    ("name", "code", "message", "action"),
    [
        ("v11_envelope__invalid_token.txt", 401, "Unauthorized", Action.RENEW_TOKEN),  # not JSON as printed
        ("v11_envelope__token_expired.txt", 498, "Token expired at 2019-12-02T12:31:15.000+0530", Action.RENEW_TOKEN),
        ("v11_envelope__no_access.json", 403, "Client doesn't have access to the requested resource", Action.NO_ACCESS),
        ("access_error__4000.txt", 4000, "Not authorized. Access is denied!", Action.NO_ACCESS),
        ("access_error__4001.txt", 4001, "Authorization status unavailable!", Action.RETRY),
        ("v2_error__customer_not_found.json", 8015, "Customer not found for the given identifiers", Action.ITEM_ERROR),
        ("rewards_error__400.json", 400, "size should be greater or equal to 1.", Action.FATAL),
        ("v3_oauth_token_generate__invalid_key.json", 320001, "Invalid client key and secret", Action.FATAL),
    ],
)
def test_each_documented_envelope_is_read_and_classified_in_any_http_status(name, code, message, action):
    reports = reports_of(name)
    assert reports == (Report(code, message),)
    for http_status in (200, 400, 401, 403, 404, 498, 500, 503):
        assert classify(http_status, reports).action == action, http_status


EMULATED_PATHS = ["/v1.1/customer/get", "/v2/customers/1/transactions", "/v2/search/entity",
                  "/api_gateway/rewards/core/v1/management/customer/1/issuals"]  # fmt: skip


FAULTS = [(429, Action.RETRY), (461, Action.RETRY), (502, Action.RETRY), (503, Action.RETRY), (521, Action.RETRY),
          (400, Action.FATAL)]  # fmt: skip


@pytest.mark.parametrize("path", [*EMULATED_PATHS, "/v3/oauth/token/generate"])
@pytest.mark.parametrize(("code", "action"), FAULTS)
def test_the_emulators_error_dialects_are_classified(path: str, code: int, action: Action) -> None:
    """The emulator answers each path's API in its own dialect (``emulators/capillary/dialects.py``)."""
    body = error_body(path, code, "refused")
    for http_status in (200, code):
        assert classify(http_status, read_reports(body, json.dumps(body).encode()).errors).action == action


@pytest.mark.parametrize("path", EMULATED_PATHS)
@pytest.mark.parametrize("code", [401, 498])
def test_the_emulators_token_refusals_renew_the_token(path: str, code: int) -> None:
    body = token_refused_body(path, code, "Unauthorized")
    assert classify(401, read_reports(body, json.dumps(body).encode()).errors).action == Action.RENEW_TOKEN


def test_success_flags_are_not_trusted():
    """The invalid-token envelope says "success": "true"; its code decides."""
    body = {"response": {"status": {"success": "true", "code": "401", "message": "Unauthorized"}}}
    assert classify(200, read_reports(body, b"").errors).action == Action.RENEW_TOKEN


@pytest.mark.parametrize(
    ("status", "action"),
    [(200, Action.OK), (401, Action.RENEW_TOKEN), (498, Action.RENEW_TOKEN), (403, Action.NO_ACCESS),
     (429, Action.RETRY), (461, Action.RETRY), (521, Action.RETRY), (502, Action.RETRY), (400, Action.FATAL),
     (404, Action.FATAL)],
)  # fmt: skip
def test_without_codes_the_http_status_decides(status, action):
    assert classify(status, read_reports({}, b"{}").errors).action == action
    assert classify(status, read_reports(None, b"<html>gateway</html>").errors).action == action


def test_unknown_codes_are_fatal_and_the_highest_action_wins():
    assert classify(200, (Report(99999, "new"),)).action == Action.FATAL
    assert classify(200, (Report(8015), Report(429))).action == Action.RETRY
    assert classify(200, (Report(8015), Report(498))).action == Action.RENEW_TOKEN
    v2_error_without_code = {"errors": [{"status": False, "message": "something"}]}
    assert classify(200, read_reports(v2_error_without_code, b"").errors).action == Action.FATAL


def test_items_decide_when_the_body_lists_them():
    """The documented "All requests have failed" (code 500, HTTP 500) only sums up its items' codes."""
    body = json.loads(sample_bytes("v11_customer_get__all_failed_500.json"))
    request = read_reports(body, b"").errors
    items = [item_reports(c["item_status"]).errors for c in body["response"]["customers"]["customer"]]
    assert [r.code for r in request] == [500]
    assert [[r.code for r in i] for i in items] == [[8109], [400]]
    assert classify(500, request).action == Action.RETRY  # without its items, a server error
    assert classify(500, request + items[0], items_decide=True).action == Action.ITEM_ERROR
    assert classify(500, request + items[0] + items[1], items_decide=True).action == Action.FATAL


def test_warnings_of_both_generations_are_read():
    search = json.loads(sample_bytes("v2_search_entity__customer.json"))
    assert [w.code for w in read_reports(search, b"").warnings] == [91310] * 4 + [91313, 91310, 91313, 91310, 91313]
    snippet = {"success": "true", "code": "1052", "message": "Transactions fetched successfully", "warnings":
               {"warning": ["91001"]}}  # fmt: skip
    assert item_reports(snippet).warnings == (Report(91001),)
    assert classify(200, item_reports(snippet).errors).action == Action.OK


def test_the_readme_table_is_the_code_table():
    rows = re.findall(r"^\| `(\d+)` \| ([a-z ]+) \|", README.read_text(encoding="utf-8"), re.MULTILINE)
    names = {action: action.name.lower().replace("_", " ") for action in Action}
    assert {int(code): action for code, action in rows} == {code: names[a] for code, (a, _) in CODES.items()}
