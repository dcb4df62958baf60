"""The SDK's standard tap tests, against an emulator started at import (the config must exist at class creation)."""

from __future__ import annotations

import atexit

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from emulators.launch import start_capillary
from tap_capillary.tap import TapCapillary
from tests.support import past_anchor, tap_config

SERVER = start_capillary(customers=12, seed=3, anchor_time=past_anchor())
atexit.register(SERVER.stop)

TestTapCapillary = get_tap_test_class(
    tap_class=TapCapillary,
    config=tap_config(SERVER),
    suite_config=SuiteConfig(max_records_limit=500),
)
