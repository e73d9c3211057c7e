"""Can this user create and write a folder? The permission logic of ``ingestd check``.

Standard library only, on purpose: the test copies this one file to a world-readable folder and
runs it as an unprivileged user, whatever the permissions of the checkout it was copied from.
"""

from __future__ import annotations

import os
from pathlib import Path


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def writable_dir(path: Path) -> str | None:
    """Why ``path`` cannot be (created and) written as a folder, or ``None``."""
    try:
        return _writable_dir(path)
    except OSError as e:  # e.g. a parent this user may not even look into
        return f"{e.filename or path}: {e.strerror}"


def _writable_dir(path: Path) -> str | None:
    if path.exists():
        if not path.is_dir():
            return f"{path} exists and is not a folder"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"{path} is not writable by uid {os.getuid()}"
        return None
    base = _nearest_existing(path)
    if not base.is_dir():
        return f"cannot create {path}: {base} is not a folder"
    if not os.access(base, os.W_OK | os.X_OK):
        return f"cannot create {path}: {base} is not writable by uid {os.getuid()}"
    return None
