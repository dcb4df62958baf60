"""Data Collection Service: ``POST /collection/{inletId}`` and ``POST /collection/batch/{inletId}``.

Follows EN ``help/ingestion/tutorials/streaming-multiple-messages.md`` (batch → always 207, one
``responses[]`` entry per message in order, per-message envelope errors), EN
``help/ingestion/quality/streaming-validation.md`` (``syncValidation`` on the single endpoint: 400 with
at most 5 violations, record dropped; otherwise accepted and validated asynchronously, failing records
kept as the dataset's failed records), EN ``help/sources/tutorials/api/create/streaming/http.md``
(401 body of authenticated inlets) and APIS ``data-ingestion.yaml`` (413 above 1 MB, 429, 503).

The inlets are the base connections the sandbox holds (``sandbox.py``: seeded, or made through the Flow Service), a
message's dataset must be one of its datasets and name that dataset's schema, and validation uses the schema as the
Schema Registry composes it now. What one request brings to a dataset is stored as a Catalog batch of the valid
records and one of the failed ones (``store.py``).
"""

from __future__ import annotations

import itertools
import secrets
import time
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

from emulators.adobe.config import AdobeConfig
from emulators.adobe.ims import TokenIssuer, bearer_token
from emulators.adobe.ratelimit import TokenBucket
from emulators.adobe.sandbox import Sandbox
from emulators.adobe.store import Record, Store
from emulators.adobe.xdm import Schema, validation_report
from emulators.faults import FAULT_DECISION, FAULT_PROFILE

INLET_PROBLEM = "http://ns.adobe.com/adobecloud/problem/data-collection-service/inlet"
AUTH_PROBLEM = "https://ns.adobe.com/adobecloud/problem/data-collection-service-authorization"
# contentType values seen in Adobe's examples; the schema major version is always 1.
SCHEMA_MEDIA_TYPES = ("application/vnd.adobe.xed-full+json", "application/vnd.adobe.xed-full-notext+json")

HEADER_MANDATORY = "The 'header' field is mandatory"
WRONG_ORG = "Message has an absent or wrong ims org in the header"
UNKNOWN_FORMAT = "Message has unknown xdm format"
# The message of a refused message's report (streaming-validation.md): what a ``reject_message_rate`` fault answers.
INVALID_MESSAGE = "Message is invalid"


def problem(status: int, message: str, title: str | None = None, problem_type: str = INLET_PROBLEM) -> dict:
    return {
        "type": problem_type,
        "status": status,
        "title": title or HTTPStatus(status).phrase,
        "report": {"message": message},
    }


def _schema_ref_matches(ref: Any, schema: Schema) -> bool:
    if not isinstance(ref, dict) or ref.get("id") != schema.id:
        return False
    media_type, *params = (part.strip() for part in str(ref.get("contentType", "")).split(";"))
    version = dict(p.partition("=")[::2] for p in params).get("version", "")
    return media_type in SCHEMA_MEDIA_TYPES and version.split(".")[0] == "1"


