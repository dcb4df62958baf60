"""The target end to end against the emulator: state safety, dead letter, abort threshold, dry run, summary."""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from conftest import (
    SAMPLES,
    Aep,
    FakeClock,
    Handler,
    base_url,
    record_message,
    schema_message,
    serving,
    state_message,
    stream_messages,
    tap_schema,
)

from target_adobe_aep.connection import ConfigError, RetriesExhausted
from target_adobe_aep.conversion import InvalidInputRecord
from target_adobe_aep.dcs import REQUEST_OVERHEAD, Publisher, PublishResult, pack
from target_adobe_aep.mapping import MappingError
from target_adobe_aep.rejections import RejectionGuard, SystemicRejection, TooManyRejectedRecords
from target_adobe_aep.sinks import AEPSink


def transactions(count: int, *, bad_currency: set[int] = frozenset()) -> list[dict]:
    """``count`` distinct bills; those in ``bad_currency`` fail XDM validation (currencyCode ^[A-Z]{3}$)."""
    template = SAMPLES["transactions"][0]
    records = []
    for i in range(count):
        record = copy.deepcopy(template)
        record["transaction_id"] = 100_000 + i
        record["bill_number"] = f"B-{i}"
        if i in bad_currency:
            record["currency_code"] = "RUPEES"
        records.append(record)
    return records


def test_state_is_emitted_after_everything_is_acknowledged(aep: Aep) -> None:
    records = transactions(25)
    first, rest = (
        (record_message("transactions", r) for r in records[:10]),
        (record_message("transactions", r) for r in records[10:]),
    )
    run = aep.run(
        [schema_message("transactions"), *first, state_message({"t": 10}), *rest, state_message({"t": 25})],
        batch_size_rows=10,
    )
    assert run.states == [{"t": 25}]
    assert len(aep.stored(aep.server.config.event_dataset_id)) == 25
    stats = run.target.stats["transactions"]
    assert (stats.received, stats.sent, stats.accepted, stats.dead_lettered, stats.requests) == (25, 25, 25, 0, 3)


def test_state_checkpoints_send_pending_records_first(aep: Aep) -> None:
    """With state_checkpoint_seconds 0 each tap STATE is a checkpoint: the records before it are sent (even a
    part-filled batch), then the state is emitted; a run killed later resumes from the last checkpoint."""
    records = transactions(25)
    dataset = aep.server.config.event_dataset_id
    stored_at_checkpoint: list[int] = []

    def count_stored() -> None:
        stored_at_checkpoint.append(len(aep.stored(dataset)))

    messages = [
        schema_message("transactions"),
        *(record_message("transactions", r) for r in records[:10]),
        state_message({"t": 10}),
        count_stored,
        *(record_message("transactions", r) for r in records[10:]),
        state_message({"t": 25}),
    ]
    run = aep.run(messages, state_checkpoint_seconds=0)
    assert run.states == [{"t": 10}, {"t": 25}]
    assert stored_at_checkpoint == [10]  # the first state was emitted only once its 10 records were in AEP
    assert len(aep.stored(dataset)) == 25


def test_429_storm_with_concurrent_requests_loses_nothing(aep: Aep) -> None:
    storm = {"path": "/collection/batch/*", "status_rates": {"429": 0.5}, "retry_after": 0}
    aep.server.set_faults({"seed": 5, "rules": [storm]})
    messages = stream_messages("transactions", transactions(300), {"t": 300})
    run = aep.run(messages, max_request_bytes=20_000, max_retries=12)
    assert run.states == [{"t": 300}]
    stats = run.target.stats["transactions"]
    assert (stats.accepted, stats.dead_lettered) == (300, 0)
    statuses = [e["status"] for e in aep.requests("/collection/batch/")]
    assert stats.requests == len(statuses)
    assert stats.retries == statuses.count(429) > 5
    assert aep.counts()[aep.config["event_dataset_id"]] == {"accepted": 300, "failed": 0, "distinct_ids": 300}


def test_fatal_publish_error_emits_no_state(aep: Aep) -> None:
    aep.server.set_faults({"rules": [{"path": "/collection/batch/*", "status_rates": {"503": 1.0}, "retry_after": 0}]})
    run = aep.run([*stream_messages("transactions", transactions(3), {"t": 3})], expect_error=True, max_retries=2)
    assert isinstance(run.error, RetriesExhausted)
    assert run.states == []
    assert len(aep.requests("/collection/batch/")) == 3


def test_invalid_xdm_is_dead_lettered_and_the_rest_accepted(aep: Aep) -> None:
    run = aep.run(stream_messages("transactions", transactions(5, bad_currency={1, 3}), {"t": 5}))
    assert run.states == [{"t": 5}]
    stored = aep.stored(aep.server.config.event_dataset_id)
    assert sorted(e["commerce"]["order"]["purchaseID"] for e in stored) == ["B-0", "B-2", "B-4"]
    dead = aep.dead_letters()
    assert [d["key"] for d in dead] == [{"transaction_id": 100_001}, {"transaction_id": 100_003}]
    assert all(d["stream"] == "transactions" and d["reason"].startswith("XDM validation:") for d in dead)
    assert all(
        "currencyCode" in d["reason"] and d["xdm"]["commerce"]["order"]["currencyCode"] == "RUPEES" for d in dead
    )
    assert all(d["record"]["currency_code"] == "RUPEES" and d["time"] for d in dead)
    assert dead[0]["record"]["amount"] == 128.0  # still a number, as the tap sent it
    assert run.target.stats["transactions"].dead_lettered == 2


