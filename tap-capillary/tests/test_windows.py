"""Pass bounds: whole seconds, never inside a repeated local hour, kept across a resume."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tap_capillary.windows import PASS_SINCE, PASS_UNTIL, Window, before_repeated_hour, complete_window, plan_pass

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
UTC = UTC


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def plan(state: dict | None = None, **settings) -> object:
    arguments = {"stream_name": "s", "start_date": "2025-01-01T00:00:00+00:00", "end_date": None,
                 "now": utc("2025-11-10T00:00:00"), "window_days": 30, "lookback_minutes": 0, **settings}  # fmt: skip
    return plan_pass(state or {}, **arguments)


@pytest.mark.parametrize(
    ("zone", "moment", "expected"),
    [
        # New York 2025-11-02: 01:00-02:00 local happens twice, 05:00-07:00 UTC
        (NEW_YORK, "2025-11-02T05:00:00", "2025-11-02T05:00:00"),
        (NEW_YORK, "2025-11-02T05:45:10", "2025-11-02T05:00:00"),
        (NEW_YORK, "2025-11-02T06:15:00", "2025-11-02T05:00:00"),
        (NEW_YORK, "2025-11-02T06:59:59", "2025-11-02T05:00:00"),
        (NEW_YORK, "2025-11-02T07:00:00", "2025-11-02T07:00:00"),
        (NEW_YORK, "2025-11-02T04:59:59", "2025-11-02T04:59:59"),
        (NEW_YORK, "2025-03-09T07:30:00", "2025-03-09T07:30:00"),  # spring forward: nothing repeats
        # London 2025-10-26: 01:00-02:00 local twice, 00:00-02:00 UTC
        (LONDON, "2025-10-26T01:30:00", "2025-10-26T00:00:00"),
        (UTC, "2025-10-26T01:30:00", "2025-10-26T01:30:00"),
    ],
)
def test_a_pass_never_ends_inside_a_repeated_local_hour(zone, moment: str, expected: str) -> None:
    assert before_repeated_hour(utc(moment), zone) == utc(expected)
    assert plan(now=utc(moment), cluster_timezone=zone).until == utc(expected)


def test_pass_bounds_are_whole_seconds() -> None:
    """Capillary's filters take whole seconds: a fraction would leave the rest of that second to no pass."""
    pass_ = plan(start_date="2025-10-01T00:00:00.250+00:00", end_date="2025-11-01T12:00:00.500+00:00")
    assert (pass_.since, pass_.until) == (utc("2025-10-01T00:00:00"), utc("2025-11-01T12:00:00"))


def test_a_resumed_pass_keeps_its_end() -> None:
    """Killed mid-pass, resumed with other settings or later: the pass ends where it was planned to, so the
    customers of its completed windows (not found again) lose none of their records in between."""
    first = plan(start_date="2025-10-01T00:00:00+00:00", end_date="2025-10-20T00:00:00+00:00", window_days=10)
    state: dict = {}
    complete_window(state, "updated_at", first, first.windows[0])
    assert (state[PASS_SINCE], state[PASS_UNTIL]) == (first.since.isoformat(), first.until.isoformat())

    resumed = plan(state, now=utc("2025-11-20T00:00:00"))  # no end_date, ten days later
    assert (resumed.since, resumed.until) == (first.since, first.until)
    assert resumed.windows[0].start == first.windows[0].end
    complete_window(state, "updated_at", resumed, Window(resumed.windows[-1].start, None))
    assert PASS_UNTIL not in state
    assert state["replication_key_value"] == first.until.isoformat()
    assert plan(state, now=utc("2025-11-20T00:00:00")).since == first.until


def test_a_state_from_before_pass_until_resumes_to_the_current_end() -> None:
    state = {"replication_key_value": "2025-10-11T00:00:00+00:00", PASS_SINCE: "2025-10-01T00:00:00+00:00"}
    resumed = plan(state)
    assert (resumed.since, resumed.until) == (utc("2025-10-01T00:00:00"), utc("2025-11-10T00:00:00"))
    assert resumed.windows[0].start == utc("2025-10-11T00:00:00")
    assert resumed.until - resumed.since > timedelta(days=30)
