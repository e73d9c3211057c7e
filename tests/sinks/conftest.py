from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .fault_server import FaultServer


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    srv = FaultServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()
