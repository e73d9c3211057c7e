"""What every layer reports: a :class:`Problem` names the file, line, JSON path and rule.

Rule ids are dotted and stable (``decode.unknown_field``, ``annotation.frames.order``,
``media.bbox.bounds``, ``ontology.answer.unknown``...); ``expected`` and ``actual`` carry the
values that broke the rule, so a user can fix the line without reading our code. Paths are
msgspec's JSONPath style (``$.segments[0].keyframes[3].frame``).
"""

from __future__ import annotations

from typing import Literal

import msgspec

Severity = Literal["error", "warning"]


class Problem(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    file: str
    line: int  # 1-based line number in the file (0: the whole file)
    path: str
    rule: str
    message: str
    expected: str = ""
    actual: str = ""
    severity: Severity = "error"

    def render(self) -> str:
        """``file:line: path: rule: message (expected X, got Y)``."""
        text = f"{self.file}:{self.line}: {self.path}: {self.rule}: {self.message}"
        if self.expected or self.actual:
            text += f" (expected {self.expected or '-'}, got {self.actual or '-'})"
        if self.severity == "warning":
            text += " [warning]"
        return text


def errors(problems: list[Problem]) -> list[Problem]:
    """The problems that make an import invalid (warnings left out)."""
    return [p for p in problems if p.severity == "error"]
