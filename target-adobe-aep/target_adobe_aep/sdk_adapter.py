"""The only SDK internals the target relies on (singer-sdk 0.54.9): no public hook offers them. Each is used here
and nowhere else, and ``tests/test_sdk_adapter.py`` pins the SDK behaviour relied upon, so an SDK release that
changes it fails those tests rather than the target.

- ``get_datelike_property_type`` (``singer_sdk.helpers._typing``): which properties the SDK parses as a date, a
  time or a date-time. The conversion workers parse exactly those, with the parsers the SDK uses on Python 3.11+
  (``conversion.DATE_PARSERS``), since workers do not import the SDK.
- ``Sink._parse_timestamps_in_record``: the SDK calls it for every record on the target's main thread, its
  bottleneck. ``WorkerParsedDatesSink`` skips it for records whose fields the schema declares (the workers parse
  their dates) and lets the SDK handle the others, which it warns about.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from singer_sdk.helpers._typing import get_datelike_property_type
from singer_sdk.sinks import BatchSink

if TYPE_CHECKING:
    from singer_sdk.helpers.conform import DatetimeErrorTreatmentEnum

__all__ = ["WorkerParsedDatesSink", "get_datelike_property_type"]


class WorkerParsedDatesSink(BatchSink):
    """A sink whose records' date-like properties are parsed where the records are converted."""

    #: The properties the stream's schema declares; set by the sink's ``setup``.
    declared_properties: frozenset[str] = frozenset()

    def _parse_timestamps_in_record(self, record: dict, schema: dict, treatment: DatetimeErrorTreatmentEnum) -> None:
        if schema is not self.schema or not self.declared_properties.issuperset(record):
            super()._parse_timestamps_in_record(record, schema, treatment)
