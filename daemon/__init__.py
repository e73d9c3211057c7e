"""The long-running process, in rooms by role: core, sources, sinks, ops, ledger, pipeline, service, commands.

See docs/architecture.md for what each room holds and which rooms it may import.
"""