def test_a_wrong_org_stops_the_run_at_the_first_batch(aep: Aep) -> None:
    """With preflight off, DCS refuses every message's envelope ("absent or wrong ims org"): the run stops at the
    first answer, names the setting, dead-letters nothing and writes no STATE; the next run sends it all again."""
    # validate_xdm off: the Schema Registry would refuse the wrong org too.
    messages = stream_messages("transactions", transactions(25), {"t": 25})
    run = aep.run(messages, expect_error=True, org_id="OTHER@AdobeOrg", validate_xdm=False, preflight=False,
                  batch_size_rows=10)  # fmt: skip
    assert isinstance(run.error, SystemicRejection)
    assert "absent or wrong ims org" in str(run.error)
    assert str(run.error).endswith("check org_id")
    assert run.states == []
    assert aep.dead_letters() == []
    assert len(aep.requests("/collection/batch/")) == 1


def test_a_mapping_refusing_every_record_stops_the_run_at_its_first_records(aep: Aep) -> None:
    """A custom mapping writes a constant no schema takes: the stream's first records are all refused for one
    reason, which no record can cure."""
    document = json.loads(
        (Path(__file__).parents[1] / "target_adobe_aep" / "mappings" / "transactions.json").read_text()
    )
    rule = next(r for r in document["fields"] if r.get("to") == "commerce.order.currencyCode")
    rule.pop("from"), rule.pop("transform")
    rule["value"] = "rupees"
    messages = stream_messages("transactions", transactions(25), {"t": 25})
    run = aep.run(messages, expect_error=True, mappings={"transactions": document}, batch_size_rows=10)
    assert isinstance(run.error, SystemicRejection)
    assert "first 10 or more records were all refused" in str(run.error)
    assert "currencyCode" in str(run.error)
    assert str(run.error).endswith("check mappings.transactions / event_schema_id")
    assert run.states == []
    assert aep.dead_letters() == []
    assert aep.requests("/collection/batch/") == []


def test_a_wrong_tenant_stops_the_run_when_validation_refuses_its_namespace(aep: Aep) -> None:
    run = aep.run(stream_messages("transactions", transactions(3), {"t": 3}), expect_error=True,
                  tenant_id="capillaryprod", preflight=False)  # fmt: skip
    assert isinstance(run.error, SystemicRejection)
    assert "'_capillaryprod'" in str(run.error)
    assert str(run.error).endswith("check tenant_id / event_schema_id")
    assert run.states == []


def test_records_refused_for_their_own_data_are_dead_lettered_and_the_run_goes_on(aep: Aep) -> None:
    """A third of the bills has a malformed currency: under max_rejected_percent (default 50), dead-lettered."""
    records = transactions(30, bad_currency=set(range(0, 30, 3)))
    run = aep.run(stream_messages("transactions", records, {"t": 30}), batch_size_rows=10)
    assert run.states == [{"t": 30}]
    assert len(aep.dead_letters()) == 10
    assert len(aep.stored(aep.config["event_dataset_id"])) == 20


def test_max_rejected_percent_aborts_a_broken_stream_after_dead_lettering(aep: Aep) -> None:
    """Two refusals in three, for different reasons (not one systemic cause): over the default 50 %, the run stops
    once 20 records have an outcome, after writing their dead letters; no STATE."""
    records = transactions(30, bad_currency=set(range(1, 30, 3)))
    for record in records[2::3]:
        record["line_items"][0]["item_code"] = None  # productListItems[] requires SKU
    run = aep.run(stream_messages("transactions", records, {"t": 30}), expect_error=True, batch_size_rows=10)
    assert isinstance(run.error, TooManyRejectedRecords)
    assert "stream 'transactions': 13 of 20 records refused, more than max_rejected_percent=50" in str(run.error)
    assert run.states == []
    assert len(aep.dead_letters()) == 13
    run = aep.run(stream_messages("transactions", records, {"t": 30}), batch_size_rows=10, max_rejected_percent=100)
    assert run.states == [{"t": 30}]


def test_max_rejected_records_aborts_without_advancing_state(aep: Aep) -> None:
    records = transactions(6, bad_currency={0, 2, 4})
    run = aep.run(stream_messages("transactions", records, {"t": 6}), expect_error=True, max_rejected_records=2)
    assert isinstance(run.error, TooManyRejectedRecords)
    assert run.states == []
    assert len(aep.dead_letters()) == 3  # written before aborting: nothing is lost


def test_zero_max_rejected_records_sets_no_limit_on_the_number(aep: Aep) -> None:
    records = transactions(4, bad_currency={0, 1, 2, 3})
    run = aep.run(stream_messages("transactions", records, {"t": 4}), max_rejected_records=0)
    assert run.states == [{"t": 4}]
    assert len(aep.dead_letters()) == 4


def test_a_request_refused_whole_for_one_reason_is_systemic() -> None:
    """Every message of a request of FIRST_RECORDS or more refused for one reason DCS does not document as an
    envelope error; a smaller request refused whole is a few records' own problem."""
    guard = RejectionGuard(tenant_id="acme", max_records=0, max_percent=50)
    guard.check_batch("coupons", "event", ["DCS: a"], outcomes=5, whole_requests=[])  # one record's own problem
    guard.check_batch("coupons", "event", ["DCS: b"] * 9, outcomes=9, whole_requests=[("DCS: b", 9)])
    with pytest.raises(SystemicRejection, match=r"refused all 10 messages of a request .*check mappings\.coupons"):
        guard.check_batch("coupons", "event", ["DCS: quota"] * 10, outcomes=10, whole_requests=[("DCS: quota", 10)])


