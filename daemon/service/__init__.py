"""The service: one run of the daemon — wiring config into a pipeline, signals, reload and drain."""
