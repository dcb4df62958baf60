"""Local emulators of the Capillary API and of Adobe IMS + AEP."""

__version__ = "0.1.0"
