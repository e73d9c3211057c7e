"""The CLI: ``ingestd`` and its subcommands; each module has ``register(subparsers)`` setting ``func``."""
