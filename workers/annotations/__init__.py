"""Annotations: Labelbox NDJSON built, converted and validated before anything is sent (issue 11)."""
