"""Four shards side by side under Dagster (``orchestration/``), each with its own Capillary API key, against the
emulators: one is killed (SIGKILL of its whole process group) in the middle of its run and its partition rerun;
then AEP holds exactly the ``_id``s an unsharded run sends, and no shard sent another shard's records."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections import Counter
from pathlib import Path

import dagster as dg
import psutil
import pytest
import requests
from harness import MELTANO_BIN, Pipeline, stored_records

from capillary_orchestration.definitions import all_shards_job, shard_job
from emulators.capillary import ADMIN
from emulators.server import REQUEST_LOG
from tap_capillary.shards import shard_of

SHARDS = 4
KILLED = 2
# One OAuth client per shard. Their secret is the dev environment's: meltano.yml's `env:` block of an environment
# (TAP_CAPILLARY_CLIENT_SECRET there) wins over the orchestrator's variables of the same name (Meltano 4.4.1).
KEYS = {f"shard-key-{i}": "emulator-secret" for i in range(SHARDS)}
ORG = pytest.mark.capillary(customers=32, seed=17, oauth_clients={"emulator-key": "emulator-secret", **KEYS})
# Small target batches and a checkpoint on every STATE: the killed shard leaves a persisted state behind.
SETTINGS = {"TARGET_ADOBE_AEP_BATCH_SIZE_ROWS": "25", "TARGET_ADOBE_AEP_STATE_CHECKPOINT_SECONDS": "0"}
# How long one of the killed shard's requests is held by the emulator: the shard is mid-run (its customers stream
# done and persisted, its transactions stream waiting) until the test kills it.
STALL_MS = 20_000
# Polls (0.2 s apart) that must see the killed shard's state unchanged before the kill (``kill_when_mid_run``).
SETTLED_POLLS = 10


def accepted_ids(pipeline: Pipeline) -> Counter:
    return Counter(record.xdm_id for record in stored_records(pipeline.adobe))


def owners(pipeline: Pipeline) -> dict[str, int]:
    """The shard that should send each accepted message: its customer's, or 0 for a store."""
    tenant = pipeline.adobe.config.tenant_id
    found = {}
    for record in stored_records(pipeline.adobe):
        customer = record.entity[f"_{tenant}"]["capillary"].get("customerId")
        found[record.xdm_id] = 0 if customer is None else shard_of(int(customer), SHARDS)
    return found


def shard_env(pipeline: Pipeline, tmp_path: Path) -> dict[str, str]:
    """The orchestrator's environment: the pipeline's (emulators, offline), state in a shared file backend, each
    shard with a Meltano system directory of its own (so no shared SQLite database) and an API key of its own."""
    env = pipeline.env(**SETTINGS)
    for shared in ("MELTANO_DATABASE_URI", "MELTANO_SYS_DIR_ROOT"):
        env.pop(shared)
    keys = {}
    for i, (key, secret) in enumerate(KEYS.items()):
        keys |= {f"CAPILLARY_SHARD_{i}_CLIENT_KEY": key, f"CAPILLARY_SHARD_{i}_CLIENT_SECRET": secret}
    return {
        **env,
        **keys,
        "MELTANO_STATE_BACKEND_URI": (tmp_path / "state").as_uri(),
        "CAPILLARY_SHARD_COUNT": str(SHARDS),
        "CAPILLARY_SHARDS_DIR": str(tmp_path / "shards"),
        "CAPILLARY_MELTANO_BIN": MELTANO_BIN,
        "CAPILLARY_SHARD_RETRIES": "0",  # the test reruns the killed shard itself
    }


def kill_when_mid_run(pipeline: Pipeline, state_dir: Path, stalled_path: str, killed: list[int]) -> None:
    """Once the killed shard is held at ``stalled_path`` with a persisted state that has settled, SIGKILL its
    process group (Meltano, the tap and the target, as a lost machine would).

    Settled: the same state in ``SETTLED_POLLS`` polls in a row. Meltano's file state backend rewrites
    ``state.json`` in place (truncate, then write) on every STATE, many a second while the target drains; a kill
    in the middle of a write leaves it empty, and the shard cannot be resumed (orchestration/README.md, "State").
    Once the tap is held, the target drains what it had and the writes stop."""
    suffix = f"--state-id-suffix=shard-{KILLED}-of-{SHARDS}"

    def persisted() -> str | None:
        texts = [path.read_text() for path in state_dir.glob(f"*shard-{KILLED}-of-{SHARDS}*/state.json")]
        return next((text for text in texts if "customers" in text), None)

    def held() -> bool:
        log = pipeline.capillary.call(lambda: list(pipeline.capillary.app[REQUEST_LOG].entries))
        return any(e["path"] == stalled_path for e in log)

    done = threading.Event()
    last, settled = None, 0
    while not done.wait(0.2):
        state = persisted()
        settled = settled + 1 if state is not None and state == last else 0
        last = state
        if settled < SETTLED_POLLS or not held():
            continue
        for process in psutil.process_iter(["cmdline"]):
            if suffix in (process.info["cmdline"] or []):
                os.killpg(process.pid, signal.SIGKILL)
                killed.append(process.pid)
                return


