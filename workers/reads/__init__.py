"""Ranged reads: the only I/O in ``workers``.

A ``RangeReader`` gives ``size()`` and ``read(offset, length)``; parsers never see one. The
probe driver (``workers.probe.engine``) feeds a parser the fewest, largest-useful reads.
Implementations: ``file`` (pread), ``http`` (aiohttp Range GETs, one shared session),
``s3`` (GETs presigned by ``workers.urls``, through ``h1pool.RangeClient``: a small HTTP/1.1
client around the sans-I/O ``h1`` parser, its connections in ``h1conn``, given the signed origin
and target; or an aiohttp session, given the URL).
"""

from __future__ import annotations

from typing import Protocol

from workers.reads.fence import Refusal


class ReadError(Exception):
    """A read failed. ``transient`` says whether a retry may fix it; ``status`` is the HTTP status.

    ``rule`` names the failure for a dead letter and ``actual`` the value it found.
    """

    rule = "read.failed"

    def __init__(self, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status

    @property
    def actual(self) -> object:
        return self.status


class UrlFenced(ReadError):
    """The fence (:mod:`workers.reads.fence`) refused a URL, an address or a bucket: final."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"{refusal.host}: {refusal.reason}", transient=False)
        self.rule = refusal.rule
        self.refusal = refusal

    @property
    def actual(self) -> object:
        return self.refusal.host


class ObjectGone(ReadError):
    """The object no longer exists (404 / NoSuchKey / deleted file): final, not retried."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False, status=404)


class RangeReader(Protocol):
    """Random access to one object's bytes."""

    @property
    def name(self) -> str:
        """What is being read (path, URL without query string, s3://bucket/key): for errors/logs."""
        ...

    async def size(self) -> int:
        """Total size in bytes. May do I/O only if not known yet (after a read it is known)."""
        ...

    async def read(self, offset: int, length: int) -> bytes:
        """Bytes ``[offset, offset+length)``, fewer only at end of object."""
        ...
