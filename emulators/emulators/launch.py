"""Start the emulators in-process (tests, benchmark) on free loopback ports."""

from __future__ import annotations

import dataclasses
import ssl
from typing import Any

from emulators.server import BackgroundServer


def start_capillary(
    config: Any = None, port: int = 0, ssl_context: ssl.SSLContext | None = None, **overrides: Any
) -> BackgroundServer:
    """A started Capillary emulator (https with ``ssl_context``); ``overrides`` replace ``CapillaryConfig`` fields."""
    from emulators.capillary import CapillaryConfig, create_app

    config = dataclasses.replace(config or CapillaryConfig(), **overrides)
    return BackgroundServer(create_app(config), port=port, config=config, ssl_context=ssl_context).start()


def start_adobe(config: Any = None, port: int = 0, **overrides: Any) -> BackgroundServer:
    """A started Adobe (IMS + DCS + Schema Registry) emulator; ``overrides`` replace fields of ``AdobeConfig``."""
    from emulators.adobe import AdobeConfig, create_app

    config = dataclasses.replace(config or AdobeConfig(), **overrides)
    return BackgroundServer(create_app(config), port=port, config=config).start()
