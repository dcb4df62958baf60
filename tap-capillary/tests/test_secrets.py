"""Secrets (client secret, till password, its hash, tokens) never reach logs or output, even at DEBUG."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from singer_sdk.exceptions import FatalAPIError

from emulators.capillary.api import AUTH
from emulators.server import BackgroundServer
from tests.support import Run, past_anchor, run_tap, tap_config

SECRET = "s3cr3t-client-value-9431"
PASSWORD = "p4ssw0rd-till-value-2718"
CREDENTIALS = {
    "anchor_time": past_anchor(),
    "customers": 4,
    "oauth_clients": {"client-key-1": SECRET},
    "till_credentials": {"till-user-1": PASSWORD},
    "token_ttl_seconds": 1,
}


def secrets_in(text: str, extra: list[str]) -> list[str]:
    md5 = hashlib.md5(PASSWORD.encode()).hexdigest()  # what Capillary's Basic auth sends
    basic = base64.b64encode(f"till-user-1:{md5}".encode()).decode()
    return [s for s in [SECRET, PASSWORD, md5, basic, *extra] if s in text]


def captured(caplog: pytest.LogCaptureFixture, run: Run | None) -> str:
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    return text + ("\n" + repr(run.messages) if run else "")


def record_tokens(server: BackgroundServer) -> list[str]:
    """The tokens the emulator issues from now on."""
    issued: list[str] = []
    auth = server.app[AUTH]
    original = auth.issue

    def remember(key: str, secret: str) -> str | None:
        token = original(key, secret)
        issued.append(token or "")
        return token

    server.call(setattr, auth, "issue", remember)
    return issued


@pytest.mark.capillary(**CREDENTIALS)
def test_no_secrets_in_debug_logs_oauth(capillary_emulator: BackgroundServer, caplog: pytest.LogCaptureFixture) -> None:
    issued = record_tokens(capillary_emulator)
    config = tap_config(capillary_emulator, client_key="client-key-1", client_secret=SECRET)
    with caplog.at_level(logging.DEBUG):
        run = run_tap(config)
        capillary_emulator.set_faults({"rules": [{"path": "/v1.1/organization/*", "revoke_token_rate": 1.0}]})
        with pytest.raises(FatalAPIError) as failure:
            run_tap(config)
    assert any(r.levelno == logging.DEBUG for r in caplog.records), "DEBUG logging was on"
    assert len(issued) >= 3
    text = captured(caplog, run) + str(failure.value)
    assert secrets_in(text, issued) == []


@pytest.mark.capillary(**CREDENTIALS)
def test_no_secrets_in_debug_logs_till(capillary_emulator: BackgroundServer, caplog: pytest.LogCaptureFixture) -> None:
    config = {k: v for k, v in tap_config(capillary_emulator).items() if k not in ("client_key", "client_secret")}
    config.update(username="till-user-1", password=PASSWORD)
    with caplog.at_level(logging.DEBUG):
        run = run_tap(config)
        with pytest.raises(FatalAPIError) as failure:
            run_tap({**config, "password": PASSWORD + "-wrong"})
    assert run.count("customers") > 0
    assert secrets_in(captured(caplog, run) + str(failure.value), [PASSWORD + "-wrong"]) == []


@pytest.mark.capillary(**CREDENTIALS)
def test_no_secrets_in_the_cli_output_at_debug_level(capillary_emulator: BackgroundServer, tmp_path: Path) -> None:
    issued = record_tokens(capillary_emulator)
    config_file = tmp_path / "config.json"
    config = tap_config(capillary_emulator, client_key="client-key-1", client_secret=SECRET)
    config_file.write_text(json.dumps(config))
    result = subprocess.run(
        [sys.executable, "-m", "tap_capillary", "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "LOGLEVEL": "DEBUG"},
    )
    assert "| DEBUG" in result.stderr
    assert issued
    assert secrets_in(result.stderr + result.stdout, issued) == []
