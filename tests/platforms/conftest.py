"""The local Labelbox server, one per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.platforms.labelbox_server import LabelboxServer


@pytest.fixture
async def server() -> AsyncIterator[LabelboxServer]:
    s = LabelboxServer()
    await s.start()
    yield s
    await s.stop()
