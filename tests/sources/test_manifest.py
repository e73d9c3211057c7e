"""daemon.sources.manifest: JSON, NDJSON and CSV lists of objects, one message per entry."""

from __future__ import annotations

import asyncio
import csv
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.jobs import ObjectRef
from daemon.sources.local import LocalMessage
from daemon.sources.manifest import ManifestSource, detect_format, ref_from_entry

LB_ROW = {
    "row_data": "https://storage.googleapis.com/labelbox-datasets/video-sample-data/sample-video-1.mp4",
    "global_key": "https://storage.googleapis.com/labelbox-datasets/video-sample-data/sample-video-1.mp4",
    "media_type": "VIDEO",
    "metadata_fields": [{"schema_id": "cko8s9r5v0001h2dk9elqdidh", "value": "tag_string"}],
    "attachments": [
        {
            "type": "VIDEO",
            "value": "https://storage.googleapis.com/labelbox-sample-datasets/Docs/drone_video.mp4",
        }
    ],
}


async def drain(src: ManifestSource) -> list[LocalMessage]:
    """Every message the source hands out, acknowledged as it comes; ends when the source ends."""
    out: list[LocalMessage] = []
    async for chunk in src.batches():
        for m in chunk:
            out.append(m)
            await m.ack()
    return out


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def only_ref(m: LocalMessage) -> ObjectRef:
    assert m.error is None, m.error
    assert len(m.refs) == 1
    return m.refs[0]


class TestNdjson:
    async def test_each_entry_form(self, tmp_path: Path) -> None:
        """URLs, s3 URIs, local paths, Labelbox rows, Encord items and generic objects are understood."""
        lines = [
            json.dumps("https://cdn.example.com/a.mp4"),
            json.dumps("s3://bucket/dir/b.jpg"),
            json.dumps("media/c.png"),
            json.dumps(LB_ROW),
            json.dumps({"objectUrl": "https://h/e.mp4", "title": "E", "clientMetadata": {"k": 1}}),
            json.dumps({"path": "/abs/f.wav", "global_key": "f-key", "metadata": {"m": 2}}),
        ]
        src = ManifestSource(write(tmp_path, "m.ndjson", "\n".join(lines) + "\n"))
        refs = [only_ref(m) for m in await drain(src)]
        assert refs[0] == ObjectRef(
            origin="url", key="https://cdn.example.com/a.mp4", url="https://cdn.example.com/a.mp4"
        )
        assert refs[1] == ObjectRef(origin="s3", bucket="bucket", key="dir/b.jpg")
        assert refs[2] == ObjectRef(origin="file", key="media/c.png", path=str(tmp_path / "media/c.png"))
        assert refs[3].origin == "url" and refs[3].url == LB_ROW["row_data"]
        assert refs[3].metadata == {k: v for k, v in LB_ROW.items() if k != "row_data"}
        assert refs[4].metadata == {"title": "E", "clientMetadata": {"k": 1}}
        assert refs[5] == ObjectRef(
            origin="file",
            key="/abs/f.wav",
            path="/abs/f.wav",
            metadata={"global_key": "f-key", "clientMetadata": {"m": 2}},
        )
        assert src.entries == 6

    async def test_malformed_line_is_a_message_with_error_and_raw(self, tmp_path: Path) -> None:
        """A broken line becomes one message naming the file and line with the raw line; the rest flow."""
        text = '"https://h/1.mp4"\n{"row_data": "https://h/2.mp4",\n\n"https://h/4.mp4"\r\n'
        msgs = await drain(ManifestSource(write(tmp_path, "in.ndjson", text)))
        assert len(msgs) == 3
        bad = msgs[1]
        assert bad.refs == [] and bad.raw == b'{"row_data": "https://h/2.mp4",'
        assert bad.error is not None and bad.error.startswith("in.ndjson entry 2: ")
        assert bad.id == "manifest:in.ndjson:2"
        assert [only_ref(m).key for m in (msgs[0], msgs[2])] == ["https://h/1.mp4", "https://h/4.mp4"]

    @pytest.mark.parametrize(
        ("entry", "needle"),
        [
            ({"url": "https://h/a", "unknown_key": 1}, "unknown keys in entry: ['unknown_key']"),
            ({"url": "https://h/a", "path": "b"}, "exactly one of"),
            ({"title": "no location"}, "found none"),
            ("ftp://h/a.mp4", "unsupported URL scheme"),
            ("s3://bucket-only", "s3://bucket/key"),
            ("   ", "non-empty string"),
            (42, "string or an object"),
            ({"url": 5}, "non-empty string"),
            ({"url": "https://h/a", "global_key": 7}, "global_key must be a string"),
        ],
    )
    async def test_entry_errors_are_explained(self, tmp_path: Path, entry: Any, needle: str) -> None:
        """Entries that cannot name one object are dead-lettered with the reason."""
        msgs = await drain(ManifestSource(write(tmp_path, "e.ndjson", json.dumps(entry) + "\n")))
        assert len(msgs) == 1 and msgs[0].refs == []
        assert msgs[0].error is not None and needle in msgs[0].error
        assert msgs[0].raw == json.dumps(entry).encode()


