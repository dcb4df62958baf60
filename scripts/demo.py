"""``make demo``: AEP set up by API, then the pipeline against the emulators, a full run and an incremental one.

Starts both emulators in this process on free loopback ports, the Adobe one with an empty sandbox and the Capillary
one with a realistic data set; sets AEP up with ``meltano invoke target-adobe-aep:provision`` (the objects it
creates), runs it again (everything "exists"), runs ``meltano run tap-capillary target-adobe-aep`` (the ``dev``
environment, with the settings provision printed), adds activity in the Capillary emulator, runs again, prints
what moved (records per stream, accepted and failed messages per AEP dataset, dead-lettered records, time) and
ends with ``meltano invoke target-adobe-aep:report``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline import ROOT, RunResult, meltano, pipeline_env, private_workdir

from emulators.adobe import ADOBE
from emulators.capillary import ADMIN
from emulators.launch import start_adobe, start_capillary
from emulators.server import BackgroundServer

# Lines of a run worth showing live; everything is kept in the run's log file.
PROGRESS_LINE = re.compile(r"Discovery window|Summary for stream|dead-lettered|\[error|Traceback")
# Lines of provision and report worth showing: what exists or was made, the settings, the report's findings.
ADMIN_LINE = re.compile(r"^(exists|created?|updated?|INCOMPATIBLE|FAILED|Created|The configuration|  [a-z_]+: |"
                        r"Dataset |  \S+  (success|failed)|    failed record|      #|Observability|  \w[\w ]+ \(|"
                        r"\d+ failed record)")  # fmt: skip
HISTORY_DAYS = 120
ACTIVITY = {
    "new_customers": 5,
    "updated_customers": 8,
    "new_transactions": 12,
    "new_returns": 2,
    "ledger_entries": 6,
    "tier_changes": 3,
    "redemptions": 3,
    "coupons": 4,
    "rewards": 2,
    "store_updates": 1,
}


def show_progress(line: str) -> None:
    if PROGRESS_LINE.search(line):
        sys.stdout.write("    " + line.strip()[:160] + "\n")
        sys.stdout.flush()


def show_admin(line: str) -> None:
    if ADMIN_LINE.search(line):
        sys.stdout.write("    " + line.rstrip()[:160] + "\n")
        sys.stdout.flush()


def succeeded(result: RunResult, what: str) -> RunResult:
    if result.returncode != 0:
        sys.stdout.write(f"{what} failed with exit code {result.returncode}; full log: {result.log_path}\n")
        raise SystemExit(result.returncode)
    return result


def run(meltano_bin: str, env: dict, log_path: Path) -> RunResult:
    result = meltano(meltano_bin, ["run", "tap-capillary", "target-adobe-aep"], env, log_path, show_progress)
    return succeeded(result, "meltano run")


def admin(meltano_bin: str, command: str, args: list[str], env: dict, log_path: Path) -> RunResult:
    """``meltano invoke target-adobe-aep:<command> [args]``, its main lines shown."""
    result = meltano(meltano_bin, ["invoke", f"target-adobe-aep:{command}", *args], env, log_path, show_admin)
    return succeeded(result, f"meltano invoke target-adobe-aep:{command}")


def dataset_counts(adobe: BackgroundServer) -> dict[str, dict[str, int]]:
    return adobe.call(adobe.app[ADOBE].store.counts)


def print_run(title: str, seconds: float, result: RunResult, before: dict, after: dict, names: dict) -> None:
    out = sys.stdout.write
    out(f"\n{title}: {seconds:.1f} s\n")
    out(f"  {'stream':<16}{'received':>10}{'accepted':>10}{'dead-lettered':>15}\n")
    for stream, stats in sorted(result.summaries.items()):
        received, accepted, dead = stats.get("received", 0), stats.get("accepted", 0), stats.get("dead_lettered", 0)
        out(f"  {stream:<16}{received:>10}{accepted:>10}{dead:>15}\n")
    for dataset, counts in sorted(after.items()):
        previous = before.get(dataset, {})
        delta = ", ".join(f"{key} +{value - previous.get(key, 0)}" for key, value in counts.items())
        out(f"  AEP dataset {names.get(dataset, dataset)} ({dataset}): {delta}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meltano", default=shutil.which("meltano") or "meltano", help="meltano executable")
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--transactions-per-customer", type=int, default=6)
    args = parser.parse_args()
    workdir = private_workdir(ROOT / "output" / "demo")
    out = sys.stdout.write

    out(f"Generating {args.customers} Capillary customers with {HISTORY_DAYS} days of loyalty activity...\n")
    capillary = start_capillary(
        customers=args.customers,
        transactions_per_customer=args.transactions_per_customer,
        history_days=HISTORY_DAYS,
        cluster_timezone="Asia/Kolkata",
        db_path=str(Path(tempfile.mkdtemp()) / "capillary.sqlite"),
    )
    adobe = start_adobe(provisioned=False)  # an empty sandbox: provision sets it up
    try:
        out(f"Capillary emulator: {capillary.base_url}   Adobe emulator: {adobe.base_url}\n")
        counts = capillary.call(capillary.app[ADMIN].counts)
        out("Capillary data: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + "\n")
        start = datetime.now(UTC) - timedelta(days=HISTORY_DAYS + 1)
        env = pipeline_env(capillary, adobe, workdir, start)
        began = datetime.now(UTC)

        out("\n[1/5] meltano invoke target-adobe-aep:provision --profile-enabled (an empty sandbox)\n")
        settings_path = workdir / "settings.json"
        admin(args.meltano, "provision", ["--profile-enabled", "--write-config", str(settings_path)], env,
              workdir / "provision-1.log")  # fmt: skip
        out("\n[2/5] meltano invoke target-adobe-aep:provision --profile-enabled (again: everything exists)\n")
        admin(args.meltano, "provision", ["--profile-enabled"], env, workdir / "provision-2.log")
        settings = json.loads(settings_path.read_text())
        env.update({f"TARGET_ADOBE_AEP_{name.upper()}": value for name, value in settings.items()})
        names = {settings["profile_dataset_id"]: "profile", settings["event_dataset_id"]: "events"}

        out("\n[3/5] meltano run tap-capillary target-adobe-aep (first run: backfill)\n")
        before, started = dataset_counts(adobe), time.monotonic()
        first = run(args.meltano, env, workdir / "run-1.log")
        after_first = dataset_counts(adobe)
        print_run("First run", time.monotonic() - started, first, before, after_first, names)

        changes = capillary.call(capillary.app[ADMIN].activity, dict(ACTIVITY))
        out(
            f"\nAdded activity in Capillary: {len(changes['changed_customers'])} customers changed "
            f"({len(changes['customers_added'])} new), {len(changes['transactions_added'])} bills, "
            f"{len(changes['returns_added'])} returns, {len(changes['ledger_added'])} ledger entries\n"
        )

        out("\n[4/5] meltano run tap-capillary target-adobe-aep (incremental: only the changes)\n")
        started = time.monotonic()
        second = run(args.meltano, env, workdir / "run-2.log")
        print_run("Incremental run", time.monotonic() - started, second, after_first, dataset_counts(adobe), names)
        dead_letter = workdir / "dead-letter.jsonl"
        dead = len(dead_letter.read_text().splitlines()) if dead_letter.exists() else 0
        out(f"\nDead letter: {dead} record(s).\n")

        out("\n[5/5] meltano invoke target-adobe-aep:report (what AEP did with the batches since the demo began)\n")
        admin(args.meltano, "report", ["--since", began.isoformat()], env, workdir / "report.log")
        out(f"\nLogs, settings and state: {workdir}\n")
    finally:
        capillary.stop()
        adobe.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
