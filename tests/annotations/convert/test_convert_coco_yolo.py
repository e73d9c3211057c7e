"""COCO JSON and YOLO txt -> Labelbox image lines."""

from __future__ import annotations

import json

import annot_convert_support as support
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.annotations.convert import coco, yolo
from workers.annotations.facts import MediaFacts

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = {"street/0001.jpg": "img-0001", "street/0002.jpg": "img-0002"}


def kind_of(line: dict) -> str:
    return next(iter(line.keys() - {"name", "dataRow", "uuid"}))


class TestCoco:
    def convert(self, **kw: object) -> coco.ConvertResult:
        return coco.convert(
            (support.DATA / "coco.json").read_bytes(), source="instances.json", global_key_for=KEYS.get, **kw
        )  # type: ignore[arg-type]

    def test_polygons_keypoints_and_boxes(self) -> None:
        """Polygons where present (one line per part), boxes otherwise, labelled keypoints as points."""
        result = self.convert()
        got = [(line["name"], kind_of(line), line["dataRow"]["globalKey"]) for line in result.lines]
        assert got == [
            ("car", "polygon", "img-0001"),
            ("car", "polygon", "img-0001"),
            ("car", "polygon", "img-0001"),
            ("person", "bbox", "img-0001"),
            ("person.nose", "point", "img-0001"),
            ("person.left_eye", "point", "img-0001"),
            ("person.right_eye", "point", "img-0001"),
            ("person.right_shoulder", "point", "img-0001"),
            ("car", "bbox", "img-0002"),
            ("car", "bbox", "img-0002"),
        ]
        support.check_valid(result.lines)
        for line in result.lines:
            assert support.conforms(line, support.image_shape(kind_of(line))), line
        assert result.lines[0]["polygon"][:2] == [{"x": 412.5, "y": 600.0}, {"x": 500.0, "y": 530.25}]
        assert result.lines[3]["bbox"] == {"top": 300.0, "left": 700.0, "height": 240.0, "width": 90.0}
        assert result.lines[7]["point"] == {"x": 770.0, "y": 360.0}

    def test_rle_unknown_image_and_category(self) -> None:
        """RLE falls back to the box with a warning; unmapped images and categories are errors."""
        problems = self.convert().problems
        assert [(p.rule, p.path, p.severity) for p in problems] == [
            ("coco.rle", "$.annotations[3].segmentation", "warning"),
            ("image.unknown", "$.annotations[5].image_id", "error"),
            ("coco.category_id", "$.annotations[6].category_id", "error"),
        ]
        assert problems[0].message == "RLE masks are not supported; the box is written instead"
        assert problems[1].actual == "elsewhere/0003.jpg"

    def test_prefer_bbox_and_names(self) -> None:
        """prefer="bbox" writes boxes only; name_for renames per tool kind."""
        result = self.convert(prefer="bbox", name_for=lambda cat, kind: f"{cat}_{kind}")
        assert [(line["name"], kind_of(line)) for line in result.lines][:3] == [
            ("car_bbox", "bbox"),
            ("car_bbox", "bbox"),
            ("person_bbox", "bbox"),
        ]
        assert result.lines[3]["name"] == "person.nose_point"

    def test_rle_without_box_is_an_error(self) -> None:
        """An RLE mask with nothing else to write is an error."""
        data = json.dumps(
            {
                "images": [{"id": 1, "file_name": "street/0001.jpg"}],
                "categories": [{"id": 1, "name": "car"}],
                "annotations": [
                    {"image_id": 1, "category_id": 1, "segmentation": {"counts": "abc", "size": [4, 4]}}
                ],
            }
        ).encode()
        result = coco.convert(data, source="i.json", global_key_for=KEYS.get)
        assert [(p.rule, p.severity) for p in result.problems] == [("coco.rle", "error")]
        assert not result.ok

    def test_bad_shapes(self) -> None:
        """Short polygons, 3-number boxes and keypoints not matching the category are problems."""
        data = json.dumps(
            {
                "images": [{"id": 1, "file_name": "street/0001.jpg"}],
                "categories": [{"id": 1, "name": "p", "keypoints": ["a", "b"]}],
                "annotations": [
                    {"image_id": 1, "category_id": 1, "segmentation": [[1, 2, 3, 4]], "bbox": [1, 2, 3]},
                    {"image_id": 1, "category_id": 1, "keypoints": [1, 2, 2]},
                    {"image_id": "x", "category_id": 1, "bbox": "nope"},
                ],
            }
        ).encode()
        result = coco.convert(data, source="i.json", global_key_for=KEYS.get)
        assert [(p.rule, p.path) for p in result.problems] == [
            ("coco.polygon", "$.annotations[0].segmentation[0]"),
            ("coco.bbox", "$.annotations[0].bbox"),
            ("coco.keypoints", "$.annotations[1].keypoints"),
            ("coco.annotation", "$.annotations[2]"),
        ]

    def test_deterministic(self) -> None:
        """The same file converts to the same lines, uuids included."""
        assert self.convert().lines == self.convert().lines

    @FUZZ
    @given(st.binary(max_size=400))
    def test_arbitrary_bytes(self, data: bytes) -> None:
        """Garbage is a problem, never an exception."""
        for prefix in (b"", b'{"images": [], "categories": [], "annotations": ['):
            result = coco.convert(prefix + data, source="fuzz.json", global_key_for=lambda n: n)
            assert isinstance(result.problems, list)

    @FUZZ
    @given(
        st.lists(
            st.fixed_dictionaries(
                {"image_id": st.sampled_from([1, 2, "1"]), "category_id": st.sampled_from([1, 2])},
                optional={
                    "bbox": st.lists(st.floats(-10, 10), max_size=5),
                    "segmentation": st.one_of(
                        st.lists(
                            st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=9), max_size=3
                        ),
                        st.fixed_dictionaries({"counts": st.text(max_size=4)}),
                    ),
                    "keypoints": st.lists(st.floats(-5, 5), max_size=7),
                },
            ),
            max_size=6,
        )
    )
    def test_structured_garbage(self, annotations: list[dict]) -> None:
        """Well-formed JSON with odd annotations: only seed-shaped lines come out."""
        data = json.dumps(
            {
                "images": [{"id": 1, "file_name": "a.jpg"}],
                "categories": [{"id": 1, "name": "c", "keypoints": ["k", "l"]}],
                "annotations": annotations,
            }
        ).encode()
        result = coco.convert(data, source="fuzz.json", global_key_for=lambda n: n)
        support.check_valid(result.lines)
        for line in result.lines:
            assert support.conforms(line, support.image_shape(kind_of(line)))


