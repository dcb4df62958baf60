"""Window-based state: quiet second runs, exactly the new activity, resumable and bounded backfills."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from emulators.capillary import ADMIN
from emulators.launch import start_capillary
from emulators.server import REQUEST_LOG, BackgroundServer
from tap_capillary.tap import STREAM_TYPES
from tests.support import Run, instant, past_anchor, run_tap, tap_config

STREAMS = tuple(stream_type.name for stream_type in STREAM_TYPES)
KEYS = {stream_type.name: stream_type.primary_keys for stream_type in STREAM_TYPES}


def keys(records: list[dict[str, Any]], stream: str) -> list[tuple]:
    return [tuple(r[k] for k in KEYS[stream]) for r in records]


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    server = start_capillary(customers=25, seed=11, anchor_time=past_anchor())
    yield server
    server.stop()


def test_lookback_margin_is_reread_filtered_and_emitted_once_settled() -> None:
    """Runs emit up to ``lookback_minutes`` before their start and re-read the margin before the bookmark:
    a quiet second run re-reads customers but emits nothing, and recent data comes out exactly once later."""
    now = datetime.now(UTC)
    server = start_capillary(customers=15, seed=13, anchor_time=(now - timedelta(hours=3)).isoformat())
    try:
        admin = server.app[ADMIN]
        recent = server.call(admin.activity, {"at": int(now.timestamp()) - 30 * 60, "new_transactions": 3})
        config = tap_config(server, lookback_minutes=60)
        # Runs a few seconds apart: pass bounds are whole seconds, so runs within one second share their end.
        first = run_tap(config, now=now)
        assert first.count("transactions") > 0
        assert not {r["transaction_id"] for r in first.records["transactions"]} & set(recent["transactions_added"])
        server.call(server.app[REQUEST_LOG].clear)
        quiet = run_tap(config, state=first.state, now=now + timedelta(seconds=5))
        reread = server.call(lambda: server.app[REQUEST_LOG].counts["GET /v1.1/customer/get"])
        assert reread > 0, "the margin before the bookmark was read again"
        assert {s: quiet.count(s) for s in STREAMS} == dict.fromkeys(STREAMS, 0)
        # As if the margin had passed.
        settled = run_tap({**config, "lookback_minutes": 0}, state=quiet.state, now=now + timedelta(seconds=10))
        assert {r["transaction_id"] for r in settled.records["transactions"]} == set(recent["transactions_added"])
        assert {r["event_log_id"] for r in settled.records["points_ledger"]} == set(recent["ledger_added"])
        assert {r["customer_id"] for r in settled.records["customers"]} == set(recent["changed_customers"])
    finally:
        server.stop()


def test_incremental_run_picks_up_exactly_the_new_activity(server: BackgroundServer) -> None:
    admin = server.app[ADMIN]
    config = tap_config(server)
    now = datetime.now(UTC).replace(microsecond=0)
    first = run_tap(config, now=now)
    at = int(now.timestamp()) + 1  # after the first run's end, inside the second run's
    activity = server.call(
        admin.activity,
        {
            "at": at,
            "new_customers": 2,
            "updated_customers": 3,
            "new_transactions": 4,
            "new_returns": 1,
            "ledger_entries": 3,
            "tier_changes": 2,
            "redemptions": 2,
            "coupons": 2,
            "rewards": 2,
            "store_updates": 1,
        },
    )
    second = run_tap(config, state=first.state, now=now + timedelta(seconds=2))

    changed = set(activity["changed_customers"])
    assert {r["customer_id"] for r in second.records["customers"]} == changed
    assert {r["transaction_id"] for r in second.records["transactions"]} == set(
        activity["transactions_added"] + activity["returns_added"]
    )
    assert {r["event_log_id"] for r in second.records["points_ledger"]} == set(activity["ledger_added"])
    assert second.count("tier_history") == len(activity["tier_changes_added"])
    assert second.count("redemptions") == len(activity["redemptions_added"])
    assert {r["coupon_id"] for r in second.records["coupons"]} == set(activity["coupons_added"])
    assert {r["reward_transaction_id"] for r in second.records["reward_issuals"]} == set(activity["rewards_added"])
    assert {r["store_id"] for r in second.records["stores"]} == set(activity["stores_updated"])
    for stream in STREAMS:
        rk = second.tap.streams[stream].replication_key
        assert all(instant(r[rk]) == instant(activity["at"]) for r in second.records[stream]), stream
        if stream not in ("customers", "stores"):  # events: nothing of the first run comes back
            assert not set(keys(second.records[stream], stream)) & set(keys(first.records[stream], stream)), stream


def run_until_killed(config: dict[str, Any], tmp_path: Path, stream: str, states: int) -> list[dict]:
    """Run the tap as a process and SIGKILL it once ``stream`` has emitted ``states`` window states.

    Returns the messages up to that STATE: what a target had stored when it saved that state
    (whatever the tap wrote after it counts as lost with the process)."""
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "tap_capillary", "--config", str(config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    messages, seen = [], 0
    assert process.stdout is not None
    for line in process.stdout:
        message = json.loads(line)
        messages.append(message)
        if message["type"] == "STATE" and "pass_since" in message["value"]["bookmarks"].get(stream, {}):
            seen += 1
            if seen == states:
                break
    process.kill()
    process.wait()
    process.stdout.close()
    assert seen == states, "the tap was killed mid-way through the stream's backfill"
    return messages


def test_backfill_killed_mid_way_resumes_at_the_next_window(server: BackgroundServer, tmp_path: Path) -> None:
    config = tap_config(server, backfill_window_days=30)
    killed = Run(run_until_killed(config, tmp_path, "customers", states=4), tap=None)  # type: ignore[arg-type]
    bookmark = killed.state["bookmarks"]["customers"]
    assert instant(bookmark["pass_since"]) == instant(config["start_date"])
    window_end = instant(bookmark["replication_key_value"])

    resumed = run_tap(config, state=killed.state)
    complete = run_tap(config)

    expected = set(keys(complete.records["customers"], "customers"))
    before, after = keys(killed.records["customers"], "customers"), keys(resumed.records["customers"], "customers")
    assert set(before) | set(after) == expected, "nothing lost"
    assert not set(before) & set(after), "nothing before the saved state is sent again"
    assert len(after) == len(set(after))
    # The resumed run goes on with the window after the bookmark.
    progress = [s["bookmarks"]["customers"]["replication_key_value"] for s in resumed.states]
    moved = [instant(value) for value in progress if instant(value) != window_end]
    assert moved[0] == window_end + timedelta(days=30)


def test_bounded_backfill_then_incremental_run(server: BackgroundServer) -> None:
    config = tap_config(server)
    complete = run_tap(config)
    middle = datetime.fromtimestamp(server.config.anchor_epoch - 200 * 86_400, UTC).isoformat()
    bounded = run_tap({**config, "end_date": middle})
    rest = run_tap(config, state=bounded.state)
    for stream in STREAMS:
        rk = complete.tap.streams[stream].replication_key
        assert all(instant(r[rk]) < instant(middle) for r in bounded.records[stream]), stream
        assert all(instant(r[rk]) >= instant(middle) for r in rest.records[stream]), stream
        first, second = keys(bounded.records[stream], stream), keys(rest.records[stream], stream)
        if stream not in ("customers", "coupons", "stores"):  # snapshots: the latest version moves on
            assert sorted(first + second) == sorted(keys(complete.records[stream], stream)), stream
    assert bounded.state["bookmarks"]["transactions"]["replication_key_value"] == instant(middle).isoformat()


@pytest.mark.parametrize(
    ("first_run", "activity_at", "second_run"),
    [
        # America/New_York, 2025-11-02: local 01:00-02:00 happens twice (05:00-07:00 UTC)
        ("2025-11-02T06:15:00", "2025-11-02T06:30:00", "2025-11-02T07:30:00"),  # at the second 01:30
        ("2025-11-02T06:45:00", "2025-11-02T05:50:00", "2025-11-02T07:30:00"),  # at the first 01:50
    ],
)
def test_activity_in_a_repeated_local_hour_is_emitted_exactly_once(
    first_run: str, activity_at: str, second_run: str
) -> None:
    """Naive cluster-local times in a fall-back's repeated hour are ambiguous (read as the first occurrence):
    no run ends inside that hour, so each record of it is read, kept and emitted by exactly one run."""
    zone = {"cluster_timezone": "America/New_York", "merged_customer_rate": 0, "deleted_customer_rate": 0}
    server = start_capillary(customers=6, seed=3, anchor_time="2025-11-02T03:00:00+00:00", history_days=20, **zone)
    try:
        config = tap_config(server)
        customer = server.call(server.app[ADMIN].changed_customers, 0, None)[0]
        counts = {"ledger_entries": 2, "redemptions": 1, "tier_changes": 1, "coupons": 1, "rewards": 1,
                  "new_transactions": 1}  # fmt: skip
        at = int(datetime.fromisoformat(activity_at).replace(tzinfo=UTC).timestamp())
        runs = []
        state: dict[str, Any] = {}
        activity = None
        for now in (first_run, second_run, "2025-11-02T10:30:00"):
            if activity is None and at < datetime.fromisoformat(now).replace(tzinfo=UTC).timestamp():
                activity = server.call(server.app[ADMIN].activity, {"at": at, "customer_ids": [customer], **counts})
            run = run_tap(config, state, now=datetime.fromisoformat(now).replace(tzinfo=UTC))
            runs.append(run)
            state = run.state
    finally:
        server.stop()
    assert activity is not None
    emitted = {stream: [r for run in runs for r in run.records[stream]] for stream in STREAMS}
    by_id = {"points_ledger": ("event_log_id", "ledger_added"), "coupons": ("coupon_id", "coupons_added"),
             "reward_issuals": ("reward_transaction_id", "rewards_added"),
             "transactions": ("transaction_id", "transactions_added")}  # fmt: skip
    for stream, (key, added) in by_id.items():
        new = set(activity[added])
        assert new, stream
        assert sorted(r[key] for r in emitted[stream] if r[key] in new) == sorted(activity[added]), stream
    # Without ids: the customer's records after the generated history (a time in the second occurrence is
    # emitted an hour early: the API's naive time cannot say which occurrence it means).
    anchor = datetime(2025, 11, 2, 3, tzinfo=UTC)
    for stream, time_key, added in (("redemptions", "redeemed_at", "redemptions_added"),
                                    ("tier_history", "changed_at", "tier_changes_added")):  # fmt: skip
        new = [r for r in emitted[stream] if r["customer_id"] == customer and instant(r[time_key]) > anchor]
        assert len(new) == len(activity[added]) == 1, stream
    assert [instant(r["updated_at"]) > anchor for r in emitted["customers"] if r["customer_id"] == customer][-1]
