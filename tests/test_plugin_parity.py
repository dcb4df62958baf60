"""The two plugins retry and stop by one rule.

Each plugin is its own distribution (the Hub installs either alone, from its subdirectory), so the small pieces of
outbound policy both need are kept as one copy per plugin rather than a third package to publish. These tests hold
the copies equal: the same source for the backoff and ``Retry-After`` rules, the same waits on the same retries,
and the same grace after a termination signal.
"""

from __future__ import annotations

import email.utils
import inspect
import random
import time

import pytest
import requests
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from tap_capillary import tap as tap_module
from tap_capillary import transport as tap_transport
from target_adobe_aep import connection as target_connection
from target_adobe_aep import target as target_module


class FakeClock:
    """Time that moves only by the waits the policies ask for."""

    def __init__(self) -> None:
        self.time = 0.0
        self.waits: list[float] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.time += seconds

    def check(self) -> None:
        """The tap's clock checks for a stop before each try; this one never stops."""


def answer(retry_after: str | None) -> requests.Response:
    response = requests.Response()
    response.status_code = 429
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


@pytest.mark.parametrize("name", ["backoff_seconds", "retry_after_seconds"])
def test_the_copies_are_the_same_code(name):
    assert inspect.getsource(getattr(tap_transport, name)) == inspect.getsource(getattr(target_connection, name))
    assert tap_transport.MAX_BACKOFF_SECONDS == target_connection.MAX_BACKOFF_SECONDS


def test_both_read_retry_after_alike(monkeypatch):
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)
    for value in ("7", "0", email.utils.formatdate(now + 120, usegmt=True), "Wed, 21 Oct 2015 07:28:00 GMT", "soon"):
        assert tap_transport.retry_after_seconds(answer(value)) == target_connection.retry_after_seconds(answer(value))
    assert tap_transport.retry_after_seconds(answer("120")) == 120
    assert tap_transport.retry_after_seconds(None) is target_connection.retry_after_seconds(None) is None


def failing_tap_call(retry_after: str | None, max_tries: int, budget: float) -> tuple[list[float], str]:
    clock = FakeClock()
    policy = tap_transport.RetryPolicy(max_tries=max_tries, budget_seconds=budget, clock=clock, base_seconds=0.5)

    def attempt(timeout: float) -> None:
        raise RetriableAPIError("HTTP 429 from GET /v2/x", answer(retry_after))

    with pytest.raises(FatalAPIError) as raised:
        policy.call(attempt, "GET /v2/x")
    return clock.waits, str(raised.value)


def failing_target_call(retry_after: str | None, max_tries: int, budget: float) -> tuple[list[float], str]:
    clock = FakeClock()
    policy = target_connection.RetryPolicy(max_tries=max_tries, base_seconds=0.5, budget_seconds=budget, clock=clock)

    def attempt(timeout: float) -> None:
        response = answer(retry_after)
        raise target_connection.RetriableError("DCS answered HTTP 429", target_connection.retry_after_seconds(response))

    with pytest.raises(target_connection.RetriesExhausted) as raised:
        policy.call(attempt)
    return clock.waits, str(raised.value)


@pytest.mark.parametrize("retry_after", [None, "3", "45"])
def test_the_same_failures_get_the_same_waits(retry_after):
    """Seeded alike, both policies wait the same before each try, and give up after the same number of tries."""
    random.seed(11)
    tap_waits, _ = failing_tap_call(retry_after, max_tries=8, budget=10_000)
    random.seed(11)
    target_waits, _ = failing_target_call(retry_after, max_tries=8, budget=10_000)
    assert tap_waits == target_waits
    assert len(tap_waits) == 7
    steps = [min(60.0, 0.5 * 2**i) for i in range(7)]
    floor = float(retry_after or 0)
    assert all(max(step / 2, floor) <= wait <= max(step, floor) for wait, step in zip(tap_waits, steps, strict=True))


def test_a_retry_after_beyond_the_budget_ends_the_retries_at_once_in_both():
    """Neither plugin retries early against the server's word, nor waits past its budget."""
    tap_waits, tap_error = failing_tap_call("600", max_tries=10, budget=300)
    target_waits, target_error = failing_target_call("600", max_tries=10, budget=300)
    assert tap_waits == target_waits == []
    assert "1 try" in tap_error
    assert "1 try" in target_error


def test_both_give_requests_in_flight_the_same_grace_after_a_signal():
    assert tap_module.TERMINATION_GRACE_SECONDS == target_module.TERMINATION_GRACE_SECONDS
    assert inspect.getsource(tap_module._exit_after_grace).replace("TapCapillary", "Plugin") == inspect.getsource(
        target_module._exit_after_grace
    ).replace("TargetAdobeAEP", "Plugin")
