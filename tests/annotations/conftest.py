"""Fixtures for the annotation tests: seed examples, building lines from dicts, finding problems."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from workers.annotations.decode import convert_dicts
from workers.annotations.model import Line
from workers.annotations.problems import Problem

DATA = Path(__file__).resolve().parent / "data"
GLOBAL_KEY = "sample-video-jellyfish.mp4"


@pytest.fixture(scope="session")
def seed_examples() -> dict[str, dict[str, Any]]:
    """Every NDJSON example of seed 002 ("Import video annotations"), by its variable name, with
    the dataRow the seed's Step 5 adds to each."""
    examples = json.loads((DATA / "seed_examples.json").read_text())
    return {k: {**v, "dataRow": {"globalKey": GLOBAL_KEY}} for k, v in examples.items()}


@pytest.fixture
def lines() -> Callable[..., list[Line]]:
    """Dicts -> lines (line numbers from 1); a dict that does not decode fails the test."""

    def build(*objs: dict[str, Any]) -> list[Line]:
        out, problems = convert_dicts(objs, source="t.ndjson")
        assert problems == []
        return out

    return build


def only(problems: list[Problem], rule: str) -> Problem:
    """The one problem with this rule (the test fails on none or several)."""
    hits = [p for p in problems if p.rule == rule]
    assert len(hits) == 1, f"{rule}: {[p.render() for p in problems]}"
    return hits[0]


@pytest.fixture
def problem() -> Callable[[list[Problem], str], Problem]:
    return only


def bbox_track(*frames: int, key: str = GLOBAL_KEY, name: str = "bbox_video", **extra: Any) -> dict[str, Any]:
    """A one-segment bbox track with a keyframe at each frame."""
    kfs = [{"frame": f, "bbox": {"top": 10, "left": 20, "height": 30, "width": 40}} for f in frames]
    return {"dataRow": {"globalKey": key}, "name": name, "segments": [{"keyframes": kfs}], **extra}


@pytest.fixture
def track() -> Callable[..., dict[str, Any]]:
    return bbox_track


@pytest.fixture
def seed_ontology() -> dict[str, Any]:
    """The ontology of the seed's Step 2, in Labelbox's normalized form (a fresh copy per test)."""
    return json.loads((DATA / "seed_ontology.json").read_text())
