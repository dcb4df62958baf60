"""Adobe emulator: DCS streaming ingestion — envelope, auth, limits, XDM validation, storage, faults."""

import copy
import json
import time
from pathlib import Path

import pytest
import requests

from emulators.adobe import ADOBE, AdobeConfig

FIXTURES = Path(__file__).parent / "fixtures" / "adobe"
SAMPLES = json.loads((FIXTURES / "doc_samples.json").read_text())
ENTITIES = json.loads((FIXTURES / "xdm_entities.json").read_text())
CONFIG = AdobeConfig()
ORG = CONFIG.org_id
PROFILES, EVENTS = CONFIG.profile_dataset_id, CONFIG.event_dataset_id
OPEN, AUTH = CONFIG.open_inlet_id, CONFIG.auth_inlet_id
XED = "application/vnd.adobe.xed-full+json;version=1"
UNKNOWN = "Message has unknown xdm format"
WRONG_ORG = "Message has an absent or wrong ims org in the header"


def schema_id(server, dataset_id):
    return server.app[ADOBE].dcs.schema(dataset_id).id


def message(server, dataset_id, entity, content_type=XED):
    ref = {"id": schema_id(server, dataset_id), "contentType": content_type}
    return {
        "header": {"schemaRef": ref, "imsOrgId": ORG, "datasetId": dataset_id, "createdAt": 1526283801869},
        "body": {"xdmMeta": {"schemaRef": ref}, "xdmEntity": entity},
    }


def event(**changes):
    entity = copy.deepcopy(ENTITIES["event"])
    entity.update(changes)
    return entity


def post(server, path, body, token=None, **params):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, bytes) else json.dumps(body)
    return requests.post(server.base_url + path, data=data, headers=headers, params=params, timeout=10)


def send(server, msg, inlet=OPEN, **params):
    return post(server, f"/collection/{inlet}", msg, **params)


def send_batch(server, messages, inlet=OPEN, **params):
    return post(server, f"/collection/batch/{inlet}", {"messages": messages}, **params)


def counts(server):
    return server.call(server.app[ADOBE].store.counts)


def issue_token(server):
    state = server.app[ADOBE]
    return server.call(state.issuer.issue, next(iter(state.config.clients)), "openid")


def prefix(inlet=OPEN):
    return f"inletId: [{inlet}] imsOrgId: [{ORG}]"


# -- single message ------------------------------------------------------------------------------


def test_single_message_async_is_accepted_and_stored(adobe_emulator):
    response = send(adobe_emulator, message(adobe_emulator, EVENTS, event()))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == set(SAMPLES["single_async_response"])
    assert body["syncValidation"] == {"skipped": True}
    assert body["inletId"] == OPEN
    assert abs(body["receivedTimeMs"] - time.time() * 1000) < 60_000
    stored = adobe_emulator.call(adobe_emulator.app[ADOBE].store.messages, EVENTS)
    assert stored == [ENTITIES["event"]]
    assert counts(adobe_emulator) == {EVENTS: {"accepted": 1, "failed": 0, "distinct_ids": 1}}


def test_profile_message_is_valid_against_the_profile_schema(adobe_emulator):
    response = send(adobe_emulator, message(adobe_emulator, PROFILES, ENTITIES["profile"]), syncValidation="true")
    assert response.status_code == 200, response.text
    assert response.json()["syncValidation"] == {"status": "pass"}
    assert counts(adobe_emulator)[PROFILES]["accepted"] == 1


def test_valid_adobe_xdm_paths_outside_the_presets_are_accepted(adobe_emulator):
    """The schemas are adobe/xdm's field groups in full, not the paths a preset happens to write."""
    entity = event()
    order = entity["commerce"]["order"]
    order.update(orderType="checkout", returns={"returnID": "R-1", "returnStatus": "Closed", "purchaseID": "B-5001"})
    order["refunds"] = [{"transactionID": "T-1", "refundAmount": 40.0, "refundReason": "return", "currencyCode": "INR"}]
    entity["productListItems"][0]["returnItem"] = {"returnQuantityReceived": 2, "returnReason": "too small"}
    profile = copy.deepcopy(ENTITIES["profile"])
    profile["billingAddress"] = {"city": "Pune", "countryCode": "IN", "_repo": {"createDate": "2024-01-01T00:00:00Z"}}
    profile["loyalty"]["tierExpiryDate"] = "2025-02-11T00:00:00Z"
    for dataset, xdm in ((EVENTS, entity), (PROFILES, profile)):
        response = send(adobe_emulator, message(adobe_emulator, dataset, xdm), syncValidation="true")
        assert response.status_code == 200, response.text
    assert adobe_emulator.call(adobe_emulator.app[ADOBE].store.messages, EVENTS, 10, 0) == [entity]


