"""daemon.sinks.files: import-ready files, written atomically, never twice for the same batch."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.sinks import files
from daemon.sinks.base import Batch, BatchItem, PermanentError, TransientError
from daemon.sinks.files import FilesSink

LB_ITEMS = [
    BatchItem("a.jpg", "IMAGE", b'{"row_data":"https://h/a.jpg","global_key":"a.jpg","media_type":"IMAGE"}'),
    BatchItem("b.mp4", "VIDEO", b'{"row_data":"https://h/b.mp4","global_key":"b.mp4","media_type":"VIDEO"}'),
]
ENC_ITEMS = [
    BatchItem("v", "VIDEO", b'{"objectUrl":"https://h/v.mp4","title":"v"}'),
    BatchItem("i", "IMAGE", b'{"objectUrl":"https://h/i.png"}'),
    BatchItem("s", "AUDIO", b'{"objectUrl":"https://h/s.mp3"}'),
]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


class TestDocuments:
    async def test_labelbox_batch_is_a_json_array_of_rows(self, tmp_path: Path) -> None:
        """A Labelbox batch is written as labelbox-<batch id>.json holding the rows in order."""
        sink = FilesSink(tmp_path / "out", "labelbox")
        batch = Batch.of(LB_ITEMS)
        results = await sink.deliver(batch)
        assert [(r.key, r.status) for r in results] == [("a.jpg", "accepted"), ("b.mp4", "accepted")]
        path = tmp_path / "out" / f"labelbox-{batch.id}.json"
        assert listing(tmp_path / "out") == [path.name]
        assert json.loads(path.read_bytes()) == [json.loads(i.body) for i in LB_ITEMS]

    async def test_encord_batch_is_a_registration_document(self, tmp_path: Path) -> None:
        """An Encord batch is a registration JSON grouped by kind with skip_duplicate_urls."""
        sink = FilesSink(tmp_path, "encord")
        batch = Batch.of(ENC_ITEMS)
        await sink.deliver(batch)
        doc = json.loads((tmp_path / f"encord-{batch.id}.json").read_bytes())
        assert doc == {
            "videos": [{"objectUrl": "https://h/v.mp4", "title": "v"}],
            "images": [{"objectUrl": "https://h/i.png"}],
            "audio": [{"objectUrl": "https://h/s.mp3"}],
            "skip_duplicate_urls": True,
        }

    async def test_redelivery_finds_the_file_and_does_not_rewrite_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The same batch delivered again (after a crash) is reported accepted without a second write."""
        sink = FilesSink(tmp_path, "labelbox")
        batch = Batch.of(LB_ITEMS)
        await sink.deliver(batch)
        path = sink.path_for(batch)
        before = path.stat()

        def no_write(*args: object) -> None:
            raise AssertionError("a delivered batch must not be written again")

        monkeypatch.setattr(sink, "_write", no_write)
        again = await FilesSink(tmp_path, "labelbox").deliver(Batch.of(list(LB_ITEMS)))
        assert [r.status for r in again] == ["accepted", "accepted"]
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert listing(tmp_path) == [path.name]

    async def test_different_batches_get_different_files(self, tmp_path: Path) -> None:
        """Batch ids differ with their keys, so two batches never overwrite each other."""
        sink = FilesSink(tmp_path, "labelbox")
        await sink.deliver(Batch.of(LB_ITEMS[:1]))
        await sink.deliver(Batch.of(LB_ITEMS[1:]))
        await sink.deliver(Batch.of(LB_ITEMS[::-1]))
        assert len(listing(tmp_path)) == 3


class TestAtomicity:
    async def test_final_name_appears_only_when_complete(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """While bytes are written and synced only a hidden temp file exists; the rename publishes it."""
        sink = FilesSink(tmp_path, "labelbox")
        batch = Batch.of(LB_ITEMS)
        final = sink.path_for(batch)
        observed: list[list[str]] = []
        real_fsync = os.fsync

        def watching_fsync(fd: int) -> None:
            if not final.exists():
                observed.append(listing(tmp_path))
            real_fsync(fd)

        monkeypatch.setattr(files.os, "fsync", watching_fsync)
        await sink.deliver(batch)
        assert observed, "the data was synced before the rename"
        assert all(len(names) == 1 and names[0].startswith(".") for names in observed)
        assert final.exists() and json.loads(final.read_bytes())

    @pytest.mark.parametrize(
        ("err", "exc"),
        [(errno.EIO, PermanentError), (errno.ENOSPC, TransientError), (errno.EDQUOT, TransientError)],
    )
    async def test_failed_write_leaves_no_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int, exc: type[Exception]
    ) -> None:
        """A write that fails removes its temp file, publishes nothing, and says whether a retry may help."""
        sink = FilesSink(tmp_path, "labelbox")
        batch = Batch.of(LB_ITEMS)

        def failing_fsync(fd: int) -> None:
            raise OSError(err, os.strerror(err))

        monkeypatch.setattr(files.os, "fsync", failing_fsync)
        with pytest.raises(exc) as e:
            await sink.deliver(batch)
        assert str(sink.path_for(batch)) in str(e.value)
        assert os.strerror(err) in str(e.value)
        assert listing(tmp_path) == []

    async def test_unwritable_folder_is_permanent_and_names_the_path(self, tmp_path: Path) -> None:
        """An output folder that cannot be created is a permanent error naming the file."""
        (tmp_path / "file").write_text("not a folder")
        sink = FilesSink(tmp_path / "file" / "out", "labelbox")
        batch = Batch.of(LB_ITEMS)
        with pytest.raises(PermanentError) as e:
            await sink.deliver(batch)
        assert str(sink.path_for(batch)) in str(e.value)
        with pytest.raises(PermanentError, match=r"output folder .*/file/out: Not a directory"):
            await sink.check()

    async def test_check_creates_the_folder(self, tmp_path: Path) -> None:
        """check() makes sure the output folder exists and is writable."""
        sink = FilesSink(tmp_path / "a" / "b", "encord")
        await sink.check()
        assert (tmp_path / "a" / "b").is_dir()


class TestLeftovers:
    def test_temp_files_of_killed_writes_are_removed_at_start(self, tmp_path: Path) -> None:
        """A write killed between the temp file and the rename leaves ``.<name>.<pid>.tmp``;
        the next start removes it, but not a temp file of a process still running (another
        instance writing now) nor anything else in the folder."""
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        leftover = tmp_path / f".labelbox-abc.json.{dead.pid}.tmp"
        live = tmp_path / f".labelbox-def.json.{os.getpid()}.tmp"
        kept = [tmp_path / "labelbox-abc.json", tmp_path / ".hidden", tmp_path / "x.tmp"]
        for p in [leftover, live, *kept]:
            p.write_bytes(b"[")
        assert FilesSink(tmp_path, "labelbox").remove_leftovers() == [leftover.name]
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [live, *kept])

    def test_no_folder_yet(self, tmp_path: Path) -> None:
        assert FilesSink(tmp_path / "out", "labelbox").remove_leftovers() == []
