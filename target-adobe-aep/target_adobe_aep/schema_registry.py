"""Where XDM schemas come from: a local file, or the Schema Registry (fetched once per schema and run)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from target_adobe_aep.connection import ConfigError, RetriesExhausted
from target_adobe_aep.ims import AuthError
from target_adobe_aep.platform import REGISTRY, PlatformClient
from target_adobe_aep.xdm_schema import XED_FULL, reduced

logger = logging.getLogger(__name__)


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
        self._schemas: dict[str, dict | Exception] = {}

    def available(self, schema_id: str) -> bool:
        """Whether ``schema_id``'s schema can be had: a ``schema_files`` entry or Schema Registry access."""
        return schema_id in self._files or self._fetch is not None

    def schema(self, schema_id: str) -> dict:
        """``schema_id``'s whole schema, as the registry or its file gives it. A schema that could not be had
        raises the same error again, without asking again."""
        with self._lock:
            if schema_id not in self._schemas:
                try:
                    self._schemas[schema_id] = self._load(schema_id)
                except (ConfigError, AuthError, RetriesExhausted) as exc:
                    self._schemas[schema_id] = exc
            found = self._schemas[schema_id]
        if isinstance(found, Exception):
            raise found
        return found

    def reduced(self, schema_id: str, output_tree: dict[str, Any] | None = None) -> dict:
        """``schema_id``'s schema for entities holding only the paths of ``output_tree`` (None: any)."""
        return reduced(self.schema(schema_id), output_tree)

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
    """``GET /data/foundation/schemaregistry/tenant/schemas/{id}`` in the resolved xed-full form."""

    def __init__(self, platform: PlatformClient) -> None:
        self._platform = platform

    def fetch(self, schema_id: str) -> dict:
        path = f"{REGISTRY}/tenant/schemas/{quote(schema_id, safe='')}"
        response = self._platform.get(path, "Schema Registry", accept=XED_FULL)
        if response.status_code != 200:
            msg = f"Schema Registry answered HTTP {response.status_code} for schema {schema_id}: {response.text[:300]}"
            raise ConfigError(msg)
        return response.json()
