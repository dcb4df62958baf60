"""Fixtures shared by the tap's tests (the emulator fixtures come from the emulators' pytest plugin)."""

from __future__ import annotations

import pytest

from tap_capillary.auth import OAuthTokenAuthenticator
from tap_capillary.client import CapillaryStream


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep backoff short: the retry classes are tested, not the waiting."""
    monkeypatch.setattr(CapillaryStream, "retry_base_seconds", 0.01)
    monkeypatch.setattr(OAuthTokenAuthenticator, "retry_backoff_factor", 0.0)
