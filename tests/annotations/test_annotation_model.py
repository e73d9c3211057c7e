"""Decoding and re-encoding: the seed's examples, precise decode problems, hypothesis properties."""

from __future__ import annotations

import json

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec import UNSET

from workers.annotations import model as m
from workers.annotations.decode import convert_dicts, decode_line, decode_ndjson, iter_ndjson
from workers.annotations.encode import encode_ndjson
from workers.annotations.facts import MediaFacts
from workers.annotations.ontology import load_ontology
from workers.annotations.problems import Problem
from workers.annotations.validate import validate_lines

SHAPES = {
    "bbox_annotation_ndjson": m.VideoObject,
    "point_annotation_ndjson": m.VideoObject,
    "polyline_frame_annotation_ndjson": m.VideoObject,
    "video_mask_ndjson_bytes_2": m.VideoMask,
    "global_radio_classification_ndjson": m.RadioClassification,
    "frame_radio_classification_ndjson": m.RadioClassification,
    "nested_radio_annotation_ndjson": m.RadioClassification,
    "text_annotation_ndjson": m.TextClassification,
    "global_checklist_classification_ndjson": m.ChecklistClassification,
    "frame_checklist_classification_ndjson": m.ChecklistClassification,
    "frame_text_classification_ndjson": m.ChecklistClassification,
    "temporal_radio_annotation_ndjson": m.ChecklistClassification,
    "temporal_text_annotation_ndjson": m.ChecklistClassification,
    "nested_temporal_radio_annotation_ndjson": m.ChecklistClassification,
}


def ndjson(objs) -> bytes:
    return b"\n".join(json.dumps(o).encode() for o in objs) + b"\n"


class TestSeedExamples:
    def test_decode_validate_reencode(self, seed_examples):
        """All 19 seed examples decode, pass the format rules and re-encode to equal JSON."""
        data = ndjson(seed_examples.values())
        lines, problems = decode_ndjson(data, source="seed.ndjson")
        assert problems == []
        assert len(lines) == len(seed_examples) == 19
        out, problems = validate_lines(lines, kind="mal")
        assert problems == []
        again = [json.loads(x) for x in encode_ndjson(out).splitlines()]
        assert again == list(seed_examples.values())

    def test_shapes(self, seed_examples):
        """Each example decodes into the Struct of its shape."""
        lines, _ = decode_ndjson(ndjson(seed_examples.values()), source="seed")
        got = {name: type(line.annotation) for name, line in zip(seed_examples, lines, strict=True)}
        for name, cls in SHAPES.items():
            assert got[name] is cls, name

    def test_dicts_decode_like_bytes(self, seed_examples):
        """convert_dicts (for converters) builds the same lines as decoding the bytes."""
        from_bytes, _ = decode_ndjson(ndjson(seed_examples.values()), source="s")
        from_dicts, problems = convert_dicts(list(seed_examples.values()), source="s")
        assert problems == []
        assert from_dicts == from_bytes

    def test_absent_keys_stay_absent_and_present_ones_stay(self):
        """classifications: [] is written back, a missing uuid is not invented."""
        obj = {
            "name": "b",
            "classifications": [],
            "dataRow": {"id": "ck1"},
            "segments": [{"keyframes": [{"frame": 1, "point": {"x": 1.5, "y": 2}}]}],
        }
        line = decode_line(json.dumps(obj).encode(), file="f", number=1)
        assert isinstance(line, m.Line)
        assert line.annotation.uuid is UNSET
        assert json.loads(encode_ndjson([line])) == obj


