"""Encord's v2 REST API, sans-I/O: request signing, the ``data-upload-jobs`` payload, responses."""
