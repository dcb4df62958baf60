"""Emulator of Adobe IMS (OAuth server-to-server), AEP streaming ingestion (DCS) and the Schema Registry."""

from emulators.adobe.app import ADOBE, AdobeState, create_app
from emulators.adobe.config import AdobeConfig, add_cli_arguments, config_from_cli

__all__ = ["ADOBE", "AdobeConfig", "AdobeState", "add_cli_arguments", "config_from_cli", "create_app"]
