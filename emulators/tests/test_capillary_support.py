"""Helpers shared by the Capillary emulator tests (no tests here)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator

from emulators.capillary.doc_samples import sample, table_keys

README = Path(__file__).parents[1] / "README.md"
# Capillary's Basic-auth worked example: user store123, password Pass123, "md5" bdc87b9c...,
# header below. Its hash is not md5("Pass123") (that is 2f23fa35...): the example is inconsistent.
DOC_BASIC_AUTH = "Basic c3RvcmUxMjM6YmRjODdiOWM4OTRkYTUxNjgwNTllMDBlYmZmYjkwNzc="
DOC_BASIC_MD5 = "bdc87b9c894da5168059e00ebffb9077"


def basic_auth(user: str, password: str) -> str:
    """``Basic base64(user:md5_hex(password))``, the documented till scheme."""
    return "Basic " + base64.b64encode(f"{user}:{hashlib.md5(password.encode()).hexdigest()}".encode()).decode()


ANCHOR = "2025-06-01T12:00:00+00:00"


def token(server: Any, key: str = "emulator-key", secret: str = "emulator-secret") -> str:
    response = requests.post(
        f"{server.base_url}/v3/oauth/token/generate", json={"key": key, "secret": secret}, timeout=5
    )
    response.raise_for_status()
    return response.json()["data"]["accessToken"]


class Api:
    """requests against the emulator with an OAuth token."""

    def __init__(self, server: Any, key: str = "emulator-key", secret: str = "emulator-secret") -> None:
        self.server = server
        self.session = requests.Session()
        self.session.headers["X-CAP-API-OAUTH-TOKEN"] = token(server, key, secret)

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


def busiest(server: Any, table: str) -> int:
    """The active customer with the most rows in ``table``."""
    return query(
        server,
        f"SELECT t.customer_id AS id FROM {table} t JOIN customers c ON c.id = t.customer_id "
        "WHERE c.status = 'ACTIVE' GROUP BY t.customer_id ORDER BY COUNT(*) DESC LIMIT 1",
    )[0]["id"]


def customer_ids(server: Any, status: str = "ACTIVE") -> list[int]:
    return [r["id"] for r in query(server, "SELECT id FROM customers WHERE status = ? ORDER BY id", (status,))]


#: Maps whose keys an org defines (custom and extended fields, item attributes, alternate currencies).
ORG_DEFINED = frozenset(
    {"customFields", "extendedFields", "attributes", "attributesSet", "netAlternateCurrenciesOnEvent"}
)


def key_values(value: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    """Every key path of a JSON value (``$.a.b[].c``) with each value under it, stopping at maps of org-defined
    names."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", item
            if key not in ORG_DEFINED:
                yield from key_values(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from key_values(item, f"{path}[]")


def key_paths(value: Any) -> set[str]:
    """Every key path of a JSON value (``$.a.b[].c``), stopping at maps of org-defined names."""
    return {path for path, _ in key_values(value)}


def documented_paths(samples: list[str], keys: list[str] = ()) -> set[str]:
    """Key paths of an endpoint's samples and of the ``*.keys.json`` files transcribing its response tables."""
    paths = set().union(*(key_paths(sample(name)) for name in samples))
    for name in keys:
        for key in table_keys(name):
            parts = key.split(".")
            prefixes = ["$." + ".".join(parts[: n + 1]) for n in range(len(parts))]
            paths |= {prefix.removesuffix("[]") for prefix in prefixes}
    return paths


def deliberate_extras(endpoint: str) -> set[str]:
    """The key paths emulators/README.md lists as deliberate extras of ``endpoint``, with their reasons."""
    text = README.read_text(encoding="utf-8")
    table = text.split("### Deliberate extras", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \| .+\|$", table, re.MULTILINE)
    return {f"$.{path}" for where, path in rows if where == endpoint}


def assert_documented(endpoint: str, actual: Any, samples: list[str], keys: list[str] = ()) -> None:
    """Every key ``actual`` has appears in a documented sample or response table of ``endpoint``, or is a
    deliberate extra listed in emulators/README.md; every value under a key of a response table has a type that
    table publishes (values under sample keys: ``assert_shape``)."""
    allowed = documented_paths(samples, keys) | deliberate_extras(endpoint)
    undocumented = sorted(key_paths(actual) - allowed)
    assert not undocumented, f"{endpoint} serves keys the docs do not show: {undocumented}"
    published = {f"$.{key}": types for name in keys for key, types in table_keys(name).items() if types}
    is_type = Draft202012Validator.TYPE_CHECKER.is_type
    mistyped = {
        f"{path}: {value!r} is not {' or '.join(published[path])}"
        for path, value in key_values(actual)
        if path in published and not any(is_type(value, kind) for kind in published[path])
    }
    assert not mistyped, f"{endpoint} serves values the docs type otherwise: {sorted(mistyped)}"


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
            if key in ORG_DEFINED:  # names an org defines: only the kind of value is compared
                assert isinstance(actual[key], type(value)), f"{path}.{key}: expected {type(value).__name__}"
                continue
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
