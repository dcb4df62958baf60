"""Pacing (``transport.py``): per-API budgets on top of the overall one, adaptive pacing after 429s, Retry-After
holds; on injected clocks (no real waiting), then against the emulator's per-API limits on the same fake clock."""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import Counter
from typing import Any

import pytest
import requests
from singer_sdk.exceptions import RetriableAPIError

from emulators.capillary.app import RATE_LIMITS
from emulators.capillary.ratelimit import RateLimits
from emulators.server import REQUEST_LOG, BackgroundServer
from tap_capillary.client import api_name
from tap_capillary.streams import TransactionsStream
from tap_capillary.tap import API_NAMES, TapCapillary
from tap_capillary.transport import PROBE_STEP, THROTTLE_FACTOR, ApiPace, Clock, Pacing, RateLimitedError
from tests.support import OAUTH, FakeClock, past_anchor, run_tap, tap_config

DETAILS = "v2/transactions/{id}"
SMALL = {"customers": 6, "seed": 5, "merged_customer_rate": 0.0, "deleted_customer_rate": 0.0}


class SteppedClock(Clock):
    """Time the test moves; ``sleep_until`` blocks until it has moved far enough (``slept`` lists the moments)."""

    def __init__(self) -> None:
        super().__init__()
        self.time = 0.0
        self.slept: list[float] = []
        self._moved = threading.Condition()

    def now(self) -> float:
        return self.time

    def sleep_until(self, moment: float) -> None:
        with self._moved:
            self.slept.append(moment)
            self._moved.notify_all()
            assert self._moved.wait_for(lambda: self.time >= moment, timeout=30), "the test never moved time"
        self.check()

    def move_to(self, moment: float) -> None:
        with self._moved:
            self.time = moment
            self._moved.notify_all()

    def wait_for_sleeps(self, count: int) -> None:
        with self._moved:
            assert self._moved.wait_for(lambda: len(self.slept) >= count, timeout=30), "no thread started waiting"


def starts(pace: ApiPace | Pacing, count: int, api: str = DETAILS) -> list[float]:
    """The starts of ``count`` requests from one thread (a ``FakeClock`` moves to each)."""
    if isinstance(pace, Pacing):
        return [round(pace.acquire(api), 6) for _ in range(count)]
    return [round(pace.acquire(), 6) for _ in range(count)]


def test_api_names_are_the_documented_endpoints() -> None:
    assert api_name(TransactionsStream.path) == "v2/customers/{id}/transactions"
    assert {DETAILS, "v1.1/customer/get", "v2/pointsLedger/getCustomerLedgerInfo", "v2/search/entity"} <= set(API_NAMES)


def test_a_budget_spaces_requests_evenly_from_the_first() -> None:
    clock = FakeClock()
    assert starts(ApiPace(DETAILS, clock, per_minute=120), 4) == [1000.0, 1000.5, 1001.0, 1001.5]


def test_api_budgets_apply_on_top_of_the_overall_budget() -> None:
    clock = FakeClock()
    pacing = Pacing(clock, requests_per_minute=600, api_budgets={DETAILS: 60})
    assert starts(pacing, 3) == [1000.0, 1001.0, 1002.0], "the API's own budget"
    # Another API has no budget of its own: only the overall one (10/s) spaces it.
    assert starts(pacing, 3, "v1.1/customer/get") == [1002.1, 1002.2, 1002.3]
    clock.time = 2000.0
    assert starts(Pacing(clock, 60, {DETAILS: 6000}), 3) == [2000.0, 2001.0, 2002.0], "and the overall one binds"


def test_threads_get_distinct_starts_at_the_budgets_spacing() -> None:
    clock = FakeClock()
    pace = ApiPace(DETAILS, clock, per_minute=600)
    taken: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            start = pace.acquire()
            with lock:
                taken.append(start)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gaps = {round(b - a, 6) for a, b in zip(sorted(taken), sorted(taken)[1:], strict=False)}
    assert len(taken) == 200
    assert gaps == {0.1}


