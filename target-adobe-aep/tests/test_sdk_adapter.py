"""Pins of the SDK behaviour the target relies on: the internals ``sdk_adapter`` uses (no public hook offers them),
and the public hooks whose exact use matters. An SDK release that changes one fails here first."""

from __future__ import annotations

import copy
import datetime
import logging
import signal
from typing import Any

import orjson
import pytest
from conftest import Aep, FakeClock, record_message, schema_message, state_message
from singer_sdk.sinks import Sink
from test_target import transactions

from target_adobe_aep.conversion import DATE_PARSERS, Converter, InvalidInputRecord
from target_adobe_aep.dead_letter import serialized
from target_adobe_aep.sdk_adapter import WorkerParsedDatesSink, get_datelike_property_type
from target_adobe_aep.target import TargetAdobeAEP


@pytest.mark.parametrize(
    ("schema", "kind"),
    [
        ({"type": "string", "format": "date-time"}, "date-time"),
        ({"type": ["string", "null"], "format": "date"}, "date"),
        ({"type": ["null", "string"], "format": "time"}, "time"),
        ({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}, "date-time"),
        ({"type": "string", "format": "email"}, None),
        ({"type": "integer", "format": "date"}, None),
        ({"type": "string"}, None),
    ],
)
def test_the_sdk_parses_these_properties_as_dates(schema: dict, kind: str | None) -> None:
    """The conversion workers parse the properties the SDK would, with the SDK's parsers for each kind."""
    assert get_datelike_property_type(schema) == kind
    assert kind is None or kind in DATE_PARSERS


def test_the_sdk_parses_each_record_through_the_adapted_method(aep: Aep, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK calls ``_parse_timestamps_in_record(record=, schema=, treatment=)`` once per record; the adapter
    leaves a record whose fields the schema declares to the workers, and hands any other to the SDK (which warns
    about the undeclared field)."""
    calls: list[dict[str, Any]] = []
    parse = WorkerParsedDatesSink._parse_timestamps_in_record
    sdk_parses: list[dict] = []
    sdk_parse = Sink._parse_timestamps_in_record

    def recording(self: WorkerParsedDatesSink, **kwargs: Any) -> None:
        calls.append({**kwargs, "sink": self})
        parse(self, **kwargs)

    def recording_sdk(self: Sink, record: dict, schema: dict, treatment: Any) -> None:
        sdk_parses.append(dict(record))
        sdk_parse(self, record, schema, treatment)

    monkeypatch.setattr(WorkerParsedDatesSink, "_parse_timestamps_in_record", recording)
    monkeypatch.setattr(Sink, "_parse_timestamps_in_record", recording_sdk)
    declared, undeclared = transactions(2)
    undeclared["not_in_schema"] = "x"
    run = aep.run([schema_message("transactions"), record_message("transactions", declared),
                   record_message("transactions", undeclared), state_message({"t": 2})], dry_run=True,
                  validate_records=False)  # fmt: skip
    sink = run.target.active_sinks["transactions"]
    assert [call["record"]["transaction_id"] for call in calls] == [100_000, 100_001]
    assert all(call["schema"] is sink.schema and call["sink"] is sink for call in calls)
    assert all(call["treatment"] == sink.datetime_error_treatment for call in calls)
    assert [record["transaction_id"] for record in sdk_parses] == [100_001]


def test_conversion_parses_timestamps_as_the_sdk_does(aep: Aep) -> None:
    """Records are converted from their serialized form; the converter parses date-like properties exactly as
    the SDK's own method would have (same XDM), and stops on a value the SDK would stop on."""
    run = aep.run([schema_message("transactions")], dry_run=True)
    sink = run.target.get_sink("transactions")
    converter = Converter(sink._spec)
    for sample in transactions(2):
        parsed = copy.deepcopy(sample)
        Sink._parse_timestamps_in_record(sink, parsed, sink.schema, sink.datetime_error_treatment)
        assert isinstance(parsed["billed_at"], datetime.datetime)
        expected = sink.envelope.wrap(orjson.dumps(sink.mapping.convert(parsed)))
        assert converter.message(serialized(sample), FakeClock.START) == expected
    invalid = {**transactions(1)[0], "billed_at": "not a time"}
    with pytest.raises(InvalidInputRecord, match="Could not parse value 'not a time' for field 'billed_at'"):
        converter.message(serialized(invalid), FakeClock.START)


def test_public_hooks_the_target_relies_on(aep: Aep, caplog: pytest.LogCaptureFixture) -> None:
    """``listen`` reads lines through the message reader's ``process_lines`` with a STATE callback (the target's
    own: the SDK never sees a STATE, so neither its drains nor its signal handler write one); the target's
    termination handler replaces the SDK's."""
    caplog.set_level(logging.DEBUG)
    run = aep.run([schema_message("transactions"), record_message("transactions", transactions(1)[0]),
                   state_message({"t": 1})])  # fmt: skip
    assert run.states == [{"t": 1}]
    assert "Emitting completed target state" not in caplog.text  # the SDK's own STATE writer stayed unused
    target = TargetAdobeAEP(config=aep.config)
    assert signal.getsignal(signal.SIGTERM) == target.on_termination_signal
    assert signal.getsignal(signal.SIGINT) == target.on_termination_signal
