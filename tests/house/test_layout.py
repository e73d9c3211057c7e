"""The house stays as docs/architecture.md draws it: rooms by role, imports only downwards, no cycles,
no module past 400 lines, every room saying its role in its ``__init__`` docstring.

Imports are read from the source (every ``import`` statement, at module level or inside a function or
an ``if TYPE_CHECKING`` block), so a lazy import cannot hide an upward arrow or a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("daemon", "workers")

# Rooms of daemon/ from the bottom up; a room may import rooms of a lower rank (and itself).
RANK = {
    "core": 0,
    "sources": 1,
    "sinks": 1,
    "ops": 1,
    "ledger": 2,
    "pipeline": 3,
    "service": 4,
    "commands": 5,
}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports (resolving ``from pkg import module`` to the module)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for a in node.names:
                full = f"{base}.{a.name}"
                out.add(full if full in modules else base)
    return {m for m in out if m in modules and m != name}


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(path, name, modules) for name, path in modules.items()}


def room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "daemon" and len(parts) > 2 else None


def test_workers_never_import_daemon() -> None:
    bad = sorted(
        f"{m} -> {d}"
        for m, deps in graph().items()
        if m.startswith("workers")
        for d in deps
        if d.startswith("daemon")
    )
    assert not bad, bad


def test_every_daemon_module_is_in_a_room() -> None:
    loose = [
        m
        for m, p in all_modules().items()
        if m.count(".") == 1 and m.startswith("daemon.") and p.stem != "__init__"
    ]
    assert sorted(loose) == ["daemon.__main__"], "modules directly in daemon/ (put them in a room)"
    rooms = {p.parent.name for p in (ROOT / "daemon").glob("*/__init__.py")}
    assert rooms == set(RANK), f"rooms on disk {sorted(rooms)} vs ranked {sorted(RANK)}"


def test_imports_run_only_downwards() -> None:
    bad = []
    for m, deps in graph().items():
        src = room(m)
        if src is None:
            continue
        for d in deps:
            dst = room(d)
            if dst is None or dst == src:
                continue
            if RANK[dst] >= RANK[src]:
                bad.append(f"{m} ({src}, rank {RANK[src]}) -> {d} ({dst}, rank {RANK[dst]})")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles() -> None:
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            strong(v)
    # a package's __init__ importing its own modules is not a cycle of roles; none do today
    assert not cycles, cycles


def test_no_module_past_the_size_limit() -> None:
    big = {m: n for m, p in all_modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, big


@pytest.mark.parametrize("init", sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("__init__.py")))
def test_each_room_says_its_role(init: Path) -> None:
    doc = ast.get_docstring(ast.parse(init.read_text()))
    assert doc, f"{init.relative_to(ROOT)} has no docstring"
    first = doc.splitlines()[0]
    assert first.endswith("."), f"{init.relative_to(ROOT)}: the first line should be one sentence: {first!r}"


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    """The walker resolves lazy and ``from pkg import module`` imports (else the tests above prove little)."""
    modules = all_modules()
    sqlite = modules["daemon.ledger.sqlite"]
    deps = imports_of(sqlite, "daemon.ledger.sqlite", modules)
    assert "daemon.ledger.records" in deps
    fake = tmp_path / "m.py"
    fake.write_text("def f():\n    from daemon.service import wiring\n")
    assert imports_of(fake, "daemon.ledger.fake", modules) == {"daemon.service.wiring"}
