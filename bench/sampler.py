"""Peak RSS and CPU time of the benchmark's child processes (Meltano, the plugins, the emulators), by role.

Plugins are grandchildren (children of Meltano), so the sampler walks this process's descendants every
``interval`` seconds; a process without a role of its own (the target's conversion workers) takes its parent's.
Peak RSS is the kernel's high-water mark (``VmHWM`` in ``/proc/<pid>/status``), so a spike between two samples is
not missed; CPU time is the last user + system time seen for each process. For roles of several processes, RSS
counts the pages they share once per process, so the sampler also sums their PSS (``Pss`` in
``/proc/<pid>/smaps_rollup``: shared pages divided among their users, as a machine's memory holds them) at each
sample and keeps the largest sum.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path

import psutil

# Role of a process, by the basename of its executable script (argv[1] of a Python console script) or argv[0].
ROLES = {
    "tap-capillary": "tap",
    "target-adobe-aep": "target",
    "tap_replay.py": "tap",
    "target_noop.py": "target",
    "meltano": "meltano",
    "emulators": "emulators",
}


def role_of(process: psutil.Process) -> str | None:
    try:
        argv = process.cmdline()
    except psutil.Error:
        return None
    for arg in argv[:2]:
        role = ROLES.get(Path(arg).name)
        if role:
            return role
    return None


def _proc_kb(path: str, field: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss_bytes(pid: int) -> int:
    return _proc_kb(f"/proc/{pid}/status", "VmHWM:")


def pss_bytes(pid: int) -> int:
    return _proc_kb(f"/proc/{pid}/smaps_rollup", "Pss:")


class Sampler:
    """Context manager sampling descendants while a step runs; ``report()`` gives per-role peak RSS and CPU."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._peak: dict[int, int] = {}
        self._cpu: dict[int, float] = {}
        self._cpu_start: dict[int, float] = {}
        self._role: dict[int, str] = {}
        self._peak_pss: dict[str, int] = defaultdict(int)  # role -> largest sum of its processes' PSS
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self, *, first: bool = False) -> None:
        pss: dict[str, int] = defaultdict(int)
        for process in psutil.Process().children(recursive=True):
            pid = process.pid
            if pid not in self._role:
                role = role_of(process)
                if role is None:
                    try:
                        role = self._role.get(process.ppid())  # listed after its parent
                    except psutil.Error:
                        role = None
                if role is None:
                    continue
                self._role[pid] = role
            try:
                times = process.cpu_times()
                cpu = times.user + times.system
                peak = peak_rss_bytes(pid)
                pss[self._role[pid]] += pss_bytes(pid)
            except (psutil.Error, OSError):
                continue  # exited between the listing and the read
            # Processes already running when the step starts (the emulators) count only this step's CPU.
            self._cpu_start.setdefault(pid, cpu if first else 0.0)
            self._cpu[pid] = cpu
            self._peak[pid] = max(self._peak.get(pid, 0), peak)
        for role, total in pss.items():
            self._peak_pss[role] = max(self._peak_pss[role], total)

    def report(self) -> dict[str, dict[str, float]]:
        """``{role: {"peak_rss_mb": largest process of that role, "cpu_s": sum over its processes, "processes",
        "total_peak_rss_mb": sum of its processes' peak RSS, "peak_pss_mb": largest sum of their PSS}}``."""
        roles: dict[str, dict[str, float]] = defaultdict(
            lambda: {"peak_rss_mb": 0.0, "cpu_s": 0.0, "processes": 0, "total_peak_rss_mb": 0.0, "peak_pss_mb": 0.0}
        )
        for pid, role in self._role.items():
            if pid not in self._cpu:
                continue
            entry = roles[role]
            entry["peak_rss_mb"] = round(max(entry["peak_rss_mb"], self._peak[pid] / 2**20), 1)
            entry["cpu_s"] = round(entry["cpu_s"] + self._cpu[pid] - self._cpu_start[pid], 2)
            entry["processes"] += 1
            entry["total_peak_rss_mb"] = round(entry["total_peak_rss_mb"] + self._peak[pid] / 2**20, 1)
            entry["peak_pss_mb"] = round(self._peak_pss[role] / 2**20, 1)
        return dict(roles)
