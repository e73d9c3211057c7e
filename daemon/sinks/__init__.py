"""Sinks: where built payloads are delivered."""
