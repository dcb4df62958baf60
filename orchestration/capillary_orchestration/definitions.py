"""The Dagster code location: the pipeline's shards as static partitions, each a ``meltano run`` (``shards.py``).

- ``capillary_shard``: partitioned by shard (``0`` … ``n-1``); a run is one shard's ``meltano run``. The schedule
  ``capillary_incremental`` asks for one run per shard per tick; a failed shard is rerun on its own (its
  partition), resuming from its state.
- ``capillary_all_shards``: every shard in one run, side by side in processes of their own (Dagster's
  multiprocess executor, at most ``n`` at once): the first backfill, or all shards now; re-executing it from
  failure reruns only the shards that failed.

Both retry a failed shard (``CAPILLARY_SHARD_RETRIES`` times, ``CAPILLARY_SHARD_RETRY_DELAY_SECONDS`` apart: the
default 360 s outlasts Meltano's 5-minute wait before it takes a killed run of the same state id as stale). The
run queue's limits are in ``home/dagster.yaml``. Load with ``dagster dev -m capillary_orchestration.definitions``.
"""

# No ``from __future__ import annotations``: Dagster reads the ops' config classes from their annotations.
import os
import signal
import subprocess
import time
from collections import deque

import dagster as dg
from pydantic import Field

from capillary_orchestration.shards import ShardPlan

#: Run tags the run queue limits (``home/dagster.yaml``).
PIPELINE_TAG = "capillary/pipeline"
#: A stopped shard gets this long to end (Meltano then stops its plugins, which write no further state).
STOP_GRACE_SECONDS = 60
LOG_TAIL_LINES = 40


class ShardRunConfig(dg.Config):
    force: bool = Field(
        default=False,
        description=(
            "Pass --force to meltano run: skip Meltano's refusal to start while a run of the shard's state id is "
            "in progress. Only after a shard was killed outright (SIGKILL, a lost machine): Meltano takes its run "
            "as stale 5 minutes after its last heartbeat."
        ),
    )


def run_shard(context: dg.OpExecutionContext, plan: ShardPlan, index: int, config: ShardRunConfig) -> dg.Output:
    """The shard's ``meltano run``, its output in ``<shard dir>/logs/<dagster run id>.log``; a failure names the log
    and ends with its last lines. Stopping the Dagster run stops Meltano gracefully (SIGTERM, then SIGKILL)."""
    plan.prepare(index)
    env = plan.env(index)
    log_path = plan.shard_dir(index) / "logs" / f"{context.run_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = plan.command(index, force=config.force)
    context.log.info(f"Shard {index} of {plan.count}: {' '.join(command[1:])}; log {log_path}")
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    started = time.monotonic()
    with log_path.open("a") as log, subprocess.Popen(
        command, cwd=plan.project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group: stopped as a whole
    ) as process:  # fmt: skip
        try:
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                tail.append(line)
            process.wait()
        except BaseException:
            _stop(process)
            raise
    metadata = {
        "state_id_suffix": plan.suffix(index),
        "exit_code": process.returncode,
        "seconds": round(time.monotonic() - started, 1),
        "log": dg.MetadataValue.path(str(log_path)),
    }
    if process.returncode != 0:
        what = f"meltano run of shard {index} of {plan.count}"
        raise dg.Failure(
            description=f"{what} exited with {process.returncode}; log {log_path}",
            metadata={**metadata, "log_tail": dg.MetadataValue.text("".join(tail))},
        )
    return dg.Output(plan.suffix(index), metadata=metadata)


def _stop(process: subprocess.Popen) -> None:
    """Stop the shard's process group: SIGTERM (Meltano marks its run failed and stops its plugins), then SIGKILL."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def build(plan: ShardPlan) -> dg.Definitions:
    """The jobs and schedule for ``plan``'s shards."""
    retry = dg.RetryPolicy(max_retries=plan.retries, delay=plan.retry_delay_seconds)
    partitions = dg.StaticPartitionsDefinition([str(i) for i in range(plan.count)])
    tags = {PIPELINE_TAG: "tap-capillary-to-target-adobe-aep"}

    @dg.op(retry_policy=retry, description="meltano run of the shard this run's partition names")
    def meltano_run_shard(context: dg.OpExecutionContext, config: ShardRunConfig) -> dg.Output:
        return run_shard(context, plan, int(context.partition_key), config)

    @dg.job(partitions_def=partitions, tags=tags, description="One shard of the pipeline per run (partition).")
    def capillary_shard() -> None:
        meltano_run_shard()

    def shard_op(index: int) -> dg.OpDefinition:
        @dg.op(name=f"shard_{index}", retry_policy=retry, description=f"meltano run of shard {index}")
        def one_shard(context: dg.OpExecutionContext, config: ShardRunConfig) -> dg.Output:
            return run_shard(context, plan, index, config)

        return one_shard

    shard_ops = [shard_op(i) for i in range(plan.count)]

    @dg.job(
        executor_def=dg.multiprocess_executor.configured({"max_concurrent": plan.count}),
        tags=tags,
        description="Every shard of the pipeline in one run, side by side.",
    )
    def capillary_all_shards() -> None:
        for op in shard_ops:
            op()

    @dg.schedule(
        job=capillary_shard,
        cron_schedule=plan.schedule,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Incremental runs: one run per shard per tick (CAPILLARY_SCHEDULE, cron).",
    )
    def capillary_incremental(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        tick = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "now"
        return [dg.RunRequest(run_key=f"{key}@{tick}", partition_key=key) for key in partitions.get_partition_keys()]

    return dg.Definitions(jobs=[capillary_shard, capillary_all_shards], schedules=[capillary_incremental])


def all_shards_job() -> dg.JobDefinition:
    """``capillary_all_shards`` as the environment defines it (``dagster.reconstructable`` target: the multiprocess
    executor's processes build it again)."""
    return build(ShardPlan.from_env()).resolve_job_def("capillary_all_shards")


def shard_job() -> dg.JobDefinition:
    """``capillary_shard`` as the environment defines it."""
    return build(ShardPlan.from_env()).resolve_job_def("capillary_shard")


defs = build(ShardPlan.from_env())
