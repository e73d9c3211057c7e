"""daemon.core.allocator: glibc takes the settings (this test machine runs glibc)."""

from __future__ import annotations

import platform

import pytest

from daemon.core.allocator import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_settings() -> None:
    assert keep_freed_memory() is True
