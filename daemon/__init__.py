"""The long-running process: configuration, sources, sinks, pipeline, ledger, service, CLI."""
