"""Adobe emulator: IMS token endpoints and the platform.adobe.io gateway + Schema Registry."""

import base64
import json
import time
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from emulators.adobe import ADOBE, AdobeConfig
from emulators.adobe.catalog import CATALOG

SAMPLES = json.loads((Path(__file__).parent / "fixtures" / "adobe" / "doc_samples.json").read_text())
CONFIG = AdobeConfig()
CLIENT_ID, CLIENT_SECRET = next(iter(CONFIG.clients.items()))
SCOPE = "openid,AdobeID,read_organizations,additional_info.projectedProductContext,session"
REGISTRY = "/data/foundation/schemaregistry"


def token_request(server, path="/ims/token/v3", **overrides):
    form = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "grant_type": "client_credentials", "scope": SCOPE}
    form.update(overrides)
    return requests.post(server.base_url + path, data={k: v for k, v in form.items() if v is not None}, timeout=5)


def platform_headers(token, **overrides):
    headers = {
        "Authorization": f"Bearer {token}",
        "x-api-key": CLIENT_ID,
        "x-gw-ims-org-id": CONFIG.org_id,
        "x-sandbox-name": "prod",
        "Accept": "application/vnd.adobe.xed-full+json; version=1",
    }
    headers.update(overrides)
    return {k: v for k, v in headers.items() if v is not None}


@pytest.fixture
def token(adobe_emulator):
    return token_request(adobe_emulator).json()["access_token"]


def test_v3_token_expires_in_seconds_like_the_docs_sample(adobe_emulator):
    response = token_request(adobe_emulator)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == set(SAMPLES["ims_v3_response"])
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86400  # seconds; the doc sample shows 86399 remaining


def test_legacy_token_expires_in_milliseconds(adobe_emulator):
    # The Capillary source doc's legacy call: space-separated scopes, expires_in ≈ 86399994 (ms).
    response = token_request(adobe_emulator, path="/ims/token", scope=SCOPE.replace(",", " "))
    assert response.status_code == 200
    assert set(response.json()) == set(SAMPLES["ims_legacy_response"])
    assert response.json()["expires_in"] == 86_400_000


def test_token_claims_carry_created_at_and_expires_in_in_ms(adobe_emulator):
    token = token_request(adobe_emulator).json()["access_token"]
    claims_part = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(claims_part + "=" * (-len(claims_part) % 4)))
    assert claims["client_id"] == CLIENT_ID
    assert claims["expires_in"] == "86400000"
    assert abs(int(claims["created_at"]) - time.time() * 1000) < 60_000
    assert CLIENT_SECRET not in token


def test_parameters_in_the_query_string_are_accepted(adobe_emulator):
    url = f"{adobe_emulator.base_url}/ims/token/v3?client_id={CLIENT_ID}"
    form = {"client_secret": CLIENT_SECRET, "grant_type": "client_credentials", "scope": "openid"}
    assert requests.post(url, data=form, timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "nobody"}, 401, "invalid_client"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": None}, 400, "invalid_request"),
        ({"client_secret": None}, 400, "invalid_request"),
        ({"scope": "openid,admin_everything"}, 400, "invalid_scope"),
    ],
)
def test_bad_token_requests_get_oauth2_errors(adobe_emulator, overrides, status, error):
    response = token_request(adobe_emulator, **overrides)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert body["error_description"]
    assert CLIENT_SECRET not in response.text


@pytest.mark.adobe(token_lifetime_seconds=30)
def test_tokens_expire_after_the_configured_lifetime(adobe_emulator):
    now = [1_700_000_000.0]  # the token issuer's clock, moved by hand
    adobe_emulator.app[ADOBE].issuer.now = lambda: now[0]
    response = token_request(adobe_emulator)
    assert response.json()["expires_in"] == 30
    token = response.json()["access_token"]
    stats = adobe_emulator.base_url + REGISTRY + "/stats"
    now[0] += 29
    assert requests.get(stats, headers=platform_headers(token), timeout=5).status_code == 200
    now[0] += 1
    response = requests.get(stats, headers=platform_headers(token), timeout=5)
    assert (response.status_code, response.json()["error_code"]) == (401, "401013")


def test_stats_returns_the_tenant_id(adobe_emulator, token):
    response = requests.get(adobe_emulator.base_url + REGISTRY + "/stats", headers=platform_headers(token), timeout=5)
    assert response.status_code == 200
    assert response.json()["tenantId"] == "capillarydemo"
    assert response.json()["imsOrg"] == CONFIG.org_id


