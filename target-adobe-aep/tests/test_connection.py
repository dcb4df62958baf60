"""The outbound-HTTP policy every client shares (no redirects, TLS verified), one retry layer per call, the retry
time budget, Retry-After, and waits that a termination signal ends."""

from __future__ import annotations

import email.utils
import json
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import trustme
from conftest import Aep, FakeClock, Handler, base_url, serving

from target_adobe_aep.connection import (
    Clock,
    ConfigError,
    Interrupted,
    RetriableError,
    RetriesExhausted,
    RetryPolicy,
    retry_after_seconds,
)
from target_adobe_aep.dcs import RateLimiter
from target_adobe_aep.target import TargetAdobeAEP

# Each client, the setting that points it at the redirecting server, and the emulator paths it would reach.
CLIENTS: dict[str, tuple[str, str, Callable[[TargetAdobeAEP], object]]] = {
    "IMS token": ("ims_url", "/ims/", lambda target: target.tokens.token()),
    "Schema Registry": (
        "platform_url", "/data/", lambda target: target.platform.get("/data/foundation/schemaregistry/stats", "Schema"),
    ),
    "Catalog": (
        "platform_url", "/data/", lambda target: target.platform.get("/data/foundation/catalog/dataSets/x", "Catalog"),
    ),
    "DCS batch": ("inlet_url", "/collection/", lambda target: target.publisher.publish([b'{"header":{}}'])),
    "DCS preflight probe": ("inlet_url", "/collection/", lambda target: target.publisher.validate_one(b"{}")),
}  # fmt: skip


@pytest.mark.parametrize("client", CLIENTS)
def test_no_client_follows_a_redirect(aep: Aep, client: str) -> None:
    """A redirect (here 307, which requests would follow with the same body: the client secret, personal data) is
    an error naming the endpoint; nothing reaches the redirect's target, and it is not retried."""
    setting, reached, call = CLIENTS[client]
    original = aep.config[setting]
    emulator = aep.server.base_url

    def redirect(handler: Handler) -> tuple[int, dict[str, str], bytes]:
        return 307, {"Location": emulator + handler.path}, b""

    with serving(redirect) as redirector:
        redirecting = original.replace(emulator, base_url(redirector))
        target = TargetAdobeAEP(config={**aep.config, setting: redirecting})
        with pytest.raises(ConfigError, match=r"answered HTTP 307 redirecting to http://127\.0\.0\.1") as caught:
            call(target)
    assert base_url(redirector) in str(caught.value)
    assert "redirects are never followed" in str(caught.value)
    assert len(redirector.hits) == 1
    assert aep.requests(reached) == []


def test_tls_certificates_are_verified_and_ca_bundle_names_other_cas(aep: Aep, tmp_path: Path) -> None:
    """A certificate the trusted CAs did not sign is an error at the first try (no retry, no way to turn the check
    off); with ca_bundle naming its CA the same endpoint is used."""
    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    token = json.dumps({"access_token": "issued-token", "expires_in": 3600}).encode()
    with serving(lambda _: (200, {"Content-Type": "application/json"}, token), tls) as ims:
        config = {**aep.config, "ims_url": base_url(ims, "https") + "/ims/token/v3"}
        with pytest.raises(ConfigError, match=r"the TLS certificate of 127\.0\.0\.1:\d+ does not verify .*ca_bundle"):
            TargetAdobeAEP(config=config).tokens.token()
        assert (ims.connections, ims.hits) == (1, [])
        bundle = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        assert TargetAdobeAEP(config={**config, "ca_bundle": str(bundle)}).tokens.token() == "issued-token"
    with pytest.raises(ConfigError, match="'ca_bundle' names no readable file"):
        _ = TargetAdobeAEP(config={**config, "ca_bundle": str(tmp_path / "missing.pem")}).session


