"""`target-adobe-aep-admin report`: records AEP accepted at the inlet but failed asynchronously, found in its failed
batches and joined back to their Singer stream and key through the deterministic `_id`."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner, Result
from conftest import SAMPLES, Aep, stream_messages, write_config

from target_adobe_aep.admin import cli
from target_adobe_aep.mapping import compile_mapping, load_document
from target_adobe_aep.report import KeyReader, join, since_time

NAMESPACES = {"email": "Email", "phone": "Phone", "customer_id": "CapillaryCustomerId"}
# The fields each preset's _id rule hashes besides $stream: the key report gives back.
ID_SOURCES = {
    "customers": ("customer_id", "updated_at"),
    "transactions": ("transaction_id",),
    "points_ledger": ("event_log_id", "entry_index"),
    "tier_history": ("customer_id", "program_id", "changed_at", "to_tier"),
    "redemptions": ("redemption_type", "redemption_ref", "redeemed_at"),
    "coupons": ("coupon_id",),
    "reward_issuals": ("reward_transaction_id",),
}


def readers(kind: str) -> list[KeyReader]:
    result = []
    for stream in ID_SOURCES:
        document, origin = load_document(stream, None)
        mapping = compile_mapping(stream, document, origin, tenant_id="acme", identity_namespaces=NAMESPACES)
        if mapping.target == kind:
            result.append(KeyReader(mapping, document, "acme"))
    return result


@pytest.mark.parametrize("stream", list(ID_SOURCES))
def test_every_preset_entity_leads_back_to_its_stream_and_key(stream: str) -> None:
    """Each preset carries its _id rule's fields in the entity, so a failed entity alone names its record."""
    document, origin = load_document(stream, None)
    mapping = compile_mapping(stream, document, origin, tenant_id="acme", identity_namespaces=NAMESPACES)
    for record in SAMPLES[stream]:
        found = join(readers(mapping.target), mapping.convert(record))
        assert (found.stream, found.verified) == (stream, True)
        assert set(found.key) == set(ID_SOURCES[stream])
        assert found.key == {name: str(record[name]).strip() for name in ID_SOURCES[stream]}  # as the tap sent it


def test_an_entity_without_a_reproducible_id_is_joined_by_shape_and_marked_unverified() -> None:
    document, origin = load_document("transactions", None)
    mapping = compile_mapping("transactions", document, origin, tenant_id="acme", identity_namespaces=NAMESPACES)
    entity = mapping.convert(SAMPLES["transactions"][0])
    entity["_id"] = "not-the-hash"
    found = join(readers("event"), entity)
    assert (found.stream, found.verified) == ("transactions", False)
    assert found.key == {"transaction_id": str(SAMPLES["transactions"][0]["transaction_id"])}
    assert str(found).endswith("(unverified: no key gives this _id)")
    assert str(join(readers("event"), {"unknown": {"field": 1}})) == "no stream's mapping writes this entity"


def test_since_takes_times_and_durations() -> None:
    now = datetime(2024, 6, 1, 12, tzinfo=UTC)
    assert since_time("90m", now) == now - timedelta(minutes=90)
    assert since_time("7d", now) == now - timedelta(days=7)
    assert since_time("2024-05-30T10:00:00", now) == datetime(2024, 5, 30, 10, tzinfo=UTC)
    assert since_time("2024-05-30T12:00:00+02:00", now) == datetime(2024, 5, 30, 10, tzinfo=UTC)


def report(aep: Aep, *args: str) -> Result:
    return CliRunner().invoke(cli, ["report", "--config", write_config(aep), *args], catch_exceptions=False)


def test_report_shows_what_failed_asynchronously_with_stream_key_and_reason(aep: Aep) -> None:
    """With local validation off, records that AEP's validation refuses are accepted at the inlet (207) and fail in
    its failed batches; the report finds each, with the key and AEP's reason, and --dead-letter keeps them once."""
    start = datetime.now(UTC) - timedelta(seconds=1)
    customers = copy.deepcopy(SAMPLES["customers"])
    customers[0]["email"] = "not-an-email"  # personalEmail.address is an email
    transactions = copy.deepcopy(SAMPLES["transactions"])
    transactions[1]["currency_code"] = "RUPEES"  # commerce.order.currencyCode must match ^[A-Z]{3}$
    messages = [*stream_messages("customers", customers), *stream_messages("transactions", transactions)]
    run = aep.run([*messages, {"type": "STATE", "value": {"s": 1}}], validate_xdm=False)
    assert run.states == [{"s": 1}]
    assert aep.dead_letters() == []  # the target saw every record accepted

    result = report(aep, "--since", start.isoformat(), "--dead-letter")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    customer = next(i for i, line in enumerate(lines) if "stream customers" in line)
    assert lines[customer].endswith("(matched by _id)")
    key = json.loads(lines[customer].split(", key ", 1)[1].removesuffix(" (matched by _id)"))
    assert key["customer_id"] == str(customers[0]["customer_id"])
    assert instant(key["updated_at"]) == instant(customers[0]["updated_at"])  # the SDK gives the mapping UTC times
    assert "#/personalEmail/address: [not-an-email] is not a valid email" in lines[customer + 1]
    transaction = next(i for i, line in enumerate(lines) if "stream transactions" in line)
    key = {"transaction_id": str(transactions[1]["transaction_id"])}
    assert lines[transaction].endswith(f"key {json.dumps(key, separators=(',', ':'))} (matched by _id)")
    assert "#/commerce/order/currencyCode: string [RUPEES] does not match pattern" in lines[transaction + 1]
    assert "2 failed record(s) since" in result.output
    assert any(line.startswith(f"  records ingested (dataset {aep.config['event_dataset_id']}): ") for line in lines)
    assert any(line.startswith("  successful calls to the inlets (all inlets): ") for line in lines)

    letters = aep.dead_letters()
    assert [(e["stream"], e["key"]["customer_id" if e["stream"] == "customers" else "transaction_id"])
            for e in letters] == [("customers", key_of(customers[0], "customer_id")),
                                  ("transactions", key_of(transactions[1], "transaction_id"))]  # fmt: skip
    assert all(e["reason"].startswith(f"AEP failed batch {e['batch_id']}: #/") and e["record"] is None for e in letters)
    assert report(aep, "--since", start.isoformat(), "--dead-letter").exit_code == 0
    assert len(aep.dead_letters()) == 2  # appended once


def key_of(record: dict, name: str) -> str:
    return str(record[name])


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_report_of_clean_runs_lists_the_batches_and_no_failed_record(aep: Aep) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    aep.run(stream_messages("coupons", SAMPLES["coupons"]))
    result = report(aep, "--since", start.isoformat())
    assert result.exit_code == 0, result.output
    assert f"Dataset {aep.config['event_dataset_id']} (event): 1 batch(es) created since" in result.output
    assert "  success " in result.output
    assert "0 failed record(s) since" in result.output
    before = report(aep, "--since", (datetime.now(UTC) + timedelta(minutes=1)).isoformat())
    assert "0 batch(es)" in before.output