@pytest.mark.adobe(tenant_id="acme")
def test_tenant_id_is_configurable_and_substituted_in_schemas(adobe_emulator, token):
    base = adobe_emulator.base_url + REGISTRY
    assert requests.get(base + "/stats", headers=platform_headers(token), timeout=5).json()["tenantId"] == "acme"
    listing = requests.get(base + "/tenant/schemas", headers=platform_headers(token), timeout=5).json()["results"]
    assert all(s["$id"].startswith("https://ns.adobe.com/acme/schemas/") for s in listing)
    schema = requests.get(
        base + "/tenant/schemas/" + listing[0]["meta:altId"], headers=platform_headers(token), timeout=5
    ).json()
    assert "_acme" in schema["properties"]
    assert "{TENANT_ID}" not in json.dumps(schema)


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"Authorization": None}, 403, "403010"),
        ({"Authorization": "Bearer not-a-token"}, 401, "401013"),
        ({"x-api-key": None}, 403, "403000"),
        ({"x-api-key": "someone-else"}, 403, "403003"),
        ({"x-gw-ims-org-id": None}, 400, "400003"),
        ({"x-gw-ims-org-id": "OTHER@AdobeOrg"}, 403, "403025"),
    ],
)
def test_gateway_errors_use_the_documented_codes(adobe_emulator, token, overrides, status, code):
    url = adobe_emulator.base_url + REGISTRY + "/stats"
    response = requests.get(url, headers=platform_headers(token, **overrides), timeout=5)
    assert response.status_code == status
    assert response.json()["error_code"] == code
    assert response.json()["message"]


def test_unknown_sandbox_is_not_found_and_absent_sandbox_means_prod(adobe_emulator, token):
    url = adobe_emulator.base_url + REGISTRY + "/stats"
    assert requests.get(url, headers=platform_headers(token, **{"x-sandbox-name": "dev"}), timeout=5).status_code == 404
    assert requests.get(url, headers=platform_headers(token, **{"x-sandbox-name": None}), timeout=5).status_code == 200


def _schemas(server, token):
    url = server.base_url + REGISTRY + "/tenant/schemas"
    return {s["title"]: s for s in requests.get(url, headers=platform_headers(token), timeout=5).json()["results"]}


def test_schema_lookup_by_alt_id_and_by_url_encoded_id(adobe_emulator, token):
    listed = _schemas(adobe_emulator, token)["Capillary Loyalty Events"]
    base = adobe_emulator.base_url + REGISTRY + "/tenant/schemas/"
    by_alt = requests.get(base + listed["meta:altId"], headers=platform_headers(token), timeout=5)
    by_id = requests.get(base + quote(listed["$id"], safe=""), headers=platform_headers(token), timeout=5)
    assert by_alt.status_code == by_id.status_code == 200
    assert by_alt.headers["Content-Type"].startswith("application/vnd.adobe.xed-full+json")
    schema = by_alt.json()
    assert schema == by_id.json()
    assert schema["meta:class"] == "https://ns.adobe.com/xdm/context/experienceevent"
    assert schema["type"] == "object"
    assert {"_id", "timestamp", "identityMap", "commerce", "productListItems", "_capillarydemo"} <= set(
        schema["properties"]
    )
    order = schema["properties"]["commerce"]["properties"]["order"]["properties"]
    assert order["currencyCode"]["pattern"] == "^[A-Z]{3}$"
    assert schema["properties"]["timestamp"]["format"] == "date-time"


def test_profile_schema_has_loyalty_person_and_tenant_fields(adobe_emulator, token):
    listed = _schemas(adobe_emulator, token)["Capillary Loyalty Profile"]
    url = adobe_emulator.base_url + REGISTRY + "/tenant/schemas/" + listed["meta:altId"]
    schema = requests.get(url, headers=platform_headers(token), timeout=5).json()
    props = schema["properties"]
    assert schema["meta:class"] == "https://ns.adobe.com/xdm/context/profile"
    assert {"points", "lifetimePoints", "tier", "joinDate"} <= set(props["loyalty"]["properties"])
    assert {"name"} <= set(props["person"]["properties"])
    assert props["personalEmail"]["properties"]["address"]["format"] == "email"
    tenant = props["_capillarydemo"]["properties"]["capillary"]["properties"]
    assert tenant["customFields"]["meta:xdmType"] == "map"
    assert tenant["customFields"]["additionalProperties"]["type"] == "string"


