"""RangeReader over HTTP(S): ``Range: bytes=a-b`` GETs with one shared aiohttp session.

The object's size comes from the first response's ``Content-Range`` (``bytes a-b/size``), so
the head read also answers ``size()``; a server that ignores Range (200 with the whole body)
is read only up to what was asked and its size taken from ``Content-Length``. 404/410 mean
the object is gone; 5xx, 429 and connection errors are transient.
"""

from __future__ import annotations

import re

import aiohttp

from workers.reads import ObjectGone, ReadError

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _public(url: str) -> str:
    """The URL without its query string (signatures never reach logs or errors)."""
    return url.split("?", 1)[0]


class HttpReader:
    def __init__(self, session: aiohttp.ClientSession, url: str, *, size: int | None = None) -> None:
        self._session = session
        self._url = url
        self._size = size

    @property
    def name(self) -> str:
        return _public(self._url)

    async def size(self) -> int:
        if self._size is None:
            await self.read(0, 1)
        assert self._size is not None
        return self._size

    async def read(self, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
        try:
            async with self._session.get(self._url, headers=headers) as resp:
                status = resp.status
                if status == 206:
                    m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
                    if m and m.group(3) != "*":
                        self._size = int(m.group(3))
                    return await resp.read()
                if status == 200:
                    # Range ignored: read only the prefix we need, then drop the connection.
                    want = offset + length
                    buf = bytearray()
                    while len(buf) < want:
                        chunk = await resp.content.read(want - len(buf))
                        if not chunk:
                            break
                        buf += chunk
                    if self._size is None:
                        self._size = resp.content_length if resp.content_length is not None else len(buf)
                    return bytes(buf[offset:want])
                if status == 416:
                    if self._size is None:
                        m = re.match(r"bytes \*/(\d+)", resp.headers.get("Content-Range", ""))
                        self._size = int(m.group(1)) if m else offset
                    return b""
                if status in (404, 410):
                    raise ObjectGone(f"{self.name}: HTTP {status}")
                transient = status >= 500 or status in (408, 425, 429)
                raise ReadError(
                    f"{self.name}: HTTP {status} for range read", transient=transient, status=status
                )
        except (aiohttp.ClientError, TimeoutError) as e:
            raise ReadError(f"{self.name}: {type(e).__name__}: {e}", transient=True) from None
