"""What an HTTP answer means for delivery, as data.

:data:`STATUS_CLASSES` names the statuses with a fixed meaning; the ranges decide the rest:

============  ================================================================================
2xx           ``accepted``, unless the body is an HTML page (a captive portal or proxy answered,
              not the endpoint) -> ``transient``
409           ``duplicate``: the endpoint already has these items (a success)
400 413 422   ``split``: permanent for one item; a multi-item batch is split in halves to find
              the bad items
401 403 404   ``permanent`` (credentials, permissions, wrong URL: a retry cannot fix them)
408 425 429   ``transient``
other 4xx     ``permanent`` when the body is JSON (the endpoint itself answered), ``transient``
              otherwise (an HTML or text error page from an intermediary)
5xx           ``transient``
1xx 3xx       ``permanent`` (redirects are not followed: configure the final URL)
============  ================================================================================

A sink passes its overrides (``{status: Verdict}``); they win over everything above.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    SPLIT = "split"


class BodyKind(StrEnum):
    EMPTY = "empty"
    JSON = "json"
    HTML = "html"
    OTHER = "other"


STATUS_CLASSES: Mapping[int, Verdict] = {
    400: Verdict.SPLIT,
    401: Verdict.PERMANENT,
    403: Verdict.PERMANENT,
    404: Verdict.PERMANENT,
    408: Verdict.TRANSIENT,
    409: Verdict.DUPLICATE,
    413: Verdict.SPLIT,
    422: Verdict.SPLIT,
    425: Verdict.TRANSIENT,
    429: Verdict.TRANSIENT,
}

SPLIT_STATUSES: frozenset[int] = frozenset(s for s, v in STATUS_CLASSES.items() if v is Verdict.SPLIT)

# Statuses that mean "slow down": the adaptive concurrency limit shrinks on them.
OVERLOAD_STATUSES: frozenset[int] = frozenset({429, 503})

# Statuses that mean "these credentials are refused": no retry fixes them, yet the items are not
# at fault, so a sink must not dead-letter them (platform sinks raise CredentialsError).
CREDENTIAL_STATUSES: frozenset[int] = frozenset({401, 403})


def body_kind(content_type: str, body: bytes) -> BodyKind:
    """Classify a response body by its declared type, falling back to its first bytes."""
    head = body.lstrip()[:16].lower()
    if not head:
        return BodyKind.EMPTY
    ct = content_type.split(";", 1)[0].strip().lower()
    if ct == "text/html" or head.startswith((b"<!doctype html", b"<html")):
        return BodyKind.HTML
    if ct == "application/json" or ct.endswith("+json") or head[:1] in (b"{", b"["):
        return BodyKind.JSON
    return BodyKind.OTHER


def classify(status: int, kind: BodyKind, overrides: Mapping[int, Verdict] | None = None) -> Verdict:
    """The verdict for one HTTP response (see the module table)."""
    if overrides and status in overrides:
        return overrides[status]
    fixed = STATUS_CLASSES.get(status)
    if fixed is not None:
        return fixed
    if 200 <= status < 300:
        return Verdict.TRANSIENT if kind is BodyKind.HTML else Verdict.ACCEPTED
    if 400 <= status < 500:
        return Verdict.PERMANENT if kind is BodyKind.JSON else Verdict.TRANSIENT
    if 500 <= status < 600:
        return Verdict.TRANSIENT
    return Verdict.PERMANENT


def parse_overrides(raw: Mapping[str, str]) -> dict[int, Verdict]:
    """Overrides from configuration (``{"404": "transient"}``); errors name the key and value."""
    out: dict[int, Verdict] = {}
    for key, value in raw.items():
        if not key.isdigit() or not 100 <= int(key) <= 599:
            raise ValueError(f"status override {key!r}: not an HTTP status (100..599)")
        try:
            out[int(key)] = Verdict(value)
        except ValueError:
            allowed = ", ".join(v.value for v in Verdict)
            raise ValueError(f"status override {key}: {value!r} is not one of {allowed}") from None
    return out
