"""The outbound-HTTP policy of every request (API and OAuth token): no redirect followed, TLS always verified,
one retry layer whose waits honour ``Retry-After`` in both forms and end when the run stops."""

from __future__ import annotations

import email.utils
import re
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from emulators.launch import start_capillary
from emulators.server import REQUEST_LOG, BackgroundServer
from tap_capillary.transport import Clock, Interrupted, RetryPolicy, retry_after_seconds
from tests.support import OAUTH, TILL, FakeClock, past_anchor, run_tap, run_tap_to_the_end, tap_config

SMALL = {"customers": 3, "seed": 5, "anchor_time": past_anchor()}


def requests_to(server: BackgroundServer) -> list[dict[str, Any]]:
    return server.call(lambda: list(server.app[REQUEST_LOG].entries))


@pytest.fixture
def elsewhere() -> Iterator[BackgroundServer]:
    """Where a redirect points: a server that must never be reached."""
    server = start_capillary(customers=1)
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("auth", "first_request"),
    [("oauth", "POST /v3/oauth/token/generate"), ("till", "POST /v2/search/entity")],
    ids=["oauth-token-request", "api-request-with-basic-auth"],
)
@pytest.mark.capillary(**SMALL)
def test_no_request_follows_a_redirect(
    capillary_emulator: BackgroundServer, elsewhere: BackgroundServer, auth: str, first_request: str
) -> None:
    """A 307 would make requests send the same request, client secret or Basic header included, to the
    redirect's target: it is an error naming the endpoint, and it is not retried."""
    method, path = first_request.split()
    target = f"{elsewhere.base_url}{path}"
    capillary_emulator.set_faults({"rules": [{"status_rates": {307: 1.0}, "redirect_to": target + "?k=v"}]})
    config = tap_config(capillary_emulator)
    if auth == "till":
        config = {**{k: v for k, v in config.items() if k not in OAUTH}, **TILL}
    run, error = run_tap_to_the_end(config)
    assert isinstance(error, FatalAPIError)
    assert str(error).startswith(f"{first_request} answered HTTP 307 redirecting to {target}: redirects are never")
    assert requests_to(elsewhere) == []
    assert [f"{e['method']} {e['path']}" for e in requests_to(capillary_emulator)] == [f"{method} {path}"]
    assert run.clock.waits == []


@pytest.fixture
def certificate_authority(monkeypatch: pytest.MonkeyPatch) -> trustme.CA:
    """A CA nobody trusts (the environment's CA bundles are ignored)."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    return trustme.CA()


def test_tls_certificates_are_verified_and_ca_bundle_names_other_cas(
    certificate_authority: trustme.CA, tmp_path: Path
) -> None:
    """A certificate the trusted CAs did not sign stops the run at once (it is not a transient failure),
    naming the host and the setting; with ``ca_bundle`` naming its CA the run reads everything."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(tls)
    server = start_capillary(ssl_context=tls, **SMALL)
    try:
        config = tap_config(server)
        assert config["base_url"].startswith("https://")
        run, error = run_tap_to_the_end(config)
        assert isinstance(error, FatalAPIError)
        assert re.fullmatch(
            r"POST /v3/oauth/token/generate: the TLS certificate of 127\.0\.0\.1:\d+ does not verify "
            r"\(certificate verify failed: [^)]+\); ca_bundle names other CA certificates to trust",
            str(error),
        )
        assert run.clock.waits == [], "not retried"
        bundle = tmp_path / "ca.pem"
        certificate_authority.cert_pem.write_to_path(str(bundle))
        assert run_tap({**config, "ca_bundle": str(bundle)}).count("customers") > 0
    finally:
        server.stop()


def retriable(headers: dict[str, str]) -> RetriableAPIError:
    response = requests.Response()
    response.status_code = 429
    response.headers.update(headers)
    return RetriableAPIError("HTTP 429 from GET /v2/x", response)


def failing(times: int, error: Exception) -> Any:
    calls: list[float] = []

    def attempt(timeout: float) -> str:
        calls.append(timeout)
        if len(calls) <= times:
            raise error
        return "done"

    attempt.calls = calls  # type: ignore[attr-defined]
    return attempt


def test_retry_after_is_read_in_seconds_and_as_an_http_date(monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1_700_000_000.0
    monkeypatch.setattr(time, "time", lambda: now)  # urllib3 reads the date against time.time()
    in_a_minute = email.utils.formatdate(now + 60, usegmt=True)
    assert retry_after_seconds(retriable({"Retry-After": "7"}).response) == 7
    assert retry_after_seconds(retriable({"Retry-After": in_a_minute}).response) == 60
    assert retry_after_seconds(retriable({"Retry-After": "soon"}).response) is None
    assert retry_after_seconds(retriable({}).response) is None


def test_retry_after_longer_than_the_backoff_is_waited_and_one_beyond_the_budget_is_not() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_tries=5, budget_seconds=100, clock=clock)
    assert policy.call(failing(2, retriable({"Retry-After": "30"})), "GET /v2/x") == "done"
    assert clock.waits == [30, 30]
    with pytest.raises(FatalAPIError, match=r"^Giving up after 1 try in 0\.0 s: HTTP 429 from GET /v2/x .*After 101 s"):
        policy.call(failing(1, retriable({"Retry-After": "101"})), "GET /v2/x")


def test_each_try_gets_what_is_left_of_the_budget_as_its_timeout() -> None:
    clock = FakeClock()
    attempt = failing(3, requests.ConnectionError("reset"))
    with pytest.raises(FatalAPIError, match=r"ConnectionError on GET /v2/x \(max_retries 9, retry_budget_seconds 5\)"):
        RetryPolicy(max_tries=10, budget_seconds=5, clock=clock, base_seconds=2).call(attempt, "GET /v2/x")
    timeouts = attempt.calls
    assert timeouts[0] == 5
    assert timeouts == sorted(timeouts, reverse=True)
    assert sum(clock.waits) <= 5


def test_once_the_run_stops_no_try_starts_and_no_wait_lasts() -> None:
    clock = Clock()
    clock.stop()  # what the termination signal handler does
    attempt = failing(0, requests.Timeout())
    with pytest.raises(Interrupted):
        RetryPolicy(max_tries=3, budget_seconds=100, clock=clock).call(attempt, "GET /v2/x")
    assert attempt.calls == []
    with pytest.raises(Interrupted):
        clock.sleep(3600)  # returns at once
