"""The emulator fixtures come from the emulators' pytest plugin; in-process runs wait on a fake clock
(``support.run_tap``)."""
