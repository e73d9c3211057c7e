"""The C allocator's settings for a long-running daemon (glibc ``mallopt``).

Every object costs a few buffers of 16-64 KiB (a response body, the bytes the event loop read,
the body joined from them). glibc gives memory back to the kernel as soon as more than
``M_TRIM_THRESHOLD`` (128 KiB) is free at the top of the heap, and asks for it again on the next
allocation: every object then pays page faults for fresh pages. Measured on a range GET loop
(``bench range_client``): ~165 µs of CPU per request with glibc's defaults, ~95 µs with a
64 MiB trim threshold and a 16 MiB top pad. The price is up to that much memory kept by the
process after a peak, instead of returned at once.

Only glibc has ``mallopt``; elsewhere (musl, macOS) nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
TRIM_THRESHOLD = 64 << 20
TOP_PAD = 16 << 20


def keep_freed_memory() -> bool:
    """Keep freed heap memory for reuse (see the module docstring). True if glibc took it."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(M_TOP_PAD, TOP_PAD))
