"""``python -m bench [NAME...] [--quick] [--no-save]``: run benchmarks, print a table, save JSON."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from bench.harness import previous, record, save, table

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("names", nargs="*", help=f"benchmarks to run (default: all): {', '.join(available())}")
    ap.add_argument("--quick", action="store_true", help="smaller inputs, for a smoke run")
    ap.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = ap.parse_args(argv)
    names = args.names or available()
    unknown = set(names) - set(available())
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    failed = 0
    for name in names:
        mod = importlib.import_module(f"bench.bench_{name}")
        started = time.monotonic()
        try:
            figures = mod.run(args.quick)
        except Exception as e:  # one broken benchmark must not hide the others' figures
            print(f"== {name}: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
            failed += 1
            continue
        result = record(name, figures, quick=args.quick, seconds=time.monotonic() - started)
        prev = previous(name)
        print(table(result, prev), flush=True)
        if not args.no_save:
            save(result)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