class TestJson:
    async def test_array_of_labelbox_rows(self, tmp_path: Path) -> None:
        """The Labelbox "upload a JSON file" array is a manifest."""
        rows = [LB_ROW, {**LB_ROW, "row_data": "https://h/2.mp4", "global_key": "two"}]
        msgs = await drain(ManifestSource(write(tmp_path, "rows.json", json.dumps(rows, indent=2))))
        assert [only_ref(m).key for m in msgs] == [LB_ROW["row_data"], "https://h/2.mp4"]
        assert [m.id for m in msgs] == ["manifest:rows.json:1", "manifest:rows.json:2"]

    async def test_encord_spec_object(self, tmp_path: Path) -> None:
        """An Encord registration JSON yields its videos, images and audio items."""
        spec = {
            "videos": [{"objectUrl": "https://h/v.mp4", "title": "V"}],
            "images": [{"objectUrl": "https://h/i.jpg"}],
            "audio": [{"objectUrl": "https://h/a.mp3", "clientMetadata": {"x": 1}}],
            "skip_duplicate_urls": True,
        }
        msgs = await drain(ManifestSource(write(tmp_path, "spec.json", json.dumps(spec))))
        assert [only_ref(m).key for m in msgs] == ["https://h/v.mp4", "https://h/i.jpg", "https://h/a.mp3"]

    async def test_encord_items_with_their_metadata_objects(self, tmp_path: Path) -> None:
        """Items carrying videoMetadata or createVideo (as Encord's own files do) are accepted."""
        spec = {
            "videos": [
                {
                    "objectUrl": "https://h/v.mp4",
                    "createVideo": False,
                    "videoMetadata": {
                        "fps": 25,
                        "duration": 2,
                        "width": 4,
                        "height": 4,
                        "file_size": 1,
                        "mime_type": "video/mp4",
                    },
                }
            ],
        }
        (msg,) = await drain(ManifestSource(write(tmp_path, "spec.json", json.dumps(spec))))
        assert only_ref(msg).key == "https://h/v.mp4"

    async def test_bad_spec_is_one_dead_letter(self, tmp_path: Path) -> None:
        """An object with unknown top-level keys is refused whole, naming them."""
        (msg,) = await drain(ManifestSource(write(tmp_path, "s.json", json.dumps({"video": []}))))
        assert msg.error is not None and "unknown top-level keys ['video']" in msg.error
        assert msg.raw == b'{"video": []}'

    async def test_invalid_json_is_one_dead_letter(self, tmp_path: Path) -> None:
        """A JSON file that does not parse is one message with the reason and the start of the file."""
        (msg,) = await drain(ManifestSource(write(tmp_path, "x.json", "[1, 2")))
        assert msg.error is not None and "x.json: not valid JSON" in msg.error
        assert msg.raw == b"[1, 2"

    async def test_top_level_scalar_is_refused(self, tmp_path: Path) -> None:
        """A JSON scalar is neither an array nor a spec."""
        (msg,) = await drain(ManifestSource(write(tmp_path, "x.json", "3")))
        assert msg.error is not None and "top level must be an array" in msg.error


