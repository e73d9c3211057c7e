"""RangeReader over a local file: ``os.pread`` in the default executor only when it is large.

Reads of local headers are short (<= 64 KiB) and served from the page cache in microseconds;
a thread hop costs more than the read, so small reads are done inline. With a
:class:`~workers.reads.paths.PathFence` the file is opened only if the fence admits it.
"""

from __future__ import annotations

import asyncio
import os

from workers.reads import ObjectGone, ReadError
from workers.reads.paths import PathFence, open_fenced

_INLINE_READ = 1 << 20


class FileReader:
    """Opened lazily on first use; ``close()`` releases the descriptor."""

    def __init__(self, path: str, *, fence: PathFence | None = None) -> None:
        self._path = path
        self._fence = fence
        self._fd: int | None = None
        self._size: int | None = None

    @property
    def name(self) -> str:
        return self._path

    def _open(self) -> int:
        if self._fd is None:
            try:
                if self._fence is not None:
                    self._fd = open_fenced(self._fence, self._path)
                else:
                    self._fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                raise ObjectGone(f"{self._path}: no such file") from None
            except OSError as e:
                raise ReadError(f"{self._path}: {e.strerror}", transient=False) from None
            self._size = os.fstat(self._fd).st_size
        return self._fd

    async def size(self) -> int:
        self._open()
        assert self._size is not None
        return self._size

    async def read(self, offset: int, length: int) -> bytes:
        fd = self._open()
        try:
            if length <= _INLINE_READ:
                return os.pread(fd, length, offset)
            return await asyncio.get_running_loop().run_in_executor(None, os.pread, fd, length, offset)
        except OSError as e:
            raise ReadError(f"{self._path}: read at {offset}: {e.strerror}", transient=False) from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def __aenter__(self) -> FileReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