class TestYolo:
    NAMES = ["person", "road", "car"]

    def test_boxes_polygons_in_pixels(self) -> None:
        """Normalised centres become pixel top-left boxes; a seg line becomes a polygon."""
        data = (support.DATA / "yolo_0001.txt").read_bytes()
        result = yolo.convert(
            data, source="0001.txt", global_key="img-0001", width=1920, height=1080, names=self.NAMES
        )
        assert result.problems == []
        assert [(line["name"], kind_of(line)) for line in result.lines] == [
            ("car", "bbox"),
            ("car", "bbox"),
            ("person", "bbox"),
            ("road", "polygon"),
        ]
        support.check_valid(result.lines, MediaFacts(kind="image", width=1920, height=1080))
        for line in result.lines:
            assert support.conforms(line, support.image_shape(kind_of(line))), line
        box = result.lines[0]["bbox"]
        assert box == pytest.approx({"left": 407.5, "top": 530.25, "width": 242.5, "height": 170.5}, abs=0.01)
        assert result.lines[3]["polygon"][:2] == [{"x": 0.0, "y": 1080.0}, {"x": 1920.0, "y": 1080.0}]

    def test_size_is_required(self) -> None:
        """Without the probed image size nothing can be converted."""
        result = yolo.convert(
            b"0 0.5 0.5 0.1 0.1\n", source="a.txt", global_key="k", width=None, height=1080, names=["a"]
        )
        assert [(p.rule, p.actual) for p in result.problems] == [("yolo.size", "Nonex1080")]

    def test_bad_lines(self) -> None:
        """Unknown classes, wrong field counts and non-numbers are problems with their line."""
        data = b"3 0.5 0.5 0.1 0.1\n0 0.5 0.5\n0 a b c d\n0 0.5 0.5 0 0.1\n0 1 2 3 4 5 6 7\n"
        result = yolo.convert(data, source="a.txt", global_key="k", width=100, height=100, names={0: "a"})
        assert [(p.line, p.rule) for p in result.problems] == [
            (1, "yolo.class"),
            (2, "yolo.columns"),
            (3, "yolo.number"),
            (4, "box.size"),
            (5, "yolo.columns"),
        ]

    @pytest.mark.parametrize(
        "text",
        [
            "names: [person, road, car]\n",
            "nc: 3\nnames: ['person', \"road\", car]  # three\n",
            "names:\n  - person\n  - road\n  - 'car'\ntrain: x\n",
            "names: [person,\n  road, car]\n",
            "person\nroad\ncar\n\n",
        ],
    )
    def test_names_forms(self, text: str) -> None:
        """The YAML list forms and a plain names file all give the same classes."""
        names, problems = yolo.parse_names(text.encode(), source="data.yaml")
        assert problems == []
        assert names == {0: "person", 1: "road", 2: "car"}

    def test_names_mapping_file(self) -> None:
        """The ultralytics ``id: name`` block form, from a real-looking data.yaml."""
        names, problems = yolo.parse_names((support.DATA / "yolo_data.yaml").read_bytes(), source="data.yaml")
        assert (names, problems) == ({0: "person", 1: "road", 2: "car"}, [])

    def test_names_errors(self) -> None:
        """A names key that is neither a list nor a mapping is a problem."""
        _, problems = yolo.parse_names(b"names: person\n", source="data.yaml")
        assert [(p.rule, p.line) for p in problems] == [("names.yaml", 1)]
        _, problems = yolo.parse_names(b"names: [a, b\n", source="data.yaml")
        assert [p.rule for p in problems] == ["names.yaml"]

    @FUZZ
    @given(st.binary(max_size=300))
    def test_arbitrary_bytes(self, data: bytes) -> None:
        """Garbage labels or names files give problems, never exceptions."""
        result = yolo.convert(data, source="f.txt", global_key="k", width=640, height=480, names=["a", "b"])
        support.check_valid(result.lines)
        for line in result.lines:
            assert support.conforms(line, support.image_shape(kind_of(line)))
        for prefix in (b"", b"names:", b"names: [", b"names:\n  "):
            yolo.parse_names(prefix + data, source="data.yaml")