class TestCsv:
    async def test_labelbox_headings(self, tmp_path: Path) -> None:
        """A header naming row_data, global_key and external_id maps the columns."""
        text = "row_data,global_key,external_id\nhttps://h/a.jpg,key-a,ext-a\nhttps://h/b.jpg,,\n"
        msgs = await drain(ManifestSource(write(tmp_path, "m.csv", text)))
        a, b = (only_ref(m) for m in msgs)
        assert (a.key, a.metadata) == ("https://h/a.jpg", {"global_key": "key-a", "external_id": "ext-a"})
        assert (b.key, b.metadata) == ("https://h/b.jpg", None)

    async def test_encord_headings_case_insensitive_with_sections(self, tmp_path: Path) -> None:
        """Encord's ObjectUrl / Video title / Image title headings, any case; a header starts a section."""
        text = (
            "ObjectUrl,Video title\n"
            "https://h/1.mp4,Video 1\n"
            "https://h/2.mp4,\n"
            "\n"
            "OBJECTURL,IMAGE TITLE\n"
            "https://h/3.jpg,Image 3\n"
        )
        msgs = await drain(ManifestSource(write(tmp_path, "enc.csv", text)))
        refs = [only_ref(m) for m in msgs]
        assert [r.key for r in refs] == ["https://h/1.mp4", "https://h/2.mp4", "https://h/3.jpg"]
        assert [r.metadata for r in refs] == [{"title": "Video 1"}, None, {"title": "Image 3"}]
        assert [m.id for m in msgs] == ["manifest:enc.csv:2", "manifest:enc.csv:3", "manifest:enc.csv:6"]

    async def test_row_before_header_and_too_many_cells(self, tmp_path: Path) -> None:
        """Rows with no header above or more cells than columns are dead-lettered with the line."""
        text = "https://h/0.mp4\nurl\nhttps://h/1.mp4,extra\nhttps://h/2.mp4\n"
        msgs = await drain(ManifestSource(write(tmp_path, "x.csv", text)))
        assert msgs[0].error is not None and "row 1 comes before a header" in msgs[0].error
        assert msgs[0].raw == b"https://h/0.mp4"
        assert msgs[1].error is not None and "2 cells but the header has 1" in msgs[1].error
        assert msgs[1].raw == b"https://h/1.mp4,extra"
        assert only_ref(msgs[2]).key == "https://h/2.mp4"

    async def test_utf8_bom_is_ignored(self, tmp_path: Path) -> None:
        """A CSV saved by a spreadsheet with a byte-order mark still has its header recognised."""
        p = tmp_path / "bom.csv"
        p.write_bytes("\ufeffurl,title\nhttps://h/é.jpg,É\n".encode())
        (msg,) = await drain(ManifestSource(p))
        assert only_ref(msg).key == "https://h/é.jpg" and only_ref(msg).metadata == {"title": "É"}


class TestFormatDetection:
    @pytest.mark.parametrize(
        ("name", "head", "fmt"),
        [
            ("a.ndjson", b"", "ndjson"),
            ("a.JSONL", b"", "ndjson"),
            ("a.csv", b"", "csv"),
            ("a.json", b'{"a":1}\n{"b":2}', "json"),
            ("a.txt", b"[1,2]", "json"),
            ("a.txt", b'  {"videos": []}', "json"),
            ("a.txt", b'{"url":"x"}\n{"url":"y"}\n', "ndjson"),
            ("a", b'"https://h/x"\n', "ndjson"),
        ],
    )
    def test_detect(self, name: str, head: bytes, fmt: str) -> None:
        """The extension decides; otherwise a single JSON document or one value per line."""
        assert detect_format(Path(name), head) == fmt

    async def test_explicit_format_overrides_the_extension(self, tmp_path: Path) -> None:
        """manifest_format given in the config wins over the file name."""
        p = write(tmp_path, "list.txt", "url\nhttps://h/a.mp4\n")
        (msg,) = await drain(ManifestSource(p, fmt="csv"))
        assert only_ref(msg).key == "https://h/a.mp4"

    def test_relative_paths_resolve_from_the_manifest_folder(self, tmp_path: Path) -> None:
        """A local path entry is relative to the manifest's folder; its key stays as written."""
        ref = ref_from_entry({"path": "sub/x.mp4"}, tmp_path)
        assert (ref.key, ref.path) == ("sub/x.mp4", str(tmp_path / "sub" / "x.mp4"))


