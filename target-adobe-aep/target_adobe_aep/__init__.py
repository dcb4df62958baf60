"""Singer target that streams XDM into Adobe Experience Platform through the HTTP API streaming inlet."""
