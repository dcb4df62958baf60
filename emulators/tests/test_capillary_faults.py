"""Injected faults on Capillary paths: documented codes, Retry-After, token revocation, published envelopes
and misstated paging totals."""

from __future__ import annotations

from unittest.mock import ANY

import pytest
from test_capillary_support import api_fixture, busiest  # noqa: F401

from emulators.capillary.doc_samples import sample_bytes
from emulators.faults import FaultProfile

SEARCH = {
    "entityType": "CUSTOMER",
    "searchConditions": [{"fieldId": "firstName", "operator": "EQUALS", "values": ["x"]}],
}


REWARDS = "/api_gateway/rewards/core/v1/management/customer/{id}/issuals"


@pytest.mark.parametrize("status", [461, 521, 500, 502, 503])
def test_capillary_specific_fault_codes(api, status):
    api.server.set_faults({"rules": [{"path": "/v2/search/entity", "status_rates": {status: 1.0}, "max_faults": 1}]})
    response = api.post("/v2/search/entity", SEARCH)
    assert response.status_code == status
    assert response.json() == {"errors": [{"status": False, "code": status, "message": ANY}], "warnings": []}
    assert api.post("/v2/search/entity", SEARCH).status_code == 200


@pytest.mark.parametrize("api_path", ["v1.1", "v2", "rewards", "oauth"])
def test_injected_faults_answer_in_the_paths_own_dialect(api, api_path):
    """One dialect per body, the faulted path's: v1.1 ``response.status``, v2 ``errors[]``, the rewards API's
    ``status``, OAuth's ``data``/``errors``."""
    customer_id = busiest(api.server, "rewards")
    requests = {
        "v1.1": ("/v1.1/*", lambda: api.get("/v1.1/organization/entities", type="STORE")),
        "v2": ("/v2/*", lambda: api.get(f"/v2/customers/{customer_id}/transactions")),
        "rewards": ("/api_gateway/*", lambda: api.get(REWARDS.format(id=customer_id))),
        "oauth": ("/v3/*", lambda: api.post("/v3/oauth/token/generate", {"key": "emulator-key", "secret": "x"})),
    }
    path, send = requests[api_path]
    api.server.set_faults({"rules": [{"path": path, "status_rates": {503: 1.0}, "max_faults": 1}]})
    response = send()
    assert response.status_code == 503
    expected = {
        "v1.1": {"response": {"status": {"success": "false", "code": 503, "message": ANY}}},
        "v2": {"errors": [{"status": False, "code": 503, "message": ANY}], "warnings": []},
        "rewards": {"status": {"success": False, "code": 503, "message": ANY}},
        "oauth": {"data": None, "errors": [{"code": 503, "message": ANY}]},
    }
    assert response.json() == expected[api_path]


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


@pytest.mark.parametrize("status", [200, 401, 498])
def test_documented_envelope_served_verbatim_with_any_status(api, status):
    """The docs print the expired-token envelope (not even valid JSON) without its HTTP status: both forms."""
    rule = {"path": "/v1.1/*", "envelopes": {"v11_envelope__token_expired.txt": 1.0}, "envelope_status": status}
    api.server.set_faults({"rules": [{**rule, "max_faults": 1}]})
    response = api.get("/v1.1/organization/entities", type="STORE")
    assert response.status_code == status
    assert response.content == sample_bytes("v11_envelope__token_expired.txt")
    assert api.get("/v1.1/organization/entities", type="STORE").status_code == 200


def test_unknown_envelope_is_an_error_of_the_emulator(api):
    api.server.set_faults({"rules": [{"path": "/v1.1/*", "envelopes": {"no-such-sample.json": 1.0}}]})
    response = api.get("/v1.1/organization/entities", type="STORE")
    assert response.status_code == 500
    assert "no published Capillary sample" in response.text


def test_envelope_and_status_rates_share_one_budget():
    with pytest.raises(ValueError, match="add up to at most 1"):
        FaultProfile.from_dict({"rules": [{"status_rates": {500: 0.6}, "envelopes": {"x.json": 0.6}}]})
    with pytest.raises(ValueError, match="total must be one of"):
        FaultProfile.from_dict({"rules": [{"total": "lie"}]})


@pytest.mark.parametrize("how", ["omit", "understate", "overstate"])
def test_totals_are_misstated_in_every_dialect(api, how):
    customer = busiest(api.server, "transactions")
    api.server.set_faults({"rules": [{"path": "*", "total": how}]})
    listing = api.get(f"/v2/customers/{customer}/transactions", limit=1).json()
    ledger = api.get(
        "/v2/pointsLedger/getCustomerLedgerInfo", identifierName="id", identifierValue=customer, source="INSTORE",
        limit=1,
    ).json()  # fmt: skip
    rewards = api.get(f"/api_gateway/rewards/core/v1/management/customer/{busiest(api.server, 'rewards')}/issuals",
                      size=1).json()  # fmt: skip
    redemptions = api.get("/v1.1/customer/redemptions", id=busiest(api.server, "redemptions"), limit=1).json()
    entities = api.get("/v1.1/organization/entities", type="TILL", limit=1).json()["response"]
    api.server.set_faults({"rules": []})
    truth = api.get(f"/v2/customers/{customer}/transactions", limit=1).json()["pagination"]["total"]
    assert truth > 1
    points_count = redemptions["response"]["customer"]["points_count"]
    if how == "omit":
        assert "total" not in listing["pagination"]
        assert "pageCount" not in ledger["ledgerDetails"]
        assert "pagingDto" not in rewards
        assert points_count is None
        assert "total" not in entities["pagination"]
    elif how == "understate":
        assert listing["pagination"]["total"] == 1
        assert ledger["ledgerDetails"]["pageCount"] == 1
        assert rewards["pagingDto"]["last"] is True
        assert points_count == 1
        assert entities["pagination"]["total"] == 1
    else:
        assert listing["pagination"]["total"] == truth + 5
        assert ledger["ledgerDetails"]["pageCount"] > ledger["ledgerDetails"]["totalEntries"]
        assert rewards["pagingDto"]["last"] is False
        assert points_count > 1
        assert entities["pagination"]["total"] > len(entities["organization"]["entities"]["entity"])


def test_drifting_totals_move_from_page_to_page(api):
    """``drift``: page n of a v2 listing reports n more rows than there are; its first page tells the truth."""
    customer = busiest(api.server, "transactions")
    api.server.set_faults({"rules": [{"path": "/v2/customers/*", "total": "drift"}]})
    true_total = api.get(f"/v2/customers/{customer}/transactions", limit=100).json()["pagination"]["total"]
    assert true_total >= 3
    totals = [
        api.get(f"/v2/customers/{customer}/transactions", limit=1, offset=page).json()["pagination"]["total"]
        for page in range(3)
    ]
    assert totals == [true_total, true_total + 1, true_total + 2]