def test_a_small_request_refused_for_one_data_reason_is_dead_lettered_and_the_run_goes_on(aep: Aep) -> None:
    """The stream's last request holds two bills with the same malformed currency, which the inlet refuses with one
    reason: their own data, not a setting, so they are dead-lettered and the run goes on."""
    reason = "currencyCode: RUPEES does not match ^[A-Z]{3}$"

    def inlet(handler: Handler) -> tuple[int, dict[str, str], bytes]:
        messages = orjson.loads(handler.body)["messages"]
        currencies = [m["body"]["xdmEntity"]["commerce"]["order"]["currencyCode"] for m in messages]
        responses = [{"xactionId": f"x-{i}"} if code != "RUPEES" else {"statusCode": 400, "message": reason}
                     for i, code in enumerate(currencies)]  # fmt: skip
        return 207, {"Content-Type": "application/json"}, orjson.dumps({"responses": responses})

    records = transactions(12, bad_currency={10, 11})
    with serving(inlet) as server:
        inlet_url = f"{base_url(server)}/collection/{aep.server.config.auth_inlet_id}"
        run = aep.run(stream_messages("transactions", records, {"t": 12}), batch_size_rows=10, validate_xdm=False,
                      preflight=False, inlet_url=inlet_url)  # fmt: skip
    assert len(server.hits) == 2  # the second request holds only the two refused bills
    assert run.states == [{"t": 12}]
    dead = aep.dead_letters()
    assert sorted(d["key"]["transaction_id"] for d in dead) == [100_010, 100_011]
    assert {d["reason"] for d in dead} == {f"DCS: {reason}"}
    assert run.target.stats["transactions"].accepted == 10


def oversized_bill() -> dict:
    """A bill of 80 lines: its ExperienceEvent is about 12 KB, over Profile's 10 KB guardrail."""
    record = transactions(1)[0]
    record["line_items"] = [{**record["line_items"][0], "line_item_id": i} for i in range(80)]
    return record


def test_event_over_profiles_guardrail_goes_to_the_data_lake_and_is_counted(aep: Aep, caplog) -> None:
    caplog.set_level(logging.INFO)
    run = aep.run(stream_messages("transactions", [oversized_bill(), transactions(2)[1]], {"t": 1}))
    assert run.states == [{"t": 1}]
    assert aep.dead_letters() == []
    (big, _) = aep.stored(aep.config["event_dataset_id"])
    assert 11 * 1024 < len(orjson.dumps(big)) < 14 * 1024
    stats = run.target.stats["transactions"]
    assert (stats.accepted, stats.over_profile_guardrail) == (2, 1)
    assert "1 record(s) over Profile's 10 KB guardrail were sent" in caplog.text
    assert "over_profile_guardrail=1" in caplog.text


def test_events_over_profiles_guardrail_can_be_dead_lettered(aep: Aep) -> None:
    run = aep.run(
        stream_messages("transactions", [oversized_bill()], {"t": 1}), dead_letter_over_profile_guardrail=True
    )
    (dead,) = aep.dead_letters()
    assert dead["reason"].startswith("guardrail: XDM event of")
    assert "over Profile's 10 KB guardrail" in dead["reason"]
    assert run.target.stats["transactions"].sent == 0


def future_bills() -> tuple[dict, dict, dict]:
    """Bills timestamped before, just within and beyond 300 s (the default tolerance) after ``FakeClock.START``."""
    past, within, beyond = transactions(3)
    for record, seconds in ((past, -86_400), (within, 300), (beyond, 301)):
        record["billed_at"] = (FakeClock.START + datetime.timedelta(seconds=seconds)).isoformat()
    return past, within, beyond


def test_future_timestamps_are_sent_and_counted(aep: Aep, caplog: pytest.LogCaptureFixture) -> None:
    """AEP takes an event timestamped in the future (README "Validate"): it is sent; one beyond the tolerance for
    clock skew is counted, with one WARNING."""
    caplog.set_level(logging.INFO)
    bills = future_bills()
    run = aep.run(stream_messages("transactions", bills, {"t": 1}), clock=FakeClock())
    assert run.states == [{"t": 1}]
    assert aep.dead_letters() == []
    stored = {e["commerce"]["order"]["purchaseID"] for e in aep.stored(aep.config["event_dataset_id"])}
    assert stored == {bill["bill_number"] for bill in bills}
    stats = run.target.stats["transactions"]
    assert (stats.accepted, stats.future_timestamps) == (3, 1)
    assert "future_timestamps=1" in caplog.text
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w for w in warnings if "future_timestamp_tolerance_seconds=300" in w] == [
        "Stream 'transactions': 1 event(s) timestamped more than future_timestamp_tolerance_seconds=300 after this "
        "machine's clock were sent (AEP takes them; a clock or time zone upstream may be wrong; "
        "dead_letter_future_timestamps dead-letters them)"
    ]


def test_future_timestamps_can_be_dead_lettered(aep: Aep) -> None:
    past, within, beyond = future_bills()
    run = aep.run(stream_messages("transactions", [past, within, beyond], {"t": 1}), clock=FakeClock(),
                  dead_letter_future_timestamps=True, future_timestamp_tolerance_seconds=600)  # fmt: skip
    assert run.states == [{"t": 1}]
    assert aep.dead_letters() == []  # 301 s ahead is within a 600 s tolerance
    run = aep.run(stream_messages("transactions", [past, within, beyond], {"t": 2}), clock=FakeClock(),
                  dead_letter_future_timestamps=True)  # fmt: skip
    assert run.states == [{"t": 2}]
    (dead,) = aep.dead_letters()
    assert dead["key"] == {"transaction_id": beyond["transaction_id"]}
    assert dead["reason"] == (
        "future timestamp: the ExperienceEvent timestamp '2030-01-01T00:05:01Z' is later than 2030-01-01T00:05:00Z "
        "(now + future_timestamp_tolerance_seconds; dead_letter_future_timestamps)"
    )
    assert run.target.stats["transactions"].future_timestamps == 0


