"""Where XDM schemas come from: a local file, or the Schema Registry (fetched once per schema and run)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

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
from target_adobe_aep.xdm_schema import XED_FULL, reduced

logger = logging.getLogger(__name__)

REGISTRY_PATH = "/data/foundation/schemaregistry/tenant/schemas/"


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
