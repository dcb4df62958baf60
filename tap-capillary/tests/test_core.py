"""The SDK's standard tap tests, against an emulator started for the test class (not at import: collecting the
tests starts nothing).

The SDK builds the test class from a config at import time, and reads the runner's config dict only when the
class's ``runner`` fixture syncs; the emulator fixture (autouse, so set up first in the class scope) fills that
dict first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from emulators.launch import start_capillary
from tap_capillary.tap import TapCapillary
from tests.support import OAUTH, past_anchor, tap_config

# Enough to build the tap and list its streams at import; the emulator's address and dates come with it.
CONFIG: dict[str, Any] = {"base_url": "http://127.0.0.1:9", **OAUTH}

BaseTestClass = get_tap_test_class(
    tap_class=TapCapillary, config=CONFIG, suite_config=SuiteConfig(max_records_limit=500)
)


class TestTapCapillary(BaseTestClass):  # type: ignore[misc,valid-type]
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def emulator(cls) -> Iterator[None]:
        server = start_capillary(customers=12, seed=3, anchor_time=past_anchor())
        CONFIG.update(tap_config(server))
        yield
        server.stop()