def test_same_record_gets_the_same_id_on_every_run_and_duplicates_in_a_batch_collapse(aep: Aep) -> None:
    records = transactions(4)
    newer = {**records[1], "amount": 200.0}
    for _ in range(2):
        run = aep.run(stream_messages("transactions", [*records, newer], {"t": 1}))
    assert run.target.stats["transactions"].duplicates_merged == 1
    counts = aep.counts()[aep.server.config.event_dataset_id]
    assert counts == {"accepted": 8, "failed": 0, "distinct_ids": 4}
    amounts = [e["commerce"]["order"]["priceTotal"] for e in aep.stored(aep.server.config.event_dataset_id)]
    assert amounts.count(200.0) == 2
    assert amounts.count(128.0) == 6


def flows_seen(aep: Aep, **settings: str) -> set[tuple[str, str, str, str]]:
    """Run customers (profile) and transactions (event) through an inlet that records, per message, its endpoint,
    its request's x-adobe-flow-id, and its header's datasetId and flowId; preflight probes the same inlet."""
    seen: set[tuple[str, str, str, str]] = set()

    def inlet(handler: Handler) -> tuple[int, dict[str, str], bytes]:
        body = orjson.loads(handler.body)
        single = "/collection/batch/" not in handler.path
        for message in [body] if single else body["messages"]:
            header = message["header"]
            endpoint = "probe" if single else "batch"
            seen.add((endpoint, handler.headers.get("x-adobe-flow-id"), header["datasetId"], header.get("flowId")))
        if single:  # the probe's entity is invalid: refused by synchronous validation, as AEP does
            return 400, {}, b'{"report": {"message": "invalid", "cause": {"_streamingValidation": []}}}'
        responses = [{"xactionId": f"x-{i}"} for i in range(len(body["messages"]))]
        return 207, {"Content-Type": "application/json"}, orjson.dumps({"responses": responses})

    messages = [*stream_messages("customers", SAMPLES["customers"]), *stream_messages("transactions", transactions(2))]
    with serving(inlet) as server:
        inlet_url = f"{base_url(server)}/collection/{aep.server.config.auth_inlet_id}"
        run = aep.run([*messages, state_message({"t": 1})], inlet_url=inlet_url, **settings)
    assert run.states == [{"t": 1}]
    return seen


def test_each_destination_names_its_own_dataflow(aep: Aep) -> None:
    """A streaming dataflow leads to one dataset: the profile and event messages, and the preflight probes, carry
    the flow id of their destination in header.flowId and x-adobe-flow-id."""
    profile, event = aep.config["profile_dataset_id"], aep.config["event_dataset_id"]
    seen = flows_seen(aep, profile_flow_id="flow-p", event_flow_id="flow-e")
    expected = {(endpoint, flow, dataset, flow) for endpoint in ("probe", "batch")
                for flow, dataset in (("flow-p", profile), ("flow-e", event))}  # fmt: skip
    assert seen == expected


def test_flow_id_is_the_dataflow_of_destinations_without_their_own(aep: Aep) -> None:
    profile, event = aep.config["profile_dataset_id"], aep.config["event_dataset_id"]
    seen = flows_seen(aep, event_flow_id="flow-e")
    fallback = aep.config["flow_id"]
    assert {(flow, dataset) for _, flow, dataset, _ in seen} == {(fallback, profile), ("flow-e", event)}
    assert all(header == flow for _, flow, _, header in seen)


def test_dry_run_converts_and_validates_but_sends_nothing(aep: Aep) -> None:
    records = transactions(3, bad_currency={2})
    run = aep.run([*stream_messages("transactions", records, {"t": 3}), *stream_messages("stores", SAMPLES["stores"])],
                  dry_run=True, client_id=None, client_secret=None,
                  schema_files={aep.config["event_schema_id"]: str(write_event_schema(aep))})  # fmt: skip
    assert run.states == []  # a dry run must not move the bookmarks past records it did not send
    assert aep.requests("/") == []  # not even IMS or the Schema Registry
    lines = (aep.tmp_path / "dry-run" / "transactions.jsonl").read_text().splitlines()
    messages = [json.loads(line) for line in lines]
    assert [m["body"]["xdmEntity"]["commerce"]["order"]["purchaseID"] for m in messages] == ["B-0", "B-1"]
    header = messages[0]["header"]
    assert header["datasetId"] == aep.config["event_dataset_id"]
    assert (
        header["schemaRef"]["id"] == aep.config["event_schema_id"] == messages[0]["body"]["xdmMeta"]["schemaRef"]["id"]
    )
    assert header["imsOrgId"] == aep.config["org_id"]
    assert header["flowId"] == aep.config["flow_id"]
    assert len(aep.dead_letters()) == 1
    assert run.target.stats["transactions"].written == 2
    assert run.target.stats["stores"].skipped == 1


def write_event_schema(aep: Aep):
    path = aep.tmp_path / "events.schema.json"
    path.write_text(json.dumps(aep.state.dcs.schema(aep.config["event_dataset_id"]).body))
    return path