@ORG
def test_four_shards_under_dagster_send_what_one_run_sends(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unsharded = pipeline.run(**SETTINGS)
    assert unsharded.returncode == 0, f"meltano run failed, log: {unsharded.log_path}"
    expected = accepted_ids(pipeline)
    assert sum(expected.values()) > 500
    assert max(expected.values()) == 1
    owner = owners(pipeline)
    assert set(owner.values()) == set(range(SHARDS))
    requests.delete(f"{pipeline.adobe.base_url}/_emulator/datasets", timeout=30).raise_for_status()
    pipeline.capillary.call(pipeline.capillary.app[REQUEST_LOG].clear)

    admin = pipeline.capillary.app[ADMIN]
    ids = pipeline.capillary.call(admin.changed_customers, 0)
    customers = [pipeline.capillary.call(admin.customer, i) for i in ids]
    stalled = next(c["id"] for c in customers if shard_of(c["id"], SHARDS) == KILLED and c["transactions"])
    stalled_path = f"/v2/customers/{stalled}/transactions"
    pipeline.capillary.set_faults({"rules": [{"path": stalled_path, "latency_ms": STALL_MS}]})
    for name, value in shard_env(pipeline, tmp_path).items():
        monkeypatch.setenv(name, value)
    for name in ("MELTANO_DATABASE_URI", "MELTANO_SYS_DIR_ROOT"):
        monkeypatch.delenv(name, raising=False)

    killed: list[int] = []
    killer = threading.Thread(target=kill_when_mid_run, args=(pipeline, tmp_path / "state", stalled_path, killed))
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        killer.start()
        backfill = dg.execute_job(dg.reconstructable(all_shards_job), instance, raise_on_error=False)
        killer.join(timeout=60)
        assert killed, "the shard was not found mid-run"
        failed = sorted(e.node_name for e in backfill.all_events if e.is_step_failure)
        succeeded = sorted(e.node_name for e in backfill.all_events if e.is_step_success)
        assert (failed, succeeded) == ([f"shard_{KILLED}"], [f"shard_{i}" for i in range(SHARDS) if i != KILLED])

        # With the killed shard down: no message twice, and all that is missing is the killed shard's.
        partial = accepted_ids(pipeline)
        assert max(partial.values()) == 1
        missing = set(expected) - set(partial)
        assert missing, "the shard was killed before it had sent everything"
        assert {owner[xdm_id] for xdm_id in missing} == {KILLED}
        assert set(partial) <= set(expected)

        # Each shard read with its own key, and only its own customers.
        log = pipeline.capillary.call(lambda: list(pipeline.capillary.app[REQUEST_LOG].entries))
        keys_used = {e["api_key"] for e in log if e["api_key"]}
        assert keys_used == set(KEYS)
        for entry in log:
            if entry["route"] == "/v2/customers/{customer_id}/transactions" and entry["status"] == 200:
                customer = int(entry["path"].split("/")[3])
                assert entry["api_key"] == f"shard-key-{shard_of(customer, SHARDS)}"

        pipeline.capillary.set_faults(None)
        # Meltano takes the killed run as running for 5 minutes: the rerun passes force (orchestration README).
        rerun = shard_job().execute_in_process(
            partition_key=str(KILLED),
            run_config={"ops": {"meltano_run_shard": {"config": {"force": True}}}},
            instance=instance,
            raise_on_error=False,
        )
        assert rerun.success, [e.message for e in rerun.all_events if e.is_failure]

    stored = accepted_ids(pipeline)
    assert set(stored) == set(expected)
    again = [xdm_id for xdm_id, count in stored.items() if count > 1]
    # Sent twice: only what the killed shard had sent of its window in progress (at least once delivery).
    assert {owner[xdm_id] for xdm_id in again} <= {KILLED}
    state_files = sorted(p.parent.name for p in (tmp_path / "state").rglob("state.json"))
    assert len(state_files) == SHARDS, state_files
    assert all(json.loads(p.read_text()) for p in (tmp_path / "state").rglob("state.json"))
