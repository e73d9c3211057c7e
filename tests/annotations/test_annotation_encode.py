"""Encoding: deterministic uuids and dropping confidence."""

from __future__ import annotations

import json
import uuid

from msgspec import UNSET

from workers.annotations.decode import decode_ndjson
from workers.annotations.encode import (
    NAMESPACE,
    drop_confidence,
    encode_annotation,
    encode_ndjson,
    line_with_deterministic_uuid,
    with_deterministic_uuid,
)
from workers.annotations.validate import validate_lines


class TestDeterministicUuid:
    def test_same_line_same_uuid(self, lines, track):
        """A re-sent line (same content, same data row) gets the same uuid, a valid uuid5."""
        a = with_deterministic_uuid(lines(track(1, 5))[0].annotation)
        b = with_deterministic_uuid(lines(track(1, 5))[0].annotation)
        assert a.uuid == b.uuid
        assert uuid.UUID(a.uuid).version == 5

    def test_content_and_row_change_it(self, lines, track):
        """Another keyframe or another data row is another uuid."""
        base = with_deterministic_uuid(lines(track(1, 5))[0].annotation).uuid
        assert with_deterministic_uuid(lines(track(1, 6))[0].annotation).uuid != base
        assert with_deterministic_uuid(lines(track(1, 5, key="other.mp4"))[0].annotation).uuid != base

    def test_integer_and_float_coordinates_agree(self):
        """617 and 617.0 are one JSON number: the same uuid from a converter's dict or from a file."""
        text = '{"name":"p","dataRow":{"globalKey":"k"},"point":{"x":617,"y":1}}'
        other = '{"name":"p","dataRow":{"globalKey":"k"},"point":{"x":617.0,"y":1.0}}'
        (a,), _ = decode_ndjson(text.encode(), source="a")
        (b,), _ = decode_ndjson(other.encode(), source="b")
        assert (
            line_with_deterministic_uuid(a).annotation.uuid == line_with_deterministic_uuid(b).annotation.uuid
        )

    def test_given_uuid_is_kept(self, lines, track):
        """A line that has a uuid keeps it (the very object comes back)."""
        ann = lines(track(1, uuid="9d4b1b1e-0000-4000-8000-000000000001"))[0].annotation
        assert with_deterministic_uuid(ann) is ann

    def test_value_is_uuid5_of_row_and_content(self, lines, track):
        """The documented recipe: uuid5(NAMESPACE, row + newline + the JSON without uuid)."""
        ann = lines(track(3))[0].annotation
        want = uuid.uuid5(NAMESPACE, "sample-video-jellyfish.mp4\n" + encode_annotation(ann).decode())
        assert with_deterministic_uuid(ann).uuid == str(want)


class TestConfidence:
    def test_dropped_everywhere_for_mal(self, lines, track):
        """MAL: confidence leaves the line, its answers and nested answers; one warning says so."""
        radio = {
            "dataRow": {"globalKey": "k"},
            "name": "r",
            "confidence": 0.9,
            "answer": {
                "name": "a",
                "confidence": 0.5,
                "classifications": [{"name": "s", "answer": {"name": "b", "confidence": 0.1}}],
            },
        }
        out, problems = validate_lines(lines(radio, track(2, confidence=0.3)), kind="mal")
        assert [(p.rule, p.severity) for p in problems] == [("annotation.confidence.ignored", "warning")]
        assert "confidence" not in encode_ndjson(out).decode()

    def test_kept_without_a_kind(self, lines, track):
        """No import kind: confidence stays."""
        out, _ = validate_lines(lines(track(2, confidence=0.3)))
        assert json.loads(encode_ndjson(out))["confidence"] == 0.3

    def test_drop_leaves_a_line_without_confidence_alone(self, lines, track):
        """drop_confidence returns the same object when there is nothing to drop."""
        ann = lines(track(2))[0].annotation
        assert drop_confidence(ann) is ann
        with_conf = lines(track(2, confidence=0.5))[0].annotation
        assert drop_confidence(with_conf).confidence is UNSET
        assert with_conf.confidence == 0.5