def test_schema_is_fetched_once_from_the_registry(aep: Aep) -> None:
    messages = [
        *stream_messages("transactions", transactions(2)),
        *stream_messages("points_ledger", SAMPLES["points_ledger"]),
    ]
    aep.run([*messages, state_message({"x": 1})])
    fetched = [e["path"] for e in aep.requests("/data/foundation/schemaregistry/tenant/schemas/")]
    assert sorted(fetched) == sorted(set(fetched))  # each schema once, whatever checks and streams use it
    assert any(quote(aep.config["event_schema_id"], safe="") in path or aep.config["event_schema_id"] in path
               for path in fetched)  # fmt: skip


def test_stream_without_mapping_fails_at_schema_time(aep: Aep) -> None:
    schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    run = aep.run([schema_message("orders", schema, ["id"]), lambda: pytest.fail("read past the SCHEMA")],
                  expect_error=True)  # fmt: skip
    assert isinstance(run.error, MappingError)
    assert "stream 'orders' has no mapping" in str(run.error)
    assert "'mappings' setting" in str(run.error)
    assert aep.requests("/collection/batch/") == []


def test_inline_and_file_mappings_override_presets(aep: Aep, tmp_path) -> None:
    mapping = {"target": "event", "fields": [
        {"to": "_id", "hash": ["$stream", "id"]},
        {"to": "timestamp", "from": "at", "transform": "timestamp"},
        {"to": "eventType", "value": "order.placed"},
        {"identity": "customer_id", "from": "customer"},
    ]}  # fmt: skip
    path = tmp_path / "orders.json"
    path.write_text(json.dumps(mapping))
    properties = {
        "id": {"type": "integer"},
        "at": {"type": "string", "format": "date-time"},
        "customer": {"type": "integer"},
    }
    schema = {"type": "object", "properties": properties}
    records = [{"id": i, "at": "2024-01-01T00:00:00+00:00", "customer": 7} for i in range(3)]
    for stream, setting in (("orders", mapping), ("returns", str(path))):
        aep.run([schema_message(stream, schema, ["id"]), *(record_message(stream, r) for r in records)],
                mappings={stream: setting})  # fmt: skip
    events = aep.stored(aep.config["event_dataset_id"])
    assert len(events) == 6
    assert {e["eventType"] for e in events} == {"order.placed"}
    assert events[0]["identityMap"] == {"CapillaryCustomerId": [{"id": "7", "primary": False,
                                                                 "authenticatedState": "ambiguous"}]}  # fmt: skip


def test_missing_dataset_setting_fails_at_schema_time(aep: Aep) -> None:
    run = aep.run([schema_message("customers")], expect_error=True, profile_dataset_id=None)
    assert isinstance(run.error, ConfigError)
    assert "profile_dataset_id" in str(run.error)


@pytest.mark.parametrize("url", ["http://dcs.adobedc.net/collection/abc", "ftp://127.0.0.1/collection/abc"])
def test_plain_http_is_refused_outside_loopback(aep: Aep, url: str) -> None:
    run = aep.run([schema_message("transactions")], expect_error=True, inlet_url=url)
    assert isinstance(run.error, ConfigError)
    assert "https://" in str(run.error)


def test_secrets_never_reach_logs_or_the_dead_letter(aep: Aep, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    revoke = lambda: aep.server.call(aep.state.issuer.revoke_all)  # noqa: E731
    tokens_seen: list[str] = []
    grab = lambda: tokens_seen.extend(aep.server.call(lambda: list(aep.state.issuer._grants)))  # noqa: E731
    records = transactions(4, bad_currency={1})
    run = aep.run(
        [schema_message("transactions"), *(record_message("transactions", r) for r in records[:2]), grab, revoke,
         *(record_message("transactions", r) for r in records[2:]), state_message({"t": 4})],
        batch_size_rows=2,
    )  # fmt: skip
    grab()
    assert run.states == [{"t": 4}]
    assert len(set(tokens_seen)) == 2
    secrets = [aep.config["client_secret"], *tokens_seen]
    dead_letter = aep.dead_letter_path.read_text()
    assert "Summary for stream 'transactions'" in caplog.text
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in dead_letter
    # A failing IMS call does not leak the secret either.
    failed = aep.run(stream_messages("transactions", records), expect_error=True, client_secret="s3cr3t-wrong")
    assert "s3cr3t-wrong" not in str(failed.error)
    assert "s3cr3t-wrong" not in caplog.text


def test_debug_logging_is_linear_and_holds_no_record_values(aep: Aep, tmp_path: Path) -> None:
    """At DEBUG the SDK logs each record's batch context; the records of the batch are not in it (they were: a log
    quadratic in the input, with every e-mail and mobile number in it), nor anywhere else in the log."""
    count = 2000
    customers = [{**SAMPLES["customers"][0], "customer_id": 10_000 + i, "email": f"Person.{i}@Example.com",
                  "mobile": f"91{9_000_000_000 + i}", "external_id": f"EXT-{i}"} for i in range(count)]  # fmt: skip
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**aep.config, "batch_size_rows": 500}))
    singer = "".join(json.dumps(m) + "\n" for m in stream_messages("customers", customers, {"t": count}))
    command = [str(Path(sys.executable).parent / "target-adobe-aep"), "--config", str(config)]
    environment = {**os.environ, "TARGET_ADOBE_AEP_LOGLEVEL": "DEBUG"}
    done = subprocess.run(command, input=singer, capture_output=True, text=True, timeout=120, check=False,
                          env=environment)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [json.dumps({"t": count})]
    log = done.stderr
    assert "| DEBUG" in log
    assert len(log) < 400 * count + 200_000  # about 250 bytes a record: the SDK's "Processed record" line
    lowered = log.lower()
    values = [c["email"].lower() for c in customers] + [c["mobile"] for c in customers] + ["zoe", "muller"]
    assert [value for value in values if value in lowered] == []
    grants = aep.server.call(lambda: list(aep.state.issuer._grants))
    assert grants
    assert [secret for secret in [aep.config["client_secret"], *grants] if secret in log] == []


