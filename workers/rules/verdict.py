"""The result of checking one object against a platform's rules."""

from __future__ import annotations

from typing import Any

import msgspec


class Violation(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One broken rule: its id, a sentence for humans, the expected and the actual value."""

    rule: str
    message: str
    expected: Any = None
    actual: Any = None

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


class Verdict(msgspec.Struct, kw_only=True):
    """``ok`` iff there are no errors; warnings never block."""

    errors: list[Violation] = msgspec.field(default_factory=list)
    warnings: list[Violation] = msgspec.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors
