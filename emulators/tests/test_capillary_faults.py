"""Injected faults on Capillary paths: documented codes, Retry-After, token revocation."""

from __future__ import annotations

import pytest
from test_capillary_support import api_fixture  # noqa: F401

SEARCH = {
    "entityType": "CUSTOMER",
    "searchConditions": [{"fieldId": "firstName", "operator": "EQUALS", "values": ["x"]}],
}


@pytest.mark.parametrize("status", [461, 521, 500, 502, 503])
def test_capillary_specific_fault_codes(api, status):
    api.server.set_faults({"rules": [{"path": "/v2/search/entity", "status_rates": {status: 1.0}, "max_faults": 1}]})
    response = api.post("/v2/search/entity", SEARCH)
    assert response.status_code == status
    assert response.json()["errors"][0]["code"] == status
    assert response.json()["response"]["status"]["code"] == status
    assert api.post("/v2/search/entity", SEARCH).status_code == 200


def test_rate_limit_with_retry_after(api):
    api.server.set_faults(
        {"rules": [{"path": "/v1.1/*", "status_rates": {429: 1.0}, "retry_after": 2, "max_faults": 1}]}
    )
    response = api.get("/v1.1/organization/entities", type="STORE")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"


def test_token_revocation_fault(api):
    api.server.set_faults({"rules": [{"path": "/v1.1/*", "revoke_token_rate": 1.0, "max_faults": 1}]})
    # The revoking request itself is then refused by auth, as are later ones with the old token.
    assert api.get("/v1.1/organization/entities", type="STORE").status_code == 401
    assert api.get("/v1.1/organization/entities", type="STORE").status_code == 401