def test_validation_writes_no_schema_defaults_into_the_data(adobe_emulator):
    """person.gender and person.maritalStatus default to "not_specified", identity items' primary to false:
    what is stored is what was sent."""
    profile = {"_id": "p-1", "person": {"name": {"firstName": "Asha"}}, "identityMap": {"Email": [{"id": "a@b.c"}]}}
    assert send(adobe_emulator, message(adobe_emulator, PROFILES, copy.deepcopy(profile))).status_code == 200
    assert adobe_emulator.call(adobe_emulator.app[ADOBE].store.messages, PROFILES, 10, 0) == [profile]


@pytest.mark.parametrize(
    ("path", "value", "valid"),
    [
        (["person", "birthDate"], "1990-02-28", True),
        (["person", "birthDate"], "1990-02-30", False),  # a date pattern accepts it; the date does not exist
        (["loyalty", "joinDate"], "2023-02-29T10:00:00Z", False),
        (["personalEmail", "address"], "john.doe@gmail", True),  # JSON Schema's email: a mailbox, no TLD needed
        (["personalEmail", "address"], "john.doe", False),
    ],
)
def test_formats_are_checked_as_json_schema_defines_them(adobe_emulator, path, value, valid):
    profile = _nested(copy.deepcopy(ENTITIES["profile"]), path, value)
    response = send(adobe_emulator, message(adobe_emulator, PROFILES, profile), syncValidation="true")
    assert (response.status_code == 200) is valid, response.text


def test_sync_validation_failure_has_the_documented_shape(adobe_emulator):
    # The doc's example: two extraneous keys and a numeric _id.
    entity = event(_id=1565638336649000, workEmail={"address": "a@example.com"}, person={"name": {}})
    entity = {"workEmail": entity.pop("workEmail"), "person": entity.pop("person"), **entity}
    response = send(adobe_emulator, message(adobe_emulator, EVENTS, entity), syncValidation="true")
    assert response.status_code == 400
    expected = copy.deepcopy(SAMPLES["sync_validation_failure"])
    expected["report"]["message"] = f"{prefix()} Message is invalid"
    assert response.json() == expected
    assert counts(adobe_emulator) == {}  # sync failures are dropped, not stored


def test_sync_validation_reports_at_most_five_violations(adobe_emulator):
    extra = {f"unknown{i}": "x" for i in range(8)}
    response = send(adobe_emulator, message(adobe_emulator, EVENTS, event(**extra)), syncValidation="true")
    report = response.json()["report"]["cause"]["_streamingValidation"][0]
    assert report["message"] == "5 schema violations found"
    assert [e["message"] for e in report["causingExceptions"]] == [
        f"extraneous key [unknown{i}] is not permitted" for i in range(5)
    ]


def _nested(entity, path, value):
    *parents, last = path
    target = entity
    for key in parents:
        target = target[key]
    target[last] = value
    return entity


