"""AEP set up by API, through Meltano: `meltano invoke target-adobe-aep:provision` on an empty sandbox makes what the
pipeline needs, `meltano run` then delivers every record, and `meltano invoke target-adobe-aep:report` shows the
records AEP accepted at the inlet but failed afterwards, with their stream, key and reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from harness import (
    MELTANO_BIN,
    OFFLINE_ENV,
    ROOT,
    Pipeline,
    canonical_records,
    customers_mapping_without_gender_translation,
    dev_config,
    differences,
    failed_messages,
    keys,
    stored_records,
)

from emulators.adobe import ADOBE

SMALL_ORG = pytest.mark.capillary(customers=12, history_days=30, seed=11)
EMPTY_SANDBOX = pytest.mark.adobe(provisioned=False)


def objects(pipeline: Pipeline) -> dict[str, int]:
    adobe = pipeline.adobe
    return adobe.call(adobe.app[ADOBE].sandbox.counts)


def output(result: object) -> str:
    return result.log_path.read_text()  # type: ignore[attr-defined]


@SMALL_ORG
@EMPTY_SANDBOX
def test_on_an_empty_sandbox_provision_then_run_delivers_every_record(pipeline: Pipeline) -> None:
    assert set(objects(pipeline).values()) == {0}
    plan = pipeline.meltano("invoke", "target-adobe-aep:provision", "--plan")
    assert plan.returncode == 0, output(plan)
    assert set(objects(pipeline).values()) == {0}  # --plan changes nothing
    assert "create       dataflow 'Capillary Loyalty Profile dataflow'" in output(plan)
    assert "create       dataflow 'Capillary Loyalty Events dataflow'" in output(plan)

    settings_path = pipeline.workdir / "settings.json"
    first = pipeline.meltano("invoke", "target-adobe-aep:provision", "--write-config", str(settings_path))
    assert first.returncode == 0, output(first)
    assert "The configuration works." in output(first)
    made = objects(pipeline)
    assert made["schemas"] == made["dataSets"] == made["targetConnections"] == made["flows"] == 2
    assert made["connections"] == 1  # one inlet, a dataflow per dataset

    again = pipeline.meltano("invoke", "target-adobe-aep:provision")
    assert again.returncode == 0, output(again)
    assert "Created 0 and changed 0 object(s)." in output(again)
    assert objects(pipeline) == made  # a second provision makes nothing

    settings = json.loads(settings_path.read_text())
    env = {f"TARGET_ADOBE_AEP_{name.upper()}": value for name, value in settings.items()}
    run = pipeline.run(**env)
    assert run.returncode == 0, f"meltano run failed, log: {run.log_path}"
    canonical = canonical_records(pipeline.capillary)
    expected, stored = keys(canonical), keys(stored_records(pipeline.adobe))
    assert stored == expected, differences(expected, stored)  # every record accepted
    assert failed_messages(pipeline.adobe) == 0
    assert not (pipeline.workdir / "dead-letter.jsonl").exists()
    datasets = {settings["profile_dataset_id"], settings["event_dataset_id"]}
    assert {r.dataset for r in stored_records(pipeline.adobe)} == datasets


@SMALL_ORG
def test_a_record_failing_after_the_inlet_accepted_it_shows_in_report(pipeline: Pipeline) -> None:
    """Local validation off and a customers mapping that writes XDM's person.gender as Capillary spells it: the
    inlet takes every customer (207), AEP's validation then fails those whose gender is Other."""
    mappings = {**dev_config("loaders", "target-adobe-aep")["mappings"],
                "customers": customers_mapping_without_gender_translation()}  # fmt: skip
    env = {"TARGET_ADOBE_AEP_MAPPINGS": json.dumps(mappings), "TARGET_ADOBE_AEP_VALIDATE_XDM": "false"}
    start = datetime.now(UTC) - timedelta(seconds=1)
    run = pipeline.run(**env)
    assert run.returncode == 0, f"meltano run failed, log: {run.log_path}"
    canonical = canonical_records(pipeline.capillary)
    invalid = {r.key[0] for r in canonical if r.stream == "customers" and r.data["gender"] == "Other"}
    assert invalid
    assert failed_messages(pipeline.adobe) == len(invalid)
    assert run.summaries["customers"]["dead_lettered"] == 0  # the target saw them all accepted

    report = pipeline.meltano("invoke", "target-adobe-aep:report", "--since", start.isoformat(), "--dead-letter",
                              **env)  # fmt: skip
    text = output(report)
    assert report.returncode == 0, text
    lines = text.splitlines()
    joined = [line for line in lines if "failed record _id" in line]
    assert len(joined) == len(invalid)
    found = set()
    for line in joined:
        assert ": stream customers, key " in line, line
        assert line.endswith("(matched by _id)"), line
        key = json.loads(line.split(", key ", 1)[1].removesuffix(" (matched by _id)"))
        found.add(key["customer_id"])
        reason = lines[lines.index(line) + 1]
        assert "#/person/gender: other is not a valid enum value" in reason, reason
    assert found == invalid
    dead = [json.loads(line) for line in (pipeline.workdir / "dead-letter.jsonl").read_text().splitlines()]
    assert sorted(d["key"]["customer_id"] for d in dead) == sorted(invalid)
    assert all(d["stream"] == "customers" and "person/gender" in d["reason"] for d in dead)


