"""Singer tap for the Capillary loyalty API."""
