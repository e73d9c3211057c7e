"""Whether a process of this host is still running (for files and claims named by a pid)."""

from __future__ import annotations

import os


def running(pid: int) -> bool:
    """True while ``pid`` exists on this host (also when it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
