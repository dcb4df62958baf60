"""The SDK's standard target tests, run against the emulator.

The SDK's test streams have no preset, so they get one generic inline mapping (``data/sdk_test_stream_mapping.json``)
through the ``mappings`` setting, which makes the suites exercise the real path: SCHEMA-time mapping and schema
checks, conversion, validation and publishing to the emulated inlet.
"""

from __future__ import annotations

import json
from importlib import resources

import pytest
from conftest import DATA, Aep
from singer_sdk.testing import SuiteConfig, get_target_test_class
from singer_sdk.testing.runners import TargetTestRunner
from singer_sdk.testing.suites import SingerTestSuite
from singer_sdk.testing.target_tests import (
    TargetArrayData,
    TargetCamelcaseComplexSchema,
    TargetCamelcaseTest,
    TargetCliPrintsTest,
    TargetDuplicateRecords,
    TargetEncodedStringData,
    TargetInvalidSchemaTest,
    TargetNoPrimaryKeys,
    TargetOptionalAttributes,
    TargetPrimaryKeyUpdates,
    TargetRecordBeforeSchemaTest,
    TargetRecordMissingKeyProperty,
    TargetRecordMissingOptionalFields,
    TargetSchemaNoProperties,
    TargetSchemaUpdates,
    TargetSpecialCharsInAttributes,
)

from target_adobe_aep.conversion import InvalidInputRecord
from target_adobe_aep.target import TargetAdobeAEP

SDK_STREAMS = sorted(
    {
        json.loads(line)["stream"]
        for path in resources.files("singer_sdk.testing.target_test_streams").iterdir()
        if path.name.endswith(".singer")
        for line in path.read_text().splitlines()
        if line.strip() and "stream" in json.loads(line)
    }
)
GENERIC_MAPPING = json.loads((DATA / "sdk_test_stream_mapping.json").read_text())

# TargetRecordMissingRequiredProperty is left out: it expects a record that violates its stream's schema
# ("required": ["id"]) to be loaded, while this target validates input records (validate_records) and stops
# on such a record rather than send it. Every other standard target test applies.
SUITE = SingerTestSuite(
    kind="target",
    tests=[
        TargetArrayData,
        TargetCamelcaseComplexSchema,
        TargetCamelcaseTest,
        TargetCliPrintsTest,
        TargetDuplicateRecords,
        TargetEncodedStringData,
        TargetInvalidSchemaTest,
        TargetNoPrimaryKeys,
        TargetOptionalAttributes,
        TargetPrimaryKeyUpdates,
        TargetRecordBeforeSchemaTest,
        TargetRecordMissingKeyProperty,
        TargetRecordMissingOptionalFields,
        TargetSchemaNoProperties,
        TargetSchemaUpdates,
        TargetSpecialCharsInAttributes,
    ],
)

StandardTests = get_target_test_class(
    TargetAdobeAEP, config={}, custom_suites=[SUITE], include_target_tests=False, suite_config=SuiteConfig()
)


class TestTargetAdobeAEPStandard(StandardTests):  # type: ignore[misc, valid-type]
    @pytest.fixture
    def runner(self, aep: Aep) -> TargetTestRunner:
        config = {**aep.config, "mappings": dict.fromkeys(SDK_STREAMS, GENERIC_MAPPING)}
        return TargetTestRunner(target_class=TargetAdobeAEP, config=config, parse_env_config=False)


def test_sdk_test_streams_really_arrive(aep: Aep) -> None:
    """The standard suites above only check that the target does not fail; this one checks what AEP got."""
    config = {**aep.config, "mappings": dict.fromkeys(SDK_STREAMS, GENERIC_MAPPING)}
    streams = resources.files("singer_sdk.testing.target_test_streams")
    TargetTestRunner(target_class=TargetAdobeAEP, config=config, parse_env_config=False,
                     input_filepath=streams / "array_data.singer").sync_all()  # fmt: skip
    events = aep.stored(aep.config["event_dataset_id"])
    fields = [e["_capillarydemo"]["capillary"]["transaction"]["customFields"] for e in events]
    assert fields[0] == {"id": "1", "fruits": '["apple","orange","pear"]'}
    assert [f["id"] for f in fields] == ["1", "2", "3", "4"]


def test_the_sdk_runner_sees_a_record_its_schema_refuses(aep: Aep) -> None:
    """The SDK's runner ends the input with process_endofpipe, not listen: the target still waits for its
    batches there, so a record that fails input validation in a conversion worker fails the run."""
    config = {**aep.config, "mappings": dict.fromkeys(SDK_STREAMS, GENERIC_MAPPING)}
    streams = resources.files("singer_sdk.testing.target_test_streams")
    runner = TargetTestRunner(target_class=TargetAdobeAEP, config=config, parse_env_config=False,
                              input_filepath=streams / "record_missing_required_property.singer")  # fmt: skip
    with pytest.raises(InvalidInputRecord, match="must contain"):
        runner.sync_all()