@pytest.mark.parametrize(
    ("path", "value", "keyword", "pointer", "text"),
    [
        (["eventType"], None, "type", "#/eventType", "expected type: String, found: Null"),
        (["commerce", "order", "priceTotal"], None, "type", "#/commerce/order/priceTotal", "found: Null"),
        (["commerce", "order", "coupon"], "X", "additionalProperties", "#/commerce/order", "[coupon]"),
        (["commerce", "order", "currencyCode"], "inr", "pattern", "#/commerce/order/currencyCode", "^[A-Z]{3}$"),
        (["timestamp"], "2024-05-01 10:00", "format", "#/timestamp", "is not a valid date-time"),
        (["_id"], "has spaces in it", "format", "#/_id", "uri-reference"),
        (["productListItems", 0, "quantity"], 1.5, "type", "#/productListItems/0/quantity", "found: Double"),
        (["productListItems", 0, "SKU"], 7, "type", "#/productListItems/0/SKU", "found: Integer"),
        (["identityMap", "Email", 0, "idd"], "x", "additionalProperties", "#/identityMap/Email/0", "[idd]"),
        (["commerce", "order", "orderType"], "SALE", "enum", "#/commerce/order/orderType", "SALE"),
        (
            ["_capillarydemo", "capillary", "transaction", "billType"],
            7,
            "type",
            "#/_capillarydemo/capillary/transaction/billType",
            "found: Integer",
        ),
        (
            ["_capillarydemo", "capillary", "transaction", "customFields"],
            {"n": 1},
            "type",
            "#/_capillarydemo/capillary/transaction/customFields/n",
            "found: Integer",
        ),
        (
            ["_capillarydemo", "capillary", "tier"],
            "Gold",
            "additionalProperties",
            "#/_capillarydemo/capillary",
            "[tier]",
        ),
    ],
)
def test_xdm_violations_are_rejected_in_sync_mode(adobe_emulator, path, value, keyword, pointer, text):
    entity = _nested(event(), path, value)
    response = send(adobe_emulator, message(adobe_emulator, EVENTS, entity), syncValidation="true")
    assert response.status_code == 400
    violation = response.json()["report"]["cause"]["_streamingValidation"][0]
    assert (violation["keyword"], violation["pointerToViolation"]) == (keyword, pointer)
    assert text in violation["message"]


def test_missing_required_fields_are_reported(adobe_emulator):
    entity = event()
    del entity["timestamp"]
    del entity["productListItems"][1]["SKU"]
    response = send(adobe_emulator, message(adobe_emulator, EVENTS, entity), syncValidation="true")
    report = response.json()["report"]["cause"]["_streamingValidation"][0]
    messages = [e["message"] for e in report["causingExceptions"]]
    assert sorted(messages) == ["required key [SKU] not found", "required key [timestamp] not found"]


def test_async_invalid_message_is_accepted_and_recorded_as_failed(adobe_emulator):
    response = send(adobe_emulator, message(adobe_emulator, EVENTS, event(eventType=None)))
    assert response.status_code == 200
    assert counts(adobe_emulator) == {EVENTS: {"accepted": 0, "failed": 1, "distinct_ids": 0}}
    failed = adobe_emulator.call(adobe_emulator.app[ADOBE].store.failed, EVENTS)
    assert failed[0]["xactionId"] == response.json()["xactionId"]
    assert failed[0]["entity"]["eventType"] is None
    assert failed[0]["errors"][0]["message"] == "expected type: String, found: Null"


@pytest.mark.adobe(validate=False)
def test_validation_off_stores_everything_as_accepted(adobe_emulator):
    response = send_batch(adobe_emulator, [message(adobe_emulator, EVENTS, event(eventType=None, junk=1))])
    assert response.status_code == 207
    assert counts(adobe_emulator)[EVENTS] == {"accepted": 1, "failed": 0, "distinct_ids": 1}
    # A client asking for synchronous validation still gets it (the target's preflight probe is never stored).
    response = send(adobe_emulator, message(adobe_emulator, EVENTS, event(_id=0)), syncValidation="true")
    assert response.status_code == 400
    assert counts(adobe_emulator)[EVENTS]["accepted"] == 1


# -- envelope --------------------------------------------------------------------------------------


