"""Pytest fixtures that start the emulators in-process on free loopback ports.

``capillary_emulator`` and ``adobe_emulator`` yield a started ``BackgroundServer``
(``.base_url``, ``.app``, ``.config``, ``.call(fn)``, ``.set_faults(profile)``), fresh for
each test. Override configuration with markers::

    @pytest.mark.capillary(customers=5, token_ttl_seconds=2)
    @pytest.mark.adobe(token_lifetime_seconds=1)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulators.launch import start_adobe, start_capillary
from emulators.server import BackgroundServer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "capillary(**config): CapillaryConfig overrides for capillary_emulator")
    config.addinivalue_line("markers", "adobe(**config): AdobeConfig overrides for adobe_emulator")


def _overrides(request: pytest.FixtureRequest, name: str) -> dict:
    marker = request.node.get_closest_marker(name)
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
def capillary_emulator(request: pytest.FixtureRequest) -> Iterator[BackgroundServer]:
    server = start_capillary(**_overrides(request, "capillary"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def adobe_emulator(request: pytest.FixtureRequest) -> Iterator[BackgroundServer]:
    server = start_adobe(**_overrides(request, "adobe"))
    try:
        yield server
    finally:
        server.stop()
