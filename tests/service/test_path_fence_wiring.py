"""service.fences.path_fence: a source's own folder plus ``[probe] allowed_roots``, resolved."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.core.config import ConfigError, from_dict
from daemon.service.fences import path_fence


@pytest.mark.parametrize(
    ("source", "own"),
    [
        ({"type": "manifest", "path": "lists/m.ndjson"}, "lists"),
        ({"type": "spool", "path": "in"}, "in"),
        ({"type": "redis", "redis_url": "redis://127.0.0.1", "stream": "s"}, "."),
        ({"type": "sqs", "queue_url": "https://sqs.example.com/1/q"}, None),
    ],
)
def test_the_default_root_is_the_sources_own_folder(
    tmp_path: Path, source: dict[str, str], own: str | None
) -> None:
    cfg = from_dict({"source": source}, base_dir=str(tmp_path))
    expected = () if own is None else (str((tmp_path / own).resolve()),)
    assert path_fence(cfg).roots == expected


def test_allowed_roots_add_folders_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    cfg = from_dict(
        {
            "source": {"type": "manifest", "path": "m.ndjson"},
            "probe": {"allowed_roots": ["alias", "/srv/media/", "real"]},
        },
        base_dir=str(tmp_path),
    )
    base, real = str(tmp_path.resolve()), str((tmp_path / "real").resolve())
    assert path_fence(cfg).roots == (base, real, "/srv/media")  # the alias counts as its target, once


def test_a_blank_root_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"probe\.allowed_roots"):
        from_dict({"probe": {"allowed_roots": [""]}})
