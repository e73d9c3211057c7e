"""structlog JSON lines to stdout; secrets never leave the process.

Each event is one JSON object (``msgspec`` encodes it) with ``timestamp``, ``level`` and
``event``, plus the object's key and, for rejections, the rule and values. Anything that looks
like a credential in a value (SigV4 signatures, security tokens, bearer tokens) is redacted by
the last processor, whatever code logged it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import msgspec
import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_SECRET_PARAM = re.compile(
    r"(X-Amz-Signature|X-Amz-Security-Token|X-Amz-Credential|Signature|AWSAccessKeyId|token|api_key|apikey)"
    r"=[^&\s\"']+",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(Bearer|Basic|ApiKey)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# a key whose lower-cased name contains one of these holds a secret (access_token, X-Api-Key,
# aws_secret_access_key, client_secret, ...)
_SECRET_WORDS = ("authorization", "api_key", "apikey", "api-key", "token", "secret", "password", "signature")


def _secret_key(key: object) -> bool:
    name = str(key).lower()
    return any(w in name for w in _SECRET_WORDS)


def redact_text(text: str) -> str:
    return _BEARER.sub(r"\1 [redacted]", _SECRET_PARAM.sub(r"\1=[redacted]", text))


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value) if ("=" in value or " " in value) else value
    if isinstance(value, dict):
        return {k: "[redacted]" if _secret_key(k) else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for k in list(event):
        event[k] = "[redacted]" if _secret_key(k) else _redact(event[k])
    return event


def _default(obj: Any) -> Any:
    return repr(obj)


_enc = msgspec.json.Encoder(enc_hook=_default)


def _render(_: Any, __: str, event: MutableMapping[str, Any]) -> bytes:
    return _enc.encode(event)


def configure(level: str = "info", stream: Any = None) -> None:
    """Configure structlog once per process (idempotent)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            _render,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.BytesLoggerFactory(file=stream or sys.stdout.buffer),
        cache_logger_on_first_use=False,
    )
