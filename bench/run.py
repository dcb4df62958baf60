"""``make bench``: throughput, request and memory figures of the pipeline against the emulators (issue #6).

One run, in order (every step a separate process tree, sampled for peak RSS and CPU by ``sampler.py``):

1. the emulators start in their own process (``emulators serve``; Capillary data generated first, timed
   apart) in benchmark mode: Capillary answers a repeated GET from its response cache, Adobe counts
   ingestion without XDM validation and its rate limits are lifted so the client's own caps rule;
2. ``meltano invoke tap-capillary`` alone, its output captured to a ``.singer`` file;
3. ``meltano run tap-capillary target-adobe-aep`` end to end (the measured pipeline, default settings);
4. ``meltano run tap-replay target-noop`` (``bench/baseline``): the SDK-defaults pipeline replaying the
   same records, so the ratio of 3 to 4 holds on a noisy machine;
5. the target fed the capture: dry run, then against the emulator uncapped (messages/s; request body
   sizes as the emulator measured them), then with ``max_messages_per_second`` = ``--cap`` (within ±5 %);
6. the tap alone on ``--latency-customers`` customers with ``--latency-ms`` per Capillary request,
   ``max_workers=1`` against the tap's own default ``max_workers`` (from ``--about``);
7. rate-limited backfills against a second emulator process enforcing ``--api-limit`` requests/s per API and per
   API key (over ``--rate-window-seconds`` windows) with 50-100 ms latency: ``meltano run`` with per-API budgets
   at the limits, then with adaptive pacing (no budgets), then ``SHARDS`` shards side by side with their own API
   keys (``orchestration/``'s commands and environments); wall time against the bound the limits set
   (``--rate-limited-only`` runs this step alone).

Prints what it measures, and the whole result as one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
import requests
from sampler import Sampler

from capillary_orchestration.shards import ShardPlan
from emulators.adobe import AdobeConfig
from emulators.capillary import CapillaryConfig
from emulators.capillary.ratelimit import api_name
from tap_capillary.tap import API_NAMES
from target_adobe_aep.target import DEFAULT_MAX_REQUEST_BYTES

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from pipeline import SUMMARY_LINE, pipeline_env, private_workdir  # noqa: E402

BASELINE_PROJECT = Path(__file__).resolve().parent / "baseline"
# Records tap-capillary emits per generated customer with the emulator's default activity (measured: 16,782
# records from 1,000 customers); only used to size the data set, the report counts the real records.
RECORDS_PER_CUSTOMER = 16.8
HISTORY_DAYS = 120
TARGET_EXECUTABLE = ROOT / ".meltano" / "loaders" / "target-adobe-aep" / "venv" / "bin" / "target-adobe-aep"
UNCAPPED = 1_000_000_000  # a client-side rate limit that never binds
# Capillary benchmark mode: rendered GET responses kept until the data changes (replaying a tap run: 0.3
# instead of 0.6 ms of emulator CPU per request). Holds the ~12k responses of a 20k-record run; a 1M run
# overflows it (oldest dropped first).
RESPONSE_CACHE_MB = 512
# Rate-limited step: shards, their OAuth clients (the dev environment's secret: meltano.yml's environment `env:`
# block wins over the variable, orchestration/README.md), and the APIs a transactions pass reads side by side.
SHARDS = 4
DEV_SECRET = "emulator-secret"
CONCURRENT_APIS = ("v2/customers/{id}/transactions", "v2/transactions/{id}")
# The tap's log line when an API without a budget is slowed down (transport.py).
ADAPTIVE_CUT = re.compile(r"Capillary API (\S+) answered 429: pacing it at")
# Benchmark mode of the Adobe emulator: ingestion counted without XDM validation or storage, and no server-side
# rate limits, so that the emulator does not dominate the 2 cores and the target's own caps are what is measured.
ADOBE_BENCH = {"validate": False, "store_messages": False, "requests_per_second": 1e9, "messages_per_second": 1e9}
EMULATOR_MODE = (
    "benchmark: Capillary GET responses cached per (path, query) until its data changes (auth, faults and the "
    "request log still run per request); Adobe ingestion counted (envelopes checked) without XDM validation or "
    "storage, rate limits lifted"
)


@dataclass
class Served:
    """What ``pipeline_env`` needs of an emulator (the emulators run in another process here)."""

    base_url: str
    config: Any


@dataclass
class Emulators:
    process: subprocess.Popen
    capillary: Served
    adobe: Served
    generation_s: float
    session: requests.Session = field(default_factory=requests.Session)

    def admin(self, server: Served, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{server.base_url}/_emulator/{path}", timeout=600, **kwargs)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        """Empty both request logs and the Adobe datasets before a step."""
        for server in (self.capillary, self.adobe):
            self.admin(server, "DELETE", "requests")
        self.admin(self.adobe, "DELETE", "datasets")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def cli_options(prefix: str, overrides: dict[str, Any]) -> list[str]:
    options = []
    for name, value in overrides.items():
        text = json.dumps(value) if isinstance(value, dict) else str(value)
        options += [f"--{prefix}-{name.replace('_', '-')}", text]
    return options


def start_emulators(workdir: Path, capillary: dict[str, Any], adobe: dict[str, Any]) -> Emulators:
    urls_file = workdir / "emulators.json"
    command = [
        str(Path(sys.executable).parent / "emulators"),
        "serve",
        "--capillary-port=0",
        "--adobe-port=0",
        f"--urls-file={urls_file}",
        *cli_options("capillary", capillary),
        *cli_options("adobe", adobe),
    ]
    started = time.monotonic()
    log = (workdir / "emulators.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    while not urls_file.exists():
        if process.poll() is not None:
            raise SystemExit(f"emulators exited with {process.returncode}; see {workdir / 'emulators.log'}")
        time.sleep(0.1)
    urls = json.loads(urls_file.read_text())
    return Emulators(
        process=process,
        capillary=Served(urls["capillary"], CapillaryConfig(**capillary)),
        adobe=Served(urls["adobe"], AdobeConfig(**adobe)),
        generation_s=round(time.monotonic() - started, 1),
    )


@dataclass
class Step:
    seconds: float
    processes: dict[str, dict[str, float]]


def run_step(
    name: str,
    args: list[str],
    env: dict[str, str],
    workdir: Path,
    *,
    cwd: Path = ROOT,
    stdin: Path | None = None,
    stdout: Path | None = None,
) -> Step:
    """Run a command (a meltano invocation), sampled; stderr (and stdout unless redirected) go to ``<name>.log``."""
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log, Sampler() as sampler:
        stdin_file: IO[bytes] | None = stdin.open("rb") if stdin else None
        stdout_file: IO[bytes] | None = stdout.open("wb") if stdout else None
        try:
            started = time.monotonic()
            returncode = subprocess.run(
                args, cwd=cwd, env=env, stdin=stdin_file, stdout=stdout_file or log, stderr=log, check=False
            ).returncode
            seconds = time.monotonic() - started
        finally:
            for file in (stdin_file, stdout_file):
                if file:
                    file.close()
    check_exit(name, returncode, log_path)
    return Step(round(seconds, 2), sampler.report())


def check_exit(name: str, returncode: int, log_path: Path) -> None:
    if returncode != 0:
        raise SystemExit(f"{name} failed with exit code {returncode}; see {log_path}")


def run_side_by_side(name: str, commands: list[tuple[list[str], dict[str, str]]], workdir: Path) -> Step:
    """Run commands at once, sampled together; each one's output goes to ``<name>-<i>.log``."""
    logs = [(workdir / f"{name}-{i}.log").open("wb") for i in range(len(commands))]
    try:
        with Sampler() as sampler:
            started = time.monotonic()
            processes = [
                subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
                for (args, env), log in zip(commands, logs, strict=True)
            ]
            returncodes = [process.wait() for process in processes]
            seconds = time.monotonic() - started
    finally:
        for log in logs:
            log.close()
    for i, returncode in enumerate(returncodes):
        check_exit(f"{name}-{i}", returncode, workdir / f"{name}-{i}.log")
    return Step(round(seconds, 2), sampler.report())


