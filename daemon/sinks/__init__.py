"""Sinks: where built payloads are delivered, and the delivery executor and per-endpoint flow control."""
