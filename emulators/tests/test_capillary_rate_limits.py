"""Per-API, per-API-key rate limits: 429 with Retry-After over the limit, a sliding window on an injected clock."""

from __future__ import annotations

import pytest
import requests
from test_capillary_support import Api, api_fixture, basic_auth, token  # noqa: F401

from emulators.capillary import CapillaryConfig, create_app
from emulators.capillary.app import RATE_LIMITS
from emulators.capillary.ratelimit import RateLimits, api_name
from emulators.server import REQUEST_LOG, BackgroundServer

ENTITIES = "/v1.1/organization/entities"
TWO_KEYS = {"key-a": "secret-a", "key-b": "secret-b"}


class Ticks:
    """The limiter's clock, moved by the test."""

    def __init__(self) -> None:
        self.time = 100.0

    def __call__(self) -> float:
        return self.time


def with_ticks(server: BackgroundServer) -> Ticks:
    ticks = Ticks()
    server.app[RATE_LIMITS].now = ticks
    return ticks


def test_api_names_are_the_documented_ones() -> None:
    assert api_name("/v2/customers/{customer_id}/transactions") == "v2/customers/{id}/transactions"
    assert api_name("/v2/transactions/{txn_id}") == "v2/transactions/{id}"
    assert api_name("/v1.1/customer/get") == "v1.1/customer/get"


def test_sliding_window_counts_accepted_requests_per_api_and_key() -> None:
    ticks = Ticks()
    limits = RateLimits({"v1.1/customer/get": 3}, window_seconds=10, now=ticks)
    assert [limits.retry_after("v1.1/customer/get", "a") for _ in range(3)] == [None, None, None]
    ticks.time += 4
    assert limits.retry_after("v1.1/customer/get", "a") == pytest.approx(6)  # the first leaves at 110
    assert limits.retry_after("v1.1/customer/get", "b") is None, "another key has its own count"
    assert limits.retry_after("v2/transactions/{id}", "a") is None, "an API without a limit is not limited"
    ticks.time += 6  # the three leave the window; the refusal was not counted
    assert [limits.retry_after("v1.1/customer/get", "a") for _ in range(4)] == [None, None, None, pytest.approx(10)]


@pytest.mark.capillary(rate_limits={"v1.1/organization/entities": 2}, rate_limit_window_seconds=30)
def test_over_the_limit_is_429_with_retry_after(api: Api) -> None:
    ticks = with_ticks(api.server)
    assert [api.get(ENTITIES, type="STORE").status_code for _ in range(2)] == [200, 200]
    ticks.time += 12.5
    refused = api.get(ENTITIES, type="STORE")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "18"  # whole seconds, rounded up
    assert refused.json()["response"]["status"]["code"] == 429
    assert api.post("/v2/search/entity", {"entityType": "CUSTOMER", "searchConditions": []}).status_code != 429
    ticks.time += 18
    assert api.get(ENTITIES, type="STORE").status_code == 200
    log = api.server.call(lambda: list(api.server.app[REQUEST_LOG].entries))
    assert {e["api_key"] for e in log if e["path"] == ENTITIES} == {"emulator-key"}


@pytest.mark.capillary(
    rate_limits={"*": 1}, rate_limit_window_seconds=60, oauth_clients=TWO_KEYS, rate_limit_retry_after=False
)
def test_each_api_key_and_till_user_has_its_own_limit(capillary_emulator: BackgroundServer) -> None:
    with_ticks(capillary_emulator)
    a, b = (Api(capillary_emulator, key, TWO_KEYS[key]) for key in ("key-a", "key-b"))
    assert a.get(ENTITIES, type="STORE").status_code == 200
    refused = a.get(ENTITIES, type="STORE")
    assert refused.status_code == 429
    assert "Retry-After" not in refused.headers
    assert b.get(ENTITIES, type="STORE").status_code == 200
    till = {"Authorization": basic_auth("store123", "Pass123")}
    url = f"{capillary_emulator.base_url}{ENTITIES}?type=STORE"
    assert [requests.get(url, headers=till, timeout=5).status_code for _ in range(2)] == [200, 429]
    # The token endpoint is not limited.
    assert all(token(capillary_emulator, "key-a", "secret-a") for _ in range(3))


@pytest.mark.parametrize(
    ("limits", "message"),
    [({"v2/transaction/{id}": 5}, "unknown APIs ['v2/transaction/{id}']"), ({"*": 0}, "positive whole numbers")],
)
def test_limits_for_unknown_apis_are_refused(limits: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        create_app(CapillaryConfig(customers=1, stores=1, rate_limits=limits))
