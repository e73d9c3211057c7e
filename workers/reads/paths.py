"""Which local files the probe may read: the path fence (pure policy, plus its one I/O edge).

Manifest entries and stream entries may name local paths. Without a fence an entry could make
the daemon read any file on the machine (``/etc/shadow``, ``../../`` out of the manifest's
folder, a symlink pointing out, a FIFO that blocks a reader forever). A path is admitted only
when its *resolved* form (every symlink followed, ``..`` collapsed) lies under one of the
allowed roots, themselves resolved; anything else is refused with rule ``path.fenced``, naming
the path as the entry gave it, what it resolves to and the allowed roots.

:meth:`PathFence.refusal` is pure: it compares resolved, absolute path strings component by
component (``/data/media`` does not admit ``/data/media-other``). :func:`resolve` (``os.path.
realpath``) is the I/O edge. :func:`open_fenced` opens what the check admitted and checks
again what the kernel opened (``/proc/self/fd``, where there is one), so a symlink swapped in
between the check and the open is caught too; only regular files are read.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from workers.reads import UrlFenced
from workers.reads.fence import Refusal

RULE = "path.fenced"
SETTING = "probe.allowed_roots"


@dataclass(frozen=True, slots=True)
class PathRefusal(Refusal):
    """Why a local path was refused: ``host`` is the path as given; what it resolved to; the roots."""

    resolved: str = ""
    roots: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return self.host


class PathFenced(UrlFenced):
    """The path fence refused a local path: final (a dead letter ``path.fenced``)."""

    refusal: PathRefusal

    @property
    def actual(self) -> object:
        r = self.refusal
        return {"path": r.path, "resolved": r.resolved, "allowed_roots": list(r.roots)}


def inside(path: str, root: str) -> bool:
    """Is the absolute, normalised ``path`` the ``root`` itself or below it (whole components)?"""
    if root == "/":
        return path.startswith("/")
    return path == root or path.startswith(root + "/")


def normal(path: str) -> str:
    """An absolute path's lexical normal form (``//a/./b/../c`` -> ``/a/c``); pure."""
    n = posixpath.normpath(path)
    return "/" + n.lstrip("/") if n.startswith("//") else n


@dataclass(frozen=True, slots=True)
class PathFence:
    """Local paths allowed under ``roots`` (absolute and already resolved: :meth:`of` does that)."""

    roots: tuple[str, ...]

    @classmethod
    def of(cls, roots: Iterable[str]) -> PathFence:
        """The fence for ``roots`` as configured (resolved now: symlinked roots count as their
        targets; duplicates dropped, order kept)."""
        seen: dict[str, None] = {}
        for r in roots:
            seen.setdefault(resolve(r), None)
        return cls(tuple(seen))

    def refusal(self, path: str, resolved: str) -> PathRefusal | None:
        """``None`` when ``resolved`` (the real path of ``path``) lies under a root; else why not."""

        def refuse(reason: str) -> PathRefusal:
            return PathRefusal(host=path, reason=reason, rule=RULE, resolved=resolved, roots=self.roots)

        if "\x00" in resolved or "\x00" in path:
            return refuse("a path with a NUL byte")
        if not resolved.startswith("/"):
            return refuse("does not resolve to an absolute path")
        where = normal(resolved)
        if any(inside(where, normal(root)) for root in self.roots):
            return None
        if not self.roots:
            return refuse(f"no local path is allowed (set {SETTING})")
        shown = ", ".join(self.roots)
        target = "" if where == normal(path) else f"resolves to {where}, "
        return refuse(f"{target}outside the allowed roots ({shown}; list a folder in {SETTING} to allow)")


def resolve(path: str) -> str:
    """The I/O edge: ``path`` with every symlink followed and ``..`` collapsed (need not exist)."""
    return os.path.realpath(path)


def _opened(fd: int) -> str | None:
    """The path the kernel says ``fd`` refers to (Linux ``/proc``), or ``None`` where unknown."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def open_fenced(fence: PathFence, path: str) -> int:
    """Open ``path`` for reading if the fence admits it, before and after the open.

    Raises :class:`PathFenced` (outside the roots, or not a regular file), ``FileNotFoundError``
    (inside the roots and absent) or ``OSError``. Opened non-blocking so a FIFO cannot hang us.
    """
    try:
        resolved = resolve(path)
    except ValueError:  # a NUL byte: os functions refuse it before any syscall
        resolved = path
    if (refused := fence.refusal(path, resolved)) is not None:
        raise PathFenced(refused)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(resolved, flags)
    try:
        refused = _after_open(fence, path, resolved, fd)
    except BaseException:
        os.close(fd)
        raise
    if refused is not None:
        os.close(fd)
        raise PathFenced(refused)
    return fd


def _after_open(fence: PathFence, path: str, resolved: str, fd: int) -> PathRefusal | None:
    """Check again what was opened (a symlink swapped in since the check), and that it is a file."""
    opened = _opened(fd)
    if opened is not None and (refused := fence.refusal(path, opened)) is not None:
        return refused
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        where = opened or resolved
        return PathRefusal(
            host=path, reason="not a regular file", rule=RULE, resolved=where, roots=fence.roots
        )
    return None
