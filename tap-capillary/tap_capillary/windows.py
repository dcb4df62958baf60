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
end; a pass killed mid-way resumes at the next window of the same pass (``pass_since`` and
``pass_until`` keep its bounds, so a resumed pass neither leaves out the records between its old and
a new end nor skips the customers of its completed windows).

Pass bounds are whole seconds (Capillary's filters are), and ``until`` never falls inside the repeated
hour of a daylight-saving fall-back in the cluster's time zone: the API's naive local times there
are ambiguous (read as their first occurrence), so the whole repeated hour stays in one pass, whose
filters and bookmark are unambiguous.

State per stream (no per-customer entries)::

    {"replication_key": "updated_at", "replication_key_value": "<end of last completed window, UTC>",
     "pass_since": "<start of an unfinished pass>", "pass_until": "<its end>",  # while a pass is unfinished
     "shard": {"index": 2, "count": 4}}  # in a sharded run (``shards.py``): a run of another layout refuses it
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from singer_sdk.exceptions import ConfigValidationError

from tap_capillary.shards import describe_layout

PASS_SINCE = "pass_since"
PASS_UNTIL = "pass_until"
BOOKMARK = "replication_key_value"
SHARD = "shard"


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
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _stream_state_problem(stream_state: Any, now: datetime) -> str | None:
    if not isinstance(stream_state, dict):
        return f"its state is not an object: {stream_state!r}"
    moments = {}
    for key in (BOOKMARK, PASS_SINCE, PASS_UNTIL):
        value = stream_state.get(key)
        if value is None:
            continue
        try:
            moments[key] = parse_utc(value)
        except (TypeError, ValueError):
            return f"{key} {value!r} is not an ISO 8601 date-time"
        if moments[key] > now:
            return f"{key} {value} is later than now ({now.isoformat()}): the stream would emit nothing until then"
    if PASS_SINCE in moments and PASS_UNTIL in moments and moments[PASS_SINCE] > moments[PASS_UNTIL]:
        return (
            f"{PASS_SINCE} {stream_state[PASS_SINCE]} is after {PASS_UNTIL} {stream_state[PASS_UNTIL]}: "
            "the unfinished pass would never emit anything"
        )
    return None


def _layout_problem(stream_state: dict[str, Any], layout: dict[str, int] | None) -> str | None:
    recorded = stream_state.get(SHARD)
    if recorded == layout or BOOKMARK not in stream_state:  # a stream never read (stores in shards > 0): no bookmark
        return None
    return (
        f"its state was written by {describe_layout(recorded)} and this run is {describe_layout(layout)}: "
        "under another shard layout customers change shards, so its bookmarks would skip customers or read them "
        "twice. Run with the layout the state was written with, or clear the state of every shard "
        "(`meltano state clear <state id>`) and backfill again from start_date"
    )


def state_errors(
    state: Any, stream_names: Iterable[str], now: datetime, layout: dict[str, int] | None = None
) -> list[str]:
    """What in an input state would silently stall a stream, or cannot be read: a time later than ``now``, an
    unfinished pass that ends before it starts, a value that is no date-time, a shard layout other than this
    run's (``layout``, ``Shard.layout``). One message per stream."""
    bookmarks = state.get("bookmarks", {}) if isinstance(state, dict) else None
    if not isinstance(bookmarks, dict):
        return [f"The state must be an object with a bookmarks object, got {state!r:.200}."]
    fix = (
        "Correct it with `meltano state set`, or drop it with `meltano state clear` (the stream then starts "
        "again at start_date)."
    )
    errors = []
    for name in stream_names:
        if name not in bookmarks:
            continue
        if problem := _stream_state_problem(bookmarks[name], now):
            errors.append(f"Stream {name!r}: {problem}. {fix}")
        elif problem := _layout_problem(bookmarks[name], layout):
            errors.append(f"Stream {name!r}: {problem}.")
    return errors


def _is_ambiguous(moment: datetime, zone: tzinfo) -> bool:
    """Whether ``moment``'s local time in ``zone`` occurs twice (a daylight-saving fall-back)."""
    local = moment.astimezone(zone).replace(tzinfo=None)
    return local.replace(tzinfo=zone, fold=0).utcoffset() != local.replace(tzinfo=zone, fold=1).utcoffset()


def before_repeated_hour(moment: datetime, zone: tzinfo) -> datetime:
    """``moment``, or the first instant of the repeated local hour it falls in (zone changes are on whole
    minutes, and a repeated interval lasts at most a few hours)."""
    start = moment
    while _is_ambiguous(start, zone):
        start = (start - timedelta(minutes=1)).replace(second=0, microsecond=0)
    return start if start == moment else start + timedelta(minutes=1)


def plan_pass(
    stream_state: dict[str, Any],
    *,
    stream_name: str,
    start_date: str | None,
    end_date: str | None,
    now: datetime,
    window_days: int,
    lookback_minutes: int,
    cluster_timezone: tzinfo = UTC,
    single_window: bool = False,
) -> Pass:
    """The pass a run makes for one stream, from its state and the settings."""
    bookmark = stream_state.get(BOOKMARK)
    resumed_until = None
    if stream_state.get(PASS_SINCE) and bookmark:
        since, discover_from = parse_utc(stream_state[PASS_SINCE]), parse_utc(bookmark)  # resume mid-pass
        resumed_until = stream_state.get(PASS_UNTIL)  # absent in states written before it was kept
    elif bookmark:
        since = parse_utc(bookmark)
        discover_from = since - timedelta(minutes=lookback_minutes)  # clock skew, index lag
    elif start_date:
        since = discover_from = parse_utc(start_date)
    else:
        msg = f"start_date is required: stream {stream_name!r} has no state yet."
        raise ConfigValidationError(msg, errors=[msg])
    since = since.replace(microsecond=0)
    if resumed_until:
        until = parse_utc(resumed_until)
    else:
        lookback = timedelta(minutes=lookback_minutes)
        until = min(now - lookback, parse_utc(end_date)) if end_date else now - lookback
        until = before_repeated_hour(until.replace(microsecond=0), cluster_timezone)
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


def complete_window(
    stream_state: dict[str, Any],
    replication_key: str,
    pass_: Pass,
    window: Window,
    layout: dict[str, int] | None = None,
) -> None:
    """Record a finished window in the stream state, and the run's shard layout (``Shard.layout``) if sharded."""
    stream_state.pop("progress_markers", None)
    stream_state["replication_key"] = replication_key
    if layout is None:
        stream_state.pop(SHARD, None)
    else:
        stream_state[SHARD] = layout
    if window.end is None:  # pass finished: everything before ``until`` has been emitted
        stream_state[BOOKMARK] = pass_.until.isoformat()
        stream_state.pop(PASS_SINCE, None)
        stream_state.pop(PASS_UNTIL, None)
    else:
        stream_state[BOOKMARK] = window.end.isoformat()
        stream_state[PASS_SINCE] = pass_.since.isoformat()
        stream_state[PASS_UNTIL] = pass_.until.isoformat()
