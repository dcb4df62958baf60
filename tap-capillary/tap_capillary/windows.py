"""Extraction passes and their window bookmarks.

A pass emits the records whose replication key lies in ``[since, until)``: ``since`` is the
bookmark (or ``start_date``), ``until`` is ``now - lookback`` (or ``end_date`` if earlier). Keeping
the last ``lookback`` minutes for the next run is what makes the margin catch late data (a change
that shows up in entity search a while after its time) without sending anything twice: the next
pass starts exactly at this pass's ``until``, and by then such changes are visible.

The pass finds the customers to read by their last-update time (entity search ``lastUpdatedOn``),
window by window, from ``since - lookback`` to the open end: a customer's last update is at or
after every activity of theirs, so reading each customer found in a window (their history in the
pass) reads every record of the pass once. After each window the stream state records the window
end; a pass killed mid-way resumes at the next window of the same pass (``pass_since`` keeps its
origin).

State per stream (no per-customer entries)::

    {"replication_key": "updated_at", "replication_key_value": "<end of last completed window, UTC>",
     "pass_since": "<origin of an unfinished pass>"}   # pass_since only while a pass is unfinished
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from singer_sdk.exceptions import ConfigValidationError

PASS_SINCE = "pass_since"
BOOKMARK = "replication_key_value"


@dataclass(frozen=True)
class Window:
    """Customers whose last update lies in ``[start, end)``; ``end`` None means open-ended."""

    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class Pass:
    since: datetime
    until: datetime
    windows: tuple[Window, ...]

    def includes(self, value: datetime | None) -> bool:
        return value is not None and self.since <= value < self.until


def parse_utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def plan_pass(
    stream_state: dict[str, Any],
    *,
    stream_name: str,
    start_date: str | None,
    end_date: str | None,
    now: datetime,
    window_days: int,
    lookback_minutes: int,
    single_window: bool = False,
) -> Pass:
    """The pass a run makes for one stream, from its state and the settings."""
    bookmark = stream_state.get(BOOKMARK)
    if stream_state.get(PASS_SINCE) and bookmark:
        since, discover_from = parse_utc(stream_state[PASS_SINCE]), parse_utc(bookmark)  # resume mid-pass
    elif bookmark:
        since = parse_utc(bookmark)
        discover_from = since - timedelta(minutes=lookback_minutes)  # clock skew, index lag
    elif start_date:
        since = discover_from = parse_utc(start_date)
    else:
        msg = f"start_date is required: stream {stream_name!r} has no state yet."
        raise ConfigValidationError(msg, errors=[msg])
    lookback = timedelta(minutes=lookback_minutes)
    until = min(now - lookback, parse_utc(end_date)) if end_date else now - lookback
    if until <= since:
        return Pass(since=since, until=since, windows=())  # nothing has settled since the bookmark
    step = timedelta(days=window_days)
    windows = []
    start = discover_from
    # Windows up to ``now`` (not ``until``): customers updated after a bounded pass's end still
    # hold records inside it. The last window is open so customers updated during the run count.
    while not single_window and start + step < now:
        windows.append(Window(start, start + step))
        start += step
    windows.append(Window(start, None))
    return Pass(since=since, until=until, windows=tuple(windows))


def complete_window(stream_state: dict[str, Any], replication_key: str, pass_: Pass, window: Window) -> None:
    """Record a finished window in the stream state."""
    stream_state.pop("progress_markers", None)
    stream_state["replication_key"] = replication_key
    if window.end is None:  # pass finished: everything before ``until`` has been emitted
        stream_state[BOOKMARK] = pass_.until.isoformat()
        stream_state.pop(PASS_SINCE, None)
    else:
        stream_state[BOOKMARK] = window.end.isoformat()
        stream_state[PASS_SINCE] = pass_.since.isoformat()
