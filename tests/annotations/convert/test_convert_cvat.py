"""CVAT for video / for images 1.1 XML -> Labelbox lines; unsafe XML is refused."""

from __future__ import annotations

import annot_convert_support as support
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.annotations.convert import cvat
from workers.annotations.facts import MediaFacts

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GK = "job-7/street.mp4"
IMAGES = {"street/0001.jpg": "img-0001", "street/0002.jpg": "img-0002"}


def frames_of(line: dict) -> list[list[int]]:
    return [[k["frame"] for k in s["keyframes"]] for s in line["segments"]]


class TestVideo:
    def convert(self) -> cvat.ConvertResult:
        return cvat.convert(
            (support.DATA / "cvat_video.xml").read_bytes(), source="annotations.xml", global_key=GK
        )

    def test_tracks_become_lines_in_the_seed_shape(self) -> None:
        """Box, polyline and a two-point track give 4 lines, each shaped like the seed's."""
        result = self.convert()
        assert [
            (line["name"], next(iter(line["segments"][0]["keyframes"][0].keys() - {"frame"})))
            for line in result.lines
        ] == [
            ("car", "bbox"),
            ("lane", "line"),
            ("wheel", "point"),
            ("wheel", "point"),
        ]
        support.check_valid(result.lines, MediaFacts(kind="video", width=1280, height=720, frame_count=60))
        for line, kind in zip(result.lines, ("bbox", "line", "point", "point"), strict=True):
            assert support.conforms(line, support.video_shape(kind)), line

    def test_outside_ends_a_segment_and_frames_count_from_one(self) -> None:
        """CVAT frames 0-19 and 30-45 (outside at 20 and 46) are Labelbox segments 1-20 and 31-46."""
        car = self.convert().lines[0]
        assert frames_of(car) == [[1, 11, 20], [31, 46]]
        first = car["segments"][0]["keyframes"][0]["bbox"]
        assert first == {"top": 200.0, "left": 100.0, "height": 60.0, "width": 80.0}

    def test_kept_keyframes_are_cvat_keyframes(self) -> None:
        """CVAT interpolates linearly too, so the reduction finds exactly CVAT's keyframes."""
        result = self.convert()
        assert [frames_of(line) for line in result.lines[1:]] == [[[6, 26]], [[1, 9]], [[1, 9]]]
        wheels = [line["segments"][0]["keyframes"][0]["point"] for line in result.lines[2:]]
        assert wheels == [{"x": 120.0, "y": 262.0}, {"x": 170.0, "y": 262.0}]
        r = result.reduction
        assert (r.tracks, r.segments, r.shapes_in, r.keyframes_out) == (4, 5, 36 + 21 + 9 + 9, 5 + 2 + 2 + 2)

    def test_every_cvat_shape_reproduced(self) -> None:
        """Interpolating the written keyframes redraws every visible CVAT box within 0.5 px."""
        import xml.etree.ElementTree as ET  # noqa: PLC0415 - reading the fixture back independently

        root = ET.parse(support.DATA / "cvat_video.xml").getroot()
        shown = support.rendered(self.convert().lines[0], "bbox")
        boxes = [b for b in root.find("track").iter("box") if b.get("outside") == "0"]
        assert len(boxes) == len(shown) == 36
        for b in boxes:
            xtl, ytl, xbr, ybr = (float(b.get(k)) for k in ("xtl", "ytl", "xbr", "ybr"))
            got = shown[int(b.get("frame")) + 1]
            assert max(abs(a - e) for a, e in zip(got, (xtl, ytl, xbr - xtl, ybr - ytl), strict=True)) <= 0.5

    def test_polygon_track_and_attributes_are_reported(self) -> None:
        """Labelbox video has no polygon tool; attributes are not converted (a warning)."""
        problems = self.convert().problems
        assert [(p.rule, p.path, p.severity) for p in problems] == [
            ("cvat.track.shape", "/annotations/track[3]", "error"),
            ("cvat.attributes", "/annotations", "warning"),
        ]
        assert problems[0].actual == "['polygon']"
        assert problems[1].actual == "['color']"

    def test_shape_errors(self) -> None:
        """A bad frame number, box or points string is a problem naming the element."""
        xml = b"""<annotations>
  <track id="0" label="car"><box frame="a" outside="0" xtl="1" ytl="1" xbr="2" ybr="2"/></track>
  <track id="1" label="car"><box frame="0" outside="0" xtl="5" ytl="1" xbr="2" ybr="2"/></track>
  <track id="2" label="lane"><polyline frame="0" outside="0" points="1,2;3"/></track>
  <track id="3" label="car"><box frame="0" outside="0" xtl="1" ytl="1" xbr="2" ybr="2" rotation="30"/></track>
  <track id="4"><box frame="0" outside="0" xtl="1" ytl="1" xbr="2" ybr="2"/></track>
  <track id="5" label="car"><box frame="0" outside="0" xtl="1" ytl="1" xbr="2" ybr="2"/>
    <box frame="0" outside="0" xtl="1" ytl="1" xbr="2" ybr="2"/></track>
</annotations>"""
        result = cvat.convert_video(xml, source="a.xml", global_key=GK)
        assert [(p.rule, p.path) for p in result.problems] == [
            ("cvat.frame", "/annotations/track[0]/box[0]"),
            ("box.size", "/annotations/track[1]/box[0]"),
            ("cvat.polyline", "/annotations/track[2]/polyline[0]"),
            ("cvat.box.rotation", "/annotations/track[3]/box[0]"),
            ("cvat.track.label", "/annotations/track[4]"),
            ("cvat.frame.duplicate", "/annotations/track[5]"),
        ]
        assert result.lines == []


