"""How one shard of the pipeline runs: its ``meltano run`` command and environment (no Dagster here: the Dagster
definitions and the benchmark both use it).

A shard is ``meltano run --state-id-suffix=shard-<i>-of-<n> tap-capillary target-adobe-aep`` in the Meltano project,
with ``TAP_CAPILLARY_SHARD_INDEX``/``_COUNT`` set, and:

- its own Meltano system directory (``MELTANO_SYS_DIR_ROOT``), holding only what one run writes (``run/``, ``logs/``,
  the SQLite system database unless ``MELTANO_DATABASE_URI`` is set), with the project's installed plugins linked
  in (``extractors``, ``loaders``). Two runs of one tap in one system directory share
  ``.meltano/run/<plugin>/tap.properties.json`` and delete each other's files (meltano/meltano#8763, open).
  ``MELTANO_AUTO_INSTALL=false``: shards never install plugins into the shared folders at the same time (run
  ``meltano install`` once, before);
- its own dead letter (the target's dead letter is one file per process: ``<name>.shard-<i>-of-<n>.jsonl``);
- its share of the budgets: with an API key of its own (``CAPILLARY_SHARD_<i>_CLIENT_KEY`` and ``..._SECRET``)
  the Capillary budgets are per key, so each shard gets them whole; sharing the project's key, each gets
  ``1 / n`` of the org's ``TAP_CAPILLARY_REQUESTS_PER_MINUTE`` and ``TAP_CAPILLARY_API_REQUESTS_PER_MINUTE``.
  AEP's limits are per org whatever the keys: each shard gets ``1 / n`` of ``TARGET_ADOBE_AEP_MAX_MESSAGES_PER_SECOND``
  and ``..._MAX_REQUESTS_PER_SECOND`` (the target's defaults, 8,000 and 800, stay under AEP's 10,000 messages and
  1,000 requests per second). Dividing by ``n`` keeps the org within its limits however many shards run at once.

Settings come from the environment of the orchestrator (``ShardPlan.from_env``; the README's table).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
PIPELINE = ("tap-capillary", "target-adobe-aep")
#: The plugins' defaults for the budgets divided among shards (``tests/test_shards.py`` checks them against
#: each plugin's ``--about``).
DEFAULT_BUDGETS = {
    "TAP_CAPILLARY_REQUESTS_PER_MINUTE": 600,
    "TARGET_ADOBE_AEP_MAX_MESSAGES_PER_SECOND": 8000,
    "TARGET_ADOBE_AEP_MAX_REQUESTS_PER_SECOND": 800,
}
CAPILLARY_BUDGETS = ("TAP_CAPILLARY_REQUESTS_PER_MINUTE",)
API_BUDGETS = "TAP_CAPILLARY_API_REQUESTS_PER_MINUTE"
DEFAULT_DEAD_LETTER = "aep-dead-letter.jsonl"  # the target's default dead_letter_path


class ShardPlanError(ValueError):
    """The orchestrator's settings cannot run the shards."""


