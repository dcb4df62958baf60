"""Records AEP would refuse go to the dead letter, exactly those; all others arrive and the run succeeds."""

from __future__ import annotations

import json

import pytest
from harness import (
    Pipeline,
    canonical_records,
    customers_mapping_without_gender_translation,
    dev_config,
    differences,
    failed_messages,
    keys,
    stored_records,
)


@pytest.mark.capillary(customers=30, history_days=60, seed=7)
def test_invalid_records_are_dead_lettered_and_the_rest_accepted(pipeline: Pipeline) -> None:
    mappings = {
        **dev_config("loaders", "target-adobe-aep")["mappings"],
        "customers": customers_mapping_without_gender_translation(),
    }
    result = pipeline.run(TARGET_ADOBE_AEP_MAPPINGS=json.dumps(mappings))

    canonical = canonical_records(pipeline.capillary)
    invalid = {r.key for r in canonical if r.stream == "customers" and r.data["gender"] == "Other"}
    expected = keys(r for r in canonical if not (r.stream == "customers" and r.key in invalid))
    assert 0 < len(invalid) < sum(1 for r in canonical if r.stream == "customers")

    assert result.returncode == 0, f"meltano run failed, log: {result.log_path}"
    stored = keys(stored_records(pipeline.adobe))
    assert stored == expected, differences(expected, stored)
    assert failed_messages(pipeline.adobe) == 0  # caught before sending, not in AEP's failed batches

    dead_letter_path = pipeline.workdir / "dead-letter.jsonl"
    dead = [json.loads(line) for line in dead_letter_path.read_text().splitlines()]
    assert sorted((d["stream"], d["key"]["customer_id"]) for d in dead) == sorted(
        ("customers", int(customer_id)) for customer_id, _ in invalid
    )
    for entry in dead:
        assert entry["reason"].startswith("XDM validation"), entry["reason"]
        assert "gender" in entry["reason"]
        assert entry["record"]["gender"] == "Other"
        assert entry["http_status"] is None  # never sent
    text = dead_letter_path.read_text()
    for secret in (*pipeline.capillary.config.oauth_clients.values(), *pipeline.adobe.config.clients.values()):
        assert secret not in text

    customers = result.summaries["customers"]
    valid_customers = sum(1 for stream, _ in expected if stream == "customers")
    assert (customers["dead_lettered"], customers["accepted"]) == (len(invalid), valid_customers)
    assert all(numbers["dead_lettered"] == 0 for stream, numbers in result.summaries.items() if stream != "customers")
