"""The DCS publisher: packing, 207 parsing, 413 split, retries with Retry-After, rate limits."""

from __future__ import annotations

import itertools
import random

import orjson
import pytest
from conftest import FakeClock

from emulators.adobe import ADOBE
from emulators.server import REQUEST_LOG, BackgroundServer
from target_adobe_aep.connection import RetriesExhausted, RetryPolicy, new_session
from target_adobe_aep.conversion import Envelope
from target_adobe_aep.dcs import (
    REQUEST_OVERHEAD,
    Publisher,
    RateLimiter,
    pack,
    parse_multi_status,
)
from target_adobe_aep.ims import TokenProvider


def test_pack_fills_requests_in_order_without_exceeding_the_limit() -> None:
    rng = random.Random(7)
    sizes = [rng.randint(200, 30_000) for _ in range(2000)] + [70_000]
    limit = 60_000
    groups, oversized = pack(sizes, limit)
    assert oversized == [2000]
    assert [i for g in groups for i in g] == list(range(2000))

    def body_size(group: list[int]) -> int:
        return REQUEST_OVERHEAD + sum(sizes[i] for i in group) + len(group) - 1

    assert all(body_size(g) <= limit for g in groups)
    # Nearly full: the next message would not have fitted into any request but the last.
    assert all(body_size(g) + 1 + sizes[n[0]] > limit for g, n in itertools.pairwise(groups))


def test_parse_multi_status_documented_and_kafka_connector_variants() -> None:
    documented = {  # EN streaming-multiple-messages.md
        "inletId": "9b0cb233972f3b0092992284c7353f5eead496218e8441a79b25e9421ea127f5",
        "batchId": "1565638336649:1750:244",
        "receivedTimeMs": 1565638336705,
        "responses": [
            {"xactionId": "1565650704337:2124:92:3"},
            {"statusCode": 400, "message": "inletId: [9b0c] imsOrgId: [{ORG_ID}] Message has unknown xdm format"},
        ],
    }
    assert parse_multi_status(documented, 3) == [
        (True, None, "1565650704337:2124:92:3"),
        (False, 400, "inletId: [9b0c] imsOrgId: [{ORG_ID}] Message has unknown xdm format"),
        (False, None, "DCS returned no response entry for this message"),
    ]
    kafka_connector = {  # KC aep-connector-inlet-multi-message-response.json
        "responses": [
            {"xactionId": "a1b2-0", "status": 400, "message": "The 'header' field is mandatory"},
            {"xactionId": "a1b2-1"},
            {"xactionId": "a1b2-2", "status": 200},
        ]
    }
    assert [accepted for accepted, _, _ in parse_multi_status(kafka_connector, 3)] == [False, True, True]
    assert parse_multi_status("not an object", 1) == [(False, None, "DCS returned no response entry for this message")]


def test_rate_limiter_spaces_calls_from_the_first_one() -> None:
    clock = FakeClock()
    limiter = RateLimiter(200, clock)
    for _ in range(300):
        limiter.acquire()
    assert clock.time - 1000 == pytest.approx(300 / 200)  # no initial burst
    clock = FakeClock()
    limiter = RateLimiter(100, clock)
    limiter.acquire(150)  # a request bigger than the bucket waits for its debt, then passes
    assert clock.waits == [pytest.approx(1.5)]


@pytest.mark.parametrize("convert_seconds", [0.0, 0.1, 0.3])
def test_rate_limit_is_exact_over_a_run_when_the_producer_is_faster(convert_seconds: float) -> None:
    """Batches of 4 requests of 700 messages with some converting time between batches, as the target sends them:
    the rate from the first request to the last one is the cap."""
    clock = FakeClock()
    limiter = RateLimiter(3000, clock)
    sent_at = []
    for batch in range(30):
        clock.advance(convert_seconds if batch else 0.5)  # start-up time before the first batch is not credit
        for _ in range(4):
            limiter.acquire(700)
            sent_at.append(clock.time)
    rate = 700 * (len(sent_at) - 1) / (sent_at[-1] - sent_at[0])
    assert rate == pytest.approx(3000, rel=0.001)


