"""Emulator of the Capillary loyalty API (v1.1, v2, v3 OAuth, rewards catalog) over generated data."""

from emulators.capillary.admin import ADMIN, CapillaryAdmin
from emulators.capillary.app import create_app
from emulators.capillary.config import CapillaryConfig, add_cli_arguments, config_from_cli

__all__ = ["ADMIN", "CapillaryAdmin", "CapillaryConfig", "add_cli_arguments", "config_from_cli", "create_app"]