class TestImages:
    def convert(self) -> cvat.ConvertResult:
        data = (support.DATA / "cvat_images.xml").read_bytes()
        return cvat.convert(data, source="annotations.xml", global_key_for=IMAGES.get)

    def test_shapes_become_image_lines(self) -> None:
        """Boxes, a polygon, a polyline and two points; each line shaped as Labelbox images want."""
        lines = self.convert().lines
        kinds = [next(iter(line.keys() - {"name", "dataRow", "uuid"})) for line in lines]
        support.check_valid(lines, MediaFacts(kind="image", width=1920, height=1080))
        assert kinds == ["bbox", "bbox", "polygon", "line", "point", "point"]
        for line, kind in zip(lines, kinds, strict=True):
            assert support.conforms(line, support.image_shape(kind)), line
            assert line["dataRow"] == {"globalKey": "img-0001"}
        assert lines[0]["bbox"] == {"top": 530.25, "left": 412.5, "height": 170.5, "width": 242.5}
        assert lines[2]["polygon"][1] == {"x": 1920.0, "y": 1080.0} and len(lines[2]["polygon"]) == 4
        assert [line["point"] for line in lines[4:]] == [{"x": 960.0, "y": 540.0}, {"x": 970.5, "y": 545.25}]

    def test_unsupported_and_unknown_are_reported(self) -> None:
        """A tag, a rotated box and an image without a data row are problems with their element."""
        problems = self.convert().problems
        assert [(p.rule, p.path) for p in problems] == [
            ("cvat.shape", "/annotations/image[1]/tag[0]"),
            ("cvat.box.rotation", "/annotations/image[1]/box[1]"),
            ("image.unknown", "/annotations/image[2]"),
            ("cvat.attributes", "/annotations"),
        ]
        assert problems[2].actual == "street/unknown.jpg"

    def test_identical_shapes_are_written_once(self) -> None:
        """Two identical boxes would share a uuid: the repeat is dropped with a warning."""
        xml = b"""<annotations><image id="0" name="street/0001.jpg" width="10" height="10">
<box label="car" xtl="1" ytl="1" xbr="5" ybr="5"/><box label="car" xtl="1" ytl="1" xbr="5" ybr="5"/>
</image></annotations>"""
        result = cvat.convert(xml, source="a.xml", global_key_for=IMAGES.get)
        assert len(result.lines) == 1
        assert [(p.rule, p.severity) for p in result.problems] == [("line.duplicate", "warning")]


