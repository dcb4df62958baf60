"""Observability Insights: ``POST /data/infrastructure/observability/insights/metrics`` (V2, EN
help/observability/api/metrics.md), computed from what the emulator stored.

Emulated metrics: ``timeseries.ingestion.dataset.recordsuccess.count`` (valid records), ``…batchsuccess.count`` and
``…batchfailed.count`` (Catalog batches), per dataset, and ``timeseries.data.collection.inlet.success`` /
``…inlet.failure`` (HTTP calls to the inlets answered 2xx / otherwise, all inlets together: the docs name no
filter for inlets, only for datasets). Filters take dataset ids (``name`` ``dataSetId`` as in the request sample,
or ``dataSets`` as the property table says), several separated by ``|``; ``groupBy`` returns one datapoint list per
dataset. ``granularity`` (with its ``downsample``) buckets the values by UTC minute, hour, day, week or month; without
it one datapoint covers the whole range. A bad payload answers the documented ``INSGHT-1000-400`` body.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from emulators.adobe.catalog import CatalogApi
from emulators.adobe.platform import json_body

METRICS = "/data/infrastructure/observability/insights/metrics"
DATASET_METRICS = (
    "timeseries.ingestion.dataset.recordsuccess.count",
    "timeseries.ingestion.dataset.batchsuccess.count",
    "timeseries.ingestion.dataset.batchfailed.count",
)
INLET_METRICS = ("timeseries.data.collection.inlet.success", "timeseries.data.collection.inlet.failure")
AGGREGATORS = ("sum", "avg", "min", "max", "count")  # OpenTSDB's, as the doc refers to them
GRANULARITIES = ("minute", "hour", "day", "week", "month")


class BadPayload(ValueError):
    pass


def _moment(value: Any, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise BadPayload(f"{name} must be an ISO 8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _bucket(ms: int, granularity: str | None, start: datetime) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    if granularity is None:
        moment = start
    elif granularity == "month":
        moment = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    else:
        moment = moment.replace(second=0, microsecond=0)
        if granularity != "minute":
            moment = moment.replace(minute=0)
        if granularity in ("day", "week"):
            moment = moment.replace(hour=0)
        if granularity == "week":
            moment -= timedelta(days=moment.weekday())
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class InsightsApi:
    def __init__(self, catalog: CatalogApi) -> None:
        self.api = catalog.api
        self.store = catalog.store

    def _error(self, title: str) -> web.Response:
        code = "INSGHT-1000-400"
        body = {
            "type": f"http://ns.adobe.com/aep/errors/{code}",
            "title": f"Bad Request - {title}",
            "status": 400,
            "report": {"tenantInfo": {"sandboxName": self.api.config.sandbox, "sandboxId": self.api.config.sandbox,
                                      "imsOrgId": self.api.config.org_id}, "additionalContext": None},
            "error-chain": [{"serviceId": "INSGHT", "errorCode": code, "invokingServiceId": "INSGHT",
                             "unixTimeStampMs": int(time.time() * 1000)}],
        }  # fmt: skip
        return web.json_response(body, status=400)

    def _events(self, name: str, start_ms: int, end_ms: int) -> list[tuple[str, int]]:
        """(dataset or inlet, time in ms) of each event the metric counts."""
        store = self.store()
        if name == DATASET_METRICS[0]:
            return store.record_times(None, start_ms, end_ms)
        if name in DATASET_METRICS:
            status = "success" if name == DATASET_METRICS[1] else "failed"
            rows = store.batches(None, start_ms - 1, end_ms, [status])
            return [(row["dataset_id"], row["created_ms"]) for row in rows]
        succeeded = name == INLET_METRICS[0]
        return [(inlet, ms) for inlet, ms, status in store.inlet_calls(start_ms, end_ms)
                if (200 <= status < 300) == succeeded]  # fmt: skip

    def _metric(self, spec: Any, start: datetime, end: datetime, granularity: str | None) -> dict[str, Any]:
        if not isinstance(spec, dict) or spec.get("name") not in (*DATASET_METRICS, *INLET_METRICS):
            raise BadPayload(f"invalid metric {spec.get('name') if isinstance(spec, dict) else spec!r}")
        if spec.get("aggregator") not in AGGREGATORS:
            raise BadPayload(f"metric {spec['name']}: missing or invalid aggregator")
        if granularity is not None and spec.get("downsample") not in AGGREGATORS:
            raise BadPayload(f"metric {spec['name']}: a granularity needs a downsample function")
        filters = spec.get("filters", [])
        groups: dict[str, set[str] | None] = {"": None}
        for item in filters if isinstance(filters, list) else [None]:
            if (
                not isinstance(item, dict)
                or item.get("name") not in ("dataSetId", "dataSets")
                or not isinstance(item.get("value"), str)
            ):
                raise BadPayload(f"metric {spec['name']}: filters take dataset ids ('name': 'dataSetId')")
            ids = item["value"].split("|")
            groups = {i: {i} for i in ids} if item.get("groupBy") else {"": set(ids)}
        events = self._events(spec["name"], int(start.timestamp() * 1000), int(end.timestamp() * 1000))
        datapoints = []
        for group, ids in groups.items():
            counted = Counter(_bucket(ms, granularity, start) for owner, ms in events
                              if ids is None or spec["name"] in INLET_METRICS or owner in ids)  # fmt: skip
            datapoints.append({"groupBy": {"dataSetId": group} if group else {},
                               "dps": {bucket: float(n) for bucket, n in sorted(counted.items())}})  # fmt: skip
        response = {"metric": spec["name"], "filters": filters, "datapoints": datapoints}
        return {**response, "granularity": (granularity or "none").upper()}

    async def metrics(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        try:
            if not isinstance(body, dict) or not isinstance(body.get("metrics"), list) or not body["metrics"]:
                raise BadPayload("the payload needs start, end and a list of metrics")
            start, end = _moment(body.get("start"), "start"), _moment(body.get("end"), "end")
            if start > end:
                raise BadPayload("Start date cannot be after end date.")
            granularity = body.get("granularity")
            if granularity is not None and str(granularity).lower() not in GRANULARITIES:
                raise BadPayload(f"invalid granularity {granularity!r}")
            granularity = None if granularity is None else str(granularity).lower()
            responses = [self._metric(spec, start, end, granularity) for spec in body["metrics"]]
        except BadPayload as exc:
            return self._error(str(exc))
        return web.json_response({"metricResponses": responses})

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(METRICS, self.api.guarded(self.metrics))
