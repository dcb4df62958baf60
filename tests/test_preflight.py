"""A mistyped setting fails `meltano run` before any record is sent, writes no STATE and names the setting; the
`check` plugin command (`meltano invoke target-adobe-aep:check`) reports the same alone."""

from __future__ import annotations

import pytest
from harness import Pipeline, failed_messages, stored_records

SMALL_ORG = pytest.mark.capillary(customers=8, history_days=30, seed=3)


def mistakes(pipeline: Pipeline) -> dict[str, str]:
    adobe = pipeline.adobe.config
    return {
        "tenant_id": "capillaryprod",
        "org_id": "0000000000000000000000AB@AdobeOrg",
        "event_schema_id": f"https://ns.adobe.com/{adobe.tenant_id}/schemas/0123456789abcdef",
        "event_dataset_id": "65f0c0ffee0000000000dead",
    }


@SMALL_ORG
@pytest.mark.parametrize("setting", ["tenant_id", "org_id", "event_schema_id", "event_dataset_id"])
def test_a_wrong_setting_fails_the_run_at_once_and_check_names_it(pipeline: Pipeline, setting: str) -> None:
    env = {f"TARGET_ADOBE_AEP_{setting.upper()}": mistakes(pipeline)[setting]}

    run = pipeline.run(**env)
    log = run.log_path.read_text()
    assert run.returncode != 0, f"meltano run succeeded, log: {run.log_path}"
    errors = [line for line in log.splitlines() if "configuration check failed" in line]
    assert errors, f"no configuration error logged, log: {run.log_path}"
    assert f"{setting}" in errors[0]
    # One line from the target, no traceback (Meltano may add its own about the pipe the target closed).
    assert not [line for line in log.splitlines() if "target-adobe-aep" in line and "Traceback" in line]
    assert pipeline.state() == {}
    assert stored_records(pipeline.adobe) == []
    assert failed_messages(pipeline.adobe) == 0

    check = pipeline.meltano("invoke", "target-adobe-aep:check", **env)
    output = check.log_path.read_text()
    assert check.returncode == 1, f"check passed, log: {check.log_path}"
    assert any(line.startswith("FAILED: ") and setting in line for line in output.splitlines()), output
    assert "Traceback" not in output


@SMALL_ORG
def test_check_passes_the_working_configuration(pipeline: Pipeline) -> None:
    check = pipeline.meltano("invoke", "target-adobe-aep:check")
    output = check.log_path.read_text()
    assert check.returncode == 0, output
    assert "ok: tenant 'capillarydemo'" in output
    assert "The configuration works." in output
    assert stored_records(pipeline.adobe) == []
    assert failed_messages(pipeline.adobe) == 0
