from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .fault_server import FaultServer, running_server


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    async with running_server() as srv:
        yield srv