def test_console_script_end_to_end(aep: Aep, tmp_path) -> None:
    """The installed ``target-adobe-aep`` command: state on stdout, summary on stderr, exit status on failure."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps(aep.config))
    singer = "".join(json.dumps(m) + "\n" for m in stream_messages("transactions", transactions(3), {"t": 3}))
    command = [str(Path(sys.executable).parent / "target-adobe-aep"), "--config", str(config)]
    done = subprocess.run(command, input=singer, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [{"t": 3}]
    assert "Summary for stream 'transactions': received=3" in done.stderr
    assert aep.config["client_secret"] not in done.stderr

    aep.server.set_faults({"rules": [{"path": "/collection/batch/*", "status_rates": {"500": 1.0}, "retry_after": 0}]})
    config.write_text(json.dumps({**aep.config, "max_retries": 1}))
    failed = subprocess.run(command, input=singer, capture_output=True, text=True, timeout=60, check=False)
    assert failed.returncode != 0
    assert failed.stdout == ""
    last = failed.stderr.splitlines()[-1]
    assert "ERROR" in last
    assert "DCS answered HTTP 500; gave up after 2 tries in " in last


def test_batches_drain_by_bytes_into_full_requests_and_state_waits_for_them(
    aep: Aep, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests_per_batch bounds a batch by the requests its messages are expected to fill; every drain but the
    last sends only requests ≥ 90 % full (about that many: the size of a message is learnt from the first
    batches; the part-filled last request goes out with the next batch); a STATE line is written only once
    AEP holds every record before it."""
    drains: list[list[int]] = []
    publish = Publisher.publish

    def recording_publish(self: Publisher, messages: list[bytes], flow_id: str | None = None) -> PublishResult:
        drains.append([len(m) for m in messages])
        return publish(self, messages, flow_id)

    monkeypatch.setattr(Publisher, "publish", recording_publish)
    written: list[tuple[dict, int]] = []

    def record_state(line: str) -> None:  # what AEP holds when the target writes the STATE line
        written.append((json.loads(line), aep.counts()[aep.config["event_dataset_id"]]["accepted"]))

    records = transactions(400)
    messages = [schema_message("transactions"), *(record_message("transactions", r) for r in records[:250]),
                state_message({"t": 250}), *(record_message("transactions", r) for r in records[250:]),
                state_message({"t": 400})]  # fmt: skip
    run = aep.run(messages, max_request_bytes=20_000, requests_per_batch=3, on_output=record_state)
    assert run.states == [{"t": 400}]
    assert written == [({"t": 400}, 400)]
    assert sum(map(len, drains)) == 400
    assert len(drains) > 5
    for sizes in drains[:-1]:
        groups, oversized = pack(sizes, 20_000)
        assert 1 <= len(groups) <= 4
        assert not oversized
        fills = [(REQUEST_OVERHEAD + sum(sizes[i] for i in g) + len(g) - 1) / 20_000 for g in groups]
        assert min(fills) >= 0.9, fills
    stats = run.target.stats["transactions"]
    assert (stats.accepted, stats.dead_lettered) == (400, 0)


@pytest.mark.parametrize("then_a_new_schema", [False, True])
def test_messages_held_for_a_fuller_request_are_sent_at_the_end_and_on_a_schema_change(
    aep: Aep, monkeypatch: pytest.MonkeyPatch, then_a_new_schema: bool
) -> None:
    """A byte-full batch holds back its part-filled last request. When the input ends right after such a batch
    (no STATE ever came), or a SCHEMA replaces the stream's sink there, what is held is still sent: nothing
    stays behind."""
    records = transactions(300)
    settings = {"max_request_bytes": 20_000, "requests_per_batch": 2}
    drains: list[tuple[int, bool]] = []
    start_drain = AEPSink.start_drain

    def recording_start_drain(self: AEPSink) -> dict:
        size = self.current_size
        context = start_drain(self)
        drains.append((size, context["requests_full"]))
        return context

    monkeypatch.setattr(AEPSink, "start_drain", recording_start_drain)
    aep.run([schema_message("transactions"), *(record_message("transactions", r) for r in records)], **settings)
    assert drains[0][1], "the first drain is a byte-full one"
    aep.server.call(aep.state.store.clear)
    first = records[: drains[0][0]]  # the input ends (or the schema changes) right after that drain
    messages = [schema_message("transactions"), *(record_message("transactions", r) for r in first)]
    if then_a_new_schema:
        changed = tap_schema("transactions")
        changed["properties"]["added_later"] = {"type": ["string", "null"]}
        messages += [schema_message("transactions", changed), record_message("transactions", records[-1])]
    run = aep.run(messages, **settings)
    sent = len(first) + then_a_new_schema
    stats = run.target.stats["transactions"]
    assert (stats.received, stats.accepted, stats.dead_lettered) == (sent, sent, 0)
    assert aep.counts()[aep.config["event_dataset_id"]]["accepted"] == sent