class TestDecodeProblems:
    def test_bad_lines_do_not_stop_the_others(self):
        """Each bad line is one problem with its line number; good lines flow on; blank lines are skipped."""
        good = b'{"name":"t","answer":"x","dataRow":{"id":"a"}}'
        data = b"\n".join(
            [
                good,
                b"{oops",
                b"",
                b"[1]",
                good,
                b'{"name":"t","dataRow":{"id":"a"}}',
                b'{"name":"t","answer":3}',
            ]
        )
        lines, problems = decode_ndjson(data, source="in.ndjson")
        assert [x.number for x in lines] == [1, 5]
        assert [(p.line, p.rule) for p in problems] == [
            (2, "decode.json"),
            (4, "decode.type"),
            (6, "annotation.shape"),
            (7, "annotation.shape"),
        ]

    def test_unknown_key_with_its_path(self):
        """An unknown key deep in a track names its JSON path."""
        box = b'"bbox":{"top":1,"left":1,"height":1,"width":1}'
        raw = b'{"name":"b","segments":[{"keyframes":[{"frame":1,' + box + b',"colour":"red"}]}]}'
        p = decode_line(raw, file="f.ndjson", number=3)
        assert p == Problem(
            file="f.ndjson",
            line=3,
            path="$.segments[0].keyframes[0]",
            rule="decode.unknown_field",
            message="Object contains unknown field `colour`",
            expected="a known field",
            actual="colour",
        )
        assert p.render() == (
            "f.ndjson:3: $.segments[0].keyframes[0]: decode.unknown_field:"
            " Object contains unknown field `colour` (expected a known field, got colour)"
        )

    def test_wrong_type_and_missing_field(self):
        """Types and required keys are reported with expected and actual."""
        p = decode_line(b'{"name":"b","segments":[{"keyframes":[{"frame":"1"}]}]}', file="f", number=1)
        assert (p.rule, p.path, p.expected, p.actual) == (
            "decode.type",
            "$.segments[0].keyframes[0].frame",
            "int",
            "str",
        )
        p = decode_line(b'{"name":"b","bbox":{"top":1,"left":1,"height":1}}', file="f", number=1)
        assert (p.rule, p.path, p.expected, p.actual) == ("decode.missing_field", "$.bbox", "width", "absent")

    def test_two_shapes_in_one_line(self):
        """A line with both bbox and segments is ambiguous."""
        p = decode_line(b'{"name":"b","bbox":{},"segments":[]}', file="f", number=1)
        assert (p.rule, p.actual) == ("annotation.shape", "segments, bbox")

    def test_colour_out_of_range(self):
        """colorRGB channels are 0..255."""
        p = decode_line(
            b'{"masks":{"frames":[],"instances":[{"colorRGB":[1,2,256],"name":"m"}]}}', file="f", number=1
        )
        assert (p.rule, p.path) == ("decode.value", "$.masks.instances[0].colorRGB[2]")

    def test_dict_that_is_not_an_object(self):
        """convert_dicts reports a non-object like the bytes decoder does."""
        lines, problems = convert_dicts([[1, 2]], source="c")  # type: ignore[list-item]
        assert lines == [] and [(p.rule, p.actual) for p in problems] == [("decode.type", "list")]

    def test_crlf_lines(self):
        """Windows line ends are JSON whitespace."""
        lines, problems = decode_ndjson(
            b'{"name":"t","answer":"x"}\r\n{"name":"t","answer":"y"}\r\n', source="f"
        )
        assert problems == [] and [x.annotation.answer for x in lines] == ["x", "y"]


VIDEO = MediaFacts(kind="video", width=100, height=80, frame_count=50)
IMAGE = MediaFacts(kind="image", width=100, height=80)
ONTOLOGY = load_ontology(
    b'{"tools": [{"name": "a", "tool": "rectangle", "classifications": [{"name": "b", "type": "radio",'
    b' "options": [{"value": "c"}]}]}],'
    b' "classifications": [{"name": "a", "type": "checklist", "scope": "index"}]}'
)


# --- hypothesis -----------------------------------------------------------------------------


def tuples(*args, **kwargs):
    return st.lists(*args, **kwargs).map(tuple)


def unset_or(strategy):
    return st.one_of(st.just(UNSET), strategy)


names = st.text(min_size=1, max_size=12)
coord = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
frames = tuples(st.builds(m.FrameRange, start=st.integers(0, 10**6), end=st.integers(0, 10**6)), max_size=3)
point = st.builds(m.Point, x=coord, y=coord)
bbox = st.builds(m.BBox, top=coord, left=coord, height=coord, width=coord)
row = st.one_of(st.builds(m.DataRow, id=names), st.builds(m.DataRow, global_key=names))

