"""Peak RSS and CPU time of the benchmark's child processes (Meltano, the plugins, the emulators), by role.

Plugins are grandchildren (children of Meltano), so the sampler walks this process's descendants every
``interval`` seconds. Peak RSS is the kernel's high-water mark (``VmHWM`` in ``/proc/<pid>/status``), so a
spike between two samples is not missed; CPU time is the last user + system time seen for each process.
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


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class Sampler:
    """Context manager sampling descendants while a step runs; ``report()`` gives per-role peak RSS and CPU."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._peak: dict[int, int] = {}
        self._cpu: dict[int, float] = {}
        self._cpu_start: dict[int, float] = {}
        self._role: dict[int, str] = {}
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
        for process in psutil.Process().children(recursive=True):
            pid = process.pid
            if pid not in self._role:
                role = role_of(process)
                if role is None:
                    continue
                self._role[pid] = role
            try:
                times = process.cpu_times()
                cpu = times.user + times.system
                peak = peak_rss_bytes(pid)
            except (psutil.Error, OSError):
                continue  # exited between the listing and the read
            # Processes already running when the step starts (the emulators) count only this step's CPU.
            self._cpu_start.setdefault(pid, cpu if first else 0.0)
            self._cpu[pid] = cpu
            self._peak[pid] = max(self._peak.get(pid, 0), peak)

    def report(self) -> dict[str, dict[str, float]]:
        """``{role: {"peak_rss_mb": largest process of that role, "cpu_s": sum over its processes}}``."""
        roles: dict[str, dict[str, float]] = defaultdict(lambda: {"peak_rss_mb": 0.0, "cpu_s": 0.0})
        for pid, role in self._role.items():
            if pid not in self._cpu:
                continue
            entry = roles[role]
            entry["peak_rss_mb"] = round(max(entry["peak_rss_mb"], self._peak[pid] / 2**20), 1)
            entry["cpu_s"] = round(entry["cpu_s"] + self._cpu[pid] - self._cpu_start[pid], 2)
        return dict(roles)