class TestAcknowledgement:
    async def test_source_ends_only_when_every_message_is_acked(self, tmp_path: Path) -> None:
        """After the input is exhausted, the iterator waits until each handed message is acknowledged."""
        src = ManifestSource(write(tmp_path, "m.ndjson", '"https://h/1"\n"https://h/2"\n'))
        it = src.batches()
        first = await anext(it)
        assert len(first) == 2
        nxt = asyncio.ensure_future(anext(it))
        for _ in range(5):
            await asyncio.sleep(0)  # let the iterator run: it must still be waiting
        assert not nxt.done()
        await first[0].ack()
        for _ in range(5):
            await asyncio.sleep(0)
        assert not nxt.done()
        await first[1].ack()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(nxt, timeout=10)

    async def test_retry_later_yields_the_message_again_after_the_delay(self, tmp_path: Path) -> None:
        """A message given back is handed out again, not before its delay, with attempts counted."""
        loop = asyncio.get_running_loop()
        src = ManifestSource(write(tmp_path, "m.ndjson", '"https://h/1"\n"https://h/2"\n'))
        seen: list[tuple[str, int]] = []
        given_back_at = 0.0
        async for chunk in src.batches():
            for m in chunk:
                seen.append((m.id, m.attempts))
                if m.id.endswith(":1") and m.attempts == 1:
                    given_back_at = loop.time()
                    await m.retry_later(0.02)
                else:
                    if m.attempts == 2:
                        assert loop.time() - given_back_at >= 0.015
                    await m.ack()
        assert seen == [("manifest:m.ndjson:1", 1), ("manifest:m.ndjson:2", 1), ("manifest:m.ndjson:1", 2)]
        assert src.outstanding.abandoned == []

    async def test_retries_end_in_abandonment(self, tmp_path: Path) -> None:
        """A message retried max_attempts times is abandoned and the source still ends."""
        src = ManifestSource(write(tmp_path, "m.ndjson", '"https://h/1"\n'), max_attempts=3)
        attempts = []
        async for chunk in src.batches():
            for m in chunk:
                attempts.append(m.attempts)
                await m.retry_later(0)
        assert attempts == [1, 2, 3]
        assert src.outstanding.abandoned == ["manifest:m.ndjson:1"]
        assert src.outstanding.count == 0

    async def test_close_stops_the_source(self, tmp_path: Path) -> None:
        """close wakes a waiting iterator, which ends even with messages unacknowledged."""
        src = ManifestSource(write(tmp_path, "m.ndjson", '"https://h/1"\n'))
        it = src.batches()
        await anext(it)
        nxt = asyncio.ensure_future(anext(it))
        for _ in range(5):
            await asyncio.sleep(0)  # the iterator now waits for acknowledgements
        assert not nxt.done()
        await src.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(nxt, timeout=10)

    async def test_large_manifest_is_handed_in_bounded_batches(self, tmp_path: Path) -> None:
        """Messages come in batches of at most 256, all of them, in order."""
        n = 600
        src = ManifestSource(write(tmp_path, "big.ndjson", "".join(f'"https://h/{i}"\n' for i in range(n))))
        sizes = []
        keys = []
        async for chunk in src.batches():
            sizes.append(len(chunk))
            for m in chunk:
                keys.append(only_ref(m).key)
                await m.ack()
        assert max(sizes) <= 256 and sum(sizes) == n
        assert keys == [f"https://h/{i}" for i in range(n)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
entries = st.one_of(
    json_values,
    st.sampled_from(["https://h/a.mp4", "s3://b/k", "rel/p.jpg"]),
    st.fixed_dictionaries({"url": st.text(max_size=30)}, optional={"title": st.text(max_size=5)}),
)


def drain_sync(path: Path, fmt: str = "auto") -> list[LocalMessage]:
    return asyncio.run(drain(ManifestSource(path, fmt=fmt)))


class TestRobustness:
    @settings(max_examples=120, deadline=None, derandomize=True)
    @given(values=st.lists(entries, min_size=1, max_size=12))
    def test_each_ndjson_line_is_exactly_one_message(self, values: list[Any]) -> None:
        """Any JSON values as NDJSON give one message per line: a ref, or an error with the raw line."""
        with tempfile.TemporaryDirectory() as d:
            lines = [json.dumps(v) for v in values]
            p = Path(d) / "m.ndjson"
            p.write_text("\n".join(lines) + "\n")
            msgs = drain_sync(p)
        assert len(msgs) == len(values)
        for line, m in zip(lines, msgs, strict=True):
            assert (m.error is None) == (len(m.refs) == 1)
            if m.error is not None:
                assert m.raw == line.encode() and m.error.startswith("m.ndjson entry ")

    @settings(max_examples=120, deadline=None, derandomize=True)
    @given(rows=st.lists(st.lists(st.text(max_size=12), min_size=1, max_size=4), max_size=10))
    def test_csv_never_raises(self, rows: list[list[str]]) -> None:
        """Arbitrary CSV cells after a header give one message per non-blank row, never an exception."""
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "m.csv"
            with p.open("w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["url", "title"])
                w.writerows(rows)
            msgs = drain_sync(p)
            with p.open(newline="", encoding="utf-8") as f:
                data_rows = [r for r in list(csv.reader(f))[1:] if any(c.strip() for c in r)]
        headers = [
            r
            for r in data_rows
            if any(c.strip().lower() in ("url", "path", "row_data", "objecturl") for c in r)
        ]
        assert len(msgs) == len(data_rows) - len(headers)
        assert all(m.error is not None or len(m.refs) == 1 for m in msgs)
