"""A backfill over many windows, killed mid-run (SIGKILL of the target, then of the tap), resumes and loses nothing;
what it sends twice is only what the STATE persisted before a rerun did not cover."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import psutil
import pytest
from harness import (
    STREAMS,
    Pipeline,
    bookmarks,
    canonical_records,
    covered_but_missing,
    dataset_sizes,
    differences,
    keys,
    repeated,
    stored_records,
    uncovered,
)
from pipeline import RunResult

# Sixty one-day discovery windows per stream, and 20 ms per Capillary request, so that a run lasts long enough
# to be killed in the middle of its windows.
LONG_BACKFILL = pytest.mark.capillary(
    customers=50, history_days=60, seed=11, faults={"seed": 1, "rules": [{"path": "*", "latency_ms": 20}]}
)
# Small target batches: records reach AEP all through the run, so a kill leaves some sent but unacknowledged.
# A checkpoint on every window's STATE, so that the kills leave window bookmarks behind.
SETTINGS = {
    "TAP_CAPILLARY_BACKFILL_WINDOW_DAYS": "1",
    "TARGET_ADOBE_AEP_BATCH_SIZE_ROWS": "25",
    "TARGET_ADOBE_AEP_STATE_CHECKPOINT_SECONDS": "0",
}
PERSISTED = "Incremental state has been updated"
STREAM_STARTED = "Beginning sync of"


def run_and_kill(pipeline: Pipeline, executable: str, *, at_stream: int) -> RunResult:
    """``meltano run``, SIGKILLing the plugin ``executable`` once Meltano has persisted a state the target
    acknowledged, or at the latest when the tap starts its ``at_stream``-th stream (by then it has completed
    dozens of windows)."""
    progress = {PERSISTED: 0, STREAM_STARTED: 0}
    killed: list[psutil.Process] = []

    def watch(line: str) -> None:
        for marker in progress:
            progress[marker] += marker in line
        if killed or not (progress[PERSISTED] or progress[STREAM_STARTED] >= at_stream):
            return
        for process in psutil.Process().children(recursive=True):
            try:
                if any(part.endswith(f"/bin/{executable}") for part in process.cmdline()):
                    process.kill()
                    killed.append(process)
            except psutil.NoSuchProcess:  # a short-lived helper process that has already exited
                continue

    result = pipeline.run(on_line=watch, **SETTINGS)
    assert killed, f"{executable} was not found running; log: {result.log_path}"
    assert result.returncode != 0, f"the run succeeded although {executable} was killed; log: {result.log_path}"
    return result


def window_bookmarks(singer_state: dict) -> dict[str, str]:
    """Streams whose state is a window bookmark of an unfinished pass: stream -> window end."""
    return {
        stream: bookmark["replication_key_value"]
        for stream, bookmark in bookmarks(singer_state).items()
        if "pass_since" in bookmark
    }


def assert_state_covers_only_what_arrived(pipeline: Pipeline, canonical: list) -> Counter:
    """What the persisted STATE covers is in AEP; returns what a run resuming from it may send again."""
    state = pipeline.state()
    missing = covered_but_missing(canonical, state, keys(stored_records(pipeline.adobe)))
    assert not missing, sorted(missing)[:10]
    return uncovered(canonical, state)


@LONG_BACKFILL
def test_killed_backfill_resumes_and_loses_nothing(pipeline: Pipeline) -> None:
    canonical = canonical_records(pipeline.capillary)
    expected = set(keys(canonical))

    run_and_kill(pipeline, "target-adobe-aep", at_stream=5)
    after_target_kill = pipeline.state()
    resent = assert_state_covers_only_what_arrived(pipeline, canonical)
    assert len(stored_records(pipeline.adobe)) < len(expected)  # killed before the end
    run_and_kill(pipeline, "tap-capillary", at_stream=7)
    after_tap_kill = pipeline.state()
    resent += assert_state_covers_only_what_arrived(pipeline, canonical)
    assert not set(keys(stored_records(pipeline.adobe))) >= expected  # killed before the end
    mark = dataset_sizes(pipeline.adobe)
    result = pipeline.run(**SETTINGS)
    assert result.returncode == 0, f"meltano run failed, log: {result.log_path}"

    # The last run resumed: streams whose pass the killed run had finished sent nothing again.
    finished = {stream for stream, bookmark in bookmarks(after_tap_kill).items() if "pass_since" not in bookmark}
    assert [r.key for r in stored_records(pipeline.adobe, after=mark) if r.stream in finished] == []

    # Nothing lost: every record of every stream is in AEP, more than once only if a STATE persisted before a rerun
    # did not cover it (delivery is at least once, within the unacknowledged window).
    stored = keys(stored_records(pipeline.adobe))
    assert set(stored) == expected, differences(Counter(expected), Counter(set(stored)))
    assert set(repeated(stored)) <= set(resent)
    final = bookmarks(pipeline.state())
    assert set(final) == set(STREAMS)
    assert window_bookmarks({"bookmarks": final}) == {}

    # Each killed run left window bookmarks (`meltano state get`) where its pass was, and state only moved forward.
    assert window_bookmarks(after_target_kill), (
        f"no window bookmark persisted before the target was killed: {after_target_kill}"
    )
    assert window_bookmarks(after_tap_kill), f"no window bookmark persisted before the tap was killed: {after_tap_kill}"
    for stream, window_end in window_bookmarks(after_target_kill).items():
        assert datetime.fromisoformat(bookmarks(after_target_kill)[stream]["pass_since"]) == pipeline.start
        later = bookmarks(after_tap_kill)[stream]["replication_key_value"]
        assert pipeline.start < datetime.fromisoformat(window_end) <= datetime.fromisoformat(later)
