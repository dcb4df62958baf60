"""Change discovery without entity search: the customer identifiers file."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from singer_sdk.exceptions import FatalAPIError

from emulators.capillary import ADMIN
from emulators.server import BackgroundServer
from tests.support import instant, past_anchor, run_tap, run_tap_to_the_end, tap_config

NO_SEARCH = {"customers": 12, "seed": 21, "entity_search_enabled": False, "merged_customer_rate": 0.0,
             "deleted_customer_rate": 0.0, "anchor_time": past_anchor()}  # fmt: skip


@pytest.mark.capillary(**NO_SEARCH)
def test_without_entity_search_the_error_points_to_the_identifiers_file(capillary_emulator: BackgroundServer) -> None:
    with pytest.raises(FatalAPIError, match=r"HTTP 403 from POST /v2/search/entity.*customer_identifiers_path"):
        run_tap(tap_config(capillary_emulator))


@pytest.mark.capillary(**NO_SEARCH)
@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_identifiers_file_lists_the_customers_to_read(
    capillary_emulator: BackgroundServer, tmp_path: Path, kind: str
) -> None:
    admin = capillary_emulator.app[ADMIN]
    customers = [
        capillary_emulator.call(admin.customer, i) for i in capillary_emulator.call(admin.changed_customers, 0)
    ]
    chosen = customers[:5]
    if kind == "csv":
        path = tmp_path / "customers.csv"
        path.write_text("id,note\n" + "".join(f"{c['id']},x\n" for c in chosen))
    else:  # resolved to ids through v1.1 customer/get
        path = tmp_path / "customers.jsonl"
        rows = [{"mobile": c["mobile"]} if c["mobile"] else {"email": c["email"]} for c in chosen[:3]]
        rows += [{"external_id": c["external_id"]} for c in chosen[3:]]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = run_tap(tap_config(capillary_emulator, customer_identifiers_path=str(path)))
    assert {r["customer_id"] for r in run.records["customers"]} == {c["id"] for c in chosen}
    assert {r["transaction_id"] for r in run.records["transactions"]} == {
        t["id"] for c in chosen for t in c["transactions"]
    }
    # Every stream made one pass (one window) and finished it.
    assert all("pass_since" not in b for b in run.state["bookmarks"].values())


@pytest.mark.capillary(**NO_SEARCH)
def test_identifiers_that_match_no_customer_are_counted_and_summed_up(
    capillary_emulator: BackgroundServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A mobile of the file that no customer has is an item error of the lookup (1012), logged and summed up at
    the end of the run with the other streams."""
    admin = capillary_emulator.app[ADMIN]
    known = capillary_emulator.call(admin.changed_customers, 0)[:2]
    path = tmp_path / "customers.csv"
    path.write_text("id,mobile\n" + "".join(f"{i},\n" for i in known) + ",919999999999\n")
    with caplog.at_level(logging.WARNING):
        run = run_tap(tap_config(capillary_emulator, customer_identifiers_path=str(path)))
    assert {r["customer_id"] for r in run.records["customers"]} == set(known)
    assert run.tap.item_errors.for_stream("customer_lookup") == {"1012": 1}
    summary = "Stream customer_lookup skipped items with Capillary error codes: {'1012': 1}"
    assert summary in [r.getMessage() for r in caplog.records]


DRIFT = {"rules": [{"path": "/v2/search/entity", "total": "drift"}]}  # each page's total differs from the last
SEARCHABLE = {"customers": 40, "seed": 21, "anchor_time": past_anchor()}


@pytest.mark.capillary(**SEARCHABLE)
def test_a_window_that_moves_while_listed_is_listed_in_halves(
    capillary_emulator: BackgroundServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A listing of several pages whose total moves from page to page could have skipped a customer: the window
    is listed again, then in halves, down to pieces of one page, which hold still. Every customer is found."""
    capillary_emulator.set_faults(DRIFT)
    with caplog.at_level(logging.INFO):
        run = run_tap(tap_config(capillary_emulator, backfill_window_days=1000))  # one window of all customers
    admin = capillary_emulator.app[ADMIN]
    customers = [
        capillary_emulator.call(admin.customer, i) for i in capillary_emulator.call(admin.changed_customers, 0)
    ]
    active = {c["id"] for c in customers if c["status"] == "ACTIVE"}
    assert {r["customer_id"] for r in run.records["customers"]} == active
    assert run.tap.warnings.for_stream("customer_search")["listing_moved"] >= 3, "the whole window, three times"
    assert any("listing its two halves" in r.getMessage() for r in caplog.records)
    assert all("pass_since" not in bookmark for bookmark in run.state["bookmarks"].values())


@pytest.mark.capillary(**SEARCHABLE)
def test_a_window_that_keeps_moving_in_pieces_fails_before_its_state(capillary_emulator: BackgroundServer) -> None:
    """Twenty-five customers changed in one second: no piece of their window lists in one page, so its listing
    never holds still. The run stops, and no STATE reaches that window."""
    admin = capillary_emulator.app[ADMIN]
    at = capillary_emulator.config.anchor_epoch - 3600
    capillary_emulator.call(admin.activity, {"updated_customers": 25, "at": at})
    capillary_emulator.set_faults(DRIFT)
    run, error = run_tap_to_the_end(tap_config(capillary_emulator))
    assert isinstance(error, FatalAPIError)
    assert re.search(r"Customers kept changing while entity search listed customers updated from .* even halved 6 "
                     r"times: one could be missed, so the run stops before the window's STATE", str(error))  # fmt: skip
    moment = datetime.fromtimestamp(at, UTC)
    written = [instant(b["replication_key_value"]) for s in run.states for b in s["bookmarks"].values()]
    assert all(end <= moment for end in written), "no STATE past the window"
