"""Subcommands of ``ingestd``: each module has ``register(subparsers)`` setting ``func``."""
