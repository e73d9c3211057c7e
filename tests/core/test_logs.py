"""daemon.core.logs: one JSON object per line, and no secret ever written."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from daemon.core.logs import configure, redact, redact_text

PRESIGNED = (
    "https://bucket.s3.us-east-1.amazonaws.com/clips/a.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20250101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250101T000000Z"
    "&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLETOKEN"
    "&X-Amz-Signature=0123456789abcdef0123456789abcdef"
)
SECRETS = ("AKIAEXAMPLE", "FQoGZXIvYXdzEXAMPLETOKEN", "0123456789abcdef0123456789abcdef", "sk-live-42")


def leaked(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


class TestRedactText:
    def test_presigned_url_keeps_its_shape_without_secrets(self) -> None:
        """Signature, security token and credential values are replaced; the rest of the URL stays."""
        out = redact_text(PRESIGNED)
        assert leaked(out) == []
        assert out.startswith(
            "https://bucket.s3.us-east-1.amazonaws.com/clips/a.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        )
        for name in ("X-Amz-Credential", "X-Amz-Security-Token", "X-Amz-Signature"):
            assert f"{name}=[redacted]" in out
        assert "X-Amz-Expires=3600" in out

    @pytest.mark.parametrize(
        "text",
        [
            "Authorization: Bearer sk-live-42",
            "authorization: bearer sk-live-42.more/stuff=",
            "header Basic sk-live-42",
            "ApiKey sk-live-42",
        ],
    )
    def test_authorization_schemes(self, text: str) -> None:
        """Bearer, Basic and ApiKey credentials are redacted whatever the case."""
        out = redact_text(text)
        assert "sk-live-42" not in out and "[redacted]" in out

    def test_plain_text_is_untouched(self) -> None:
        """Text without credentials passes through unchanged."""
        text = "moov box not found at offset 1024 (size=77)"
        assert redact_text(text) == text


def run_redact(event: dict[str, Any]) -> dict[str, Any]:
    return dict(redact(None, "info", dict(event)))


class TestRedactEvent:
    def test_nested_structures(self) -> None:
        """URLs inside nested dicts, lists and tuples are redacted at any depth."""
        event = {
            "event": "batch sent",
            "items": [{"row_data": PRESIGNED}, ("x", PRESIGNED)],
            "deep": {"a": {"b": [PRESIGNED]}},
        }
        out = run_redact(event)
        assert leaked(json.dumps(out)) == []
        assert out["event"] == "batch sent"

    @pytest.mark.parametrize(
        "key",
        [
            "authorization",
            "Authorization",
            "api_key",
            "X-Api-Key",
            "token",
            "access_token",
            "aws_secret_access_key",
            "client_secret",
            "password",
            "signature",
        ],
    )
    def test_keys_named_like_secrets_are_redacted(self, key: str) -> None:
        """A value under a secret-sounding key is replaced whole, at the top level and nested."""
        out = run_redact({key: "sk-live-42", "headers": {key: "sk-live-42"}, "key": "clips/a.mp4"})
        assert out[key] == "[redacted]" and out["headers"][key] == "[redacted]"
        assert out["key"] == "clips/a.mp4"

    def test_ordinary_values_are_kept(self) -> None:
        """Object keys, rules and numbers are not touched."""
        event = {
            "event": "rejected",
            "key": "a b.mp4",
            "rule": "labelbox.video.vfr",
            "expected": False,
            "n": 3,
        }
        assert run_redact(event) == event


@pytest.fixture
def stream() -> Iterator[io.BytesIO]:
    buf = io.BytesIO()
    configure("info", stream=buf)
    yield buf
    structlog.reset_defaults()


def fail_with_url() -> None:
    raise RuntimeError(f"GET {PRESIGNED} failed")


def lines(buf: io.BytesIO) -> list[dict[str, Any]]:
    raw = buf.getvalue()
    assert raw.endswith(b"\n")
    return [json.loads(line) for line in raw.splitlines()]


class TestConfiguredLogger:
    def test_one_json_object_per_line_with_event_level_timestamp(self, stream: io.BytesIO) -> None:
        """Each event is one line of JSON carrying event, level, an ISO UTC timestamp and its fields."""
        log = structlog.get_logger()
        log.info("batch written", key="clips/a.mp4", items=2)
        log.warning("rejected", key="b.mp4", rule="labelbox.video.vfr", expected=False, actual=True)
        first, second = lines(stream)
        assert first["event"] == "batch written" and first["level"] == "info"
        assert first["key"] == "clips/a.mp4" and first["items"] == 2
        assert first["timestamp"].endswith("Z") and "T" in first["timestamp"]
        assert second["level"] == "warning" and second["rule"] == "labelbox.video.vfr"

    def test_level_filters_lower_events(self, stream: io.BytesIO) -> None:
        """At level info, debug events are not written."""
        log = structlog.get_logger()
        log.debug("noise")
        log.info("kept")
        assert [e["event"] for e in lines(stream)] == ["kept"]

    def test_secrets_never_reach_the_stream(self, stream: io.BytesIO) -> None:
        """Presigned URLs, tokens and exception texts are redacted in what is written."""
        log = structlog.get_logger()
        log.info(
            "probe", url=PRESIGNED, headers={"Authorization": "Bearer sk-live-42"}, access_token="sk-live-42"
        )
        try:
            fail_with_url()
        except RuntimeError:
            log.exception("read failed")
        text = stream.getvalue().decode()
        assert leaked(text) == []
        assert "read failed" in text and "RuntimeError" in text

    def test_values_that_are_not_json_are_written_as_repr(self, stream: io.BytesIO) -> None:
        """An arbitrary object in an event does not break the line."""
        structlog.get_logger().info("odd", value={1, 2}.__class__)
        (entry,) = lines(stream)
        assert entry["value"] == "<class 'set'>"