def publisher(
    server: BackgroundServer, *, auth: bool = True, max_tries: int = 4, clock: FakeClock | None = None, **overrides
) -> Publisher:
    cfg = server.config
    client_id, secret = next(iter(cfg.clients.items()))
    session = new_session(4)
    retry = RetryPolicy(max_tries=max_tries, base_seconds=0.01, timeout_seconds=5, clock=clock or FakeClock())
    tokens = TokenProvider(session=session, ims_url=f"{server.base_url}/ims/token/v3", client_id=client_id,
                           client_secret=secret, scopes="openid", retry=retry)  # fmt: skip
    inlet = cfg.auth_inlet_id if auth else cfg.open_inlet_id
    settings = {
        "max_request_bytes": 990_000,
        "max_messages_per_second": 100_000,
        "max_requests_per_second": 10_000,
        "max_concurrency": 4,
        **overrides,
    }
    return Publisher(session=session, inlet_url=f"{server.base_url}/collection/{inlet}",
                     tokens=tokens if auth else None, retry=retry, **settings)  # fmt: skip


def messages(server: BackgroundServer, count: int, *, org_id: str | None = None, padding: int = 0) -> list[bytes]:
    cfg = server.config
    schema_id = server.app[ADOBE].dcs.schema(cfg.event_dataset_id).id
    envelope = Envelope(schema_id=schema_id, dataset_id=cfg.event_dataset_id, org_id=org_id or cfg.org_id,
                        flow_id=None, source="test")  # fmt: skip
    events = [
        {"_id": f"e{i}", "timestamp": "2024-01-01T00:00:00Z", "eventType": "test.event",
         "_capillarydemo": {"capillary": {"customerId": "x" * padding + str(i)}}}
        for i in range(count)
    ]  # fmt: skip
    return [envelope.wrap(orjson.dumps(e)) for e in events]


def stored_ids(server: BackgroundServer) -> set[str]:
    store = server.app[ADOBE].store
    return set(server.call(store.distinct_ids, server.config.event_dataset_id, 100_000, 0))


def test_207_partial_rejection_reports_exactly_the_rejected_messages(adobe_emulator: BackgroundServer) -> None:
    good = messages(adobe_emulator, 6)
    bad = messages(adobe_emulator, 6, org_id="SOMEONE-ELSE@AdobeOrg")
    mixed = [bad[i] if i in (1, 4) else good[i] for i in range(6)]
    result = publisher(adobe_emulator).publish(mixed)
    assert result.accepted == 4
    assert result.requests == 1
    assert [(r.index, r.http_status) for r in result.rejected] == [(1, 400), (4, 400)]
    assert all("absent or wrong ims org" in r.reason for r in result.rejected)
    assert stored_ids(adobe_emulator) == {"e0", "e2", "e3", "e5"}


@pytest.mark.adobe(max_request_bytes=20_000)
def test_413_splits_the_request_and_rejects_a_single_message_that_is_too_big(adobe_emulator: BackgroundServer) -> None:
    batch = messages(adobe_emulator, 40, padding=1500)  # ~1.8 KB each, ~70 KB per request on our side
    huge = messages(adobe_emulator, 1, padding=30_000)
    result = publisher(adobe_emulator, max_request_bytes=100_000).publish([*batch, *huge])
    assert result.accepted == 40
    assert [(r.index, r.http_status) for r in result.rejected] == [(40, 413)]
    assert len(stored_ids(adobe_emulator)) == 40


def request_of(server: BackgroundServer, size: int, count: int = 200) -> list[bytes]:
    """``count`` messages whose batch request body is exactly ``size`` bytes."""
    envelope = len(messages(server, 1)[0]) - 1  # a message without its customerId's one character
    padding = (size - REQUEST_OVERHEAD) // count - envelope - 10
    batch = messages(server, count, padding=padding)
    body = REQUEST_OVERHEAD + sum(map(len, batch)) + count - 1
    return [*batch[:-1], messages(server, count, padding=padding + size - body)[-1]]


def batch_statuses(server: BackgroundServer) -> list[int]:
    return [e["status"] for e in server.app[REQUEST_LOG].entries if e["path"].startswith("/collection/batch/")]


