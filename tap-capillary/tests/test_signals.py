"""SIGTERM or SIGINT while the tap waits to retry: it stops at once, exits 128 + the signal, writes no STATE."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from emulators.server import REQUEST_LOG, BackgroundServer
from tap_capillary.tap import TERMINATION_GRACE_SECONDS
from tests.support import past_anchor, tap_config

# Far longer than the test may take: a tap that waited it out would never end in time.
RETRY_AFTER = 3600


def start_tap(config: dict[str, Any], tmp_path: Path) -> subprocess.Popen[str]:
    """The tap as a process; its messages and log lines in one stream, in the order it wrote them."""
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    return subprocess.Popen(
        [sys.executable, "-m", "tap_capillary", "--config", str(config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize(
    "path",
    ["/v2/search/entity", "/v1.1/customer/get"],
    ids=["main-thread-waits", "worker-thread-waits"],  # discovery runs on the main thread, customer reads on workers
)
@pytest.mark.capillary(customers=6, seed=3, anchor_time=past_anchor())
def test_a_signal_during_a_retry_wait_stops_the_tap_at_once(
    capillary_emulator: BackgroundServer, tmp_path: Path, signum: int, path: str
) -> None:
    capillary_emulator.set_faults({"rules": [{"path": path, "status_rates": {503: 1.0}, "retry_after": RETRY_AFTER}]})
    process = start_tap(tap_config(capillary_emulator, retry_budget_seconds=10 * RETRY_AFTER), tmp_path)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if f"Retrying after HTTP 503 from {'POST' if 'search' in path else 'GET'} {path}" in line:
                break
        process.send_signal(signum)
        after_signal, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signum
    assert f"Received termination signal {signum}: stopping without writing STATE" in after_signal
    messages = [json.loads(line) for line in after_signal.splitlines() if line.startswith("{")]
    assert [m for m in messages if m["type"] == "STATE"] == []
    faulted = [
        e for e in capillary_emulator.call(lambda: list(capillary_emulator.app[REQUEST_LOG].entries)) if e["fault"]
    ]
    assert len(faulted) == 1, "no retry was sent"


@pytest.mark.capillary(customers=6, seed=3, anchor_time=past_anchor())
def test_a_signal_during_a_request_stops_the_tap_after_the_grace_period(
    capillary_emulator: BackgroundServer, tmp_path: Path
) -> None:
    """A request in flight gets ``TERMINATION_GRACE_SECONDS``, then the process exits regardless (Python would
    wait for the thread sending it, up to the request's timeout). The emulator holds the request a second longer
    than the grace period: the test's emulator cannot stop while it holds one."""
    path = "/v1.1/customer/get"
    capillary_emulator.set_faults({"rules": [{"path": path, "latency_ms": (TERMINATION_GRACE_SECONDS + 1) * 1000}]})
    arrived = threading.Event()
    log = capillary_emulator.app[REQUEST_LOG]
    record = log.record

    def recording(entry: dict) -> None:
        record(entry)
        if entry["path"] == path:
            arrived.set()

    capillary_emulator.call(setattr, log, "record", recording)
    process = start_tap(tap_config(capillary_emulator), tmp_path)
    try:
        assert arrived.wait(timeout=60), "the request reached the emulator"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM
    assert f"Requests still in flight after {TERMINATION_GRACE_SECONDS:.0f} s: exiting now" in output
