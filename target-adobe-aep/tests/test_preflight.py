"""Preflight: wrong settings stop the run before a line of input is read (or, for a mapping, when its SCHEMA
arrives), each failure naming the setting to fix; `target-adobe-aep-admin check` runs the same checks alone."""

from __future__ import annotations

import json

import pytest
from conftest import SAMPLES, Aep, admin, stream_messages, write_config

from target_adobe_aep.preflight import PreflightError

OTHER_DATASET = "65f0c0ffee0000000000dead"


def never_read() -> None:
    pytest.fail("the target read input although its settings are wrong")


def wrong(aep: Aep, setting: str) -> object:
    """A plausible mistake in ``setting``."""
    config = aep.config
    return {
        "tenant_id": "capillaryprod",
        "org_id": "0000000000000000000000AB@AdobeOrg",
        "client_secret": "not-the-secret",
        "sandbox_name": "dev",
        "api_key": "someone-elses-key",
        "event_schema_id": config["event_schema_id"].replace("8b3d", "8b3e"),
        "event_dataset_id": OTHER_DATASET,
        "inlet_url": config["inlet_url"].replace("a1a1", "c3c3"),
        "inlet_auth_required": False,
    }[setting]


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("tenant_id", "tenant_id"),
        ("org_id", "org_id"),
        ("client_secret", "client_secret"),
        ("sandbox_name", "sandbox_name"),
        ("api_key", "api_key"),
        ("event_schema_id", "event_schema_id"),
        ("event_dataset_id", "event_dataset_id"),
        ("inlet_url", "inlet_url"),
        ("inlet_auth_required", "inlet_auth_required"),
    ],
)
def test_a_wrong_setting_stops_the_run_before_input_is_read(aep: Aep, setting: str, named: str) -> None:
    run = aep.run([never_read, *stream_messages("transactions", SAMPLES["transactions"], {"t": 1})],
                  expect_error=True, **{setting: wrong(aep, setting)})  # fmt: skip
    assert isinstance(run.error, PreflightError)
    assert any(named in finding.settings for finding in run.error.findings), run.error
    assert run.states == []
    assert aep.requests("/collection/batch/") == []
    assert aep.counts() == {}


def test_schema_bound_to_another_dataset_is_named(aep: Aep) -> None:
    """The profile schema configured for the event dataset: the dataset's Catalog schemaRef disagrees, and the
    inlet answers "unknown xdm format"."""
    run = aep.run([never_read], expect_error=True, event_schema_id=aep.config["profile_schema_id"])
    messages = [str(finding) for finding in run.error.findings]
    assert any(m.startswith("event_dataset_id / event_schema_id: dataset") and "is bound to schema" in m
               for m in messages), messages  # fmt: skip
    assert any("unknown xdm format" in m for m in messages), messages


def test_a_good_configuration_is_checked_and_the_probe_ingests_nothing(aep: Aep, caplog) -> None:
    caplog.set_level("INFO")
    run = aep.run(stream_messages("customers", SAMPLES["customers"], {"c": 1}))
    assert run.states == [{"c": 1}]
    probes = aep.requests("/collection/" + aep.server.config.auth_inlet_id)
    assert len(probes) == 2  # one per destination, on the single-message endpoint with syncValidation
    assert all(p["query"].get("syncValidation") == "true" and p["status"] == 400 for p in probes), probes
    counts = aep.counts()
    assert counts[aep.config["profile_dataset_id"]]["accepted"] == len(SAMPLES["customers"])
    assert aep.config["event_dataset_id"] not in counts  # the probes were dropped, not stored as failed records
    assert "the inlet takes org" in caplog.text
    assert "tenant 'capillarydemo'" in caplog.text


@pytest.mark.adobe(sync_validation_supported=False)
def test_an_inlet_without_synchronous_validation_is_not_probed_further(aep: Aep, caplog) -> None:
    run = aep.run(stream_messages("customers", SAMPLES["customers"], {"c": 1}))
    assert run.states == [{"c": 1}]
    assert "offers no synchronous validation" in caplog.text


def test_a_mapping_writing_what_the_schema_lacks_stops_at_its_schema(aep: Aep) -> None:
    document = {"target": "profile", "fields": [
        {"to": "_id", "hash": ["customer_id"]},
        {"to": "person.birthDate", "from": "registered_at", "transform": "timestamp"},  # a date field
        {"to": "loyalty.favouriteStore", "from": "registered_store_code"},  # no such field
        {"to": "_{tenant_id}.capillary.cardNumbers", "from": "loyalty_points", "transform": ["round", "list"]},
    ]}  # fmt: skip
    run = aep.run([*stream_messages("customers", SAMPLES["customers"]), never_read], expect_error=True,
                  mappings={"customers": document})  # fmt: skip
    (finding,) = run.error.findings
    assert finding.settings == ("profile_schema_id", "mappings.customers")
    assert "person.birthDate (the mapping writes date-time, the schema has string date)" in finding.message
    assert "loyalty.favouriteStore (not in the schema)" in finding.message
    assert "cardNumbers (the mapping writes array of integer, the schema has array)" in finding.message
    assert aep.requests("/collection/batch/") == []


def test_preflight_can_be_turned_off(aep: Aep) -> None:
    run = aep.run(stream_messages("customers", SAMPLES["customers"][:1], {"c": 1}), preflight=False)
    assert run.states == [{"c": 1}]
    assert aep.requests("/data/foundation/catalog/") == []
    assert len(aep.requests("/collection/")) == 1


def test_check_command_passes_a_good_configuration(aep: Aep) -> None:
    result = admin("check", "--config", write_config(aep))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: tenant 'capillarydemo'" in result.stdout
    assert "ok: every path mapping preset transactions.json writes is in schema" in result.stdout
    assert result.stdout.rstrip().endswith("The configuration works.")
    assert aep.config["client_secret"] not in result.stdout + result.stderr


def test_check_command_reports_every_problem_and_the_setting_to_fix(aep: Aep) -> None:
    result = admin("check", "--config", write_config(aep, tenant_id="capillaryprod", event_dataset_id=OTHER_DATASET))
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED: ")]
    assert any(line.startswith("FAILED: tenant_id: the org's tenant is 'capillarydemo'") for line in failed)
    assert any(line.startswith("FAILED: event_dataset_id: Catalog has no dataset") for line in failed)
    # every preset writes _capillaryprod paths the schemas lack
    assert any(line.startswith("FAILED: tenant_id / event_schema_id / mappings.coupons") for line in failed)
    assert "Traceback" not in result.stderr


def test_check_command_reads_the_settings_meltano_passes_as_environment_variables(aep: Aep) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(aep.tmp_path)}
    for name, value in aep.config.items():
        env[f"TARGET_ADOBE_AEP_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    env["TARGET_ADOBE_AEP_TENANT_ID"] = "capillaryprod"
    result = admin("check", "--config", "ENV", "--stream", "customers", env=env)
    assert result.returncode == 1
    assert "FAILED: tenant_id: the org's tenant is 'capillarydemo' (Schema Registry /stats), not 'capillaryprod'" in (
        result.stdout
    )
    assert "mappings.transactions" not in result.stdout  # only the stream asked for


def test_check_command_ends_in_one_line_when_it_cannot_start(aep: Aep) -> None:
    result = admin("check", "--config", write_config(aep, ims_url="http://example.com/ims/token/v3"))
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "setting 'ims_url' must be an https:// URL (http:// is accepted for loopback hosts only), "
            "got 'http://example.com/ims/token/v3'"
        )
    )
    assert "Traceback" not in result.stderr
