"""Shards (``shards.py``): disjoint, stable slices of the customers; their union is an unsharded run; each state
records its layout, and a run of another layout refuses it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from emulators.capillary import ADMIN
from emulators.server import BackgroundServer
from tap_capillary.shards import Shard, shard_of
from tap_capillary.tap import STREAM_TYPES, InvalidStateError, TapCapillary
from tap_capillary.windows import SHARD
from tests.support import OAUTH, Run, past_anchor, run_tap, tap_config

ORG = {"customers": 24, "seed": 31, "merged_customer_rate": 0.0, "deleted_customer_rate": 0.0,
       "anchor_time": past_anchor()}  # fmt: skip
# Each stream's primary key, as the tap declares it.
KEYS = {stream_type.name: stream_type.primary_keys for stream_type in STREAM_TYPES}


def keyed(run: Run) -> Counter:
    return Counter(
        (stream, tuple(record[k] for k in KEYS[stream]))
        for stream, records in run.records.items()
        for record in records
    )


def test_a_customers_shard_is_fixed_by_its_id() -> None:
    """Pinned values: a change of the function would move every customer of every sharded deployment."""
    assert [shard_of(i, 4) for i in (500000001, 500000002, 500000003, 7, 123456789012)] == [1, 3, 0, 2, 0]
    assert shard_of(500000001, 1) == 0
    counts = Counter(shard_of(i, 4) for i in range(500000000, 500010000))
    assert min(counts.values()) > 2300, counts  # an even spread: 2,500 each
    shard = Shard(1, 4)
    assert shard.includes(500000001)
    assert not shard.includes(500000002)
    assert (shard.layout, Shard().layout) == ({"index": 1, "count": 4}, None)
    assert str(shard) == "shard_index 1 of shard_count 4"


@pytest.mark.capillary(**ORG)
def test_shards_are_disjoint_and_together_read_what_one_run_reads(capillary_emulator: BackgroundServer) -> None:
    whole = keyed(run_tap(tap_config(capillary_emulator)))
    shards = [run_tap(tap_config(capillary_emulator, shard_count=3, shard_index=i)) for i in range(3)]
    parts = [keyed(run) for run in shards]
    assert sum(parts, Counter()) == whole
    for i, part in enumerate(parts):
        customers = {key[0] for stream, key in part if stream == "customers"}
        assert customers, f"shard {i} read no customer"
        assert all(shard_of(c, 3) == i for c in customers)
        assert all(r["customer_id"] in customers for r in shards[i].records["transactions"])
    assert [run.count("stores") for run in shards] == [whole_stores := len(shards[0].records["stores"]), 0, 0]
    assert whole_stores > 0
    # Each shard's states record its layout (shards 1 and 2 have no stores bookmark), and resume with it.
    for i, run in enumerate(shards):
        bookmarks = {stream: b for stream, b in run.state["bookmarks"].items() if "replication_key_value" in b}
        assert ("stores" in bookmarks) == (i == 0)
        assert {json.dumps(b[SHARD]) for b in bookmarks.values()} == {json.dumps({"index": i, "count": 3})}
    again = run_tap(tap_config(capillary_emulator, shard_count=3, shard_index=1), shards[1].state)
    assert again.records == {}, "nothing changed since"


@pytest.mark.capillary(**ORG, entity_search_enabled=False)
def test_identifier_file_rows_are_sharded_by_the_customer_id_they_resolve_to(
    capillary_emulator: BackgroundServer, tmp_path: Path
) -> None:
    """A row may name a customer by mobile or email: it is resolved to the id first, so a customer is in the same
    shard however the file names them (and as in search mode)."""
    admin = capillary_emulator.app[ADMIN]
    ids = capillary_emulator.call(admin.changed_customers, 0)
    customers = [capillary_emulator.call(admin.customer, i) for i in ids]
    rows = [{"id": c["id"]} if n % 3 == 0 else {"mobile": c["mobile"]} if c["mobile"] else {"email": c["email"]}
            for n, c in enumerate(customers)]  # fmt: skip
    path = tmp_path / "customers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    read = [
        {r["customer_id"] for r in run_tap(tap_config(capillary_emulator, customer_identifiers_path=str(path),
                                                      shard_count=2, shard_index=i)).records["customers"]}
        for i in range(2)
    ]  # fmt: skip
    assert read[0] | read[1] == {c["id"] for c in customers}
    assert all(shard_of(c, 2) == i for i in range(2) for c in read[i])


def state_of(layout: dict[str, int] | None) -> dict[str, Any]:
    bookmark = {"replication_key": "updated_at", "replication_key_value": "2025-01-01T00:00:00+00:00"}
    return {"bookmarks": {"customers": bookmark if layout is None else {**bookmark, SHARD: layout}}}


@pytest.mark.parametrize(
    ("written_by", "run_as", "message"),
    [
        ({"index": 1, "count": 4}, {"shard_count": 8, "shard_index": 1},
         "written by shard_index 1 of shard_count 4 and this run is shard_index 1 of shard_count 8"),
        ({"index": 1, "count": 4}, {"shard_count": 4, "shard_index": 2},
         "written by shard_index 1 of shard_count 4 and this run is shard_index 2 of shard_count 4"),
        (None, {"shard_count": 2, "shard_index": 0}, "written by an unsharded run and this run is shard_index 0"),
        ({"index": 0, "count": 2}, {}, "written by shard_index 0 of shard_count 2 and this run is an unsharded run"),
    ],
    ids=["count-changed", "index-changed", "unsharded-state", "sharded-state-unsharded-run"],
)  # fmt: skip
def test_a_state_of_another_shard_layout_is_refused(
    written_by: dict[str, int] | None, run_as: dict[str, int], message: str
) -> None:
    config = {"base_url": "http://127.0.0.1:9", **OAUTH, "start_date": "2024-01-01T00:00:00Z", **run_as}
    with pytest.raises(InvalidStateError) as caught:
        TapCapillary(config=config, state=state_of(written_by))
    assert message in str(caught.value)
    assert "`meltano state clear <state id>`" in str(caught.value)
    same = {"shard_count": written_by["count"], "shard_index": written_by["index"]} if written_by else {}
    TapCapillary(config={**config, "shard_count": 1, "shard_index": 0, **same}, state=state_of(written_by))
