"""The Dagster definitions: partitions are the shards, a run is the shard's ``meltano run`` (a stand-in executable
here records what it was given), failures name the log, the schedule asks for every shard."""

from __future__ import annotations

import json
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from capillary_orchestration.definitions import build
from capillary_orchestration.shards import ShardPlan

STAND_IN = """#!{python}
import json, os, sys
with open(os.environ["STAND_IN_RECORD"], "a") as record:
    shard = {{k: v for k, v in os.environ.items() if k.startswith(("TAP_CAPILLARY_", "MELTANO_"))}}
    record.write(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": shard}}) + "\\n")
print("line one of meltano's output")
print("Summary for stream 'customers': received=3")
sys.exit(int(os.environ.get("STAND_IN_EXIT", "0")))
"""


@pytest.fixture
def plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ShardPlan:
    project = tmp_path / "project"
    for plugin_type in ("extractors", "loaders"):
        (project / ".meltano" / plugin_type).mkdir(parents=True)
    meltano = tmp_path / "meltano"
    meltano.write_text(STAND_IN.format(python=sys.executable))
    meltano.chmod(meltano.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("STAND_IN_RECORD", str(tmp_path / "record.jsonl"))
    return ShardPlan.from_env({"CAPILLARY_MELTANO_PROJECT": str(project), "CAPILLARY_MELTANO_BIN": str(meltano),
                               "CAPILLARY_SHARD_COUNT": "3", "CAPILLARY_SHARD_RETRIES": "0"})  # fmt: skip


def recorded(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "record.jsonl").read_text().splitlines()]


def test_partitions_are_the_shards_and_both_jobs_and_the_schedule_load(plan: ShardPlan) -> None:
    defs = build(plan)
    shard_job = defs.resolve_job_def("capillary_shard")
    assert shard_job.partitions_def is not None
    assert shard_job.partitions_def.get_partition_keys() == ["0", "1", "2"]
    all_shards = defs.resolve_job_def("capillary_all_shards")
    assert sorted(node.name for node in all_shards.nodes) == ["shard_0", "shard_1", "shard_2"]
    assert all_shards.executor_def.name == "multiprocess"
    retry = next(node for node in shard_job.nodes if node.name == "meltano_run_shard").definition.retry_policy
    assert retry is not None
    assert (retry.max_retries, retry.delay) == (0, 360)
    assert dg.Definitions.validate_loadable(defs) is None


def test_a_partition_runs_its_shard_in_the_project(plan: ShardPlan, tmp_path: Path) -> None:
    job = build(plan).resolve_job_def("capillary_shard")
    result = job.execute_in_process(partition_key="1")
    assert result.success
    [call] = recorded(tmp_path)
    assert call["argv"] == ["run", "--state-id-suffix=shard-1-of-3", "tap-capillary", "target-adobe-aep"]
    assert call["cwd"] == str(plan.project)
    assert call["env"]["TAP_CAPILLARY_SHARD_INDEX"] == "1"
    assert call["env"]["MELTANO_SYS_DIR_ROOT"] == str(plan.shard_dir(1) / ".meltano")
    [log] = (plan.shard_dir(1) / "logs").iterdir()
    assert "Summary for stream 'customers'" in log.read_text()
    assert result.output_for_node("meltano_run_shard") == "shard-1-of-3"


def test_a_failed_shard_fails_its_run_naming_the_log_and_showing_its_end(
    plan: ShardPlan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAND_IN_EXIT", "2")
    job = build(plan).resolve_job_def("capillary_shard")
    result = job.execute_in_process(partition_key="2", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data
    assert failure is not None
    assert failure.user_failure_data is not None
    assert "meltano run of shard 2 of 3 exited with 2; log " in failure.user_failure_data.description
    assert "Summary for stream 'customers'" in failure.user_failure_data.metadata["log_tail"].text


def test_force_is_passed_only_when_asked(plan: ShardPlan, tmp_path: Path) -> None:
    job = build(plan).resolve_job_def("capillary_shard")
    config = {"ops": {"meltano_run_shard": {"config": {"force": True}}}}
    assert job.execute_in_process(partition_key="0", run_config=config).success
    assert recorded(tmp_path)[0]["argv"][2] == "--force"


def test_the_schedule_asks_for_one_run_per_shard(plan: ShardPlan) -> None:
    defs = build(plan)
    schedule = defs.resolve_schedule_def("capillary_incremental")
    assert schedule.cron_schedule == "0 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    with dg.instance_for_test() as instance:
        tick = datetime(2026, 1, 1, 3, tzinfo=UTC)
        context = dg.build_schedule_context(instance, tick, repository_def=defs.get_repository_def())
        requests = schedule.evaluate_tick(context)
    assert requests.run_requests is not None
    assert [r.partition_key for r in requests.run_requests] == ["0", "1", "2"]
    assert len({r.run_key for r in requests.run_requests}) == 3