def _drop(msg, *path):
    target = msg
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return msg


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda m: _drop(m, "header"), "The 'header' field is mandatory"),
        (lambda m: _drop(m, "body"), UNKNOWN),
        (lambda m: m["header"].update(imsOrgId="invalidIMSOrg@AdobeOrg"), WRONG_ORG),
        (lambda m: _drop(m, "header", "schemaRef"), UNKNOWN),
        (lambda m: m["header"]["schemaRef"].update(id="https://ns.adobe.com/x/schemas/1"), UNKNOWN),
        (lambda m: m["header"]["schemaRef"].update(contentType="application/json"), UNKNOWN),
        (lambda m: m["header"]["schemaRef"].update(contentType=XED.replace("=1", "=2")), UNKNOWN),
        (lambda m: m["header"].update(datasetId=PROFILES), UNKNOWN),
        (lambda m: m["header"].update(datasetId="nope"), UNKNOWN),
        (lambda m: _drop(m, "body", "xdmMeta"), UNKNOWN),
        (lambda m: m["body"].update(xdmMeta={"schemaRef": {"id": "other", "contentType": XED}}), UNKNOWN),
        (lambda m: _drop(m, "body", "xdmEntity"), UNKNOWN),
    ],
)
def test_envelope_errors(adobe_emulator, mutate, error):
    msg = message(adobe_emulator, EVENTS, event())
    mutate(msg)
    single = send(adobe_emulator, msg)
    assert single.status_code == 400
    assert single.json()["report"]["message"] == f"{prefix()} {error}"
    batch = send_batch(adobe_emulator, [msg])
    assert batch.status_code == 207
    assert batch.json()["responses"] == [{"statusCode": 400, "message": f"{prefix()} {error}"}]
    assert counts(adobe_emulator) == {}


@pytest.mark.parametrize(
    "content_type",
    [
        "application/vnd.adobe.xed-full+json;version=1.0",
        "application/vnd.adobe.xed-full+json; version=1",
        "application/vnd.adobe.xed-full-notext+json; version=1.0",
    ],
)
def test_documented_content_type_variants_are_accepted(adobe_emulator, content_type):
    response = send(adobe_emulator, message(adobe_emulator, EVENTS, event(), content_type=content_type))
    assert response.status_code == 200


def test_absent_ims_org_is_filled_in_by_dccs(adobe_emulator):
    msg = _drop(message(adobe_emulator, EVENTS, event()), "header", "imsOrgId")
    assert send(adobe_emulator, msg).status_code == 200


def test_invalid_json_and_missing_messages_are_bad_requests(adobe_emulator):
    assert post(adobe_emulator, f"/collection/{OPEN}", b"{not json").status_code == 400
    assert post(adobe_emulator, f"/collection/batch/{OPEN}", {"msgs": []}).status_code == 400


def test_unknown_inlet_is_not_found(adobe_emulator):
    assert send(adobe_emulator, message(adobe_emulator, EVENTS, event()), inlet="0" * 64).status_code == 404


# -- batch -----------------------------------------------------------------------------------------


def _doc_batch(server):
    text = json.dumps(SAMPLES["batch_request_mixed"])
    schema = schema_id(server, EVENTS).rsplit("/", 1)[1]
    for placeholder, value in {
        "{TENANT_ID}": CONFIG.tenant_id,
        "{SCHEMA_ID}": schema,
        "{SCHEMA_VERSION}": "version=1",
        "{IMS_ORG}": ORG,
        "{DATASET_ID}": EVENTS,
    }.items():
        text = text.replace(placeholder, value)
    return json.loads(text)


def test_documented_mixed_batch_gets_the_documented_per_message_results(adobe_emulator):
    response = post(adobe_emulator, f"/collection/batch/{OPEN}", _doc_batch(adobe_emulator))
    assert response.status_code == 207
    body = response.json()
    assert set(body) == set(SAMPLES["batch_response_mixed"])
    sample = SAMPLES["batch_response_mixed"]["responses"]
    documented = {r["message"].split("] ", 2)[2] for r in sample if "message" in r}
    results = body["responses"]
    assert len(results) == 5
    assert "xactionId" in results[0]
    assert "xactionId" in results[3]
    failures = [results[1]["message"], results[2]["message"], results[4]["message"]]
    assert [m.removeprefix(prefix() + " ") for m in failures] == [
        "Message has unknown xdm format",
        "Message has an absent or wrong ims org in the header",
        "Message has unknown xdm format",
    ]
    assert {m.removeprefix(prefix() + " ") for m in failures} == documented
    assert all(r["statusCode"] == 400 for r in (results[1], results[2], results[4]))
    # Both accepted messages carry the doc's `environment` block, which this schema lacks: failed records.
    failed = adobe_emulator.call(adobe_emulator.app[ADOBE].store.failed, EVENTS)
    assert [f["xactionId"] for f in failed] == [results[0]["xactionId"], results[3]["xactionId"]]
    assert "extraneous key [environment] is not permitted" in [e["message"] for e in failed[0]["errors"]]


