"""The baseline's target: an SDK ``BatchSink`` target with default settings (record validation on) that drops
every batch, i.e. the SDK's own cost of reading, validating and batching records."""

from __future__ import annotations

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.sinks import BatchSink


class NoopSink(BatchSink):
    def process_batch(self, context: dict) -> None:
        """Nothing: the records were read, validated and batched by the SDK; that is what is measured."""


class TargetNoop(Target):
    name = "target-noop"
    config_jsonschema = th.PropertiesList().to_dict()
    default_sink_class = NoopSink


if __name__ == "__main__":
    TargetNoop.cli()