def test_notext_form_drops_titles_and_descriptions(adobe_emulator, token):
    listed = _schemas(adobe_emulator, token)["Capillary Loyalty Events"]
    url = adobe_emulator.base_url + REGISTRY + "/tenant/schemas/" + listed["meta:altId"]
    accept = "application/vnd.adobe.xed-full-notext+json; version=1"
    response = requests.get(url, headers=platform_headers(token, Accept=accept), timeout=5)
    assert response.status_code == 200
    texts = []

    def collect(node):  # string titles and descriptions; fields named so (``_schema.description``) stay
        if isinstance(node, dict):
            texts.extend(node[key] for key in ("title", "description") if isinstance(node.get(key), str))
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    schema = response.json()
    collect(schema)
    assert texts == []
    assert (
        "description"
        in schema["properties"]["commerce"]["properties"]["billing"]["properties"]["address"]["properties"]["_schema"][
            "properties"
        ]
    )
    assert "productListItems" in schema["properties"]


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("application/vnd.adobe.xed-full+json", 406),  # the version is mandatory on lookups
        ("application/json", 406),
        ("application/vnd.adobe.xed-full+json; version=2", 404),
    ],
)
def test_lookup_requires_a_versioned_accept_header(adobe_emulator, token, accept, status):
    listed = _schemas(adobe_emulator, token)["Capillary Loyalty Events"]
    url = adobe_emulator.base_url + REGISTRY + "/tenant/schemas/" + listed["meta:altId"]
    assert requests.get(url, headers=platform_headers(token, Accept=accept), timeout=5).status_code == status


def test_unknown_schema_is_not_found(adobe_emulator, token):
    url = adobe_emulator.base_url + REGISTRY + "/tenant/schemas/_capillarydemo.schemas.deadbeef"
    assert requests.get(url, headers=platform_headers(token), timeout=5).status_code == 404


def test_schemas_are_served_in_xed_full_shape_from_adobe_xdm(adobe_emulator, token):
    """Standard fields come from adobe/xdm (commit and CC BY 4.0 licence noted in the generated parts) in the
    registry's xed-full shape: resolved, unprefixed, each with meta:xdmField, and objects not declared closed (AEP's
    validation closes them; the emulator's does too, see test_adobe_dcs)."""
    listed = _schemas(adobe_emulator, token)["Capillary Loyalty Profile"]
    url = adobe_emulator.base_url + REGISTRY + "/tenant/schemas/" + listed["meta:altId"]
    props = requests.get(url, headers=platform_headers(token), timeout=5).json()["properties"]
    assert props["_id"]["meta:xdmField"] == "@id"
    assert props["billingAddress"]["meta:referencedFrom"] == "https://ns.adobe.com/xdm/common/address"
    assert props["_repo"]["properties"]["createDate"]["meta:xdmField"] == "repo:createDate"
    assert "additionalProperties" not in props["person"]
    assert props["identityMap"]["meta:xdmType"] == "map"
    standard = resources.files("emulators.adobe").joinpath("schemas", "standard")
    for part in standard.iterdir():
        comment = json.loads(part.read_text())["$comment"]
        assert "4a4fc5f8dd175cd81f2419b85130a6fc25053890" in comment
        assert "CC BY 4.0" in comment


def test_catalog_dataset_lookup_has_the_documented_shape(adobe_emulator, token):
    """GET /dataSets/{id} answers {id: {...}} with the dataset's schemaRef (EN help/catalog/api/look-up-object.md);
    ``properties`` selects what is returned; an unknown id is 404; the gateway checks apply."""
    base = adobe_emulator.base_url + CATALOG + "/dataSets/"
    events = adobe_emulator.app[ADOBE].dcs.schema(CONFIG.event_dataset_id)
    response = requests.get(base + CONFIG.event_dataset_id, headers=platform_headers(token, Accept=None), timeout=5)
    assert response.status_code == 200
    (dataset_id, details), *others = response.json().items()
    assert (dataset_id, others) == (CONFIG.event_dataset_id, [])
    assert details["schemaRef"] == {"id": events.id, "contentType": "application/vnd.adobe.xed-full+json;version=1"}
    assert details["tags"]["unifiedProfile"] == ["enabled:true"]
    only = requests.get(base + CONFIG.profile_dataset_id, params={"properties": "schemaRef"},
                        headers=platform_headers(token), timeout=5).json()  # fmt: skip
    assert list(only[CONFIG.profile_dataset_id]) == ["schemaRef"]
    assert (
        requests.get(base + "0123456789abcdef01234567", headers=platform_headers(token), timeout=5).status_code == 404
    )
    wrong_org = platform_headers(token, **{"x-gw-ims-org-id": "OTHER@AdobeOrg"})
    assert requests.get(base + CONFIG.event_dataset_id, headers=wrong_org, timeout=5).json()["error_code"] == "403025"