@pytest.mark.parametrize("client", ["Schema Registry", "DCS batch"])
def test_a_token_service_that_keeps_failing_is_retried_in_one_layer(aep: Aep, client: str) -> None:
    """IMS always 503: its own retries only (6 requests with max_retries 5), not again inside the retries of the
    call that needed the token (that made 36), and the call itself is never sent."""
    aep.server.set_faults({"rules": [{"path": "/ims/*", "status_rates": {"503": 1.0}, "retry_after": 0}]})
    target = TargetAdobeAEP(config={**aep.config, "max_retries": 5})
    target.clock = FakeClock()
    _, reached, call = CLIENTS[client]
    with pytest.raises(RetriesExhausted, match="IMS answered HTTP 503; gave up after 6 tries"):
        call(target)
    assert len(aep.requests("/ims/")) == 6
    assert aep.requests(reached) == []


def test_a_dead_service_fails_within_the_retry_budget(aep: Aep) -> None:
    aep.server.set_faults({"rules": [{"path": "/collection/*", "status_rates": {"503": 1.0}, "retry_after": 0}]})
    clock = FakeClock()
    target = TargetAdobeAEP(config={**aep.config, "max_retries": 1000, "retry_budget_seconds": 30})
    target.clock = clock
    with pytest.raises(
        RetriesExhausted, match=r"DCS answered HTTP 503; gave up after \d+ tries in .* retry_budget_seconds 30"
    ):
        target.publisher.publish([b"{}"])
    assert clock.time - 1000 <= 30
    assert 5 < len(aep.requests("/collection/")) < 100


def test_an_unreachable_service_fails_after_its_retries_with_one_error(aep: Aep) -> None:
    with socket.socket() as closed:  # a loopback port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    clock = FakeClock()
    target = TargetAdobeAEP(config={**aep.config, "ims_url": f"http://127.0.0.1:{port}/ims/token/v3"})
    target.clock = clock
    with pytest.raises(RetriesExhausted, match=r"^IMS request failed: ConnectionError; gave up after 6 tries in "):
        target.tokens.token()
    assert clock.time - 1000 < 0.32  # 5 backoffs of at most 10, 20, 40, 80 and 160 ms


def test_a_storm_is_ridden_out_honouring_retry_after(aep: Aep) -> None:
    storm = {"path": "/collection/batch/*", "status_rates": {"429": 1.0}, "retry_after": 20, "max_faults": 8}
    aep.server.set_faults({"rules": [storm]})
    clock = FakeClock()
    target = TargetAdobeAEP(config={**aep.config, "max_retries": 10})
    target.clock = clock
    result = target.publisher.publish([b'{"header":{}}'])
    assert (result.requests, result.retries) == (9, 8)
    assert sorted(clock.waits)[-8:] == [20] * 8


def test_retry_after_is_read_as_seconds_or_an_http_date(monkeypatch: pytest.MonkeyPatch) -> None:
    def answer(value: str) -> requests.Response:
        response = requests.Response()
        response.headers["Retry-After"] = value
        return response

    now = 1_700_000_000.0
    monkeypatch.setattr(time, "time", lambda: now)  # urllib3 reads the date against time.time()
    assert retry_after_seconds(answer("7")) == 7
    assert retry_after_seconds(answer(email.utils.formatdate(now + 120, usegmt=True))) == 120
    assert retry_after_seconds(answer("Wed, 21 Oct 2015 07:28:00 GMT")) == 0
    assert retry_after_seconds(answer("soon")) is None
    assert retry_after_seconds(requests.Response()) is None


def test_a_stopped_clock_ends_every_wait() -> None:
    """A termination signal stops the run's clock: a backoff or rate-limit wait in progress, or any later one,
    raises ``Interrupted`` at once instead of sleeping."""
    clock = Clock()
    clock.stop()
    with pytest.raises(Interrupted):
        clock.sleep(3600)
    with pytest.raises(Interrupted):
        RateLimiter(1, clock).acquire(100)
    tries = []

    def failing(_timeout: float) -> None:
        tries.append(1)
        raise RetriableError("DCS answered HTTP 429", retry_after=60)

    with pytest.raises(Interrupted):
        RetryPolicy(clock=clock).call(failing)
    assert len(tries) == 1
