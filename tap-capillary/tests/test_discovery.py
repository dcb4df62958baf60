"""Change discovery without entity search: the customer identifiers file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from singer_sdk.exceptions import FatalAPIError

from emulators.capillary import ADMIN
from emulators.server import BackgroundServer
from tests.support import past_anchor, run_tap, tap_config

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
