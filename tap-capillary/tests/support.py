"""Test helpers: tap configs for an emulator, and in-process runs with their Singer messages."""

from __future__ import annotations

import io
import json
import threading
from collections import defaultdict
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from emulators.server import BackgroundServer
from tap_capillary.tap import TapCapillary
from tap_capillary.transport import Clock

OAUTH = {"client_key": "emulator-key", "client_secret": "emulator-secret"}
TILL = {"username": "store123", "password": "Pass123"}


def past_anchor() -> str:
    """An emulator anchor (end of its generated history) an hour before now: no generated record is
    then as new as a run's start, which would leave it to the next run and make runs differ."""
    return (datetime.now(UTC) - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0).isoformat()


def tap_config(server: BackgroundServer, **overrides: Any) -> dict[str, Any]:
    """A config reading everything the emulator holds: from before its history starts up to the run's
    start (``lookback_minutes`` 0: the emulator's search has no indexing lag to wait for)."""
    start = datetime.fromtimestamp(server.config.anchor_epoch, UTC) - timedelta(days=server.config.history_days + 30)
    return {
        "base_url": server.base_url,
        **OAUTH,
        "start_date": start.isoformat(),
        "cluster_timezone": server.config.cluster_timezone,
        "backfill_window_days": 90,
        "requests_per_minute": 100_000,
        "max_workers": 4,
        "lookback_minutes": 0,
        **overrides,
    }


class FakeClock(Clock):
    """A clock whose waits return at once, moving its time on: ``waits`` lists the retry waits (``sleep``),
    ``paced`` the moments pacing waited for (``sleep_until``). Threads share its time, which only moves forward.
    A stopped one still interrupts waits, as the run's clock does."""

    def __init__(self) -> None:
        super().__init__()
        self.time = 1000.0
        self.waits: list[float] = []
        self.paced: list[float] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.check()
        with self._lock:
            self.waits.append(seconds)
            self.time += seconds

    def sleep_until(self, moment: float) -> None:
        self.check()
        with self._lock:
            self.paced.append(moment)
            self.time = max(self.time, moment)


@dataclass
class Run:
    """The Singer messages of one tap run."""

    messages: list[dict[str, Any]]
    tap: TapCapillary
    records: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        for message in self.messages:
            if message["type"] == "RECORD":
                self.records[message["stream"]].append(message["record"])

    @property
    def clock(self) -> FakeClock:
        return self.tap.clock  # type: ignore[return-value]

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def state(self) -> dict[str, Any]:
        return self.states[-1]

    def count(self, stream: str) -> int:
        return len(self.records.get(stream, []))


def run_tap(
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
    clock: FakeClock | None = None,
) -> Run:
    """One run; ``now`` pins the run's start (the end of what it reads). Its waits are on a ``FakeClock`` (``clock``
    if given: an emulator's rate limits can share it)."""
    run, error = run_tap_to_the_end(config, state, now=now, clock=clock)
    if error is not None:
        raise error
    return run


def run_tap_to_the_end(
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
    clock: FakeClock | None = None,
) -> tuple[Run, Exception | None]:
    """One run, and the error that ended it if any, with the messages written until then."""
    tap = TapCapillary(config=config, state=state or {})
    tap.clock = clock or FakeClock()  # a cached_property: set before the run reads it
    if now is not None:
        tap.run_started_at = now
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # the msgspec writer writes bytes to stdout.buffer
    error = None
    with redirect_stdout(out):
        try:
            tap.sync_all()
        except Exception as exc:  # noqa: BLE001  (handed to the caller)
            error = exc
    out.flush()
    return Run([json.loads(line) for line in out.buffer.getvalue().splitlines() if line.strip()], tap), error


def instant(value: str) -> datetime:
    """An RFC 3339 time as an aware datetime (the emulator writes ``Z``, the tap ``+00:00``)."""
    return datetime.fromisoformat(value)
