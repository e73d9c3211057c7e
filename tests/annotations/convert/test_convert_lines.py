"""The line builders: deterministic uuids, problem capping."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from workers.annotations.convert import lines
from workers.annotations.convert.result import Problems, text_of


def box_line(key: str, top: float = 1.0) -> dict:
    return lines.image_line("car", key, "bbox", lines.bbox(2.0, top, 3.0, 4.0))


class TestUuid:
    def test_uuid5_of_content_and_data_row(self) -> None:
        """The same line for the same row has the same uuid5; another row or content, another uuid."""
        a, again = box_line("img-1"), box_line("img-1")
        assert a["uuid"] == again["uuid"]
        assert uuid.UUID(a["uuid"]).version == 5
        assert box_line("img-2")["uuid"] != a["uuid"]
        assert box_line("img-1", top=1.5)["uuid"] != a["uuid"]

    def test_same_uuid_as_the_validator(self) -> None:
        """The converters' uuid is the model's deterministic uuid of the same line."""
        import annot_convert_support as support  # noqa: PLC0415 - the helper lives beside the tests

        support.check_valid(
            [box_line("img-1"), lines.image_line("pt", "img-1", "point", lines.point(1.5, 2.0))]
        )

    def test_finish_replaces_an_existing_uuid(self) -> None:
        """Re-finishing a line (uuid included) gives the same uuid, not a uuid of a uuid."""
        line = box_line("img-1")
        assert lines.finish(dict(line), "img-1")["uuid"] == line["uuid"]

    @given(st.text(max_size=30), st.floats(allow_nan=False, allow_infinity=False))
    def test_any_key_and_value(self, key: str, value: float) -> None:
        """Any global key (unicode included) and coordinate gives a valid uuid."""
        assert uuid.UUID(box_line(key, top=value)["uuid"]).version == 5


class TestProblems:
    def test_cap(self) -> None:
        """A garbage file cannot flood memory: past the cap, one summary problem."""
        problems = Problems("f", cap=3)
        for i in range(10):
            problems.add("r", "m", line=i + 1)
        done = problems.done()
        assert [p.rule for p in done] == ["r", "r", "r", "problems.truncated"]
        assert done[-1].message == "7 more problems not listed"

    def test_str_and_long_values(self) -> None:
        """A problem reads as one line; long actual values are shortened."""
        problems = Problems("gt.txt")
        problems.add("mot.box", "bad", line=4, path="w", expected="w > 0", actual="x" * 500)
        (p,) = problems.done()
        assert len(p.actual) == 120
        assert p.render().startswith("gt.txt:4: w: mot.box: bad (expected w > 0, got xxx")

    def test_text_of(self) -> None:
        """UTF-8 with or without BOM is text; other bytes are a problem."""
        problems = Problems("a")
        assert text_of(b"\xef\xbb\xbfabc", problems) == "abc"
        assert text_of(b"\xff\xfe", problems) is None
        assert [p.rule for p in problems.done()] == ["encoding.utf8"]