classification = st.deferred(
    lambda: st.builds(
        m.Classification,
        name=unset_or(names),
        answer=st.one_of(names, answer, tuples(answer, max_size=3)),
        frames=unset_or(frames),
        confidence=unset_or(st.floats(0, 1)),
    )
)
answer = st.builds(
    m.Answer,
    name=unset_or(names),
    value=unset_or(names),
    frames=unset_or(frames),
    classifications=unset_or(tuples(classification, max_size=2)),
)
keyframe = st.one_of(
    st.builds(
        m.Keyframe,
        frame=st.integers(1, 10**5),
        bbox=bbox,
        classifications=unset_or(tuples(classification, max_size=2)),
    ),
    st.builds(m.Keyframe, frame=st.integers(1, 10**5), point=point),
    st.builds(m.Keyframe, frame=st.integers(1, 10**5), line=tuples(point, max_size=4)),
)
common = {"data_row": unset_or(row), "name": unset_or(names), "uuid": unset_or(st.uuids().map(str))}
annotation = st.one_of(
    st.builds(
        m.VideoObject,
        segments=tuples(st.builds(m.Segment, keyframes=tuples(keyframe, max_size=4)), max_size=3),
        **common,
    ),
    st.builds(
        m.BBoxObject, bbox=bbox, classifications=unset_or(tuples(classification, max_size=2)), **common
    ),
    st.builds(m.PolygonObject, polygon=tuples(point, max_size=5), **common),
    st.builds(m.PointObject, point=point, confidence=unset_or(st.floats(0, 1)), **common),
    st.builds(m.PolylineObject, line=tuples(point, max_size=5), **common),
    st.builds(
        m.MaskObject,
        mask=st.builds(m.ImageMaskData, instance_uri=names, color_rgb=st.tuples(*[st.integers(0, 255)] * 3)),
        **common,
    ),
    st.builds(m.TextClassification, answer=names, **common),
    st.builds(m.RadioClassification, answer=answer, frames=unset_or(frames), **common),
    st.builds(m.ChecklistClassification, answer=tuples(answer, max_size=4), **common),
    st.builds(
        m.VideoMask,
        data_row=unset_or(row),
        masks=st.builds(
            m.VideoMaskData,
            frames=tuples(st.builds(m.MaskFrame, index=st.integers(1, 1000), im_bytes=names), max_size=3),
            instances=tuples(
                st.builds(m.MaskInstance, color_rgb=st.tuples(*[st.integers(0, 255)] * 3), name=names),
                max_size=3,
            ),
        ),
    ),
)


class TestProperties:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(annotation, min_size=1, max_size=4))
    def test_round_trip(self, anns):
        """Structs -> NDJSON -> Structs gives the same Structs, line for line."""
        data = encode_ndjson(anns)
        lines, problems = decode_ndjson(data, source="h")
        assert problems == []
        assert [x.annotation for x in lines] == anns
        assert convert_dicts([msgspec.to_builtins(a) for a in anns], source="h")[0] == lines
        for media in (VIDEO, IMAGE):  # every validator takes any well-typed line without raising
            validate_lines(lines, media=media, ontology=ONTOLOGY, kind="mal", clip=True)

    @settings(max_examples=150, deadline=None)
    @given(st.binary(max_size=300))
    def test_arbitrary_bytes_give_only_problems(self, data):
        """Any bytes decode to lines and problems, never an exception; validation never raises."""
        lines, problems = decode_ndjson(data, source="fuzz")
        assert all(isinstance(p, Problem) for p in problems)
        validate_lines(lines, kind="mal")

    json_values = st.recursive(
        st.one_of(
            st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=5)
        ),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(
                st.sampled_from(
                    [
                        "name",
                        "answer",
                        "segments",
                        "keyframes",
                        "frame",
                        "bbox",
                        "frames",
                        "start",
                        "end",
                        "value",
                        "dataRow",
                        "id",
                        "x",
                        "y",
                        "masks",
                        "line",
                        "point",
                    ]
                ),
                inner,
                max_size=4,
            ),
        ),
        max_leaves=20,
    )

    @settings(max_examples=200, deadline=None)
    @given(st.lists(json_values, max_size=4))
    def test_arbitrary_json_gives_only_problems(self, objs):
        """Any JSON values, as lines or as dicts, give lines and problems, never an exception."""
        data = b"\n".join(json.dumps(o).encode() for o in objs)
        lines, problems = decode_ndjson(data, source="fuzz")
        validate_lines(lines, kind="ground_truth")
        convert_dicts(objs, source="fuzz")
        assert len(list(iter_ndjson(data, source="fuzz"))) == len(lines) + len(problems)