def test_valid_batch_is_207_with_transaction_ids_in_order(adobe_emulator):
    messages = [message(adobe_emulator, EVENTS, event(_id=f"txn-{i}")) for i in range(3)]
    messages.append(message(adobe_emulator, EVENTS, event(_id="txn-0")))  # re-sent: same _id
    messages.append(message(adobe_emulator, PROFILES, ENTITIES["profile"]))
    response = send_batch(adobe_emulator, messages)
    assert response.status_code == 207
    body = response.json()
    assert set(body) == set(SAMPLES["batch_response_ok"])
    assert body["responses"] == [{"xactionId": f"{body['batchId']}:{i}"} for i in range(5)]
    assert counts(adobe_emulator) == {
        EVENTS: {"accepted": 4, "failed": 0, "distinct_ids": 3},
        PROFILES: {"accepted": 1, "failed": 0, "distinct_ids": 1},
    }
    ids = adobe_emulator.call(adobe_emulator.app[ADOBE].store.distinct_ids, EVENTS)
    assert ids == ["txn-0", "txn-1", "txn-2"]


def test_sync_validation_is_not_available_on_the_batch_endpoint(adobe_emulator):
    response = send_batch(adobe_emulator, [message(adobe_emulator, EVENTS, event(junk=1))], syncValidation="true")
    assert response.status_code == 207
    assert "xactionId" in response.json()["responses"][0]
    assert counts(adobe_emulator)[EVENTS]["failed"] == 1


# -- authorization ---------------------------------------------------------------------------------


def test_auth_inlet_without_token_gets_the_documented_401(adobe_emulator):
    response = send(adobe_emulator, message(adobe_emulator, EVENTS, event()), inlet=AUTH)
    assert response.status_code == 401
    expected = copy.deepcopy(SAMPLES["dcs_401"])
    expected["report"]["message"] = expected["report"]["message"].replace("[id]", f"[{AUTH}]")
    assert response.json() == expected
    assert send_batch(adobe_emulator, [], inlet=AUTH).status_code == 401


def test_auth_inlet_accepts_an_issued_token_and_open_inlet_needs_none(adobe_emulator):
    token = issue_token(adobe_emulator)
    assert send(adobe_emulator, message(adobe_emulator, EVENTS, event()), inlet=AUTH, token=token).status_code == 200
    assert send(adobe_emulator, message(adobe_emulator, EVENTS, event()), inlet=OPEN).status_code == 200


def test_invalid_and_revoked_tokens_are_rejected(adobe_emulator):
    msg = message(adobe_emulator, EVENTS, event())
    assert send(adobe_emulator, msg, inlet=AUTH, token="forged").status_code == 401
    token = issue_token(adobe_emulator)
    assert send(adobe_emulator, msg, inlet=AUTH, token=token).status_code == 200
    assert requests.post(adobe_emulator.base_url + "/_emulator/revoke-tokens", timeout=5).status_code == 200
    response = send(adobe_emulator, msg, inlet=AUTH, token=token)
    assert response.status_code == 401
    assert "invalid or expired" in response.json()["report"]["message"]


@pytest.mark.adobe(token_lifetime_seconds=30, invalid_token_status=403)
def test_expired_token_status_is_configurable(adobe_emulator):
    now = [1_700_000_000.0]  # the token issuer's clock, moved by hand
    adobe_emulator.app[ADOBE].issuer.now = lambda: now[0]
    token = issue_token(adobe_emulator)
    msg = message(adobe_emulator, EVENTS, event())
    assert send(adobe_emulator, msg, inlet=AUTH, token=token).status_code == 200
    now[0] += 30
    response = send(adobe_emulator, msg, inlet=AUTH, token=token)
    assert response.status_code == 403
    assert response.json()["status"] == "403"


# -- limits ----------------------------------------------------------------------------------------