@EMPTY_SANDBOX
def test_provision_stores_the_settings_in_the_meltano_project(
    meltano_installed: None, adobe_emulator: object, tmp_path: Path
) -> None:
    """`--meltano-config` runs `meltano config set <plugin>` for each setting, in the project that invoked it, and
    warns of a `.env` placeholder that Meltano would prefer to what it stored."""
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text("TARGET_ADOBE_AEP_INLET_URL=https://dcs.adobedc.net/collection/<inletId>\n")
    definition = next(p for p in yaml.safe_load((ROOT / "meltano.yml").read_text())["plugins"]["loaders"]
                      if p["name"] == "target-adobe-aep")  # fmt: skip
    definition = {**definition, "pip_url": str(ROOT / "target-adobe-aep")}
    (project / "meltano.yml").write_text(yaml.safe_dump({"project_id": "provision-test", "plugins": {
        "loaders": [definition]}, "send_anonymous_usage_stats": False}))  # fmt: skip
    config = adobe_emulator.config  # type: ignore[attr-defined]
    client_id, client_secret = next(iter(config.clients.items()))
    base = adobe_emulator.base_url  # type: ignore[attr-defined]
    env = {**os.environ, **OFFLINE_ENV, "MELTANO_PROJECT_ROOT": str(project), "TARGET_ADOBE_AEP_CLIENT_ID": client_id,
           "TARGET_ADOBE_AEP_CLIENT_SECRET": client_secret, "TARGET_ADOBE_AEP_ORG_ID": config.org_id,
           "TARGET_ADOBE_AEP_IMS_URL": f"{base}/ims/token/v3", "TARGET_ADOBE_AEP_PLATFORM_URL": base}  # fmt: skip
    admin = shutil.which("target-adobe-aep-admin", path=str(Path(sys.executable).parent))
    result = subprocess.run(
        [str(admin), "provision", "--config", "ENV", "--meltano-config", "--meltano-bin", MELTANO_BIN],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"WARNING: TARGET_ADOBE_AEP_INLET_URL in {project / '.env'} overrides the inlet_url just stored" in (
        result.stdout
    )
    stored = yaml.safe_load((project / "meltano.yml").read_text())["plugins"]["loaders"][0]["config"]
    assert stored["tenant_id"] == config.tenant_id
    assert stored["inlet_url"].startswith(f"{base}/collection/")
    assert set(stored) >= {"profile_flow_id", "profile_dataset_id", "profile_schema_id", "event_flow_id",
                           "event_dataset_id", "event_schema_id"}  # fmt: skip
    assert client_secret not in (project / "meltano.yml").read_text()


def test_the_emulator_seeds_are_what_provision_makes_for_the_dev_mappings() -> None:
    """The emulator's pre-provisioned field groups, schemas and datasets are generated from the mappings (one
    source); `python scripts/emulator_seeds.py` regenerates them."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "emulator_seeds.py"), "--check"],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