def split_capture(capture: Path, into: Path) -> dict[str, int]:
    """Write the capture's schemas and per-stream records for the baseline tap; return records per stream."""
    into.mkdir(parents=True, exist_ok=True)
    schemas: dict[str, dict[str, Any]] = {}
    files: dict[str, IO[bytes]] = {}
    counts: dict[str, int] = {}
    try:
        with capture.open("rb") as lines:
            for line in lines:
                message = orjson.loads(line)
                stream = message.get("stream")
                if message["type"] == "SCHEMA":
                    schemas.setdefault(stream, {"stream": stream, "schema": message["schema"],
                                                "key_properties": message.get("key_properties") or []})  # fmt: skip
                elif message["type"] == "RECORD":
                    if stream not in files:
                        files[stream] = (into / f"{stream}.jsonl").open("wb")
                    files[stream].write(orjson.dumps(message["record"]) + b"\n")
                    counts[stream] = counts.get(stream, 0) + 1
    finally:
        for file in files.values():
            file.close()
    (into / "schemas.json").write_bytes(orjson.dumps(list(schemas.values())))
    return counts


def per_thousand(by_route: dict[str, int], records: int) -> dict[str, float]:
    return {route: round(1000 * n / records, 1) for route, n in sorted(by_route.items())}


def request_sizes(dcs: list[dict[str, Any]], streams: int) -> dict[str, Any]:
    """DCS request body sizes as the emulator measured them, and how full they are.

    ``steady_fill`` leaves out the ``streams`` smallest requests: the target drains each stream on its own and
    the last request of a drain is partial; the emulator can tell neither drains nor streams apart, so the
    k smallest stand for the last request of each stream's one drain (approximate; overstated with more drains).
    """
    sizes = sorted(e["bytes"] for e in dcs)
    steady = sizes[streams:]
    return {
        "dcs_requests": len(sizes),
        "avg_request_bytes": round(sum(sizes) / max(1, len(sizes))),
        "min_max_request_bytes": [sizes[0], sizes[-1]] if sizes else None,
        "avg_request_fill": round(sum(sizes) / max(1, len(sizes)) / DEFAULT_MAX_REQUEST_BYTES, 3),
        "steady_fill": round(sum(steady) / len(steady) / DEFAULT_MAX_REQUEST_BYTES, 3) if steady else None,
        "steady_requests": len(steady),
    }