class TestUnsafeXml:
    def test_billion_laughs_is_refused(self) -> None:
        """Entity declarations are refused before the parser sees them."""
        xml = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<annotations><track id="0" label="&lol2;"/></annotations>"""
        result = cvat.convert(xml, source="evil.xml", global_key=GK)
        assert [(p.rule, p.line) for p in result.problems] == [("xml.dtd", 2)]
        assert result.lines == []

    def test_external_entity_is_refused(self) -> None:
        """An external entity (file read) never reaches expat."""
        xml = b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><annotations>&x;</annotations>'
        assert [p.rule for p in cvat.convert(xml, source="evil.xml", global_key=GK).problems] == ["xml.dtd"]

    def test_malformed_and_non_utf8(self) -> None:
        """Syntax errors carry the line; non-UTF-8 bytes are refused; other roots are named."""
        bad = cvat.convert(b"<annotations>\n<track id='0'>\n</annotations>", source="a.xml", global_key=GK)
        assert [(p.rule, p.line) for p in bad.problems] == [("xml.syntax", 3)]
        utf16 = "<annotations/>".encode("utf-16")
        assert [p.rule for p in cvat.convert(utf16, source="a.xml", global_key=GK).problems] == [
            "encoding.utf8"
        ]
        other = cvat.convert(b"<svg><g/></svg>", source="a.xml", global_key=GK)
        assert [(p.rule, p.path) for p in other.problems] == [("cvat.root", "/svg")]

    @FUZZ
    @given(st.binary(max_size=500))
    def test_arbitrary_bytes(self, data: bytes) -> None:
        """Random bytes, with or without a CVAT-looking prefix, give problems, never exceptions."""
        for prefix in (
            b"",
            b"<annotations><track id='0' label='a'><box frame='0' ",
            b"<annotations><image name='x'>",
        ):
            result = cvat.convert(prefix + data, source="fuzz.xml", global_key=GK, global_key_for=lambda n: n)
            assert isinstance(result.problems, list)

    @FUZZ
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["box", "points", "polyline", "polygon", "mask"]),
                st.sampled_from(["0", "1", "2", "-1", "x", "10"]),
                st.sampled_from(["0", "1"]),
                st.sampled_from(["1,2;3,4", "1,2", "", "a,b", "1,2;3,4;5,6"]),
                st.sampled_from(["1", "5", "nan", "-3"]),
            ),
            max_size=10,
        )
    )
    def test_structured_garbage(self, shapes: list[tuple[str, str, str, str, str]]) -> None:
        """Well-formed XML with arbitrary shape attributes converts or reports, never raises."""
        body = "".join(
            f'<{tag} frame="{f}" outside="{o}" points="{p}" xtl="1" ytl="1" xbr="{x}" ybr="{x}"/>'
            for tag, f, o, p, x in shapes
        )
        xml = f'<annotations><track id="0" label="a">{body}</track></annotations>'.encode()
        result = cvat.convert(xml, source="fuzz.xml", global_key=GK)
        support.check_valid(result.lines)
        for line in result.lines:
            kind = next(iter(line["segments"][0]["keyframes"][0].keys() - {"frame"}))
            assert support.conforms(line, support.video_shape(kind))


class TestVideoNumbering:
    def test_start_frame_and_step_map_to_video_frames(self) -> None:
        """A task made from frames 100, 102, ... of the video: CVAT frame f is video frame 100 + 2f."""
        data = (support.DATA / "cvat_video.xml").read_bytes()
        data = data.replace(b"<start_frame>0</start_frame>", b"<start_frame>100</start_frame>")
        data = data.replace(b"<mode>", b"<frame_filter>step=2</frame_filter>\n      <mode>")
        car = cvat.convert(data, source="a.xml", global_key=GK).lines[0]
        assert frames_of(car) == [[101, 121, 139], [161, 191]]

    def test_bad_meta_is_reported(self) -> None:
        """A start_frame that is not a number stops the conversion with a problem."""
        data = (support.DATA / "cvat_video.xml").read_bytes().replace(b"<start_frame>0<", b"<start_frame>x<")
        result = cvat.convert(data, source="a.xml", global_key=GK)
        assert [(p.rule, p.path) for p in result.problems] == [("cvat.meta.frames", "/annotations/meta")]
        assert result.lines == []