def test_a_held_message_never_shares_a_publish_with_a_newer_version_of_its_record(
    aep: Aep, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publish sends its requests concurrently (and retries them one by one), so two versions of a record in
    one publish could arrive in either order: a held message superseded by the next batch is dropped instead."""
    published: list[list[str]] = []
    publish = Publisher.publish

    def recording_publish(self: Publisher, messages: list[bytes], flow_id: str | None = None) -> PublishResult:
        published.append([orjson.loads(m)["body"]["xdmEntity"]["_id"] for m in messages])
        return publish(self, messages, flow_id)

    monkeypatch.setattr(Publisher, "publish", recording_publish)
    records = transactions(27)
    # 22 records make one byte-full batch, whose last request is held; newer versions of them follow at once.
    newer = [{**r, "amount": r["amount"] + 1} for r in reversed(records[:22])]
    messages = [schema_message("transactions"), *(record_message("transactions", r) for r in [*records, *newer])]
    run = aep.run(messages, max_request_bytes=20_000, requests_per_batch=2)
    assert any(len(ids) for ids in published[1:]), "a held part went out with a later batch"
    for ids in published:
        assert len(ids) == len(set(ids)), "two versions of one record in one publish"
    stats = run.target.stats["transactions"]
    assert stats.received == 49
    assert stats.accepted + stats.duplicates_merged == 49
    assert stats.duplicates_merged > 0
    stored = aep.stored(aep.config["event_dataset_id"])
    last = {entity["_id"]: entity for entity in stored}  # arrival order: the last one stored wins
    assert len(last) == 27
    expected = records[0]["amount"] + 1
    assert [entity["commerce"]["order"]["priceTotal"] for entity in last.values()].count(expected) == 22


def test_a_background_batch_failure_stops_the_run_before_any_state(aep: Aep) -> None:
    aep.server.set_faults({"rules": [{"path": "/collection/batch/*", "status_rates": {"503": 1.0}, "retry_after": 0,
                                      "max_faults": 100}]})  # fmt: skip
    records = transactions(200)
    messages = [schema_message("transactions"), *(record_message("transactions", r) for r in records[:100]),
                state_message({"t": 100}), *(record_message("transactions", r) for r in records[100:]),
                state_message({"t": 200})]  # fmt: skip
    run = aep.run(messages, expect_error=True, max_retries=0, max_request_bytes=20_000, requests_per_batch=1)
    assert isinstance(run.error, RetriesExhausted)
    assert run.states == []


@pytest.mark.parametrize("conversion_workers", [0, 1])
def test_an_input_record_its_schema_refuses_stops_the_run_before_any_state(aep: Aep, conversion_workers: int) -> None:
    """As in the SDK (validate_records), a record that violates its stream's schema stops the run; it is
    validated where it is converted, so the run stops when its batch is, and no STATE covers it."""
    records = transactions(30)
    records[25] = {**records[25], "amount": {"not": "a number"}}
    messages = [schema_message("transactions"), *(record_message("transactions", r) for r in records[:20]),
                state_message({"t": 20}), *(record_message("transactions", r) for r in records[20:]),
                state_message({"t": 30})]  # fmt: skip
    run = aep.run(messages, expect_error=True, batch_size_rows=20, conversion_workers=conversion_workers)
    assert isinstance(run.error, InvalidInputRecord)
    assert "amount" in str(run.error)
    assert "transactions" in str(run.error)
    assert run.states == [{"t": 20}] or run.states == []
    assert {"t": 30} not in run.states
    assert aep.counts()[aep.config["event_dataset_id"]]["accepted"] <= 20


class TargetProcess:
    """The target's executable reading ``messages`` from a stdin left open (as while the tap still runs); its log
    is read as it comes."""

    def __init__(self, aep: Aep, tmp_path: Path, messages: list[dict], **config: Any) -> None:
        config_file = tmp_path / "config.json"
        config_file.write_text(json.dumps({**aep.config, **config}))
        command = [str(Path(sys.executable).parent / "target-adobe-aep"), "--config", str(config_file)]
        pipe = subprocess.PIPE
        self.process = subprocess.Popen(command, stdin=pipe, stdout=pipe, stderr=pipe, text=True)
        self.log: list[str] = []
        self._logged = threading.Condition()
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        assert self.process.stdin is not None
        self.process.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
        self.process.stdin.flush()

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._logged:
                self.log.append(line)
                self._logged.notify_all()

    def wait_for_log(self, text: str) -> None:
        with self._logged:
            found = self._logged.wait_for(lambda: any(text in line for line in self.log), timeout=60)
        assert found, "".join(self.log)

    def end(self, timeout: float) -> tuple[int, str, str]:
        """Exit status, output and log, once the process ended (within ``timeout`` seconds) and no process holds
        its output."""
        status = self.process.wait(timeout=timeout)
        assert self.process.stdout is not None
        out = self.process.stdout.read()
        self._reader.join()
        return status, out, "".join(self.log)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_a_retry_wait_at_once(aep: Aep, tmp_path: Path, signum: int) -> None:
    """DCS asks to retry in 60 s; the signal ends that wait: exit 128 + n, no STATE, no traceback (the wait
    outlasted the signal by minutes before)."""
    aep.server.set_faults({"rules": [{"path": "/collection/batch/*", "status_rates": {"429": 1.0},
                                      "retry_after": 60}]})  # fmt: skip
    records = transactions(20)
    messages = [schema_message("transactions"), *(record_message("transactions", r) for r in records[:10]),
                state_message({"t": 10}), *(record_message("transactions", r) for r in records[10:])]  # fmt: skip
    target = TargetProcess(aep, tmp_path, messages, batch_size_rows=10, state_checkpoint_seconds=0)
    target.wait_for_log("DCS answered HTTP 429; retry 1 of 5 in 60.00 s")
    target.process.send_signal(signum)
    status, out, log = target.end(timeout=30)
    assert status == 128 + signum
    assert out == ""
    assert f"Received termination signal {signum}: stopping without writing STATE" in log
    assert "exiting now" not in log  # the wait ended: no need for the exit after the grace period
    assert "Traceback" not in log, log
    assert len(aep.requests("/collection/batch/")) == 1


@contextlib.contextmanager
def unanswered_inlet(aep: Aep) -> Iterator[tuple[str, threading.Event]]:
    """An inlet URL whose requests are never answered while the block runs, and the event of the first one."""
    arrived, release = threading.Event(), threading.Event()

    def never_answering(_: Handler) -> tuple[int, dict[str, str], bytes]:
        arrived.set()
        release.wait(timeout=60)
        return 503, {}, b""

    with serving(never_answering) as inlet:
        try:
            yield f"{base_url(inlet)}/collection/{aep.server.config.auth_inlet_id}", arrived
        finally:
            release.set()


def test_a_signal_ends_the_run_within_seconds_while_a_request_is_in_flight(aep: Aep, tmp_path: Path) -> None:
    """An inlet that does not answer: the target exits 5 s after SIGTERM, writing no STATE (it used to wait for the
    request and, through the SDK's handler, drain and write a STATE over records not yet sent)."""
    records = transactions(20)
    messages = [schema_message("transactions"), *(record_message("transactions", r) for r in records[:19]),
                state_message({"t": 19}), record_message("transactions", records[19])]  # fmt: skip
    with unanswered_inlet(aep) as (inlet_url, arrived):
        target = TargetProcess(aep, tmp_path, messages, batch_size_rows=10, preflight=False, inlet_url=inlet_url)
        assert arrived.wait(timeout=60)
        target.process.send_signal(signal.SIGTERM)
        status, out, log = target.end(timeout=15)
    assert status == 128 + signal.SIGTERM
    assert out == ""
    assert "Received termination signal 15: stopping without writing STATE" in log
    assert "Requests still in flight after 5 s: exiting now" in log


def test_a_killed_target_leaves_no_process_holding_its_output(aep: Aep, tmp_path: Path) -> None:
    """SIGKILL while batches are converted and published: the conversion workers (and multiprocessing's helper
    processes) end with the target, so whoever reads its stdout and stderr (Meltano) sees both close."""
    records = transactions(60)
    messages = [schema_message("transactions"), *(record_message("transactions", r) for r in records)]
    with unanswered_inlet(aep) as (inlet_url, arrived):
        target = TargetProcess(aep, tmp_path, messages, batch_size_rows=10, conversion_workers=2, preflight=False,
                               inlet_url=inlet_url)  # fmt: skip
        assert arrived.wait(timeout=60)
        target.process.kill()
        status, out, _ = target.end(timeout=30)  # returns only once no process holds the pipes
    assert status == -signal.SIGKILL
    assert out == ""


def test_batch_messages_are_refused_not_dropped(aep: Aep, tmp_path: Path) -> None:
    batch_file = tmp_path / "batch.jsonl"
    batch_file.write_text("".join(json.dumps(r) + "\n" for r in transactions(3)))
    batch = {"type": "BATCH", "stream": "transactions", "encoding": {"format": "jsonl", "compression": None},
             "manifest": [batch_file.as_uri()]}  # fmt: skip
    run = aep.run([schema_message("transactions"), batch, state_message({"t": 3})], expect_error=True)
    assert "does not support" in str(run.error)
    assert "batch_config" in str(run.error)
    assert run.states == []


def test_a_schema_change_never_lets_an_older_version_overtake_a_newer_one(
    aep: Aep, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[float] = []
    publish = Publisher.publish

    def recording_publish(self: Publisher, messages: list[bytes], flow_id: str | None = None) -> PublishResult:
        entities = [json.loads(m)["body"]["xdmEntity"]["commerce"]["order"] for m in messages]
        published.extend(e["priceTotal"] for e in entities if e["purchaseID"] == "B-0")
        return publish(self, messages, flow_id)

    monkeypatch.setattr(Publisher, "publish", recording_publish)
    old, other = transactions(2)
    new = {**old, "amount": 2.0}
    changed = copy.deepcopy(tap_schema("transactions"))
    changed["properties"]["extra"] = {"type": ["null", "string"]}
    aep.server.set_faults({"rules": [{"path": "/collection/batch/*", "latency_ms": 300}]})
    messages = [schema_message("transactions"), record_message("transactions", old),
                schema_message("transactions", changed), record_message("transactions", new),
                record_message("transactions", other), state_message({"t": 1})]  # fmt: skip
    run = aep.run(messages, batch_size_rows=2)
    assert run.states == [{"t": 1}]
    stored = aep.stored(aep.config["event_dataset_id"])
    totals = [e["commerce"]["order"]["priceTotal"] for e in stored if e["commerce"]["order"]["purchaseID"] == "B-0"]
    assert published == [old["amount"], 2.0]
    assert totals == [old["amount"], 2.0]


def test_a_null_key_and_the_text_none_are_different_records(aep: Aep) -> None:
    first, second = transactions(2)
    first["transaction_id"], second["transaction_id"] = None, "None"
    schema = copy.deepcopy(tap_schema("transactions"))
    schema["properties"]["transaction_id"] = {"type": ["null", "string", "integer"]}
    messages = [schema_message("transactions", schema), record_message("transactions", first),
                record_message("transactions", second), state_message({"t": 2})]  # fmt: skip
    run = aep.run(messages)
    assert run.target.stats["transactions"].duplicates_merged == 0
    assert run.target.stats["transactions"].received == 2