def _integer(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    value = env.get(name)
    try:
        number = default if value in (None, "") else int(value)
    except ValueError:
        raise ShardPlanError(f"{name} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise ShardPlanError(f"{name} must be at least {minimum}, got {number}")
    return number


@dataclass(frozen=True)
class ShardPlan:
    """The shards of one Meltano project and how each runs."""

    project: Path
    meltano: str
    count: int
    shards_dir: Path
    retries: int = 2
    retry_delay_seconds: int = 360
    schedule: str = "0 * * * *"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ShardPlan:
        env = os.environ if env is None else env
        project = Path(env.get("CAPILLARY_MELTANO_PROJECT") or PROJECT).resolve()
        installed = project / ".venv-meltano" / "bin" / "meltano"
        return cls(
            project=project,
            meltano=env.get("CAPILLARY_MELTANO_BIN") or (str(installed) if installed.exists() else "meltano"),
            count=_integer(env, "CAPILLARY_SHARD_COUNT", 4, 1),
            shards_dir=Path(env.get("CAPILLARY_SHARDS_DIR") or project / ".meltano" / "shards").resolve(),
            retries=_integer(env, "CAPILLARY_SHARD_RETRIES", 2, 0),
            retry_delay_seconds=_integer(env, "CAPILLARY_SHARD_RETRY_DELAY_SECONDS", 360, 0),
            schedule=env.get("CAPILLARY_SCHEDULE") or "0 * * * *",
        )

    def suffix(self, index: int) -> str:
        """The shard's state id suffix: its Meltano state id is ``<environment>:tap-capillary-to-target-adobe-aep:
        <suffix>``. It names the shard count, so another count starts new states (``shards.py`` of the tap)."""
        return f"shard-{index}-of-{self.count}"

    def command(self, index: int, *, force: bool = False) -> list[str]:
        """``meltano run`` of the shard; ``force`` skips Meltano's check for a run of its state id in progress."""
        force_option = ["--force"] if force else []
        return [self.meltano, "run", f"--state-id-suffix={self.suffix(index)}", *force_option, *PIPELINE]

    def shard_dir(self, index: int) -> Path:
        return self.shards_dir / self.suffix(index)

    def prepare(self, index: int) -> Path:
        """The shard's Meltano system directory, with the project's installed plugins linked in."""
        sys_dir = self.shard_dir(index) / ".meltano"
        sys_dir.mkdir(parents=True, exist_ok=True)
        for plugin_type in ("extractors", "loaders"):
            link, installed = sys_dir / plugin_type, self.project / ".meltano" / plugin_type
            if not link.is_symlink():
                link.symlink_to(installed, target_is_directory=True)
        return sys_dir

    def env(self, index: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of the shard's ``meltano run``: ``base`` (the orchestrator's) with the shard's settings."""
        base = dict(os.environ if base is None else base)
        if not 0 <= index < self.count:
            raise ShardPlanError(f"shard {index} does not exist: there are {self.count} (0 to {self.count - 1})")
        database = base.get("MELTANO_DATABASE_URI", "")
        if database.startswith("sqlite") and self.count > 1:
            raise ShardPlanError(
                "MELTANO_DATABASE_URI is a SQLite database, which allows one writer: shards running at once need a "
                "Postgres system database, or leave it unset (each shard then has one in its own system directory)"
            )
        own_keys = self.own_keys(base)
        env = {
            **base,
            "MELTANO_SYS_DIR_ROOT": str(self.shard_dir(index) / ".meltano"),
            "MELTANO_AUTO_INSTALL": "false",
            "TAP_CAPILLARY_SHARD_COUNT": str(self.count),
            "TAP_CAPILLARY_SHARD_INDEX": str(index),
            "TARGET_ADOBE_AEP_DEAD_LETTER_PATH": self.dead_letter(index, base),
        }
        if own_keys:
            env["TAP_CAPILLARY_CLIENT_KEY"], env["TAP_CAPILLARY_CLIENT_SECRET"] = own_keys[index]
        divided = [name for name in DEFAULT_BUDGETS if not (own_keys and name in CAPILLARY_BUDGETS)]
        for name in divided:
            env[name] = str(self.share(_integer(base, name, DEFAULT_BUDGETS[name], 1)))
        if not own_keys and base.get(API_BUDGETS):
            env[API_BUDGETS] = json.dumps({api: self.share(n) for api, n in self.api_budgets(base).items()})
        return env

    def share(self, budget: int) -> int:
        return max(1, budget // self.count)

    def own_keys(self, env: Mapping[str, str]) -> list[tuple[str, str]]:
        """Each shard's Capillary OAuth client (``CAPILLARY_SHARD_<i>_CLIENT_KEY``/``_SECRET``), or none."""
        keys = [
            (env.get(f"CAPILLARY_SHARD_{i}_CLIENT_KEY", ""), env.get(f"CAPILLARY_SHARD_{i}_CLIENT_SECRET", ""))
            for i in range(self.count)
        ]
        if not any(key or secret for key, secret in keys):
            return []
        missing = [f"CAPILLARY_SHARD_{i}_CLIENT_{part}" for i, pair in enumerate(keys)
                   for part, value in zip(("KEY", "SECRET"), pair, strict=True) if not value]  # fmt: skip
        if missing:
            raise ShardPlanError(
                f"Per-shard API keys are set for some shards but not all: {', '.join(missing)} missing. Set a key "
                "and secret for every shard, or for none (the shards then share the project's key and its budgets)"
            )
        return keys

    @staticmethod
    def api_budgets(env: Mapping[str, str]) -> dict[str, int]:
        try:
            budgets = json.loads(env[API_BUDGETS])
        except json.JSONDecodeError:
            budgets = None
        if not isinstance(budgets, dict) or not all(isinstance(n, int) and n >= 1 for n in budgets.values()):
            raise ShardPlanError(f"{API_BUDGETS} must be a JSON object of API names and requests per minute")
        return budgets

    def dead_letter(self, index: int, env: Mapping[str, str]) -> str:
        path = Path(env.get("TARGET_ADOBE_AEP_DEAD_LETTER_PATH") or DEFAULT_DEAD_LETTER)
        if not path.is_absolute():
            path = self.project / path
        return str(path.with_name(f"{path.stem}.{self.suffix(index)}{path.suffix}"))