def test_retry_after_holds_the_api_and_requeues_requests_already_waiting() -> None:
    clock = SteppedClock()
    pace = ApiPace(DETAILS, clock, per_minute=60)
    assert pace.acquire() == 0.0
    waited: list[float] = []
    thread = threading.Thread(target=lambda: waited.append(pace.acquire()))
    thread.start()
    clock.wait_for_sleeps(1)  # its turn is at 1.0
    pace.throttled(0.0, retry_after=10.0)
    clock.move_to(1.0)  # its turn came, but the API is held since: it queues again, behind the hold
    clock.wait_for_sleeps(2)
    clock.move_to(10.0)
    thread.join(timeout=30)
    assert waited == [10.0]
    assert clock.slept == [1.0, 10.0]
    assert pace.rate == 1.0, "a budget is held, never cut"


def test_an_adaptive_pace_is_cut_on_429_then_probes_back_up() -> None:
    clock = FakeClock()
    pace = ApiPace(DETAILS, clock, ceiling=100.0)
    for _ in range(50):  # unpaced: 10 requests/s, set by the test
        assert pace.acquire() == clock.time
        clock.time += 0.1
    assert pace.rate is None
    pace.throttled(clock.time - 0.1, retry_after=None)
    assert pace.rate == pytest.approx(THROTTLE_FACTOR * 10)
    first, second = starts(pace, 2)
    assert second - first == pytest.approx(1 / (THROTTLE_FACTOR * 10), abs=1e-6)
    clock.time += 50  # probing up: PROBE_STEP of the cut rate per second
    first, second = starts(pace, 2)
    assert 1 / (second - first) == pytest.approx(THROTTLE_FACTOR * 10 * (1 + PROBE_STEP * 50), rel=2e-3)
    clock.time += 10_000
    pace.acquire()
    assert pace.rate == 100.0, "never above the ceiling (the overall budget)"


def test_429s_of_requests_sent_before_a_cut_do_not_cut_again() -> None:
    clock = FakeClock()
    pace = ApiPace(DETAILS, clock, ceiling=100.0)
    sent = [pace.acquire() for _ in range(8)]  # 8 requests in flight at once
    clock.time += 1
    for started in sent:  # all answered 429 together
        pace.throttled(started, retry_after=2.0)
    assert pace.rate == pytest.approx(THROTTLE_FACTOR * 8)
    later = pace.acquire()
    assert later == clock.time == 1003.0, "held until Retry-After passed"
    pace.throttled(later, retry_after=None)
    assert pace.rate < THROTTLE_FACTOR * 8, "a request sent after the cut cuts again"


def test_a_budgeted_api_answering_429_is_held_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    pace = ApiPace(DETAILS, clock, per_minute=60)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            pace.throttled(pace.acquire(), retry_after=5.0)
    assert pace.rate == 1.0
    warnings = [r.getMessage() for r in caplog.records if "answered 429 although paced" in r.getMessage()]
    assert len(warnings) == 1
    assert "budget of 60 requests/minute" in warnings[0]


def simulate(pace: ApiPace, clock: FakeClock, limits: RateLimits, requests_to_send: int) -> list[bool]:
    """One client thread against a server's sliding-window limit on the same fake clock: each request (50 ms)
    goes through ``pace``; a refusal is retried after its Retry-After, as ``RetryPolicy`` does. Returns, per
    try, whether the server accepted it."""
    tries = []
    while sum(tries) < requests_to_send:
        sent = pace.acquire()
        wait = limits.retry_after(DETAILS, "key")
        tries.append(wait is None)
        clock.sleep(0.05)
        if wait is not None:
            retry_after = max(1, math.ceil(wait))
            pace.throttled(sent, retry_after)
            clock.sleep(retry_after)
    return tries


def test_adaptive_pacing_converges_near_a_servers_limit_with_few_429s() -> None:
    """AIMD against a limit of 30 per 10 s: after finding it, the client sends close to it and rarely over it."""
    clock = FakeClock()
    limits = RateLimits({DETAILS: 30}, window_seconds=10, now=clock.now)
    pace = ApiPace(DETAILS, clock, ceiling=1000.0)
    simulate(pace, clock, limits, 100)  # finding the limit
    started, tries = clock.time, simulate(pace, clock, limits, 600)
    rate = 600 / (clock.time - started)
    assert 0.8 * 3 <= rate <= 3.0
    assert tries.count(False) / len(tries) <= 0.02


