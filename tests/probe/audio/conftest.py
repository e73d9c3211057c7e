"""Fixtures for the audio probe tests: the ffmpeg-made corpus, built once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from audio_corpus import build_all, ffprobe


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Corpus name -> file path."""
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.fail("ffmpeg and ffprobe are required (installed by .ci/run)")
    return build_all(tmp_path_factory.mktemp("audio_corpus"))


@pytest.fixture(scope="session")
def ffprobe_of(corpus: dict[str, Path]) -> dict[str, dict[str, str]]:
    """Corpus name -> ffprobe's fields, computed once."""
    return {name: ffprobe(path) for name, path in corpus.items()}
