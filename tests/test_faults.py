"""The fault suite: ``meltano run tap-capillary target-adobe-aep`` under the emulators' seeded faults.

Each scenario runs the pipeline with a fault, then, where the fault fails the run, once more without it, and
checks what the READMEs promise:
- the exit code and the line they document for that fault;
- no record lost: every record the Capillary emulator holds is in AEP (its distinct ``_id``s) or in the dead
  letter;
- duplicates only from the unacknowledged window: a record reaches AEP twice only when the STATE persisted before
  the rerun did not cover it (``harness.uncovered``), or, within a run, when DCS's answer to its request never
  arrived; and a failed run's persisted STATE covers only records that are in AEP or the dead letter.

The scenarios share one pair of emulators (faults reset after each) and each starts from an empty Meltano state.
Waits are short: ``Retry-After`` 0 in the fault rules, ``retry_backoff_ms`` 10 for the target (the tap's backoff
starts at its fixed 1 s), small requests so that faults meet many of them.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from harness import (
    MELTANO_BIN,
    Canonical,
    Pipeline,
    canonical_records,
    covered_but_missing,
    customers_mapping_without_gender_translation,
    dataset_sizes,
    dead_lettered,
    dev_config,
    differences,
    keys,
    new_pipeline,
    repeated,
    stored_records,
    uncovered,
)
from pipeline import RunResult

from emulators.adobe import ADOBE
from emulators.faults import FAULT_PROFILE
from emulators.launch import start_adobe, start_capillary
from emulators.server import REQUEST_LOG, BackgroundServer

# Small but varied (returns, customers without e-mail or mobile, merged and deleted customers): 512 records.
CAPILLARY = {"customers": 30, "history_days": 60, "seed": 7}
# Short waits, and requests of about a dozen messages, so that faults meet many of them.
FAST = {"TARGET_ADOBE_AEP_RETRY_BACKOFF_MS": "10", "TARGET_ADOBE_AEP_MAX_REQUEST_BYTES": "20000"}
# Every STATE is a checkpoint: a failed run leaves the bookmarks of what it finished behind.
CHECKPOINTS = {"TARGET_ADOBE_AEP_STATE_CHECKPOINT_SECONDS": "0"}
PERSISTED = "Incremental state has been updated"
# Longer than the suite may take: a plugin that waited it out would never end in time.
LONG_RETRY_AFTER = 3600


@pytest.fixture(scope="module")
def emulators() -> Iterator[tuple[BackgroundServer, BackgroundServer]]:
    capillary, adobe = start_capillary(**CAPILLARY), start_adobe()
    try:
        yield capillary, adobe
    finally:
        capillary.stop()
        adobe.stop()


@dataclass
class Scenario:
    """A pipeline with an empty state against the shared emulators, and what the Capillary emulator holds."""

    pipeline: Pipeline
    canonical: list[Canonical]
    mark: dict[str, int]  # AEP's datasets before the scenario: what it adds comes after
    dead_letter: Path
    dead_letter_before: int = 0  # lines of the dead letter from before the scenario

    @property
    def capillary(self) -> BackgroundServer:
        return self.pipeline.capillary

    @property
    def adobe(self) -> BackgroundServer:
        return self.pipeline.adobe

    def run(self, *options: str, on_line: Callable[[str], None] | None = None, **env: str) -> RunResult:
        settings = {**FAST, "TARGET_ADOBE_AEP_DEAD_LETTER_PATH": str(self.dead_letter), **env}
        return self.pipeline.run(*options, on_line=on_line, **settings)

    def stored(self) -> Counter:
        return keys(stored_records(self.adobe, after=self.mark))

    def delivered(self) -> Counter:
        """Each record in AEP or the dead letter, as often as it got there."""
        return self.stored() + self.dead_lettered()

    def dead_lettered(self) -> Counter:
        return dead_lettered(self.dead_letter, self.adobe.config.tenant_id, skip=self.dead_letter_before)

    def assert_nothing_lost(self, *, resent: Counter | None = None) -> None:
        """Every record in AEP or the dead letter; more than once only if ``resent`` allows it."""
        expected, delivered = keys(self.canonical), self.delivered()
        assert set(delivered) == set(expected), differences(expected, Counter(set(delivered)))
        assert set(repeated(delivered)) <= set(resent or ()), differences(expected, delivered)

    def assert_state_covers_only_what_arrived(self) -> Counter:
        """After a failed run: what the persisted STATE covers is in AEP or the dead letter. Returns what a run
        resuming from it may send again."""
        state = self.pipeline.state()
        missing = covered_but_missing(self.canonical, state, self.delivered())
        assert not missing, f"STATE {state} covers records that are nowhere: {sorted(missing)[:10]}"
        return uncovered(self.canonical, state)

    def faults(self, server: BackgroundServer) -> list[dict]:
        """The requests ``server`` answered with a fault in this scenario."""
        return [e for e in server.call(lambda: list(server.app[REQUEST_LOG].entries)) if e["fault"]]


def new_scenario(capillary: BackgroundServer, adobe: BackgroundServer, workdir: Path) -> Scenario:
    for server in (capillary, adobe):
        server.set_faults(None)
        server.call(server.app[REQUEST_LOG].clear)
    pipeline = new_pipeline(capillary, adobe, workdir)
    return Scenario(pipeline, canonical_records(capillary), dataset_sizes(adobe), workdir / "dead-letter.jsonl")


@pytest.fixture
def scenario(
    meltano_installed: None, emulators: tuple[BackgroundServer, BackgroundServer], tmp_path: Path
) -> Iterator[Scenario]:
    yield new_scenario(*emulators, tmp_path)
    for server in emulators:
        server.set_faults(None)


def log_of(result: RunResult) -> str:
    return result.log_path.read_text()


# A plugin's traceback, as Meltano shows it: the lines of an unexpected exception, or its structured log record.
PLUGIN_TRACEBACK = re.compile(r"\] (tap-capillary|target-adobe-aep) +Traceback|plugin_exc_type=")


def assert_ok(result: RunResult) -> str:
    log = log_of(result)
    assert result.returncode == 0, f"meltano run failed, log: {result.log_path}"
    assert "Traceback" not in log, result.log_path
    return log


def assert_failed_with(result: RunResult, line: str) -> str:
    """The run failed, the target or the tap saying why in ``line``, and neither printed a traceback. (Meltano
    may print one of its own, a BrokenPipeError, when the target stops while the tap still writes:
    meltano/meltano#7047.)"""
    log = log_of(result)
    assert result.returncode != 0, f"the run succeeded, log: {result.log_path}"
    assert line in log, f"{line!r} not in {result.log_path}"
    assert not PLUGIN_TRACEBACK.search(log), result.log_path
    return log


# -- transient faults: ridden out, nothing lost, nothing twice ---------------------------------------------------


def test_a_storm_of_429_and_5xx_on_both_sides_is_ridden_out(scenario: Scenario) -> None:
    """10 % 429 and 10 % 5xx on every Adobe path; half as many on Capillary's, where each retry waits from 1 s
    (``tap-capillary/tests/test_requests.py`` rides out the full storm on the tap alone)."""
    storm = {"status_rates": {"429": 0.1, "500": 0.03, "502": 0.03, "503": 0.04}, "retry_after": 0}
    half = {"status_rates": {"429": 0.05, "500": 0.02, "502": 0.01, "503": 0.02}, "retry_after": 0}
    scenario.capillary.set_faults({"seed": 1, "rules": [{"path": "*", **half}]})
    scenario.adobe.set_faults({"seed": 2, "rules": [{"path": "*", **storm}]})

    log = assert_ok(scenario.run())

    assert len(scenario.faults(scenario.capillary)) > 20
    assert any(e["path"].startswith("/collection/batch/") for e in scenario.faults(scenario.adobe))
    assert "Retrying after HTTP 429 from" in log
    assert re.search(r"DCS answered HTTP (429|50\d); retry 1 of 5 in", log)
    assert scenario.stored() == keys(scenario.canonical), differences(keys(scenario.canonical), scenario.stored())


def test_capillary_461_and_521_bursts_are_ridden_out(scenario: Scenario) -> None:
    """Search busy (461) twice in a row on the first search, then 521 on several customers' bills at once."""
    scenario.capillary.set_faults(
        {"rules": [
            {"path": "/v2/search/entity", "status_rates": {"461": 1.0}, "max_faults": 2, "retry_after": 0},
            {"path": "/v2/customers/*/transactions", "status_rates": {"521": 1.0}, "max_faults": 6, "retry_after": 0},
        ]}
    )  # fmt: skip

    log = assert_ok(scenario.run())

    assert Counter(e["status"] for e in scenario.faults(scenario.capillary)) == {461: 2, 521: 6}
    assert "Retrying after HTTP 461 from POST /v2/search/entity" in log
    assert "Retrying after HTTP 521 from GET /v2/customers/" in log
    assert scenario.stored() == keys(scenario.canonical), differences(keys(scenario.canonical), scenario.stored())


def test_dropped_connections_and_answers_cut_short_are_retried(scenario: Scenario) -> None:
    """Connections dropped and answers cut short on both sides. A DCS request whose answer was cut was stored:
    sent again, its messages are in AEP twice, and they are the only duplicates."""
    scenario.capillary.set_faults({"seed": 3, "rules": [{"path": "*", "drop_rate": 0.04, "cut_body_rate": 0.04}]})
    scenario.adobe.set_faults(
        {"seed": 4, "rules": [{"path": "/collection/batch/*", "drop_rate": 0.1, "cut_body_rate": 0.1}]}
    )

    log = assert_ok(scenario.run())

    assert {"dropped", "cut"} <= {e["status"] for e in scenario.faults(scenario.capillary)}
    assert "ConnectionError on " in log
    assert "ChunkedEncodingError on " in log
    assert "DCS request failed: ConnectionError" in log
    assert "DCS request failed: ChunkedEncodingError" in log
    cut = [e for e in scenario.faults(scenario.adobe) if e["status"] == "cut"]
    resent_requests = requests_sent_again(scenario)
    assert len(resent_requests) == len(cut) > 0
    resent = Counter(key for request in resent_requests for key in request)
    scenario.assert_nothing_lost(resent=resent)
    assert repeated(scenario.stored()) == resent


def requests_sent_again(scenario: Scenario) -> list[set]:
    """The DCS requests of the scenario all of whose messages AEP stored again later, each as its (stream, key)s."""
    adobe = scenario.adobe
    by_id = {r.xdm_id: (r.stream, r.key) for r in stored_records(adobe, after=scenario.mark)}
    skip = dict(scenario.mark)  # each dataset's messages from before the scenario
    requests: dict[str, set[str]] = {}  # DCS batch id -> its messages' _ids, in arrival order
    for dataset, xaction, xdm_id in adobe.call(adobe.app[ADOBE].store.deliveries):
        if skip.get(dataset, 0) > 0:
            skip[dataset] -= 1
            continue
        requests.setdefault(xaction.rsplit(":", 1)[0], set()).add(xdm_id)
    ordered = list(requests.values())
    return [
        {by_id[xdm_id] for xdm_id in ids}
        for position, ids in enumerate(ordered)
        if ids <= set().union(*ordered[position + 1 :])
    ]


def test_tokens_revoked_on_both_sides_are_renewed_once(scenario: Scenario) -> None:
    """Capillary revokes every token once while the ledger is read (the requests in flight get 401) and once answers
    its documented "token expired" envelope in HTTP 200; IMS tokens are revoked once while DCS requests are sent."""
    scenario.capillary.set_faults(
        {"seed": 5, "rules": [
            {"path": "/v1.1/customer/coupons", "envelopes": {"v11_envelope__token_expired.txt": 1.0}, "max_faults": 1},
            {"path": "/v2/pointsLedger/*", "revoke_token_rate": 0.2, "max_faults": 1},
        ]}
    )  # fmt: skip
    scenario.adobe.set_faults({"seed": 6, "rules": [{"path": "/collection/batch/*", "revoke_token_rate": 0.2,
                                                     "max_faults": 1}]})  # fmt: skip

    log = assert_ok(scenario.run())

    assert len(scenario.faults(scenario.capillary)) == 2
    assert "OAuth token refused by GET /v1.1/customer/coupons; generating a new one" in log
    assert "OAuth token refused by GET /v2/pointsLedger/getCustomerLedgerInfo; generating a new one" in log
    assert "DCS inlet answered HTTP 401; refreshing the access token and retrying once" in log
    assert scenario.stored() == keys(scenario.canonical), differences(keys(scenario.canonical), scenario.stored())


def test_messages_dcs_refuses_in_its_207_are_dead_lettered_and_the_rest_accepted(scenario: Scenario) -> None:
    scenario.adobe.set_faults({"seed": 7, "rules": [{"path": "/collection/batch/*", "reject_message_rate": 0.03}]})

    result = scenario.run()
    log = assert_ok(result)

    entries = [json.loads(line) for line in scenario.dead_letter.read_text().splitlines()]
    refused = scenario.adobe.call(lambda: scenario.adobe.app[FAULT_PROFILE].rules[0].injected)
    assert len(entries) == refused > 0
    config = scenario.adobe.config
    for entry in entries:
        reason = f"DCS: inletId: [{config.auth_inlet_id}] imsOrgId: [{config.org_id}] Message is invalid"
        assert entry["reason"] == reason, entry["reason"]
        assert entry["http_status"] == 400
        assert entry["record"]
        assert entry["xdm"]
    assert f"{refused} record(s) dead-lettered to {scenario.dead_letter}" in log
    assert sum(summary["dead_lettered"] for summary in result.summaries.values()) == refused
    scenario.assert_nothing_lost()
    assert not set(scenario.stored()) & set(scenario.dead_lettered())


# Requests of up to 6 kB on the target's side against an inlet that takes 2.3 kB: all are split, and the few
# messages larger than that by themselves are refused alone.
INLET_LIMIT = 2_300


def test_requests_over_the_inlets_limit_are_split_and_single_messages_over_it_dead_lettered(
    meltano_installed: None, emulators: tuple[BackgroundServer, BackgroundServer], tmp_path: Path
) -> None:
    small_inlet = start_adobe(max_request_bytes=INLET_LIMIT)
    try:
        scenario = new_scenario(emulators[0], small_inlet, tmp_path)
        log = assert_ok(scenario.run(TARGET_ADOBE_AEP_MAX_REQUEST_BYTES="6000"))
        statuses = Counter(e["status"] for e in small_inlet.call(lambda: list(small_inlet.app[REQUEST_LOG].entries)))
        entries = [json.loads(line) for line in scenario.dead_letter.read_text().splitlines()]
        scenario.assert_nothing_lost()
    finally:
        small_inlet.stop()
    assert "DCS answered 413 for" in log
    assert "; splitting" in log
    assert statuses[413] > len(entries) > 0
    for entry in entries:
        assert entry["http_status"] == 413
        assert entry["reason"].startswith("DCS: payload too large: "), entry["reason"]
        assert len(json.dumps(entry["xdm"])) > INLET_LIMIT / 2


# -- faults that fail the run: one clear line, the STATE behind, a clean rerun loses nothing -----------------------


@contextmanager
def unused_port() -> Iterator[int]:
    """A loopback port nothing listens on (held bound meanwhile, so nothing else takes it): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_aep_unreachable_fails_the_run_after_one_layer_of_retries(scenario: Scenario) -> None:
    inlet = scenario.adobe.config.auth_inlet_id
    with unused_port() as port:
        nowhere = f"http://127.0.0.1:{port}"
        result = scenario.run(
            TARGET_ADOBE_AEP_IMS_URL=f"{nowhere}/ims/token/v3",
            TARGET_ADOBE_AEP_PLATFORM_URL=nowhere,
            TARGET_ADOBE_AEP_INLET_URL=f"{nowhere}/collection/{inlet}",
            TARGET_ADOBE_AEP_MAX_RETRIES="2",
        )
    log = assert_failed_with(result, "IMS request failed: ConnectionError; gave up after 3 tries in ")
    assert "(max_retries 2, retry_budget_seconds 300)" in log
    assert log.count("IMS request failed: ConnectionError; retry ") == 2  # no retries around the token's retries
    assert scenario.pipeline.state() == {}

    assert_ok(scenario.run())
    assert scenario.stored() == keys(scenario.canonical), differences(keys(scenario.canonical), scenario.stored())


def after_states_persisted(count: int, action: Callable[[], None]) -> Callable[[str], None]:
    """An ``on_line`` that runs ``action`` once Meltano has persisted ``count`` STATEs the target wrote (the first
    is the end of an empty discovery window: it covers no record yet)."""
    persisted = [0]

    def watch(line: str) -> None:
        if PERSISTED in line:
            persisted[0] += 1
            if persisted[0] == count:
                action()

    return watch


# DCS answers slowly until the fault comes: the target still has checkpoints to publish when it does.
SLOW_INLET = {"rules": [{"path": "/collection/batch/*", "latency_ms": 50}]}


def test_aep_gone_mid_run_fails_it_and_a_rerun_resends_only_the_unacknowledged(scenario: Scenario) -> None:
    """Every DCS connection drops once some STATEs are persisted: the run fails when the retries are spent; the
    STATE covers only what AEP took."""
    scenario.adobe.set_faults(SLOW_INLET)
    gone = {"rules": [{"path": "/collection/batch/*", "drop_rate": 1.0}]}
    result = scenario.run(on_line=after_states_persisted(2, lambda: scenario.adobe.set_faults(gone)), **CHECKPOINTS)
    assert_failed_with(result, "DCS request failed: ConnectionError; gave up after 6 tries in ")
    window = scenario.assert_state_covers_only_what_arrived()
    assert 0 < sum(window.values()) < len(scenario.canonical)

    scenario.adobe.set_faults(None)
    assert_ok(scenario.run(**CHECKPOINTS))
    scenario.assert_nothing_lost(resent=window)


def test_sigterm_to_meltano_stops_both_plugins_at_once_without_state(scenario: Scenario) -> None:
    """Once some STATEs are persisted, DCS and Capillary answer 503 with Retry-After an hour; once the target
    waits to retry, Meltano gets SIGTERM: both plugins stop within seconds (not after the wait), exit 143, write no
    STATE, and a rerun resends only what the persisted STATE does not cover."""
    stop = {"rules": [{"path": "*", "status_rates": {"503": 1.0}, "retry_after": LONG_RETRY_AFTER}]}
    budget = str(10 * LONG_RETRY_AFTER)  # a Retry-After beyond the budget would end the call at once
    terminated: list[psutil.Process] = []
    overdue: list[bool] = []

    def kill_overdue(meltano: psutil.Process) -> None:
        overdue.append(True)
        meltano.kill()

    # Still running a minute after SIGTERM: Meltano or a plugin is waiting out a retry.
    deadline = threading.Timer(60, lambda: kill_overdue(terminated[0]))
    deadline.daemon = True

    def watch(line: str) -> None:
        if "DCS answered HTTP 503; retry 1 of" in line and not terminated:
            (meltano,) = (p for p in psutil.Process().children() if MELTANO_BIN in p.cmdline())
            meltano.terminate()
            terminated.append(meltano)
            deadline.start()

    def faults_on() -> None:
        scenario.adobe.set_faults(stop)
        scenario.capillary.set_faults(stop)

    scenario.adobe.set_faults(SLOW_INLET)
    # Bill details answered slowly: the tap still reads its last stream when the faults come.
    scenario.capillary.set_faults({"rules": [{"path": "/v2/transactions/*", "latency_ms": 1000}]})
    persisted = after_states_persisted(2, faults_on)
    result = scenario.run(
        on_line=lambda line: (persisted(line), watch(line)),
        TARGET_ADOBE_AEP_RETRY_BUDGET_SECONDS=budget,
        TAP_CAPILLARY_RETRY_BUDGET_SECONDS=budget,
        **CHECKPOINTS,
    )
    deadline.cancel()
    assert terminated, f"the target never waited to retry, log: {result.log_path}"
    assert not overdue, f"meltano did not stop within a minute of SIGTERM, log: {result.log_path}"
    log = assert_failed_with(result, "target-adobe-aep Received termination signal 15: stopping without writing STATE")
    assert result.returncode == 143
    assert "tap-capillary Received termination signal 15: stopping without writing STATE" in log
    window = scenario.assert_state_covers_only_what_arrived()

    for server in (scenario.capillary, scenario.adobe):
        server.set_faults(None)
    assert_ok(scenario.run(**CHECKPOINTS))
    scenario.assert_nothing_lost(resent=window)


def customers_partly_refused() -> dict[str, str]:
    """Settings under which the target dead-letters the customers whose gender is Other (about a third: fewer than
    ``max_rejected_percent``) and sends everyone else, as ``test_rejected_records`` shows."""
    mappings = {
        **dev_config("loaders", "target-adobe-aep")["mappings"],
        "customers": customers_mapping_without_gender_translation(),
    }
    return {"TARGET_ADOBE_AEP_MAPPINGS": json.dumps(mappings), **CHECKPOINTS}


@contextmanager
def read_only(directory: Path) -> Iterator[str]:
    """``directory`` (holding an empty dead letter from an earlier run) read-only while the block runs: its
    permissions for a user, a read-only tmpfs mounted over it for root (whom permissions do not stop); yields the
    error the target meets. Skips where neither is possible."""
    dead_letter = directory / "dead-letter.jsonl"
    directory.mkdir()
    dead_letter.touch()
    if os.geteuid() != 0:
        dead_letter.chmod(0o400)
        directory.chmod(0o500)
        try:
            yield "Permission denied"
        finally:
            directory.chmod(0o700)
            dead_letter.chmod(0o600)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(directory)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"root cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        dead_letter.touch()
        subprocess.run(["mount", "-o", "remount,ro", str(directory)], check=True)
        yield "Read-only file system"
    finally:
        subprocess.run(["umount", str(directory)], check=True)


def test_a_read_only_dead_letter_fails_the_run_when_a_record_needs_it(scenario: Scenario) -> None:
    """The dead letter exists on a read-only volume: the run starts (opening it to check its last line needs no
    write), sends what AEP takes, and stops with one line at the first record it must dead-letter."""
    scenario.dead_letter = scenario.pipeline.workdir / "volume" / "dead-letter.jsonl"
    with read_only(scenario.dead_letter.parent) as error:
        result = scenario.run(**customers_partly_refused())
        window = scenario.assert_state_covers_only_what_arrived()
    assert_failed_with(
        result, f"cannot write the dead letter {scenario.dead_letter}: {error}; nothing of the batch is acknowledged"
    )
    assert scenario.dead_letter.read_bytes() == b""

    assert_ok(scenario.run(**customers_partly_refused()))
    scenario.assert_nothing_lost(resent=window)
    refused = {(r.stream, r.key) for r in scenario.canonical if r.stream == "customers" and r.data["gender"] == "Other"}
    assert set(scenario.dead_lettered()) == refused


def meltano_with_file_size_limit(limit: int, workdir: Path) -> str:
    """An executable that runs Meltano with every file it and its plugins write limited to ``limit`` bytes
    (RLIMIT_FSIZE): a write beyond it stops part-way and the next fails with EFBIG, as on a full disk with ENOSPC."""
    wrapper = workdir / "meltano-with-file-size-limit"
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import os, resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY))\n"
        f"os.execv({MELTANO_BIN!r}, [{MELTANO_BIN!r}, *sys.argv[1:]])\n"
    )
    wrapper.chmod(0o700)
    return str(wrapper)


def test_a_full_dead_letter_is_cut_back_to_whole_lines_and_fails_the_run(scenario: Scenario) -> None:
    """The dead letter's volume fills up in the middle of a write: the partial line is cut off again, the run stops
    with one line, and the next run appends to a file that is still valid JSONL."""
    earlier = json.dumps({"stream": "customers", "reason": "from an earlier run", "padding": "x" * 1000}) + "\n"
    scenario.dead_letter.write_text(earlier * 2000)
    size = scenario.dead_letter.stat().st_size
    scenario.dead_letter_before = 2000
    scenario.pipeline.meltano_bin = meltano_with_file_size_limit(size + 500, scenario.pipeline.workdir)
    result = scenario.run(**customers_partly_refused())
    full = f"cannot write the dead letter {scenario.dead_letter}: File too large; nothing of the batch is acknowledged"
    assert_failed_with(result, full)
    assert scenario.dead_letter.read_text() == earlier * 2000
    window = scenario.assert_state_covers_only_what_arrived()

    scenario.pipeline.meltano_bin = MELTANO_BIN
    assert_ok(scenario.run(**customers_partly_refused()))
    scenario.assert_nothing_lost(resent=window)
    assert scenario.dead_letter.read_text().startswith(earlier * 2000)


# -- what the logs hold ------------------------------------------------------------------------------------------

# A line of Meltano's log: time, level, who wrote it (Meltano, or the plugin whose output it relays), the message.
LOG_LINE = re.compile(r"^\S+ \[(?P<level>\w+) *\] (?P<source>\S+) +(?P<message>.*)$")
SINGER_TYPES = {"RECORD", "SCHEMA", "STATE", "ACTIVATE_VERSION", "BATCH"}


def relays_the_data_stream(source: str, message: str) -> bool:
    """A line in which Meltano (at ``--log-level=debug``) relays a Singer message of the tap's output, or a STATE of
    the target's: the data itself, not a log line of either plugin."""
    if source not in ("tap-capillary", "target-adobe-aep") or not message.startswith("{"):
        return False
    try:
        message = json.loads(message)
    except ValueError:
        return False
    return message.get("type") in SINGER_TYPES or (source == "target-adobe-aep" and "bookmarks" in message)


def personal_values(records: list[Canonical]) -> set[str]:
    """What identifies a customer in the emulator's data: e-mails, mobiles, external ids."""
    customers = {r.customer["id"]: r.customer for r in records if r.customer is not None}
    return {str(c[k]) for c in customers.values() for k in ("email", "mobile", "external_id") if c[k]}


def test_a_debug_run_logs_no_record_values_and_no_secrets(scenario: Scenario) -> None:
    """``meltano --log-level=debug run``, some customers refused: what either plugin logs holds no e-mail, mobile or
    external id and no secret, and the line per record stays short (a sink once logged its pending records in it).
    Meltano itself relays the tap's output at that level, records included: those lines are the data, not a log."""
    settings = {**FAST, **customers_partly_refused(), "TARGET_ADOBE_AEP_DEAD_LETTER_PATH": str(scenario.dead_letter)}
    result = scenario.pipeline.meltano("--log-level=debug", "run", "tap-capillary", "target-adobe-aep", **settings)
    assert result.returncode == 0, result.log_path
    assert scenario.dead_lettered()  # refusals are logged too (counted, not quoted)
    logged, relayed = [], 0
    for line in log_of(result).splitlines():
        parsed = LOG_LINE.match(line)
        if parsed and relays_the_data_stream(parsed["source"], parsed["message"]):
            relayed += 1
        else:
            logged.append(line)
    assert relayed > len(scenario.canonical)  # the relayed output holds the records: they are not counted as logs
    assert sum("Processed record" in line for line in logged) > len(scenario.canonical) / 2  # DEBUG is on
    text = "\n".join(logged)
    secrets = [*scenario.capillary.config.oauth_clients.values(), *scenario.adobe.config.clients.values()]
    assert [value for value in (*personal_values(scenario.canonical), *secrets) if value in text] == []
    assert max(len(line) for line in logged if "Processed record" in line) < 500