def test_a_budget_within_the_servers_limit_gets_no_429() -> None:
    clock = FakeClock()
    limits = RateLimits({DETAILS: 30}, window_seconds=10, now=clock.now)
    tries = simulate(ApiPace(DETAILS, clock, per_minute=179), clock, limits, 300)
    assert all(tries)


def test_a_429_in_an_http_200_body_slows_its_api_down() -> None:
    tap = TapCapillary(config={"base_url": "http://127.0.0.1:9", **OAUTH})
    stream = tap.streams["customers"]
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps({"response": {"status": {"code": 429, "message": "Too many requests"}}}).encode()
    response.request = requests.Request("GET", "http://127.0.0.1:9/v1.1/customer/get").prepare()
    with pytest.raises(RateLimitedError):
        stream.validate_response(response)
    unavailable = requests.Response()
    unavailable.status_code, unavailable._content, unavailable.request = 503, b"", response.request
    with pytest.raises(RetriableAPIError) as caught:
        stream.validate_response(unavailable)
    assert not isinstance(caught.value, RateLimitedError), "other retriable answers leave the pace alone"


def served(server: BackgroundServer) -> list[dict[str, Any]]:
    return [e for e in server.call(lambda: list(server.app[REQUEST_LOG].entries)) if e["api_key"] is not None]


def by_api(entries: list[dict[str, Any]], status: int | None = None) -> Counter:
    return Counter(api_name(e["route"]) for e in entries if status is None or e["status"] == status)


@pytest.mark.capillary(**SMALL)
def test_every_request_waits_for_its_api_and_the_overall_budget(
    capillary_emulator: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    paced: Counter = Counter()
    original = ApiPace.acquire

    def counting(self: ApiPace) -> float:
        paced[self.api] += 1
        return original(self)

    monkeypatch.setattr(ApiPace, "acquire", counting)
    run = run_tap(tap_config(capillary_emulator, api_requests_per_minute={DETAILS: 6000}))
    expected = by_api(served(capillary_emulator))
    assert paced.pop("(all)") == sum(expected.values())
    assert paced == expected
    assert run.tap.transport.pacing.api(DETAILS).rate == 100.0
    assert run.tap.transport.pacing.api("v1.1/customer/get").adaptive


LIMITED = pytest.mark.capillary(
    **SMALL, anchor_time=past_anchor(), rate_limits={"*": 8}, rate_limit_window_seconds=2, oauth_clients={
        "emulator-key": "emulator-secret"}
)  # fmt: skip


@LIMITED
def test_adaptive_pacing_reads_everything_under_the_emulators_limits(capillary_emulator: BackgroundServer) -> None:
    """The emulator limits every API to 8 requests per 2 s per key, on the tap's fake clock: the tap, without
    budgets, finds the limits, honours Retry-After, and reads what an unlimited run reads."""
    limits = capillary_emulator.app[RATE_LIMITS]
    baseline_limits, limits.limits = limits.limits, {}
    baseline = run_tap(tap_config(capillary_emulator))
    capillary_emulator.call(capillary_emulator.app[REQUEST_LOG].clear)
    limits.limits = baseline_limits
    clock = FakeClock()
    limits.now = clock.now
    run = run_tap(tap_config(capillary_emulator, max_workers=4), clock=clock)
    assert {s: len(r) for s, r in run.records.items()} == {s: len(r) for s, r in baseline.records.items()}
    refused = by_api(served(capillary_emulator), 429)
    assert refused, "the limits were reached"
    assert all(run.tap.transport.pacing.api(api).rate is not None for api in refused), "and those APIs slowed down"


@LIMITED
def test_budgets_within_the_emulators_limits_get_no_429(capillary_emulator: BackgroundServer) -> None:
    clock = FakeClock()
    capillary_emulator.app[RATE_LIMITS].now = clock.now
    budgets = dict.fromkeys(API_NAMES, 230)  # just under the limit of 4 per second
    # One request at a time: threads sharing a fake clock may send later (in its time) than their turn.
    config = tap_config(capillary_emulator, api_requests_per_minute=budgets, max_workers=1)
    run = run_tap(config, clock=clock)
    assert run.count("transactions") > 0
    assert by_api(served(capillary_emulator), 429) == Counter()
