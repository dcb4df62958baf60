"""``meltano run tap-capillary target-adobe-aep`` end to end: what AEP stores is what Capillary holds.

Expectations come from the Capillary emulator's canonical data (``harness.canonical_records``), the results
from the Adobe emulator's datasets (``harness.stored_records``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from harness import (
    STREAMS,
    Pipeline,
    bookmarks,
    canonical_records,
    dataset_sizes,
    differences,
    failed_messages,
    keys,
    per_stream,
    stored_records,
    xdm_mismatches,
)

from emulators.capillary import ADMIN

# Small but varied: returns, customers without e-mail or mobile, merged and deleted customers.
SMALL_ORG = pytest.mark.capillary(customers=30, history_days=60, seed=7)
ACTIVITY = {
    "new_customers": 2,
    "updated_customers": 3,
    "new_transactions": 4,
    "new_returns": 2,
    "ledger_entries": 3,
    "tier_changes": 3,
    "redemptions": 2,
    "coupons": 2,
    "rewards": 2,
    "store_updates": 1,
}


def run_ok(pipeline: Pipeline, *options: str, **env: str) -> dict[str, dict[str, int]]:
    result = pipeline.run(*options, **env)
    assert result.returncode == 0, f"meltano run failed, log: {result.log_path}"
    return result.summaries


def accepted(summaries: dict[str, dict[str, int]]) -> dict[str, int]:
    return {stream: numbers["accepted"] for stream, numbers in summaries.items() if numbers["accepted"]}


@SMALL_ORG
def test_full_run_delivers_every_record_as_xdm(pipeline: Pipeline) -> None:
    counts = pipeline.capillary.call(pipeline.capillary.app[ADMIN].counts)
    assert min(counts["returns"], counts["merged_customers"], counts["deleted_customers"]) > 0

    summaries = run_ok(pipeline)

    canonical = canonical_records(pipeline.capillary)
    expected, stored = keys(canonical), stored_records(pipeline.adobe)
    assert set(per_stream(expected)) == set(STREAMS)
    # Every record of every stream arrived once, in the dataset of its kind, and nothing else did.
    assert keys(stored) == expected, differences(expected, keys(stored))
    config = pipeline.adobe.config
    assert {(r.stream, r.dataset) for r in stored} == {
        (stream, config.profile_dataset_id if stream == "customers" else config.event_dataset_id) for stream in STREAMS
    }
    assert failed_messages(pipeline.adobe) == 0
    assert accepted(summaries) == per_stream(expected)
    assert xdm_mismatches(canonical, stored, config.tenant_id) == {}


@SMALL_ORG
def test_incremental_run_sends_the_changes_and_full_refresh_everything(pipeline: Pipeline) -> None:
    capillary, adobe = pipeline.capillary, pipeline.adobe
    run_ok(pipeline)
    before = canonical_records(capillary)
    activity = capillary.call(capillary.app[ADMIN].activity, dict(ACTIVITY))
    after = canonical_records(capillary)
    changes = keys(after) - keys(before)
    # The expectation itself: the new bills are exactly those the emulator reports as added.
    added_bills = activity["transactions_added"] + activity["returns_added"]
    assert sorted(key for stream, key in changes if stream == "transactions") == sorted((str(i),) for i in added_bills)

    mark = dataset_sizes(adobe)
    summaries = run_ok(pipeline)
    sent = stored_records(adobe, after=mark)
    assert keys(sent) == changes, differences(changes, keys(sent))
    assert accepted(summaries) == per_stream(changes)

    ids = {(r.stream, r.key): r.xdm_id for r in stored_records(adobe)}
    mark = dataset_sizes(adobe)
    run_ok(pipeline, "--full-refresh")
    resent = stored_records(adobe, after=mark)
    assert keys(resent) == keys(after), differences(keys(after), keys(resent))
    assert {(r.stream, r.key): r.xdm_id for r in resent} == {key: ids[key] for key in keys(after)}
    # The changed records carry their new values.
    assert xdm_mismatches(after, sent, adobe.config.tenant_id) == {}


@SMALL_ORG
def test_state_set_and_clear_rewind_the_pipeline(pipeline: Pipeline) -> None:
    capillary, adobe = pipeline.capillary, pipeline.adobe
    started = datetime.now(UTC)
    run_ok(pipeline)
    state = pipeline.state()
    # A finished pass: every stream's bookmark is the run's end (its start, lookback 0), no pass in progress.
    assert set(bookmarks(state)) == set(STREAMS)
    now = datetime.now(UTC)
    for bookmark in bookmarks(state).values():
        assert "pass_since" not in bookmark
        assert started - timedelta(seconds=1) <= datetime.fromisoformat(bookmark["replication_key_value"]) <= now

    # `meltano state set` with an earlier bookmark: the next run re-sends exactly what changed since then.
    canonical = canonical_records(capillary)
    rewind = datetime.fromisoformat(capillary.config.anchor_time) - timedelta(days=20)
    for bookmark in state["bookmarks"].values():
        bookmark["replication_key_value"] = rewind.isoformat()
    pipeline.set_state(state)
    mark = dataset_sizes(adobe)
    run_ok(pipeline)
    expected = keys(canonical, since=rewind.isoformat())
    assert 0 < sum(expected.values()) < sum(keys(canonical).values())
    assert keys(stored_records(adobe, after=mark)) == expected, differences(expected, keys(stored_records(adobe, mark)))

    # `meltano state clear`: the next run starts again from start_date and re-sends everything.
    pipeline.clear_state()
    mark = dataset_sizes(adobe)
    run_ok(pipeline)
    assert keys(stored_records(adobe, after=mark)) == keys(canonical)