def dcs_requests(emulators: Emulators) -> list[dict[str, Any]]:
    entries = emulators.admin(emulators.adobe, "GET", "requests", params={"path": "/collection/"})["requests"]
    return [e for e in entries if e["method"] == "POST"]


def sending_rate(dcs: list[dict[str, Any]], sent: int) -> tuple[float | None, float]:
    """Messages per second while sending: the messages after the first DCS request over the time to the last one
    (so neither start-up nor the conversion of the first batch counts), and that time."""
    span = dcs[-1]["time"] - dcs[0]["time"] if len(dcs) > 1 else 0.0
    return (sent * (len(dcs) - 1) / len(dcs) / span if span else None), span


def http_client_cpu_ms(url: str, count: int = 2000) -> float:
    """CPU of this process per ``requests`` GET of ``url`` (keep-alive session, tiny JSON answer): what any
    RESTStream pays per request before it does anything with the answer."""
    session = requests.Session()
    session.trust_env = False
    for _ in range(100):
        session.get(url, timeout=10)
    started = time.process_time()
    for _ in range(count):
        session.get(url, timeout=10).json()
    return 1000 * (time.process_time() - started) / count


def accepted_messages(emulators: Emulators) -> int:
    return sum(counts.get("accepted", 0) for counts in emulators.admin(emulators.adobe, "GET", "datasets").values())


def memory_line(processes: dict[str, dict[str, float]]) -> str:
    """Peak memory of the tap and of the target, whose conversion workers are processes of their own."""
    parts = []
    for name in ("tap", "target"):
        role = processes.get(name, {})
        text = f"{name} peak RSS {role.get('peak_rss_mb')} MB"
        if role.get("processes", 0) > 1:
            text += (
                f" (the largest of its {role['processes']} processes; at most {role['peak_pss_mb']} MB PSS at once, "
                f"{role['total_peak_rss_mb']} MB summing each one's peak RSS)"
            )
        parts.append(text)
    return "; ".join(parts)


