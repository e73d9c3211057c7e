"""Global keys: a pure function of the object's identity.

The key is ``template.format(**fields)`` (fields: bucket, key, version, etag, origin, path,
url), then made valid for Labelbox (<= 200 characters; only ``A-Z a-z 0-9`` and
``! _ . * ' ( ) & $ @ = ; / : + space , ? -``; no leading/trailing whitespace) in a
deterministic way: characters outside the set become ``_`` and, because that can make two
identities collide, a ``-`` and 12 hex digits of SHA-256 of the unsanitised key are appended;
a key still too long is cut and gets the same suffix. Keys are compared case-insensitively
(the ledger casefolds them, as Labelbox does).
"""

from __future__ import annotations

import hashlib
import re
import string

from workers.rules.verdict import Violation

MAX_LEN = 200
_ALLOWED = frozenset(string.ascii_letters + string.digits + "!_.*'()&$@=;/:+ ,?-")
_BAD = re.compile(r"[^A-Za-z0-9!_.*'()&$@=;/:+ ,?\-]")
_SUFFIX_LEN = 13  # "-" + 12 hex digits


def render(template: str, fields: dict[str, str]) -> str:
    """Fill the template; unknown or missing fields render as empty strings."""
    return template.format_map(_Fields(fields))


class _Fields(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def make_key(template: str, fields: dict[str, str]) -> str:
    """The global key for an object (see module docstring). Raises ValueError if it is empty."""
    return key_from(render(template, fields), template)


def key_from(raw: str, template: str) -> str:
    """:func:`make_key` of a template already rendered to ``raw``."""
    key = raw.strip()
    if not key:
        raise ValueError(f"global key template {template!r} renders empty for this object")
    changed = key != raw
    if _BAD.search(key):
        key = _BAD.sub("_", key)
        changed = True
    if len(key) > MAX_LEN:
        key = key[: MAX_LEN - _SUFFIX_LEN]
        changed = True
    if changed:
        key = key[: MAX_LEN - _SUFFIX_LEN].rstrip() + "-" + _digest(raw)
    return key


def check_key(key: str) -> Violation | None:
    """A Labelbox global-key rule this key breaks, if any (for keys given in manifests)."""
    if not key or key != key.strip():
        return Violation(
            rule="labelbox.global_key.whitespace",
            message="global key is blank or has leading/trailing whitespace",
            expected="non-blank, trimmed",
            actual=key,
        )
    if len(key) > MAX_LEN:
        return Violation(
            rule="labelbox.global_key.length",
            message="global key longer than 200 characters",
            expected=f"<= {MAX_LEN}",
            actual=len(key),
        )
    bad = sorted({c for c in key if c not in _ALLOWED})
    if bad:
        return Violation(
            rule="labelbox.global_key.characters",
            message="global key has characters Labelbox does not allow",
            expected="A-Z a-z 0-9 ! _ . * ' ( ) & $ @ = ; / : + space , ? -",
            actual="".join(bad),
        )
    return None


def template_problem(template: str) -> str | None:
    """Why a global key template cannot be used (unknown or non-plain fields), or ``None``."""
    allowed = sorted(_TemplateProbe._ALLOWED)
    try:
        for _, field, _, _ in string.Formatter().parse(template):
            # plain names only: no positional ({}, {0}), attribute ({key.x}) or index ({key[0]}) fields
            if field is not None and field not in _TemplateProbe._ALLOWED:
                return f"unknown field {{{field}}}; use {allowed}"
        template.format_map(_TemplateProbe())
    except (KeyError, ValueError, IndexError) as e:
        return str(e)
    return None


class _TemplateProbe(dict[str, str]):
    _ALLOWED = frozenset({"bucket", "key", "version", "etag", "origin", "path", "url"})

    def __missing__(self, key: str) -> str:
        if key not in self._ALLOWED:
            raise KeyError(f"unknown field {{{key}}}; use {sorted(self._ALLOWED)}")
        return "x"