def test_request_over_one_megabyte_is_413(adobe_emulator):
    one = message(adobe_emulator, EVENTS, event())
    size = len(json.dumps(one))
    under = [one] * ((CONFIG.max_request_bytes - 100) // (size + 2))
    assert len(json.dumps({"messages": under})) <= CONFIG.max_request_bytes
    assert send_batch(adobe_emulator, under).status_code == 207
    over = [*under, one, one]
    assert len(json.dumps({"messages": over})) > CONFIG.max_request_bytes
    response = send_batch(adobe_emulator, over)
    assert response.status_code == 413
    assert response.json()["status"] == 413
    big = event(eventType="x" * CONFIG.max_request_bytes)
    assert send(adobe_emulator, message(adobe_emulator, EVENTS, big)).status_code == 413
    assert counts(adobe_emulator)[EVENTS]["accepted"] == len(under)


@pytest.mark.adobe(requests_per_second=3)
def test_request_rate_limit_answers_429_with_retry_after(adobe_emulator):
    statuses = [send_batch(adobe_emulator, []).status_code for _ in range(3)]
    assert statuses == [207, 207, 207]
    response = send_batch(adobe_emulator, [])
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["status"] == 429


@pytest.mark.adobe(messages_per_second=5)
def test_message_rate_limit_counts_batch_messages(adobe_emulator):
    batch = [message(adobe_emulator, EVENTS, event(_id=f"t{i}")) for i in range(4)]
    assert send_batch(adobe_emulator, batch).status_code == 207
    response = send_batch(adobe_emulator, batch)
    assert response.status_code == 429
    assert "Retry-After" in response.headers
    assert counts(adobe_emulator)[EVENTS]["accepted"] == 4


@pytest.mark.adobe(sync_validation_per_minute=2)
def test_sync_validation_is_limited_per_inlet_per_minute(adobe_emulator):
    msg = message(adobe_emulator, EVENTS, event())
    assert [send(adobe_emulator, msg, syncValidation="true").status_code for _ in range(2)] == [200, 200]
    limited = send(adobe_emulator, msg, syncValidation="true")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert send(adobe_emulator, msg).status_code == 200  # async calls are not limited by it


@pytest.mark.adobe(sync_validation_supported=False)
def test_sync_validation_unsupported_location_is_501(adobe_emulator):
    response = send(adobe_emulator, message(adobe_emulator, EVENTS, event()), syncValidation="true")
    assert response.status_code == 501


# -- faults ----------------------------------------------------------------------------------------


def test_injected_errors_use_the_dcs_problem_dialect(adobe_emulator):
    adobe_emulator.set_faults({"rules": [{"path": "/collection/*", "status_rates": {429: 1.0}, "retry_after": 2}]})
    response = send_batch(adobe_emulator, [message(adobe_emulator, EVENTS, event())])
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    body = response.json()
    assert (body["type"], body["status"]) == (
        "http://ns.adobe.com/adobecloud/problem/data-collection-service/inlet",
        429,
    )
    assert counts(adobe_emulator) == {}


def test_injected_token_revocation_invalidates_issued_tokens(adobe_emulator):
    token = issue_token(adobe_emulator)
    adobe_emulator.set_faults({"rules": [{"path": "/collection/*", "revoke_token_rate": 1.0, "max_faults": 1}]})
    msg = message(adobe_emulator, EVENTS, event())
    assert send(adobe_emulator, msg, inlet=AUTH, token=token).status_code == 401
    assert send(adobe_emulator, msg, inlet=AUTH, token=issue_token(adobe_emulator)).status_code == 200


def test_injected_message_refusals_are_per_message_entries_of_the_207(adobe_emulator):
    """``reject_message_rate``: each message of a batch request is refused with that probability, with the
    documented per-message entry, and not stored; ``max_faults`` bounds the refusals."""
    adobe_emulator.set_faults(
        {"seed": 3, "rules": [{"path": "/collection/batch/*", "reject_message_rate": 0.5, "max_faults": 4}]}
    )
    messages = [message(adobe_emulator, EVENTS, event(_id=f"m-{i}")) for i in range(12)]
    results = [send_batch(adobe_emulator, messages[:6]).json(), send_batch(adobe_emulator, messages[6:]).json()]
    entries = [entry for body in results for entry in body["responses"]]
    refused = [i for i, entry in enumerate(entries) if "statusCode" in entry]
    assert len(refused) == 4
    assert {entries[i]["statusCode"] for i in refused} == {400}
    assert {entries[i]["message"] for i in refused} == {f"{prefix()} Message is invalid"}
    stored = adobe_emulator.call(adobe_emulator.app[ADOBE].store.deliveries)
    assert [xdm_id for _, _, xdm_id in stored] == [f"m-{i}" for i in range(12) if i not in refused]
    assert [xaction for _, xaction, _ in stored] == [e["xactionId"] for e in entries if "xactionId" in e]


def test_an_answer_cut_short_comes_after_the_messages_were_stored(adobe_emulator):
    adobe_emulator.set_faults({"rules": [{"path": "/collection/batch/*", "cut_body_rate": 1.0, "max_faults": 1}]})
    messages = [message(adobe_emulator, EVENTS, event(_id=f"c-{i}")) for i in range(3)]
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        send_batch(adobe_emulator, messages)
    assert send_batch(adobe_emulator, messages).status_code == 207  # sent again: stored twice
    stored = adobe_emulator.call(adobe_emulator.app[ADOBE].store.deliveries)
    assert [(dataset, xdm_id) for dataset, _, xdm_id in stored] == [(EVENTS, f"c-{i}") for i in range(3)] * 2
    assert len({xaction.rsplit(":", 1)[0] for _, xaction, _ in stored}) == 2  # two requests, two batch ids


@pytest.mark.adobe(
    faults={"seed": 1, "rules": [{"path": "/collection/*", "status_rates": {503: 1.0}, "max_faults": 1}]}
)
def test_fault_profile_can_be_given_in_the_config(adobe_emulator):
    msg = message(adobe_emulator, EVENTS, event())
    assert [send(adobe_emulator, msg).status_code for _ in range(2)] == [503, 200]


# -- admin routes ----------------------------------------------------------------------------------


def test_admin_routes_expose_counts_ids_messages_and_failures(adobe_emulator):
    base = adobe_emulator.base_url + "/_emulator/datasets"
    messages = [message(adobe_emulator, EVENTS, event(_id=f"txn-{i}")) for i in range(5)]
    messages.append(message(adobe_emulator, EVENTS, event(_id="bad", eventType=None)))
    send_batch(adobe_emulator, messages)
    datasets = requests.get(base, timeout=5).json()
    assert datasets[EVENTS] == {"schema": "Capillary Loyalty Events", "accepted": 5, "failed": 1, "distinct_ids": 5}
    assert datasets[PROFILES]["accepted"] == 0
    assert requests.get(f"{base}/{EVENTS}/ids?limit=2&offset=1", timeout=5).json() == {"ids": ["txn-1", "txn-2"]}
    page = requests.get(f"{base}/{EVENTS}/messages?limit=2&offset=3", timeout=5).json()["messages"]
    assert [m["_id"] for m in page] == ["txn-3", "txn-4"]
    failed = requests.get(f"{base}/{EVENTS}/failed", timeout=5).json()["failed"]
    assert [f["entity"]["_id"] for f in failed] == ["bad"]
    assert failed[0]["errors"][0]["keyword"] == "type"
    assert requests.get(f"{base}/unknown/ids", timeout=5).status_code == 404
    assert requests.delete(base, timeout=5).json() == {"cleared": True}
    assert requests.get(base, timeout=5).json()[EVENTS]["accepted"] == 0


@pytest.mark.adobe(store_messages=False)
def test_counting_mode_counts_like_the_store_and_keeps_no_message(adobe_emulator):
    base = adobe_emulator.base_url + "/_emulator/datasets"
    messages = [message(adobe_emulator, EVENTS, event(_id=f"txn-{i % 3}")) for i in range(5)]
    messages.append(message(adobe_emulator, EVENTS, event(_id="bad", eventType=None)))
    messages.append({"header": {}})
    response = send_batch(adobe_emulator, messages)
    assert [r.get("statusCode", 200) for r in response.json()["responses"]] == [200] * 6 + [400]
    datasets = requests.get(base, timeout=5).json()
    assert datasets[EVENTS] == {"schema": "Capillary Loyalty Events", "accepted": 5, "failed": 1, "distinct_ids": 3}
    assert datasets[PROFILES]["accepted"] == 0
    for listing in ("ids", "messages", "failed"):
        answer = requests.get(f"{base}/{EVENTS}/{listing}", timeout=5)
        assert answer.status_code == 409
        assert "store_messages=false" in answer.text
    assert requests.delete(base, timeout=5).json() == {"cleared": True}
    assert requests.get(base, timeout=5).json()[EVENTS]["accepted"] == 0
