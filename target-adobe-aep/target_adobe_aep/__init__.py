"""Singer target that streams XDM into Adobe Experience Platform through the HTTP API streaming inlet."""

__version__ = "0.1.0"
