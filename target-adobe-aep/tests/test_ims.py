"""IMS tokens: expires_in units, caching, refresh ahead of expiry, refresh after 401, errors without secrets."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from conftest import SAMPLES, Aep, FakeClock, record_message, schema_message, state_message, stream_messages

from emulators.server import BackgroundServer
from target_adobe_aep.connection import RetryPolicy, new_session
from target_adobe_aep.dcs import Publisher, PublishResult
from target_adobe_aep.ims import AuthError, TokenProvider, expires_in_seconds

V3 = "https://ims-na1.adobelogin.com/ims/token/v3"
LEGACY = "https://ims-na1.adobelogin.com/ims/token"


@pytest.mark.parametrize(
    ("url", "expires_in", "seconds"),
    [
        (V3, 86399, 86399),  # DEVC implementation.md sample, seconds
        (LEGACY, 86399994, 86399.994),  # EN capillary.md sample, milliseconds
        (LEGACY, 2000, 2),  # a short legacy lifetime is still milliseconds
        (V3 + "/", 3600, 3600),
        (V3, 86399992, 86399.992),  # a versioned endpoint answering in ms is caught by magnitude
        ("https://ims-na1.adobelogin.com/ims/exchange/jwt", 86399992, 86399.992),
    ],
)
def test_expires_in_units(url: str, expires_in: int, seconds: float) -> None:
    assert expires_in_seconds(url, expires_in) == pytest.approx(seconds)


def provider(server: BackgroundServer, path: str, clock: FakeClock, secret: str | None = None) -> TokenProvider:
    client_id, known_secret = next(iter(server.config.clients.items()))
    return TokenProvider(
        session=new_session(1),
        ims_url=server.base_url + path,
        client_id=client_id,
        client_secret=secret or known_secret,
        scopes="openid,AdobeID,read_organizations,additional_info.projectedProductContext,session",
        retry=RetryPolicy(max_tries=3, base_seconds=0.01, timeout_seconds=5, clock=clock),
    )


@pytest.mark.adobe(token_lifetime_seconds=1000)
@pytest.mark.parametrize("path", ["/ims/token/v3", "/ims/token"])
def test_token_cached_and_refreshed_ahead_of_expiry(adobe_emulator: BackgroundServer, path: str) -> None:
    clock = FakeClock()
    tokens = provider(adobe_emulator, path, clock)
    first = tokens.token()
    assert tokens.token() == first
    assert tokens.tokens_fetched == 1
    clock.advance(899)  # 1000 s lifetime (in s on v3, in ms on the legacy endpoint): refresh 100 s early
    assert tokens.token() == first
    clock.advance(2)
    assert tokens.token() != first
    assert tokens.tokens_fetched == 2


def test_refresh_replaces_only_the_rejected_token(adobe_emulator: BackgroundServer) -> None:
    tokens = provider(adobe_emulator, "/ims/token/v3", FakeClock())
    stale = tokens.token()
    fresh = tokens.refresh(stale)
    assert fresh != stale
    assert tokens.refresh(stale) == fresh
    assert tokens.tokens_fetched == 2


def test_bad_secret_is_a_clear_error_without_the_secret(adobe_emulator: BackgroundServer) -> None:
    tokens = provider(adobe_emulator, "/ims/token/v3", FakeClock(), secret="wrong-secret-value")
    with pytest.raises(AuthError, match="invalid_client") as caught:
        tokens.token()
    assert "wrong-secret-value" not in str(caught.value)


@pytest.mark.parametrize("token", ["", "tok\nen-secret-part", "tok en-secret-part", None, 42])
def test_an_unusable_token_is_refused_without_echoing_it(
    adobe_emulator: BackgroundServer, monkeypatch: pytest.MonkeyPatch, token: object
) -> None:
    """A token unfit for an Authorization header is refused at once, and never appears in the error."""
    tokens = provider(adobe_emulator, "/ims/token/v3", FakeClock())
    answer = requests.Response()
    answer.status_code = 200
    answer._content = json.dumps({"access_token": token, "expires_in": 3600}).encode()
    monkeypatch.setattr(tokens._session, "request", lambda *args, **kwargs: answer)
    with pytest.raises(AuthError, match="without a usable access_token") as caught:
        tokens.token()
    assert "secret-part" not in str(caught.value)


def test_ims_5xx_is_retried(adobe_emulator: BackgroundServer) -> None:
    adobe_emulator.set_faults({"rules": [{"path": "/ims/token/v3", "status_rates": {"503": 1.0}, "max_faults": 2,
                                          "retry_after": 0}]})  # fmt: skip
    assert provider(adobe_emulator, "/ims/token/v3", FakeClock()).token()


def _two_batches(between) -> list:
    customers = SAMPLES["customers"]
    return [
        schema_message("customers"),
        record_message("customers", customers[0]),
        between,
        record_message("customers", customers[1]),
        state_message({"bookmark": 2}),
    ]


def _dcs_statuses(aep: Aep) -> list:
    return [e["status"] for e in aep.requests("/collection/batch/")]


@pytest.mark.adobe(token_lifetime_seconds=1000)
@pytest.mark.parametrize("ims_path", ["/ims/token/v3", "/ims/token"])
def test_token_expiring_mid_run_is_refreshed_before_use(aep: Aep, ims_path: str) -> None:
    """v3 answers expires_in=1000 (s), the legacy endpoint 1000000 (ms): both mean 1000 s, refreshed 100 s early."""
    clock = FakeClock()
    run = aep.run(
        _two_batches(lambda: clock.advance(901)),
        ims_url=aep.server.base_url + ims_path,
        batch_size_rows=1,
        clock=clock,
    )
    assert run.states == [{"bookmark": 2}]
    assert _dcs_statuses(aep) == [207, 207]  # no 401: the token was replaced before it expired
    assert run.target.tokens.tokens_fetched == 2
    assert len(aep.stored(aep.server.config.profile_dataset_id)) == 2


def test_401_from_the_inlet_triggers_one_refresh_and_retry(aep: Aep, monkeypatch: pytest.MonkeyPatch) -> None:
    published = threading.Event()
    publish = Publisher.publish

    def publish_and_tell(self: Publisher, messages: list[bytes], flow_id: str | None = None) -> PublishResult:
        try:
            return publish(self, messages, flow_id)
        finally:
            published.set()

    monkeypatch.setattr(Publisher, "publish", publish_and_tell)

    def revoke() -> None:  # once the first batch (published in the background) has reached the inlet
        assert published.wait(timeout=30)
        aep.server.call(aep.state.issuer.revoke_all)

    run = aep.run(_two_batches(revoke), batch_size_rows=1)
    assert run.states == [{"bookmark": 2}]
    assert _dcs_statuses(aep) == [207, 401, 207]
    assert run.target.tokens.tokens_fetched == 2


def test_token_refused_again_after_refresh_is_fatal_and_state_not_advanced(aep: Aep) -> None:
    # Every DCS request revokes all tokens first, so even a fresh token is refused.
    aep.server.set_faults({"rules": [{"path": "/collection/*", "revoke_token_rate": 1.0}]})
    run = aep.run(_two_batches(lambda: None), expect_error=True, preflight=False)  # its probe would be refused
    assert isinstance(run.error, AuthError)
    assert "refused a freshly issued access token" in str(run.error)
    assert run.states == []
    assert _dcs_statuses(aep) == [401, 401]


@pytest.mark.parametrize("preflight", [True, False])
@pytest.mark.parametrize(
    ("overrides", "refusal"),
    [
        ({"client_secret": "not-the-secret"}, "HTTP 401 invalid_client"),
        (
            {"scopes": "openid,AdobeID,read_organizations,aep.admin"},
            "HTTP 400 invalid_scope: invalid scope (aep.admin)",
        ),
    ],
)
def test_ims_refusal_ends_the_target_with_one_line(aep: Aep, overrides: dict, refusal: str, preflight: bool) -> None:
    """A wrong secret or a scope the credential lacks: the run stops with one error line, no traceback."""
    config = aep.tmp_path / "config.json"
    config.write_text(json.dumps({**aep.config, **overrides, "preflight": preflight}))
    messages = aep.tmp_path / "input.jsonl"
    messages.write_text("".join(json.dumps(m) + "\n" for m in stream_messages("customers", SAMPLES["customers"])))
    target = Path(sys.executable).parent / "target-adobe-aep"
    result = subprocess.run([target, "--config", config, "--input", messages], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 1
    # The SDK may say first that the sink could not start; the cause follows, once, on one line.
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert f"IMS refused the client credentials: {refusal}" in errors[-1], result.stderr
    assert sum("IMS refused" in line for line in result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert aep.config["client_secret"] not in result.stderr
