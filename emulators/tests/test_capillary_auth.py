"""OAuth tokens, till Basic auth and their failures."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
import requests
from test_capillary_support import DOC_BASIC_AUTH, DOC_BASIC_MD5, basic_auth, token

from emulators.capillary.api import AUTH
from emulators.capillary.doc_samples import sample_bytes

ENTITIES = "/v1.1/organization/entities?type=STORE"
LEDGER = "/v2/pointsLedger/getCustomerLedgerInfo?identifierName=id&identifierValue=500000001&source=INSTORE"
REWARDS = "/api_gateway/rewards/core/v1/management/customer/500000001/issuals"


def test_token_is_issued_with_the_configured_ttl_and_accepted(capillary_emulator):
    response = requests.post(
        f"{capillary_emulator.base_url}/v3/oauth/token/generate",
        json={"key": "emulator-key", "secret": "emulator-secret"},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.json()["data"]["ttlSeconds"] == 300
    headers = {"X-CAP-API-OAUTH-TOKEN": response.json()["data"]["accessToken"]}
    assert requests.get(capillary_emulator.base_url + ENTITIES, headers=headers, timeout=5).status_code == 200


def test_wrong_secret_fails_to_generate_a_token(capillary_emulator):
    response = requests.post(
        f"{capillary_emulator.base_url}/v3/oauth/token/generate",
        json={"key": "emulator-key", "secret": "wrong"},
        timeout=5,
    )
    assert response.status_code == 401
    # The authorization-flow page's sample for an invalid key or secret, byte for byte.
    assert response.content == sample_bytes("v3_oauth_token_generate__invalid_key.json")
    assert response.json() == {"data": None, "errors": [{"code": 320001, "message": "Invalid client key and secret"}]}
    assert "wrong" not in response.text


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (ENTITIES, {}),
        (ENTITIES, {"X-CAP-API-OAUTH-TOKEN": "not-a-token"}),
        (ENTITIES, {"Authorization": "Basic c3RvcmUxMjM6d3Jvbmc="}),  # store123:wrong
        (ENTITIES, {"Authorization": "Basic " + base64.b64encode("store123:ü".encode()).decode()}),
        (ENTITIES, {"Authorization": "Basic not-base64!"}),
        (LEDGER, {}),
        (REWARDS, {"X-CAP-API-OAUTH-TOKEN": "not-a-token"}),
    ],
)
def test_missing_or_wrong_credentials_get_401_in_the_paths_dialect(capillary_emulator, path, headers):
    response = requests.get(capillary_emulator.base_url + path, headers=headers, timeout=5)
    assert response.status_code == 401
    body = response.json()
    if path.startswith("/v1.1/"):  # as the authorization-flow page prints it: a string code, "success": "true"
        message = body["response"]["status"]["message"]
        assert body == {
            "response": {"status": {"success": "true", "code": "401", "message": message}, "customers": None}
        }
    elif path.startswith("/api_gateway/rewards/"):  # the rewards API's status block
        assert body == {"status": {"success": False, "code": 401, "message": body["status"]["message"]}}
    else:  # v2 errors[]
        assert body == {
            "errors": [{"status": False, "code": 401, "message": body["errors"][0]["message"]}],
            "warnings": [],
        }


def test_basic_auth_worked_example_from_the_docs(capillary_emulator):
    url = capillary_emulator.base_url + ENTITIES
    # The example's encoding step is right: base64("store123:" + its hash) is its header...
    assert "Basic " + base64.b64encode(f"store123:{DOC_BASIC_MD5}".encode()).decode() == DOC_BASIC_AUTH
    # ...but its hash is not md5("Pass123"), so the literal header is refused and the computed one accepted.
    assert hashlib.md5(b"Pass123").hexdigest() != DOC_BASIC_MD5
    assert requests.get(url, headers={"Authorization": DOC_BASIC_AUTH}, timeout=5).status_code == 401
    assert requests.get(url, headers={"Authorization": basic_auth("store123", "Pass123")}, timeout=5).status_code == 200


def test_token_expires_after_its_ttl(capillary_emulator):
    now = [1_700_000_000.0]  # the token store's clock, moved by hand
    capillary_emulator.app[AUTH].now = lambda: now[0]
    headers = {"X-CAP-API-OAUTH-TOKEN": token(capillary_emulator)}
    url = capillary_emulator.base_url + ENTITIES
    now[0] += 299
    assert requests.get(url, headers=headers, timeout=5).status_code == 200
    now[0] += 1  # the default ttl, 300 s, is over
    response = requests.get(url, headers=headers, timeout=5)
    assert response.status_code == 401
    status = response.json()["response"]["status"]
    assert status["code"] == "498"  # "Token expired", as documented: "Token expired at 2019-12-02T12:31:15.000+0530"
    assert re.fullmatch(r"Token expired at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0530", status["message"])
    # Regenerating with the same API works again.
    assert requests.get(url, headers={"X-CAP-API-OAUTH-TOKEN": token(capillary_emulator)}, timeout=5).status_code == 200


def test_revoke_tokens_admin_call(capillary_emulator):
    headers = {"X-CAP-API-OAUTH-TOKEN": token(capillary_emulator)}
    url = capillary_emulator.base_url + ENTITIES
    assert requests.get(url, headers=headers, timeout=5).status_code == 200
    assert requests.post(f"{capillary_emulator.base_url}/_emulator/revoke-tokens", timeout=5).status_code == 200
    assert requests.get(url, headers=headers, timeout=5).status_code == 401
    # Basic auth is unaffected by token revocation.
    assert requests.get(url, headers={"Authorization": basic_auth("store123", "Pass123")}, timeout=5).status_code == 200


@pytest.mark.capillary(oauth_clients={"k2": "s2"}, till_credentials={"till9": "pw9"})
def test_credentials_are_configurable(capillary_emulator):
    assert (
        requests.post(
            f"{capillary_emulator.base_url}/v3/oauth/token/generate",
            json={"key": "emulator-key", "secret": "emulator-secret"},
            timeout=5,
        ).status_code
        == 401
    )
    headers = {"X-CAP-API-OAUTH-TOKEN": token(capillary_emulator, "k2", "s2")}
    assert requests.get(capillary_emulator.base_url + ENTITIES, headers=headers, timeout=5).status_code == 200
    ok = requests.get(
        capillary_emulator.base_url + ENTITIES, headers={"Authorization": basic_auth("till9", "pw9")}, timeout=5
    )
    assert ok.status_code == 200
