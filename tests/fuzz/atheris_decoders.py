"""Coverage-guided fuzzing of the decoders of outside input with atheris (optional).

    python -m tests.fuzz.atheris_decoders -runs=200000     (from the repository root)

The first byte picks the decoder (config, manifest JSON/NDJSON/CSV, queue body, stream entry);
the rest is its input. Anything but the documented answer (a ConfigError, a message with an
``error``, a decoded ``error``) is a crash: atheris writes the input to ``crash-<sha1>``; keep
it under ``tests/fuzz/corpus/<decoder>/`` once fixed, where the suite replays it.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from tests.fuzz.test_fuzz_decoders import check_body, check_config, check_entry, check_manifest

DECODERS = (
    check_config,
    lambda data: check_manifest(data, ".json"),
    lambda data: check_manifest(data, ".ndjson"),
    lambda data: check_manifest(data, ".csv"),
    check_body,
    lambda data: check_entry({b"body": data}),
)


def one_input(data: bytes) -> None:
    if not data:
        return
    DECODERS[data[0] % len(DECODERS)](data[1:])


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
