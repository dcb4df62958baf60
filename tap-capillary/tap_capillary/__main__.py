"""``python -m tap_capillary``."""

from tap_capillary.tap import TapCapillary

TapCapillary.cli()
