"""One sidecar file -> lines for its media: the format told from the suffix and the first bytes;
the data row checked against the media's global key; uuids made deterministic."""

from __future__ import annotations

import json

from workers.annotations.facts import MediaFacts
from workers.annotations.sidecar import LoadOptions, detect, load_sidecar

KEY = "v/clip.mp4"


def test_formats_are_told_by_suffix_and_first_bytes() -> None:
    assert detect(b"{}", ".labels.ndjson") == "ndjson"
    assert detect(b'{"images": [], "annotations": []}', ".labels.json") == "coco"
    assert detect(b'[{"frame": 1, "track": 1}]', ".labels.json") == "tracks"
    assert detect(b'{"name": "x", "dataRow": {"globalKey": "k"}}\n', ".labels.json") == "ndjson"
    assert detect(b"1,1,10,10,5,5,1,-1,-1,-1\n", ".labels.csv") == "mot"
    assert detect(b"frame,track,label,x,y,w,h\n", ".labels.csv") == "tracks"
    assert detect(b"<annotations/>", ".labels.xml") == "cvat"
    assert detect(b"0 0.5 0.5 0.1 0.1", ".labels.txt") == "yolo"
    assert detect(b"", ".labels.bin") is None


def test_ndjson_lines_must_name_the_sidecars_media() -> None:
    lines = [
        {"name": "sunny", "answer": {"name": "yes"}, "dataRow": {"globalKey": KEY}},
        {"name": "sunny", "answer": {"name": "no"}, "dataRow": {"globalKey": "v/other.mp4"}},
    ]
    data = "".join(json.dumps(x) + "\n" for x in lines).encode()
    got, problems = load_sidecar(
        data, source="s.ndjson", suffix=".labels.ndjson", global_key=KEY, facts=None, options=LoadOptions()
    )
    assert len(got) == 2
    (p,) = [p for p in problems if p.severity == "error"]
    assert (p.rule, p.line, p.expected, p.actual) == ("annotation.data_row", 2, KEY, "v/other.mp4")
    uuids = [line.annotation.uuid for line in got]
    again, _ = load_sidecar(
        data, source="s.ndjson", suffix=".labels.ndjson", global_key=KEY, facts=None, options=LoadOptions()
    )
    assert uuids == [line.annotation.uuid for line in again] and len(set(uuids)) == 2


def test_yolo_boxes_take_the_probed_size_and_the_names() -> None:
    facts = MediaFacts(kind="image", width=200, height=100)
    got, problems = load_sidecar(
        b"1 0.5 0.5 0.5 0.5\n",
        source="y.txt",
        suffix=".labels.txt",
        global_key=KEY,
        facts=facts,
        options=LoadOptions(names=("cat", "dog")),
    )
    assert not [p for p in problems if p.severity == "error"]
    (line,) = got
    assert line.annotation.name == "dog"


def test_an_unknown_format_is_a_problem_not_an_exception() -> None:
    got, problems = load_sidecar(
        b"\x00", source="x", suffix=".labels.bin", global_key=KEY, facts=None, options=LoadOptions()
    )
    assert got == [] and problems[0].rule == "annotation.format"
