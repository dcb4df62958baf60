"""One shard's ``meltano run``: its command, system directory, environment and share of the budgets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capillary_orchestration.shards import DEFAULT_BUDGETS, DEFAULT_DEAD_LETTER, ShardPlan, ShardPlanError
from tap_capillary.tap import TapCapillary
from target_adobe_aep.target import TargetAdobeAEP


@pytest.fixture
def plan(tmp_path: Path) -> ShardPlan:
    project = tmp_path / "project"
    for plugin_type in ("extractors", "loaders"):
        (project / ".meltano" / plugin_type).mkdir(parents=True)
    return ShardPlan.from_env({"CAPILLARY_MELTANO_PROJECT": str(project), "CAPILLARY_SHARD_COUNT": "4",
                               "CAPILLARY_MELTANO_BIN": "/opt/meltano"})  # fmt: skip


def test_defaults_come_from_the_environment_or_the_repository(tmp_path: Path) -> None:
    plan = ShardPlan.from_env({})
    assert plan.count == 4
    assert (plan.project / "meltano.yml").is_file()
    assert plan.shards_dir == plan.project / ".meltano" / "shards"
    assert (plan.retries, plan.retry_delay_seconds, plan.schedule) == (2, 360, "0 * * * *")
    with pytest.raises(ShardPlanError, match="CAPILLARY_SHARD_COUNT must be at least 1, got 0"):
        ShardPlan.from_env({"CAPILLARY_SHARD_COUNT": "0"})
    with pytest.raises(ShardPlanError, match="CAPILLARY_SHARD_RETRIES must be a whole number, got 'two'"):
        ShardPlan.from_env({"CAPILLARY_SHARD_RETRIES": "two"})


def test_the_command_names_the_shards_state_id_suffix(plan: ShardPlan) -> None:
    assert plan.command(2) == ["/opt/meltano", "run", "--state-id-suffix=shard-2-of-4", "tap-capillary",
                               "target-adobe-aep"]  # fmt: skip
    assert "--force" in plan.command(2, force=True)


def test_each_shard_has_its_own_system_directory_sharing_the_installed_plugins(plan: ShardPlan) -> None:
    sys_dir = plan.prepare(1)
    assert sys_dir == plan.project / ".meltano" / "shards" / "shard-1-of-4" / ".meltano"
    assert (sys_dir / "extractors").resolve() == plan.project / ".meltano" / "extractors"
    assert (sys_dir / "loaders").resolve() == plan.project / ".meltano" / "loaders"
    assert plan.prepare(1) == sys_dir, "idempotent"
    env = plan.env(1, {})
    assert env["MELTANO_SYS_DIR_ROOT"] == str(sys_dir)
    assert env["MELTANO_AUTO_INSTALL"] == "false"
    assert (env["TAP_CAPILLARY_SHARD_COUNT"], env["TAP_CAPILLARY_SHARD_INDEX"]) == ("4", "1")


def test_shards_sharing_the_projects_key_share_every_budget(plan: ShardPlan) -> None:
    base = {
        "MELTANO_ENVIRONMENT": "prod",
        "TAP_CAPILLARY_CLIENT_KEY": "org-key",
        "TAP_CAPILLARY_REQUESTS_PER_MINUTE": "1000",
        # The dot of v1.1 escaped, as Meltano needs it (tap-capillary/README.md); the shares keep the escape.
        "TAP_CAPILLARY_API_REQUESTS_PER_MINUTE": json.dumps({"v2/transactions/{id}": 1200, "v1\\.1/customer/get": 3}),
    }
    env = plan.env(0, base)
    assert env["MELTANO_ENVIRONMENT"] == "prod"
    assert env["TAP_CAPILLARY_CLIENT_KEY"] == "org-key"
    assert env["TAP_CAPILLARY_REQUESTS_PER_MINUTE"] == "250"
    assert json.loads(env["TAP_CAPILLARY_API_REQUESTS_PER_MINUTE"]) == {"v2/transactions/{id}": 300,
                                                                        "v1\\.1/customer/get": 1}  # fmt: skip
    # AEP's org ceilings, from the target's defaults: 10,000 messages/s and 1,000 requests/s in all.
    assert (env["TARGET_ADOBE_AEP_MAX_MESSAGES_PER_SECOND"], env["TARGET_ADOBE_AEP_MAX_REQUESTS_PER_SECOND"]) == (
        "2000",
        "200",
    )
    assert "TAP_CAPILLARY_API_REQUESTS_PER_MINUTE" not in plan.env(0, {}), "no budgets: adaptive pacing per shard"


def test_shards_with_their_own_keys_get_the_capillary_budgets_whole(plan: ShardPlan) -> None:
    keys = {f"CAPILLARY_SHARD_{i}_CLIENT_{part}": f"{part.lower()}-{i}" for i in range(4) for part in ("KEY", "SECRET")}
    base = {**keys, "TAP_CAPILLARY_REQUESTS_PER_MINUTE": "1000", "TAP_CAPILLARY_API_REQUESTS_PER_MINUTE": '{"a": 8}',
            "TARGET_ADOBE_AEP_MAX_MESSAGES_PER_SECOND": "9000"}  # fmt: skip
    env = plan.env(3, base)
    assert (env["TAP_CAPILLARY_CLIENT_KEY"], env["TAP_CAPILLARY_CLIENT_SECRET"]) == ("key-3", "secret-3")
    assert env["TAP_CAPILLARY_REQUESTS_PER_MINUTE"] == "1000"
    assert env["TAP_CAPILLARY_API_REQUESTS_PER_MINUTE"] == '{"a": 8}'
    assert env["TARGET_ADOBE_AEP_MAX_MESSAGES_PER_SECOND"] == "2250", "AEP's limits are per org whatever the keys"


def test_each_shard_writes_its_own_dead_letter(plan: ShardPlan, tmp_path: Path) -> None:
    assert plan.env(2, {})["TARGET_ADOBE_AEP_DEAD_LETTER_PATH"] == str(
        plan.project / "aep-dead-letter.shard-2-of-4.jsonl"
    )
    env = plan.env(2, {"TARGET_ADOBE_AEP_DEAD_LETTER_PATH": str(tmp_path / "out" / "dead.jsonl")})
    assert env["TARGET_ADOBE_AEP_DEAD_LETTER_PATH"] == str(tmp_path / "out" / "dead.shard-2-of-4.jsonl")


@pytest.mark.parametrize(
    ("base", "message"),
    [
        ({"CAPILLARY_SHARD_0_CLIENT_KEY": "k", "CAPILLARY_SHARD_0_CLIENT_SECRET": "s"},
         "set for some shards but not all: CAPILLARY_SHARD_1_CLIENT_KEY, CAPILLARY_SHARD_1_CLIENT_SECRET"),
        ({"MELTANO_DATABASE_URI": "sqlite:///shared.db"}, "SQLite database, which allows one writer"),
        ({"TAP_CAPILLARY_API_REQUESTS_PER_MINUTE": "1200"}, "must be a JSON object of API names"),
        ({"TAP_CAPILLARY_REQUESTS_PER_MINUTE": "0"}, "TAP_CAPILLARY_REQUESTS_PER_MINUTE must be at least 1"),
    ],
    ids=["some-keys", "sqlite-system-db", "budgets-not-an-object", "zero-budget"],
)  # fmt: skip
def test_settings_that_cannot_run_the_shards_are_refused(plan: ShardPlan, base: dict, message: str) -> None:
    with pytest.raises(ShardPlanError, match=message):
        plan.env(0, base)


def test_there_is_no_shard_past_the_count(plan: ShardPlan) -> None:
    with pytest.raises(ShardPlanError, match="shard 4 does not exist: there are 4"):
        plan.env(4, {})


def test_the_budgets_shared_out_default_to_the_plugins_own_defaults() -> None:
    tap = TapCapillary.config_jsonschema["properties"]
    target = TargetAdobeAEP.config_jsonschema["properties"]
    assert {
        "TAP_CAPILLARY_REQUESTS_PER_MINUTE": tap["requests_per_minute"]["default"],
        "TARGET_ADOBE_AEP_MAX_MESSAGES_PER_SECOND": target["max_messages_per_second"]["default"],
        "TARGET_ADOBE_AEP_MAX_REQUESTS_PER_SECOND": target["max_requests_per_second"]["default"],
    } == DEFAULT_BUDGETS
    assert target["dead_letter_path"]["default"] == DEFAULT_DEAD_LETTER
