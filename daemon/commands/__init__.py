"""CLI subcommands; each module has ``register(sub)`` adding itself to the ``ingestd`` parser."""
