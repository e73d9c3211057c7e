"""MemoryDenyWriteExecute=yes does not break the daemon's stack (CPython, uvloop, aiohttp).

The unit sets ``MemoryDenyWriteExecute=yes``. The kernel's own form of that rule,
``prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)`` (Linux >= 6.3), refuses every mapping that is
writable and executable, and every later gain of exec rights: the same rule, slightly
stricter. A child process turns it on first, proves it holds, then runs the operations
endpoint under uvloop and scrapes it with the aiohttp client (name resolution included).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import ctypes, mmap, sys
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        print("unsupported", ctypes.get_errno())
        sys.exit(3)
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        print("W+X mapping was allowed")
        sys.exit(4)
    except PermissionError:
        pass

    import contextlib
    import aiohttp, uvloop
    from daemon.ops.health import Operations, Readiness, serve
    from daemon.ops.metrics import Metrics

    async def main() -> None:
        ops = Operations(metrics=Metrics("mdwe"), readiness=Readiness())
        ops.metrics.object_done("probe", "ok", 7)
        async with contextlib.AsyncExitStack() as stack:
            _, port = await serve(stack, "127.0.0.1:0", ops)
            async with aiohttp.ClientSession() as s:
                async with s.get(f"http://localhost:{port}/metrics") as r:
                    body = await r.text()
        line = 'ingestd_objects_total{outcome="ok",stage="probe"} 7.0'
        print("scraped" if line in body else body)

    uvloop.run(main())
    """
)


def test_stack_runs_with_write_execute_memory_denied() -> None:
    """Under MDWE the endpoint serves /metrics over uvloop + aiohttp exactly as without it."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode == 3:
        pytest.skip(f"kernel without PR_SET_MDWE (Linux < 6.3): {result.stdout.strip()}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "scraped"
