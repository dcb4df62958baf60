"""XDM schemas for local validation: from a local file or the Schema Registry, fetched and compiled once each."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import fastjsonschema
import orjson
import requests

from target_adobe_aep.connection import (
    CONNECTION_ERRORS,
    ConfigError,
    RetriableError,
    RetryPolicy,
    raise_if_retriable,
)
from target_adobe_aep.ims import TokenProvider

logger = logging.getLogger(__name__)

# "$ref/allOf resolved" form; version must be 1 (EN help/xdm/api/getting-started.md).
XED_FULL = "application/vnd.adobe.xed-full+json; version=1"
REGISTRY_PATH = "/data/foundation/schemaregistry/tenant/schemas/"
# XDM uses draft-07 formats (e.g. ``date``) in schemas that declare draft-06; check them all.
_FORMATS = {"date": r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"}


def _refuse_remote(uri: str) -> Any:
    msg = f"the XDM schema references {uri}; use the resolved xed-full form ({XED_FULL})"
    raise ConfigError(msg)


def closed(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object that lists properties and says nothing.

    AEP's Streaming Validation Service rejects extraneous keys ("extraneous key [workEmail] is not permitted",
    EN help/ingestion/quality/streaming-validation.md) although the registry's schemas do not say so.
    """
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: closed(value) if key not in ("enum", "const", "default", "examples") else value
              for key, value in schema.items()}  # fmt: skip
    if isinstance(schema.get("properties"), dict) and "additionalProperties" not in schema:
        result["additionalProperties"] = False
    return result


# Keywords under which pruning stops: their subschemas constrain values in ways a path tree cannot follow.
_UNPRUNABLE = ("allOf", "anyOf", "oneOf", "not", "if", "$ref", "patternProperties", "dependencies")


def pruned(schema: Any, tree: dict[str, Any] | None) -> Any:
    """``schema`` without the properties a mapping cannot write (``tree``, see ``StreamMapping.output_tree``).

    A converted entity only holds keys of ``tree``, so validating it against the pruned schema gives the same
    verdict as against the whole one; what changes is the cost: compiled validators test every declared
    property of each object they visit, and an XDM class with its field groups declares hundreds. ``required``
    and ``additionalProperties`` stay as they are, so missing and extraneous keys are still refused.
    """
    if tree is None or not isinstance(schema, dict) or any(key in schema for key in _UNPRUNABLE):
        return schema
    result = dict(schema)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        result["properties"] = {key: pruned(sub, tree[key]) for key, sub in properties.items() if key in tree}
    if isinstance(schema.get("items"), dict):
        result["items"] = pruned(schema["items"], tree)
    return result


def reduced(schema: Any, output_tree: dict[str, Any] | None) -> Any:
    """``schema`` as the target validates entities against it: closed, then pruned to ``output_tree``."""
    return pruned(closed(schema), output_tree)


class XdmValidator:
    """One compiled XDM schema (``reduced`` to what one mapping writes)."""

    def __init__(self, schema_id: str, schema: dict) -> None:
        self.schema_id = schema_id
        self._validate = fastjsonschema.compile(
            schema, handlers={"http": _refuse_remote, "https": _refuse_remote}, formats=_FORMATS
        )

    def error(self, entity: dict) -> str | None:
        """Why ``entity`` is invalid, or None when it is valid."""
        try:
            self._validate(entity)
        except fastjsonschema.JsonSchemaValueException as exc:
            return exc.message.replace("data", "xdm", 1)
        return None


class SchemaCatalog:
    """XDM schemas by id, each loaded once, reduced per mapping; safe to share between sinks."""

    def __init__(
        self,
        *,
        files: Mapping[str, str],
        fetch: Callable[[str], dict] | None,
    ) -> None:
        self._files = dict(files)
        self._fetch = fetch
        self._lock = threading.Lock()
        self._schemas: dict[str, dict] = {}

    def reduced(self, schema_id: str, output_tree: dict[str, Any] | None = None) -> dict:
        """``schema_id``'s schema for entities holding only the paths of ``output_tree`` (None: any)."""
        with self._lock:
            if schema_id not in self._schemas:
                self._schemas[schema_id] = self._load(schema_id)
            schema = self._schemas[schema_id]
        return reduced(schema, output_tree)

    def _load(self, schema_id: str) -> dict:
        path = self._files.get(schema_id)
        if path is not None:
            try:
                return orjson.loads(Path(path).expanduser().read_bytes())
            except (OSError, orjson.JSONDecodeError) as exc:
                msg = f"cannot read the XDM schema file for {schema_id}: {exc}"
                raise ConfigError(msg) from exc
        if self._fetch is None:
            msg = f"no schema file for {schema_id} in 'schema_files' and no Schema Registry access configured"
            raise ConfigError(msg)
        logger.info("Fetching XDM schema %s from the Schema Registry", schema_id)
        return self._fetch(schema_id)


class SchemaRegistry:
    """``GET /data/foundation/schemaregistry/tenant/schemas/{id}`` with the platform gateway headers."""

    def __init__(
        self,
        *,
        session: requests.Session,
        platform_url: str,
        tokens: TokenProvider,
        api_key: str,
        org_id: str,
        sandbox_name: str,
        retry: RetryPolicy,
        timeout: float,
    ) -> None:
        self._session = session
        self._base = platform_url + REGISTRY_PATH
        self._tokens = tokens
        self._headers = {"x-api-key": api_key, "x-gw-ims-org-id": org_id, "x-sandbox-name": sandbox_name}
        self._retry = retry
        self._timeout = timeout

    def fetch(self, schema_id: str) -> dict:
        url = self._base + quote(schema_id, safe="")

        def send(token: str) -> requests.Response:
            headers = {**self._headers, "Authorization": f"Bearer {token}", "Accept": XED_FULL}
            try:
                response = self._session.get(url, headers=headers, timeout=self._timeout)
            except CONNECTION_ERRORS as exc:
                raise RetriableError(f"Schema Registry request failed: {type(exc).__name__}") from None
            raise_if_retriable(response, "Schema Registry")
            return response

        response = self._retry.call(lambda: self._tokens.authorized(send, "Schema Registry"))
        if response.status_code != 200:
            msg = f"Schema Registry answered HTTP {response.status_code} for schema {schema_id}: {response.text[:300]}"
            raise ConfigError(msg)
        return response.json()
