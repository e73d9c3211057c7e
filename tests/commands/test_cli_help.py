"""``ingestd --help`` and every subcommand's: each flag says what it does; ``--version``."""

from __future__ import annotations

import argparse
import importlib.metadata
import re

from daemon.commands.cli import parser
from tests.conftest import ROOT, ingestd


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_flag_has_help_text() -> None:
    p = parser()
    missing = [
        f"{name} {'/'.join(a.option_strings) or a.dest}"
        for name, sp in {"ingestd": p, **_subparsers(p)}.items()
        for a in sp._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction) and not a.help
    ]
    assert missing == []


def test_the_readme_lists_every_subcommand_and_its_flags() -> None:
    """The README's command-line section names every subcommand and every flag it takes."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Command line") :]
    section = section[: section.index("\n## ", 4)]
    for name, sp in _subparsers(parser()).items():
        assert re.search(rf"^ingestd {name}\b", section, re.MULTILINE), name
        for a in sp._actions:
            flags = [o for o in a.option_strings if o not in ("-h", "--help")]
            if flags:
                assert any(re.search(rf"(?<![\w-]){o}\b", section) for o in flags), f"{name} {flags}"


def test_version() -> None:
    proc = ingestd("--version")
    assert proc.returncode == 0
    assert proc.stdout == f"ingestd {importlib.metadata.version('ingestd')}\n"
