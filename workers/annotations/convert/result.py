"""What every converter returns: the NDJSON lines, the problems found, and the reduction report.

A converter never raises on bad input: whatever it cannot read becomes a
:class:`~workers.annotations.problems.Problem` (the one the validator reports) naming the source
file, the line (1-based, 0 when the problem is not tied to a line), a JSON path or XML element
path, the rule, what was expected and what was found.
"""

from __future__ import annotations

from typing import Any

import msgspec

from workers.annotations.problems import Problem, Severity


class Reduction(msgspec.Struct, kw_only=True):
    """How much keyframe reduction saved: shapes read from the source vs keyframes written."""

    tracks: int = 0
    segments: int = 0
    shapes_in: int = 0
    keyframes_out: int = 0
    tolerance: float | None = None  # None: not reduced

    @property
    def ratio(self) -> float:
        """Kept keyframes per original shape (1.0 = nothing dropped; 0.05 = 20x fewer)."""
        return self.keyframes_out / self.shapes_in if self.shapes_in else 1.0

    def add(self, other: Reduction) -> None:
        self.tracks += other.tracks
        self.segments += other.segments
        self.shapes_in += other.shapes_in
        self.keyframes_out += other.keyframes_out


class ConvertResult(msgspec.Struct, kw_only=True):
    """NDJSON lines (plain dicts in the seed's shape, one per line), problems, and the reduction."""

    lines: list[dict[str, Any]]
    problems: list[Problem]
    reduction: Reduction

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


class Problems:
    """A problem list bound to one source file, with a cap so a garbage file cannot flood memory."""

    __slots__ = ("cap", "dropped", "items", "source")

    def __init__(self, source: str, cap: int = 1000) -> None:
        self.source = source
        self.cap = cap
        self.items: list[Problem] = []
        self.dropped = 0

    def add(
        self,
        rule: str,
        message: str,
        *,
        line: int = 0,
        path: str = "",
        expected: str = "",
        actual: object = "",
        severity: Severity = "error",
    ) -> None:
        if len(self.items) >= self.cap:
            self.dropped += 1
            return
        shown = actual if isinstance(actual, str) else repr(actual)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        self.items.append(
            Problem(
                file=self.source,
                line=line,
                path=path,
                rule=rule,
                message=message,
                expected=expected,
                actual=shown,
                severity=severity,
            )
        )

    def done(self) -> list[Problem]:
        if self.dropped:
            self.items.append(
                Problem(
                    file=self.source,
                    line=0,
                    path="$",
                    rule="problems.truncated",
                    message=f"{self.dropped} more problems not listed",
                )
            )
            self.dropped = 0
        return self.items


def text_of(data: bytes, problems: Problems) -> str | None:
    """``data`` as UTF-8 text (a BOM is allowed), or None with a problem."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        problems.add(
            "encoding.utf8",
            "the file is not UTF-8 text",
            path="$",
            expected="UTF-8",
            actual=f"byte {e.start}",
        )
        return None
