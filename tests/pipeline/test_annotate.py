"""The annotation stage's pure parts: which refs are sidecars and the media each names; the reasons
a sidecar is refused; the files sink's annotation files."""

from __future__ import annotations

import json
from pathlib import Path

from daemon.core.jobs import ObjectRef
from daemon.ledger.records import FinalState
from daemon.pipeline.annotate import Sidecars, media_rejection, problems_rejection
from daemon.sinks.base import ANNOTATIONS, Batch, BatchItem
from daemon.sinks.files import FilesSink
from workers.annotations.problems import Problem

SUFFIXES = [".labels.ndjson", ".labels.json", ".labels.txt"]


def test_a_sidecar_names_its_media_by_position() -> None:
    s = Sidecars(SUFFIXES)
    ref = ObjectRef(origin="file", key="v/clip.mp4.labels.ndjson", path="/in/v/clip.mp4.labels.ndjson")
    media, suffix = s.media_of(ref)  # type: ignore[misc]
    assert (media.key, media.path, suffix) == ("v/clip.mp4", "/in/v/clip.mp4", ".labels.ndjson")
    s3 = ObjectRef(origin="s3", bucket="b", key="a/x.jpg.labels.txt", etag="e", size=10)
    media, _ = s.media_of(s3)  # type: ignore[misc]
    assert (media.bucket, media.key, media.etag, media.size) == ("b", "a/x.jpg", None, None)
    url = ObjectRef(
        origin="url", key="https://h/p/y.png.labels.json?sig=1", url="https://h/p/y.png.labels.json?sig=1"
    )
    media, _ = s.media_of(url)  # type: ignore[misc]
    assert media.url == "https://h/p/y.png?sig=1" and media.key == media.url


def test_media_and_lookalikes_are_not_sidecars() -> None:
    s = Sidecars(SUFFIXES)
    for key in ("clip.mp4", "labels.ndjson", ".labels.ndjson", "clip.labels.ndjson.mp4"):
        assert s.media_of(ObjectRef(origin="file", key=key, path="/" + key)) is None, key
    assert s.suffix_of("CLIP.MP4.LABELS.NDJSON") == ".labels.ndjson"


def test_refusals_name_the_media_rule_and_the_first_problems() -> None:
    r = media_rejection("v/a.mp4", FinalState(status="dead", rule="labelbox.video.sar", message="non-square"))
    assert r.rule == "annotation.media_rejected" and "labelbox.video.sar" in r.message
    assert r.actual == {"media": "v/a.mp4", "rule": "labelbox.video.sar"}
    problems = [
        Problem(
            file="f",
            line=i,
            path="$.segments[0]",
            rule="media.frame.range",
            message="m",
            expected="1..60",
            actual="61",
        )
        for i in range(1, 8)
    ]
    r = problems_rejection(problems)
    assert r.rule == "media.frame.range" and r.expected == "1..60" and r.actual == "61"
    assert "f:1:" in r.message and "(+2 more)" in r.message


async def test_files_sink_writes_annotations_beside_rows_in_chunks(tmp_path: Path) -> None:
    rows = [BatchItem(f"r{i}", "IMAGE", json.dumps({"global_key": f"r{i}"}).encode()) for i in range(2)]
    notes = [BatchItem(f"r{i}.labels.ndjson", ANNOTATIONS, b'{"name":"a"}\n{"name":"b"}\n') for i in range(5)]
    sink = FilesSink(tmp_path, "labelbox", rows_per_file=2)
    batch = Batch.of(rows + notes)
    results = await sink.deliver(batch)
    assert {r.status for r in results} == {"accepted"} and len(results) == 7
    assert len(json.loads((tmp_path / f"labelbox-{batch.id}.json").read_bytes())) == 2
    files = sorted(tmp_path.glob("labelbox-annotations-*.ndjson"))
    assert [f.name for f in files] == [f"labelbox-annotations-{batch.id}-{k}.ndjson" for k in (1, 2, 3)]
    assert [len(f.read_text().splitlines()) for f in files] == [4, 4, 2]
    before = {f: f.stat().st_mtime_ns for f in files}
    await sink.deliver(batch)  # a re-delivered batch finds its files there
    assert {f: f.stat().st_mtime_ns for f in files} == before
