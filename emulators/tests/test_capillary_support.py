"""Helpers shared by the Capillary emulator tests (no tests here)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import requests

FIXTURES = Path(__file__).parent / "fixtures" / "capillary"
# Capillary's Basic-auth worked example: user store123, password Pass123, "md5" bdc87b9c...,
# header below. Its hash is not md5("Pass123") (that is 2f23fa35...): the example is inconsistent.
DOC_BASIC_AUTH = "Basic c3RvcmUxMjM6YmRjODdiOWM4OTRkYTUxNjgwNTllMDBlYmZmYjkwNzc="
DOC_BASIC_MD5 = "bdc87b9c894da5168059e00ebffb9077"


def basic_auth(user: str, password: str) -> str:
    """``Basic base64(user:md5_hex(password))``, the documented till scheme."""
    return "Basic " + base64.b64encode(f"{user}:{hashlib.md5(password.encode()).hexdigest()}".encode()).decode()


ANCHOR = "2025-06-01T12:00:00+00:00"


def doc_sample(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def token(server: Any, key: str = "emulator-key", secret: str = "emulator-secret") -> str:
    response = requests.post(
        f"{server.base_url}/v3/oauth/token/generate", json={"key": key, "secret": secret}, timeout=5
    )
    response.raise_for_status()
    return response.json()["data"]["accessToken"]


class Api:
    """requests against the emulator with an OAuth token."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.session = requests.Session()
        self.session.headers["X-CAP-API-OAUTH-TOKEN"] = token(server)

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(f"{self.server.base_url}{path}", params=params, timeout=10)

    def post(self, path: str, body: Any, **params: Any) -> requests.Response:
        return self.session.post(f"{self.server.base_url}{path}", json=body, params=params, timeout=10)

    def search(self, entity: str, conditions: list[dict], **body: Any) -> requests.Response:
        payload = {"entityType": entity, "searchConditions": conditions, "enrichmentFields": {}, **body}
        return self.post("/v2/search/entity", payload, requiredTotal="true")

    def admin(self, fn: str, *args: Any) -> Any:
        from emulators.capillary import ADMIN

        return self.server.call(getattr(self.server.app[ADMIN], fn), *args)


@pytest.fixture(name="api")
def api_fixture(capillary_emulator: Any) -> Api:
    return Api(capillary_emulator)


def query(server: Any, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
    """Rows from the emulator's SQLite, read on the server's loop thread."""
    from emulators.capillary.api import STORE

    return server.call(server.app[STORE].select, sql, params)


def customer_ids(server: Any, status: str = "ACTIVE") -> list[int]:
    return [r["id"] for r in query(server, "SELECT id FROM customers WHERE status = ? ORDER BY id", (status,))]


def assert_shape(doc: Any, actual: Any, path: str = "$", ignore: frozenset[str] = frozenset()) -> None:
    """``actual`` has every key of the doc sample ``doc``, with the same JSON kinds
    (object, array, string, number, boolean); ``null`` in the sample matches anything."""
    if doc is None or path in ignore:
        return
    if isinstance(doc, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for key, value in doc.items():
            if f"{path}.{key}" in ignore:
                continue
            assert key in actual, f"{path}.{key} missing"
            assert_shape(value, actual[key], f"{path}.{key}", ignore)
    elif isinstance(doc, list):
        assert isinstance(actual, list), f"{path}: expected an array, got {actual!r}"
        if doc and actual:
            for item in actual:
                assert_shape(doc[0], item, f"{path}[]", ignore)
    elif isinstance(doc, bool):
        assert isinstance(actual, bool), f"{path}: expected a boolean, got {actual!r}"
    elif isinstance(doc, (int, float)):
        assert not isinstance(actual, bool), f"{path}: expected a number, got {actual!r}"
        assert isinstance(actual, (int, float)), f"{path}: expected a number, got {actual!r}"
    else:
        assert isinstance(actual, str), f"{path}: expected a string, got {actual!r}"
