"""The tap's uses of SDK members that have no public hook in singer-sdk 0.54.9, all here.

``tests/test_sdk_adapter.py`` pins the SDK behaviour each relies on, so an SDK upgrade that changes it fails
there first, with the name of what changed.
"""

from __future__ import annotations

from typing import Any

from singer_sdk.streams import RESTStream


class WindowBookmarksStream(RESTStream):
    """A stream whose bookmark moves only when a discovery window completes (``windows.py``), never per record.

    ``Stream._increment_stream_state`` is what the SDK calls after writing each record (0.54.9:
    ``Stream._sync_records``); by default it keeps ``progress_markers`` (the largest replication value seen),
    which here would mean a ``to_json_compatible`` per record on the main thread, a "not resumable" warning per
    window, and markers in mid-run STATE. No public hook turns that off (neither ``is_sorted`` nor the
    replication method do, nor does 0.55).
    """

    def _increment_stream_state(self, latest_record: Any, *, context: Any = None) -> None:
        """No per-record bookmarks: state advances when a window completes."""