def line_count(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as file:
        return sum(1 for _ in file)


def rate_figures(entries: list[dict[str, Any]], limit: float) -> dict[str, Any]:
    """What a rate-limited run did (the emulator's request log) against the bound its limits set.

    The bound is max over APIs of (requests the API took / its limit): no run can be faster. The tap reads its
    streams one after another (the SDK syncs streams in turn), so APIs of different streams are never used at
    once; the **stream bound** is what that order allows: the sum over APIs of requests / limit, except the two
    APIs a transactions pass reads side by side (listing and details), of which the larger counts. Requests the
    server refused (429) do not count towards either bound; they count in ``share_429``. Limits are per API key:
    with several keys (shards), both bounds are those of the busiest key.
    """
    calls = [e for e in entries if e["api_key"]]  # API requests; the token request is not rate limited
    taken = Counter(api_name(e["route"]) for e in calls if e["status"] != 429)
    refused = Counter(api_name(e["route"]) for e in calls if e["status"] == 429)
    times = [e["time"] for e in calls]
    span = max(times) - min(times)
    bound = stream_bound = 0.0
    for key in {e["api_key"] for e in calls}:
        by_api = Counter(api_name(e["route"]) for e in calls if e["status"] != 429 and e["api_key"] == key)
        bound = max(bound, max(by_api.values()) / limit)
        side_by_side = min(by_api[api] for api in CONCURRENT_APIS)
        stream_bound = max(stream_bound, (sum(by_api.values()) - side_by_side) / limit)
    return {
        "requests": len(calls),
        "requests_by_api": dict(sorted(taken.items())),
        "refused_by_api": dict(sorted(refused.items())),
        "share_429": round(sum(refused.values()) / len(calls), 4),
        "extracting_s": round(span, 2),
        "bound_s": round(bound, 2),
        "wall_vs_bound": round(span / bound, 3),
        "stream_bound_s": round(stream_bound, 2),
        "wall_vs_stream_bound": round(span / stream_bound, 3),
    }


def rate_limited(args: argparse.Namespace, workdir: Path, meltano: str, anchor: datetime) -> dict[str, Any]:
    """Step 7: backfills against per-API, per-key limits, with budgets, adaptively, and in shards; the result's
    ``rate_limited`` and ``sharding`` objects."""
    out = sys.stdout.write
    limit, window = args.api_limit, args.rate_window_seconds
    keys = {f"bench-shard-{i}": DEV_SECRET for i in range(SHARDS)}
    capillary = {
        "customers": args.rate_limited_customers,
        "history_days": HISTORY_DAYS,
        "anchor_time": anchor.isoformat(),
        "db_path": str(workdir / "rate-limited-capillary.sqlite"),
        "rate_limits": {"*": round(limit * window)},
        "rate_limit_window_seconds": window,
        "oauth_clients": {"emulator-key": DEV_SECRET, **keys},
        "faults": {"seed": 7, "rules": [{"path": "*", "latency_ms": 50, "latency_max_ms": 100}]},
    }
    folder = workdir / "rate-limited"
    folder.mkdir()
    out(
        f"\nRate-limited: {args.rate_limited_customers:,} customers, every API limited to {round(limit * window)} "
        f"requests per {window:g} s per API key ({limit:g}/s), 50-100 ms per request...\n"
    )
    emulators = start_emulators(folder, capillary, ADOBE_BENCH)
    result: dict[str, Any] = {
        "api_limit_per_s": limit,
        "window_s": window,
        "customers": args.rate_limited_customers,
        "latency_ms": [50, 100],
    }
    try:
        start = anchor - timedelta(days=HISTORY_DAYS + 1)
        env = pipeline_env(emulators.capillary, emulators.adobe, folder, start)
        # Every API at its limit; the dot of v1.1 escaped, else Meltano drops the key (meltano/meltano#7317).
        budgets = json.dumps({api.replace(".", "\\."): round(limit * 60) for api in API_NAMES})

        def measured(name: str, run: Step) -> dict[str, Any]:
            entries = emulators.admin(emulators.capillary, "GET", "requests")["requests"]
            figures = {**rate_figures(entries, limit), "accepted_messages": accepted_messages(emulators),
                       "seconds": run.seconds, "processes": run.processes}  # fmt: skip
            out(
                f"  {name}: {figures['accepted_messages']:,} messages accepted; "
                f"{figures['requests']:,} requests in {figures['extracting_s']} s (first to last), "
                f"bound {figures['bound_s']} s: {figures['wall_vs_bound']}x the bound, "
                f"{figures['wall_vs_stream_bound']}x the stream bound ({figures['stream_bound_s']} s); "
                f"429s {figures['share_429']:.2%}; {run.seconds} s with start-up; {memory_line(run.processes)}\n"
            )
            return figures

        for name, extra in (("budgets", {"TAP_CAPILLARY_API_REQUESTS_PER_MINUTE": budgets}), ("adaptive", {})):
            emulators.reset()
            run_env = {**env, **extra, "MELTANO_DATABASE_URI": f"sqlite:///{folder / f'{name}.db'}"}
            step = run_step(f"rate-limited-{name}", [meltano, "run", "tap-capillary", "target-adobe-aep"],
                            run_env, folder)  # fmt: skip
            unbudgeted = set(ADAPTIVE_CUT.findall((folder / f"rate-limited-{name}.log").read_text(errors="replace")))
            if extra and unbudgeted:  # Meltano lost a budget on the way (a key it read as nesting)
                raise SystemExit(f"the budgets did not reach the tap for {sorted(unbudgeted)}; see {folder}")
            result[name] = measured(name, step)

        emulators.reset()
        plan = ShardPlan(project=ROOT, meltano=meltano, count=SHARDS, shards_dir=folder / "shards")
        base = {k: v for k, v in env.items() if k != "MELTANO_DATABASE_URI"}
        base |= {"TAP_CAPILLARY_API_REQUESTS_PER_MINUTE": budgets}
        base |= {"MELTANO_STATE_BACKEND_URI": (folder / "state").as_uri()}
        for i, key in enumerate(keys):
            base |= {f"CAPILLARY_SHARD_{i}_CLIENT_KEY": key, f"CAPILLARY_SHARD_{i}_CLIENT_SECRET": keys[key]}
        for i in range(SHARDS):
            plan.prepare(i)
        step = run_side_by_side("rate-limited-shards", [(plan.command(i), plan.env(i, base)) for i in range(SHARDS)],
                                folder)  # fmt: skip
        sharded = measured(f"{SHARDS} shards, own keys", step)
        if sharded["accepted_messages"] != result["budgets"]["accepted_messages"]:
            out(f"  note: the shards delivered other messages than one run ({sharded['accepted_messages']:,})\n")
        sharding = {
            f"shards_{SHARDS}": sharded,
            f"speedup_{SHARDS}": round(result["budgets"]["extracting_s"] / sharded["extracting_s"], 2),
            f"speedup_{SHARDS}_with_start_up": round(result["budgets"]["seconds"] / step.seconds, 2),
        }
        out(
            f"  {SHARDS} shards with their own API keys vs 1: {sharding[f'speedup_{SHARDS}']}x "
            f"(first to last request; {sharding[f'speedup_{SHARDS}_with_start_up']}x with start-up; "
            f"target >= 3.2x)\n"
        )
    finally:
        emulators.stop()
    return {"rate_limited": result, "sharding": sharding}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000, help="approximate records to generate (1000000: 1M)")
    parser.add_argument("--meltano", default=str(ROOT / ".venv-meltano" / "bin" / "meltano"))
    parser.add_argument("--cap", type=int, default=3000, help="max_messages_per_second of the capped target run")
    parser.add_argument("--latency-ms", type=int, default=50, help="Capillary latency of the concurrency comparison")
    parser.add_argument("--latency-customers", type=int, default=100, help="customers read in the latency runs")
    parser.add_argument("--workdir", type=Path, default=ROOT / "output" / "bench")
    parser.add_argument(
        "--pipeline-only", action="store_true", help="only the pipeline step: throughput and peak memory at scale"
    )
    parser.add_argument("--rate-limited-only", action="store_true", help="only step 7: rate limits and shards")
    parser.add_argument("--api-limit", type=float, default=20, help="step 7: requests/s per API and API key")
    parser.add_argument("--rate-window-seconds", type=float, default=10, help="step 7: the limits' window")
    parser.add_argument("--rate-limited-customers", type=int, default=300, help="step 7: customers of the backfill")
    args = parser.parse_args()
    out = sys.stdout.write
    workdir = private_workdir(args.workdir.resolve())

    anchor = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    customers = max(10, math.ceil(args.records / RECORDS_PER_CUSTOMER))
    capillary_overrides = {
        "customers": customers,
        "history_days": HISTORY_DAYS,
        "anchor_time": anchor.isoformat(),
        "db_path": str(workdir / "capillary.sqlite"),
        "response_cache_mb": RESPONSE_CACHE_MB,
    }
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "emulator_mode": EMULATOR_MODE,
    }
    meltano = str(Path(args.meltano).resolve())  # steps run in other directories
    if args.rate_limited_only:
        result |= rate_limited(args, workdir, meltano, anchor)
        out(json.dumps(result, separators=(",", ":")) + "\n")
        return 0
    out(f"Emulator mode: {EMULATOR_MODE}\n")
    out(f"Generating ~{args.records:,} records ({customers:,} Capillary customers, {HISTORY_DAYS} days)...\n")
    emulators = start_emulators(workdir, capillary_overrides, ADOBE_BENCH)
    try:
        result["generation_s"] = emulators.generation_s
        out(f"  emulators ready in {emulators.generation_s} s (not part of any measured time)\n")
        start = anchor - timedelta(days=HISTORY_DAYS + 1)
        env = pipeline_env(emulators.capillary, emulators.adobe, workdir, start)

        # -- 2. the tap alone, captured -----------------------------------------------------------------
        capture = workdir / "capture.singer"
        tap_routes = None
        if not args.pipeline_only:
            emulators.reset()
            tap = run_step("tap", [meltano, "invoke", "tap-capillary"], env, workdir, stdout=capture)
            streams = split_capture(capture, workdir / "replay")
            records = sum(streams.values())
            tap_routes = emulators.admin(emulators.capillary, "GET", "requests")["by_route"]
            result["tap_only"] = {
                "seconds": tap.seconds,
                "records_per_s": round(records / tap.seconds),
                "processes": tap.processes,
            }
            out(f"\nTap alone: {records:,} records in {tap.seconds} s = {records / tap.seconds:,.0f} records/s\n")

        # -- 3. the pipeline ---------------------------------------------------------------------------
        emulators.reset()
        pipeline = run_step("pipeline", [meltano, "run", "tap-capillary", "target-adobe-aep"], env, workdir)
        if args.pipeline_only:  # the records the target received, from its summary lines
            summaries = SUMMARY_LINE.finditer((workdir / "pipeline.log").read_text(errors="replace"))
            streams = {m["stream"]: int(m["fields"].split("received=")[1].split()[0]) for m in summaries}
            records = sum(streams.values())
        result["records"] = records
        result["records_per_stream"] = streams
        capillary_routes = emulators.admin(emulators.capillary, "GET", "requests")["by_route"]
        adobe_routes = emulators.admin(emulators.adobe, "GET", "requests")["by_route"]
        emulator_cpu_s = pipeline.processes.get("emulators", {}).get("cpu_s", 0.0)
        dcs = dcs_requests(emulators)
        accepted = accepted_messages(emulators)
        dead = line_count(workdir / "dead-letter.jsonl")
        result["pipeline"] = {
            "seconds": pipeline.seconds,
            "records_per_s": round(records / pipeline.seconds),
            "accepted_messages": accepted,
            "dead_lettered": dead,
            "messages_per_request": round(accepted / max(1, len(dcs)), 1),
            **request_sizes(dcs, len(streams)),
            # Both emulators' CPU over both emulators' requests (Capillary's are ~99 % of them).
            "emulator_cpu_ms_per_request": round(
                1000 * emulator_cpu_s / max(1, sum(capillary_routes.values()) + sum(adobe_routes.values())), 3
            ),
            "processes": pipeline.processes,
        }
        result["requests_per_1000_records"] = {
            "capillary": per_thousand(capillary_routes, records),
            "capillary_total": round(1000 * sum(capillary_routes.values()) / records, 1),
            "adobe": per_thousand(adobe_routes, records),
        }
        if tap_routes and abs(sum(tap_routes.values()) / sum(capillary_routes.values()) - 1) > 0.01:
            out(f"  note: the tap-only run made other Capillary requests than the pipeline: {tap_routes}\n")
        if args.pipeline_only:
            out(
                f"Pipeline (meltano run): {records:,} records in {pipeline.seconds} s = "
                f"{records / pipeline.seconds:,.0f} records/s; {memory_line(pipeline.processes)}\n"
            )
            out(json.dumps(result, separators=(",", ":")) + "\n")
            return 0

        # -- 4. the SDK-defaults baseline --------------------------------------------------------------
        baseline_env = {
            **os.environ,
            "BENCH_PYTHON": sys.executable,
            "MELTANO_SYS_DIR_ROOT": str(workdir / "baseline-meltano"),
            "MELTANO_DATABASE_URI": f"sqlite:///{workdir / 'baseline-meltano.db'}",
            "TAP_REPLAY_CAPTURE_DIR": str(workdir / "replay"),
        }
        baseline = run_step(
            "baseline", [meltano, "run", "tap-replay", "target-noop"], baseline_env, workdir, cwd=BASELINE_PROJECT
        )
        result["baseline"] = {
            "seconds": baseline.seconds,
            "records_per_s": round(records / baseline.seconds),
            "processes": baseline.processes,
        }
        result["pipeline_vs_baseline"] = round(baseline.seconds / pipeline.seconds, 2)
        # What no tap or target can go below on this machine: the emulators' and Meltano's CPU in the pipeline
        # step, plus the HTTP client's own CPU for each Capillary request; spread over every core.
        client_ms = http_client_cpu_ms(f"{emulators.capillary.base_url}/_emulator/health")
        capillary_requests = sum(capillary_routes.values())
        floor_cpu_s = (
            emulator_cpu_s
            + pipeline.processes.get("meltano", {}).get("cpu_s", 0.0)
            + capillary_requests * client_ms / 1000
        )
        floor_s = floor_cpu_s / (os.cpu_count() or 1)
        result["pipeline_bound"] = {
            "http_client_cpu_ms_per_request": round(client_ms, 3),
            "capillary_requests": capillary_requests,
            "floor_cpu_s": round(floor_cpu_s, 2),
            "floor_s": round(floor_s, 2),
            "max_pipeline_vs_baseline": round(baseline.seconds / floor_s, 2),
        }
        out(
            f"Pipeline (meltano run): {pipeline.seconds} s = {records / pipeline.seconds:,.0f} records/s; "
            f"SDK-defaults baseline: {baseline.seconds} s = {records / baseline.seconds:,.0f} records/s; "
            f"ratio {result['pipeline_vs_baseline']}x (target >= 3x); emulators' CPU "
            f"{result['pipeline']['emulator_cpu_ms_per_request']} ms per request\n"
            f"  Bound: the emulators' and Meltano's CPU plus the HTTP client's {client_ms:.2f} ms per Capillary "
            f"request ({capillary_requests:,} requests) take {floor_cpu_s:.1f} CPU-s, so even a tap and target "
            f"doing nothing else need >= {floor_s:.1f} s on {os.cpu_count()} cores: at most "
            f"{result['pipeline_bound']['max_pipeline_vs_baseline']}x the baseline\n"
        )

        # -- 5. the target alone -----------------------------------------------------------------------
        # The target's own executable with a config file: Meltano 4.4 cannot pass a `kind: decimal` setting
        # from an environment variable (its JSON encoder fails on Decimal), and the caps below are decimals.
        dumped = subprocess.run(
            [meltano, "invoke", "--dump=config", "target-adobe-aep"], cwd=ROOT, env=env, capture_output=True, check=True
        )
        base_config = json.loads(dumped.stdout)

        def target(name: str, **config: Any) -> Step:
            config_path = workdir / f"{name}.config.json"
            config_path.write_text(json.dumps({**base_config, **config}))
            return run_step(name, [str(TARGET_EXECUTABLE), "--config", str(config_path)], env, workdir, stdin=capture)

        dry_run_dir = workdir / "dry-run"
        dry = target("target-dry-run", dry_run=True, dry_run_path=str(dry_run_dir))
        messages = sum(line_count(f) for f in dry_run_dir.glob("*.jsonl"))
        result["target_dry_run"] = {
            "seconds": dry.seconds,
            "messages": messages,
            "records_per_s": round(records / dry.seconds),
            "processes": dry.processes,
        }

        emulators.reset()
        # Three runs, the median reported: on a shared VM one run's rate can be off by a third.
        runs = []
        for attempt in range(3):
            emulators.reset()
            step = target(f"target-only-{attempt + 1}", max_messages_per_second=UNCAPPED,
                          max_requests_per_second=UNCAPPED)  # fmt: skip
            dcs = dcs_requests(emulators)
            sent = accepted_messages(emulators)
            runs.append((sending_rate(dcs, sent)[0] or 0.0, step, dcs, sent))
        runs.sort(key=lambda run: run[0])
        sending, uncapped, dcs, sent = runs[1]
        sizes = request_sizes(dcs, len(streams))
        steady = "n/a" if sizes["steady_fill"] is None else f"{sizes['steady_fill']:.1%}"
        cpu_s = uncapped.processes.get("target", {}).get("cpu_s") or 0.0
        emulator_cpu_s = uncapped.processes.get("emulators", {}).get("cpu_s") or 0.0
        result["target_only"] = {
            "seconds": uncapped.seconds,
            "accepted_messages": sent,
            "messages_per_s": round(sent / uncapped.seconds),
            "messages_per_s_while_sending": round(sending),
            "messages_per_s_while_sending_runs": [round(run[0]) for run in runs],
            "messages_per_target_cpu_s": round(sent / cpu_s) if cpu_s else None,
            # CPU per message (start-up included): both processes share the cores.
            "cpu_us_per_message": {
                "target": round(1e6 * cpu_s / max(1, sent)),
                "emulators": round(1e6 * emulator_cpu_s / max(1, sent)),
            },
            "messages_per_request": round(sent / max(1, len(dcs)), 1),
            **sizes,
            "processes": uncapped.processes,
        }
        out(
            f"Target alone (uncapped, median of 3): {sent:,} messages in {uncapped.seconds} s = "
            f"{sent / uncapped.seconds:,.0f} messages/s with start-up, {sending:,.0f} messages/s while sending "
            f"(runs: {', '.join(f'{run[0]:,.0f}' for run in runs)}; target >= 10,000); CPU per message: target "
            f"{1e6 * cpu_s / max(1, sent):.0f} us, emulators {1e6 * emulator_cpu_s / max(1, sent):.0f} us "
            f"(start-up included); "
            f"{len(dcs)} DCS requests, "
            f"{result['target_only']['messages_per_request']} messages and {sizes['avg_request_bytes']:,} bytes "
            f"per request on average (measured by the emulator): {sizes['avg_request_fill']:.1%} of "
            f"{DEFAULT_MAX_REQUEST_BYTES:,}; steady-state {steady} without the {len(streams)} smallest "
            f"requests, one per stream (target >= 90 %)\n"
        )

        emulators.reset()
        capped = target("target-capped", max_messages_per_second=args.cap, max_requests_per_second=UNCAPPED)
        dcs = dcs_requests(emulators)
        sent = accepted_messages(emulators)
        rate, span = sending_rate(dcs, sent)
        result["target_capped"] = {
            "cap": args.cap,
            "seconds": capped.seconds,
            "accepted_messages": sent,
            "sending_s": round(span, 2),
            "messages_per_s": round(rate) if rate else None,
            "deviation": round(rate / args.cap - 1, 4) if rate else None,
        }
        out(
            f"Target capped at {args.cap:,.0f} messages/s: {rate or 0:,.0f} messages/s while sending "
            f"({(rate or 0) / args.cap - 1:+.1%}; target within ±5 %)\n"
        )

        # -- 6. what concurrency buys with API latency --------------------------------------------------
        ids = emulators.admin(
            emulators.capillary, "GET", "changed-customers", params={"since": 0, "until": int(anchor.timestamp())}
        )["customer_ids"][: args.latency_customers]
        id_file = workdir / "latency-customers.csv"
        id_file.write_text("id\n" + "".join(f"{i}\n" for i in ids))
        emulators.admin(emulators.capillary, "PUT", "faults", json={"rules": [{"latency_ms": args.latency_ms}]})
        about = subprocess.run(
            [meltano, "invoke", "tap-capillary", "--about", "--format=json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            check=True,
        )
        default_workers = json.loads(about.stdout)["settings"]["properties"]["max_workers"]["default"]
        latency: dict[str, Any] = {"latency_ms": args.latency_ms, "customers": len(ids)}
        one, default = "max_workers=1", f"max_workers={default_workers} (tap default)"
        for label, workers in ((one, 1), (default, default_workers)):
            emulators.reset()
            run_env = {
                **env,
                "TAP_CAPILLARY_CUSTOMER_IDENTIFIERS_PATH": str(id_file),
                "TAP_CAPILLARY_MAX_WORKERS": str(workers),
            }
            step = run_step(f"latency-workers-{workers}", [meltano, "invoke", "tap-capillary"],
                            run_env, workdir, stdout=Path(os.devnull))  # fmt: skip
            log = emulators.admin(emulators.capillary, "GET", "requests")
            times = [e["time"] for e in log["requests"]]
            latency[label] = {
                "seconds": step.seconds,
                "extracting_s": round(max(times) - min(times), 2),
                "requests": log["count"],
            }
        emulators.admin(emulators.capillary, "DELETE", "faults")
        latency["speedup"] = round(latency[one]["extracting_s"] / latency[default]["extracting_s"], 2)
        result["latency"] = latency
        out(
            f"Tap with {args.latency_ms} ms per Capillary request ({len(ids)} customers): "
            f"{one} {latency[one]['extracting_s']} s, {default} {latency[default]['extracting_s']} s of requests: "
            f"{latency['speedup']}x (target >= 8x)\n"
        )
    finally:
        emulators.stop()

    result |= rate_limited(args, workdir, meltano, anchor)
    out(f"Pipeline: {memory_line(result['pipeline']['processes'])} (target <= 150 MB)\n")
    out(f"Capillary requests per 1,000 records: {result['requests_per_1000_records']['capillary_total']}\n")
    out(f"Logs and captures: {workdir}\n")
    out(json.dumps(result, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
