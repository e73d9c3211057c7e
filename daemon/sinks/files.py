"""The ``files`` sink: import-ready files a user could upload by hand.

Annotation items (kind ``ANNOTATIONS``: validated Labelbox NDJSON for media already accepted)
go to ``labelbox-annotations-<batch id>.ndjson`` beside the data-row files, one file per
``rows_per_file`` data rows (one annotation import job each: ``-<n>`` when there are several),
each written the same atomic way.

Labelbox: ``labelbox-<batch id>.json``, a JSON array of data rows (the seeds' "upload a JSON
file" format). Encord: ``encord-<batch id>.json``, a registration JSON with
``skip_duplicate_urls: true``. Each file is written atomically (temp file, fsync, rename,
fsync of the folder) before the batch's messages are acknowledged. The name is the batch id,
a pure function of the item keys: re-delivering a batch after a crash finds the file already
there and reports the items accepted without writing a second copy.

A write killed between the temp file and the rename leaves a hidden ``.<name>.<pid>.tmp``:
:meth:`FilesSink.remove_leftovers` deletes those at start-up (not those of a process still
running on this host: another instance writing to the same folder).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import structlog

from daemon.core.processes import running
from daemon.sinks.base import ANNOTATIONS, Batch, BatchItem, ItemResult, PermanentError, TransientError
from workers.payloads import encord as enc
from workers.payloads import labelbox as lb

log = structlog.get_logger()

_TEMP = re.compile(r"\..+\.(\d+)\.tmp")


def document(platform: str, batch: Batch) -> bytes:
    if platform == "labelbox":
        return lb.json_array([i.body for i in batch.items])
    return enc.registration_json([(i.kind, i.body) for i in batch.items])


class FilesSink:
    name = "files"

    def __init__(self, folder: Path, platform: str, *, rows_per_file: int = 500) -> None:
        self.folder = folder
        self.platform = platform
        self.rows_per_file = rows_per_file

    def path_for(self, batch: Batch) -> Path:
        return self.folder / f"{self.platform}-{batch.id}.json"

    def files_for(self, batch: Batch) -> list[tuple[Path, list[BatchItem]]]:
        """The files a batch is written as: its data rows, then its annotations in chunks."""
        media = [i for i in batch.items if i.kind != ANNOTATIONS]
        notes = [i for i in batch.items if i.kind == ANNOTATIONS]
        out = [(self.path_for(batch), media)] if media else []
        n = self.rows_per_file
        chunks = [notes[i : i + n] for i in range(0, len(notes), n)]
        for k, chunk in enumerate(chunks, 1):
            tail = f"-{k}" if len(chunks) > 1 else ""
            out.append((self.folder / f"{self.platform}-annotations-{batch.id}{tail}.ndjson", chunk))
        return out

    async def deliver(self, batch: Batch) -> list[ItemResult]:
        for path, items in self.files_for(batch):
            if path.exists():
                log.info("batch already written", batch_id=batch.id, path=str(path), items=len(items))
                continue
            if items[0].kind == ANNOTATIONS:
                data = b"".join(i.body if i.body.endswith(b"\n") else i.body + b"\n" for i in items)
            else:
                data = document(self.platform, Batch(batch.id, items))
            self._write(path, data)
            log.info("batch written", batch_id=batch.id, path=str(path), items=len(items))
        return [ItemResult(key=i.key, status="accepted") for i in batch.items]

    def _write(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            dfd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            try:
                tmp.unlink()
            except OSError:
                pass
            if e.errno in (28, 122):  # ENOSPC, EDQUOT: may clear up
                raise TransientError(f"cannot write {path}: {e.strerror}") from None
            raise PermanentError(f"cannot write {path}: {e.strerror}") from None

    def remove_leftovers(self) -> list[str]:
        """Delete the temp files killed writes left in the folder; their names."""
        try:
            entries = list(self.folder.iterdir())
        except FileNotFoundError:
            return []
        removed: list[str] = []
        for p in entries:
            m = _TEMP.fullmatch(p.name)
            if m is None or running(int(m.group(1))):
                continue
            try:
                p.unlink()
            except FileNotFoundError:  # another instance starting removed it first
                continue
            removed.append(p.name)
        if removed:
            log.info("leftover temp files removed", folder=str(self.folder), files=sorted(removed))
        return removed

    async def check(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PermanentError(f"output folder {self.folder}: {e.strerror}") from None
        if not os.access(self.folder, os.W_OK):
            raise PermanentError(f"output folder {self.folder} is not writable")
