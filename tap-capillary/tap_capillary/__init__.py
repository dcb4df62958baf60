"""Singer tap for the Capillary loyalty API."""

__version__ = "0.1.0"
