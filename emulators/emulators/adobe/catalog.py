"""Catalog (datasets and batches) and the failed-batch export of ``platform.adobe.io``.

- ``POST /dataSets`` (EN help/catalog/api/create-dataset.md, help/catalog/datasets/enable-for-profile.md) answers 201
  ``["@/dataSets/{id}"]``; ``PATCH /dataSets/{id}`` changes its tags (JSON Patch); ``GET /dataSets/{id}`` answers
  ``{id: {...}}`` (EN help/catalog/api/look-up-object.md); ``GET /dataSets`` lists them, 20 by default, with the
  filters of EN help/catalog/api/filter-data.md: ``limit`` (1 to 100), ``start``, ``properties``, simple filters
  (``name=a,b``, ``name=!a``) and ``property=<field>==<value>``.
- ``GET /batches`` with ``dataSet``, ``createdAfter``/``createdBefore`` (epoch ms), ``status``, ``limit``, ``start``
  and ``orderBy`` (``asc:``/``desc:created``); ``GET /batches/{id}``. A batch looks like the samples of EN
  help/ingestion/quality/error-diagnostics.md: ``status``, ``relatedObjects`` naming its dataset, ``created``,
  ``metrics`` (``inputRecordCount``, ``outputRecordCount``, ``failedRecordCount``).
- ``GET /export/batches/{id}/failed`` lists a failed batch's files (``_SUCCESS`` and one JSON part file), and
  ``?path={file}`` downloads one: a JSON line per failed record, the message as DCS received it (``header``,
  ``body.xdmMeta``, ``body.xdmEntity``) with ``_validationErrors`` (EN help/ingestion/quality/
  retrieve-failed-batches.md; its sample shows the message's ``body.xdmEntity`` as the failed payload and the
  errors as ``_validationErrors``; EN help/ingestion/quality/streaming-validation.md keeps failed data "for further
  analysis and replay").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from emulators.adobe.platform import PlatformApi, json_body
from emulators.adobe.sandbox import bad_request, not_found
from emulators.adobe.store import Store

CATALOG = "/data/foundation/catalog"
EXPORT = "/data/foundation/export"


def _page(query: Any, default: int = 20) -> tuple[int, int]:
    try:
        limit, start = int(query.get("limit", default)), int(query.get("start", 0))
    except ValueError:
        raise bad_request("limit and start must be integers") from None
    if not 1 <= limit <= 100 or start < 0:
        raise bad_request("limit must be between 1 and 100, start at least 0")
    return limit, start


def _selected(details: dict[str, Any], query: Any) -> dict[str, Any]:
    """Only the ``properties`` asked for (EN help/catalog/api/filter-data.md)."""
    if "properties" not in query:
        return details
    wanted = query["properties"].split(",")
    return {key: value for key, value in details.items() if key in wanted}


def _simple_filter(value: Any, expected: str) -> bool:
    """``name=a,b`` matches either; ``name=!a,b`` neither."""
    negated = expected.startswith("!")
    return (str(value) in expected.lstrip("!").split(",")) != negated


def _batch(row: dict[str, Any], org_id: str) -> dict[str, Any]:
    failed = row["status"] == "failed"
    return {
        "id": row["id"], "externalId": row["id"], "status": row["status"], "imsOrg": org_id,
        "relatedObjects": [{"type": "dataSet", "id": row["dataset_id"]}], "inputFormat": {"format": "json"},
        "created": row["created_ms"], "started": row["created_ms"], "completed": row["created_ms"],
        "updated": row["created_ms"], "version": "1.0.0",
        "metrics": {"inputRecordCount": row["records"], "outputRecordCount": 0 if failed else row["records"],
                    "failedRecordCount": row["records"] if failed else 0},
    }  # fmt: skip


class CatalogApi:
    def __init__(self, api: PlatformApi, store: Callable[[], Store]) -> None:
        self.api = api
        self.sandbox = api.sandbox
        self.store = store  # opened on the server's loop thread after the app is made

    async def create_dataset(self, request: web.Request) -> web.Response:
        dataset_id = self.sandbox.create_dataset(await json_body(request))
        return web.json_response([f"@/dataSets/{dataset_id}"], status=201)

    async def dataset(self, request: web.Request) -> web.Response:
        dataset_id = request.match_info["dataSetId"]
        details = self.sandbox.datasets.get(dataset_id)
        if details is None:
            raise not_found(f"Dataset {dataset_id} not found")
        return web.json_response({dataset_id: _selected(details, request.query)})

    async def patch_dataset(self, request: web.Request) -> web.Response:
        dataset_id = request.match_info["dataSetId"]
        self.sandbox.patch_dataset(dataset_id, await json_body(request))
        return web.json_response([f"@/dataSets/{dataset_id}"])

    async def datasets(self, request: web.Request) -> web.Response:
        limit, start = _page(request.query)
        found = list(self.sandbox.datasets.items())
        for name, expected in request.query.items():
            if name == "property":
                path, sep, value = expected.partition("==")
                if not sep:
                    raise bad_request(f"unsupported property filter {expected!r}: use property=<field>==<value>")
                found = [(i, d) for i, d in found if str(d.get(path)) == value]
            elif name not in ("limit", "start", "properties", "orderBy"):
                found = [(i, d) for i, d in found if _simple_filter(d.get(name), expected)]
        page = found[start : start + limit]
        return web.json_response({i: _selected(d, request.query) for i, d in page})

    def _batch_rows(self, query: Any) -> list[dict[str, Any]]:
        def epoch_ms(name: str) -> int | None:
            try:
                return int(query[name]) if name in query else None
            except ValueError:
                raise bad_request(f"{name} must be a Unix epoch time in milliseconds") from None

        datasets = query["dataSet"].split(",") if "dataSet" in query else None
        status = query["status"].split(",") if "status" in query else None
        rows = self.store().batches(datasets, epoch_ms("createdAfter"), epoch_ms("createdBefore"), status)
        if query.get("orderBy", "").startswith("desc:"):
            rows.reverse()
        return rows

    async def batches(self, request: web.Request) -> web.Response:
        limit, start = _page(request.query)
        rows = self._batch_rows(request.query)[start : start + limit]
        org = self.api.config.org_id
        return web.json_response({row["id"]: _selected(_batch(row, org), request.query) for row in rows})

    def _stored_batch(self, batch_id: str) -> dict[str, Any]:
        rows = self.store().batches(ids=[batch_id])
        if not rows:
            raise not_found(f"Batch {batch_id} not found")
        return rows[0]

    async def batch(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["batchId"]
        return web.json_response({batch_id: _batch(self._stored_batch(batch_id), self.api.config.org_id)})

    async def failed(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["batchId"]
        row = self._stored_batch(batch_id)
        records = self.store().failed_in_batch(batch_id) if row["status"] == "failed" else []
        lines = b"".join(
            orjson.dumps({"header": r["header"],
                          "body": {"xdmMeta": {"schemaRef": r["header"].get("schemaRef")}, "xdmEntity": r["entity"]},
                          "_validationErrors": r["errors"]}, option=orjson.OPT_APPEND_NEWLINE)
            for r in records
        )  # fmt: skip
        part = f"part-00000-{batch_id.lower()}-c000.json"
        if "path" in request.query:
            files = {"_SUCCESS": b"", part: lines} if records else {}
            if request.query["path"] not in files:
                raise not_found(f"File {request.query['path']} not found in batch {batch_id}")
            return web.Response(body=files[request.query["path"]], content_type="application/json")
        base = f"{request.url.origin()}{EXPORT}/batches/{batch_id}/failed?path="
        data = [{"name": name, "length": str(len(content)), "_links": {"self": {"href": base + name}}}
                for name, content in (("_SUCCESS", b""), (part, lines)) if records]  # fmt: skip
        return web.json_response({"data": data, "_page": {"limit": 100, "count": len(data)}})

    def add_routes(self, app: web.Application) -> None:
        guarded = self.api.guarded
        app.router.add_post(f"{CATALOG}/dataSets", guarded(self.create_dataset))
        app.router.add_get(f"{CATALOG}/dataSets", guarded(self.datasets))
        app.router.add_get(f"{CATALOG}/dataSets/{{dataSetId}}", guarded(self.dataset))
        app.router.add_patch(f"{CATALOG}/dataSets/{{dataSetId}}", guarded(self.patch_dataset))
        app.router.add_get(f"{CATALOG}/batches", guarded(self.batches))
        app.router.add_get(f"{CATALOG}/batches/{{batchId}}", guarded(self.batch))
        app.router.add_get(f"{EXPORT}/batches/{{batchId}}/failed", guarded(self.failed))