@pytest.mark.parametrize(("size", "statuses"), [(1_000_000, [207]), (1_000_001, [413, 207, 207])])
def test_413_split_against_the_documented_one_megabyte_limit(
    adobe_emulator: BackgroundServer, size: int, statuses: list[int]
) -> None:
    """The emulator enforces AEP's limit exactly (1,000,000 bytes, its default). The target caps its requests below
    it (max_request_bytes <= 1,000,000), so this publisher may pack 2 MB to reach it: a request one byte over is
    refused with 413, split in two, and every message arrives."""
    assert adobe_emulator.config.max_request_bytes == 1_000_000
    batch = request_of(adobe_emulator, size)
    result = publisher(adobe_emulator, max_request_bytes=2_000_000).publish(batch)
    assert batch_statuses(adobe_emulator) == statuses
    assert (result.accepted, result.rejected, result.requests) == (200, [], len(statuses))
    assert stored_ids(adobe_emulator) == {f"e{i}" for i in range(200)}


@pytest.mark.parametrize("faults", [{"429": 1.0}, {"503": 0.5, "500": 0.5}])
def test_transient_errors_are_retried(adobe_emulator: BackgroundServer, faults: dict) -> None:
    adobe_emulator.set_faults({"seed": 3, "rules": [{"path": "/collection/batch/*", "status_rates": faults,
                                                      "max_faults": 3, "retry_after": 0}]})  # fmt: skip
    result = publisher(adobe_emulator).publish(messages(adobe_emulator, 10))
    assert result.accepted == 10
    assert result.retries == 3
    assert result.requests == 4


def test_retry_after_is_honoured(adobe_emulator: BackgroundServer) -> None:
    adobe_emulator.set_faults({"rules": [{"path": "/collection/batch/*", "status_rates": {"429": 1.0},
                                          "max_faults": 1, "retry_after": 7}]})  # fmt: skip
    clock = FakeClock()
    result = publisher(adobe_emulator, clock=clock).publish(messages(adobe_emulator, 3))
    assert result.accepted == 3
    assert result.retries == 1
    assert max(clock.waits) == 7  # (the others are the rate limiters' waits)


def test_dropped_connections_are_retried(adobe_emulator: BackgroundServer) -> None:
    adobe_emulator.set_faults({"rules": [{"path": "/collection/batch/*", "drop_rate": 1.0, "max_faults": 2}]})
    result = publisher(adobe_emulator).publish(messages(adobe_emulator, 5))
    assert result.accepted == 5
    assert result.retries == 2


def test_retries_are_bounded_then_fatal(adobe_emulator: BackgroundServer) -> None:
    adobe_emulator.set_faults({"rules": [{"path": "/collection/batch/*", "status_rates": {"503": 1.0},
                                          "retry_after": 0}]})  # fmt: skip
    with pytest.raises(RetriesExhausted, match="DCS answered HTTP 503; gave up after 3 tries"):
        publisher(adobe_emulator, max_tries=3).publish(messages(adobe_emulator, 5))
    assert stored_ids(adobe_emulator) == set()


def test_open_inlet_takes_no_token(adobe_emulator: BackgroundServer) -> None:
    result = publisher(adobe_emulator, auth=False).publish(messages(adobe_emulator, 2))
    assert result.accepted == 2


@pytest.mark.parametrize("limits", [{"max_requests_per_second": 20}, {"max_messages_per_second": 40}])
def test_client_side_rate_limits_are_honoured(adobe_emulator: BackgroundServer, limits: dict) -> None:
    batch = messages(adobe_emulator, 60, padding=900)  # ~1.5 KB each, two per 3.1 KB request: 30 requests
    assert len(pack([len(m) for m in batch], 3_100)[0]) == 30
    clock = FakeClock()
    result = publisher(adobe_emulator, max_request_bytes=3_100, max_concurrency=1, clock=clock, **limits).publish(batch)
    assert result.accepted == 60
    assert result.requests == 30
    # The buckets start empty: 30 requests at 20/s, or 60 messages at 40/s, take 1.5 s from the first request.
    assert clock.time - 1000 == pytest.approx(1.5, abs=0.01)
