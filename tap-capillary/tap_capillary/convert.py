"""Capillary's value dialects -> the tap's record types.

v1.1 sends numbers and booleans as strings and times as naive cluster-local text; v2 sends
times with the cluster's UTC offset; the rewards API sends epoch milliseconds. Records carry
JSON numbers, booleans, and RFC 3339 UTC times (capillary-api.md 2.4, 2.5).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

# The spellings the target's boolean transform takes too (target-adobe-aep mapping), whatever their case.
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def text(value: Any) -> str | None:
    """A string, with Capillary's empty strings as null."""
    if value is None or value == "":
        return None
    return str(value)


def number(value: Any) -> float | int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    return float(value)


def integer(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(float(value)) if isinstance(value, str) and "." in value else int(value)


def boolean(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    msg = f"not a boolean: {value!r}"
    raise ValueError(msg)


def name_values(value: Any, key: str = "field") -> dict[str, Any]:
    """``{"field": [{"name", "value"}]}`` (v1.1), a bare list of those, or a v2 mapping -> ``{name: value}``,
    with Capillary's empty strings as null."""
    if not value:
        return {}
    if isinstance(value, Mapping) and key in value:
        value = value[key] or []
    pairs = (
        value.items() if isinstance(value, Mapping) else ((i["name"], i.get("value")) for i in value if i.get("name"))
    )
    return {name: None if v == "" else v for name, v in pairs}


def listed(value: Any, key: str) -> list[Any]:
    """v1.1's wrapped lists: ``{"transaction": [...]}`` -> ``[...]`` (also tolerates a single object or null)."""
    if not value:
        return []
    inner = value.get(key) if isinstance(value, Mapping) else value
    if inner is None:
        return []
    return inner if isinstance(inner, list) else [inner]


class TimeConverter:
    """Turns Capillary times into UTC datetimes; naive times are read in the cluster's time zone."""

    def __init__(self, cluster_timezone: tzinfo) -> None:
        self.cluster_timezone = cluster_timezone

    def to_datetime(self, value: Any) -> datetime | None:
        if value is None or value == "":
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000, tz=UTC)  # epoch milliseconds
        # "2023-06-21 13:34:16.0", "2021-09-09T11:49:14+05:30", "2023-11-13T19:30:48Z", "2024-06-01"
        parsed = datetime.fromisoformat(str(value).strip())
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=self.cluster_timezone)
        return parsed.astimezone(UTC)

    def to_utc(self, value: Any) -> str | None:
        """RFC 3339 UTC text, or None."""
        parsed = self.to_datetime(value)
        return parsed.isoformat() if parsed else None

    def to_cluster(self, value: datetime, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        """A UTC datetime as the naive cluster-local text that v1.1/v2 query parameters take."""
        return value.astimezone(self.cluster_timezone).strftime(fmt)