class CollectionService:
    def __init__(self, config: AdobeConfig, issuer: TokenIssuer, sandbox: Sandbox) -> None:
        self.config = config
        self.issuer = issuer
        self.sandbox = sandbox  # the inlets (base connections) and datasets the platform APIs made
        self.store: Store | None = None  # opened on the server's loop thread (see app.py)
        self._requests = TokenBucket(config.requests_per_second)
        self._messages = TokenBucket(config.messages_per_second)
        self._sync: dict[str, TokenBucket] = {}
        self._node = secrets.randbelow(9000) + 1000
        self._sequence = itertools.count(1)

    # -- shared request checks -------------------------------------------------------------------

    def _prefix(self, inlet_id: str) -> str:
        return f"inletId: [{inlet_id}] imsOrgId: [{self.config.org_id}]"

    def _transaction_id(self, received_ms: int) -> str:
        return f"{received_ms}:{self._node}:{next(self._sequence)}"

    @staticmethod
    def _too_many(retry_after: int, message: str) -> web.Response:
        return web.json_response(problem(429, message), status=429, headers={"Retry-After": str(retry_after)})

    @staticmethod
    def _unauthorized(status: int, message: str) -> web.Response:
        body = problem(status, message, "Authorization", AUTH_PROBLEM)
        body["status"] = str(status)  # a string in Adobe's sample (EN sources http.md)
        return web.json_response(body, status=status)

    def schema(self, dataset_id: Any) -> Schema | None:
        """The compiled schema of a dataset the sandbox holds."""
        dataset = self.sandbox.datasets.get(dataset_id) if isinstance(dataset_id, str) else None
        return None if dataset is None else self.sandbox.compiled_schema(dataset["schemaRef"]["id"])

    async def _admit(self, request: web.Request, inlet_id: str) -> tuple[web.Response | None, Any]:
        """Gateway checks in order: inlet, request rate, authorization, size, JSON. Returns (error, parsed body)."""
        connection = self.sandbox.inlet(inlet_id)
        if connection is None:
            return web.json_response(problem(404, f"inletId: [{inlet_id}] Inlet not found"), status=404), None
        wait = self._requests.retry_after()
        if wait is not None:
            return self._too_many(wait, f"{self._prefix(inlet_id)} Too many requests"), None
        if connection["auth"]["params"]["authenticationRequired"]:
            token = bearer_token(request)
            if not token:
                return self._unauthorized(401, f"[{inlet_id}] Ims service token is empty"), None
            if not self.issuer.is_valid(token):
                return self._unauthorized(
                    self.config.invalid_token_status, f"[{inlet_id}] Provided authorization token is invalid or expired"
                ), None
        raw = await request.read()
        if len(raw) > self.config.max_request_bytes:
            message = f"{self._prefix(inlet_id)} Payload size {len(raw)} exceeds {self.config.max_request_bytes} bytes"
            return web.json_response(problem(413, message), status=413), None
        try:
            return None, orjson.loads(raw)
        except orjson.JSONDecodeError:
            message = f"{self._prefix(inlet_id)} Request body is not valid JSON"
            return web.json_response(problem(400, message, "Invalid Message"), status=400), None

    def _envelope(self, message: Any) -> tuple[str | None, str, Any]:
        """(error, dataset id, xdmEntity) of one message, per DCCS's envelope checks: the dataset must exist and its
        schema be the one the message names."""
        if not isinstance(message, dict) or not isinstance(message.get("header"), dict):
            return HEADER_MANDATORY, "", None
        header, body = message["header"], message.get("body")
        # DCCS adds an absent imsOrgId itself (streaming-multiple-messages.md); a different one is rejected.
        if header.get("imsOrgId", self.config.org_id) != self.config.org_id:
            return WRONG_ORG, "", None
        dataset_id = header.get("datasetId")
        schema = self.schema(dataset_id)
        if schema is None or not _schema_ref_matches(header.get("schemaRef"), schema) or not isinstance(body, dict):
            return UNKNOWN_FORMAT, "", None
        meta, entity = body.get("xdmMeta"), body.get("xdmEntity")
        if not isinstance(meta, dict) or not _schema_ref_matches(meta.get("schemaRef"), schema):
            return UNKNOWN_FORMAT, "", None
        if not isinstance(entity, dict):
            return UNKNOWN_FORMAT, "", None
        return None, dataset_id, entity

    def _violations(self, dataset_id: str, entity: dict, *, sync: bool = False) -> list[dict[str, Any]]:
        """The entity's violations; ``validate=False`` skips the asynchronous validation only (a client that asks
        for syncValidation gets it)."""
        schema = self.schema(dataset_id)
        return schema.violations(entity) if schema is not None and (self.config.validate or sync) else []

    # -- endpoints --------------------------------------------------------------------------------

    async def single(self, request: web.Request) -> web.Response:
        inlet_id = request.match_info["inletId"]
        sync = request.query.get("syncValidation", "").lower() == "true"
        if sync and not self.config.sync_validation_supported:
            message = f"{self._prefix(inlet_id)} Sync validation is not supported at this location"
            return web.json_response(problem(501, message), status=501)
        error, message = await self._admit(request, inlet_id)
        if error is not None:
            return error
        if sync:
            bucket = self._sync.setdefault(inlet_id, TokenBucket(self.config.sync_validation_per_minute, per=60))
            wait = bucket.retry_after()
            if wait is not None:
                return self._too_many(wait, f"{self._prefix(inlet_id)} Too many syncValidation requests")
        wait = self._messages.retry_after()
        if wait is not None:
            return self._too_many(wait, f"{self._prefix(inlet_id)} Too many messages")
        received_ms = int(time.time() * 1000)
        envelope_error, dataset_id, entity = self._envelope(message)
        if envelope_error is not None:
            body = problem(400, f"{self._prefix(inlet_id)} {envelope_error}", "Invalid Message")
            return web.json_response(body, status=400)
        violations = self._violations(dataset_id, entity, sync=sync)
        if sync and violations:
            # Sync validation drops the record and reports why (streaming-validation.md).
            body = problem(400, f"{self._prefix(inlet_id)} Message is invalid", "Invalid XDM Message Format")
            body["report"]["cause"] = {"_streamingValidation": [validation_report(violations)]}
            return web.json_response(body, status=400)
        xaction_id = self._transaction_id(received_ms)
        self.store.add([Record(dataset_id, entity, inlet_id, xaction_id, received_ms, violations or None,
                               message["header"])])  # fmt: skip
        return web.json_response(
            {
                "inletId": inlet_id,
                "xactionId": xaction_id,
                "receivedTimeMs": received_ms,
                "syncValidation": {"status": "pass"} if sync else {"skipped": True},
            }
        )

    async def batch(self, request: web.Request) -> web.Response:
        # syncValidation is not available here (streaming-validation.md); the parameter is ignored.
        inlet_id = request.match_info["inletId"]
        error, payload = await self._admit(request, inlet_id)
        if error is not None:
            return error
        messages = payload.get("messages") if isinstance(payload, dict) else None
        if not isinstance(messages, list):
            message = f"{self._prefix(inlet_id)} The 'messages' field is mandatory"
            return web.json_response(problem(400, message, "Invalid Message"), status=400)
        wait = self._messages.retry_after(len(messages))
        if wait is not None:
            return self._too_many(wait, f"{self._prefix(inlet_id)} Too many messages")
        received_ms = int(time.time() * 1000)
        batch_id = self._transaction_id(received_ms)
        responses: list[dict[str, Any]] = []
        records: list[Record] = []
        decision, faults = request.get(FAULT_DECISION), request.app[FAULT_PROFILE]
        for index, message in enumerate(messages):
            envelope_error, dataset_id, entity = self._envelope(message)
            if envelope_error is None and decision is not None and faults.rejects_message(decision):
                envelope_error = INVALID_MESSAGE
            if envelope_error is not None:
                responses.append({"statusCode": 400, "message": f"{self._prefix(inlet_id)} {envelope_error}"})
                continue
            xaction_id = f"{batch_id}:{index}"
            violations = self._violations(dataset_id, entity)
            records.append(Record(dataset_id, entity, inlet_id, xaction_id, received_ms, violations or None,
                                  message["header"]))  # fmt: skip
            responses.append({"xactionId": xaction_id})
        self.store.add(records)
        body = {"inletId": inlet_id, "batchId": batch_id, "receivedTimeMs": received_ms, "responses": responses}
        return web.json_response(body, status=207)

    def _counted(self, handler: Any) -> Any:
        """``handler``, each call to an existing inlet counted with its status (the inlet metrics)."""

        async def counted(request: web.Request) -> web.Response:
            response = await handler(request)
            inlet_id = request.match_info["inletId"]
            if self.sandbox.inlet(inlet_id) is not None:
                self.store.add_inlet_call(inlet_id, int(time.time() * 1000), response.status)
            return response

        return counted

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/collection/batch/{inletId}", self._counted(self.batch))
        app.router.add_post("/collection/{inletId}", self._counted(self.single))
