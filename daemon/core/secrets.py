"""Secrets by name (API keys, private keys, DSNs): from systemd's credentials folder or the
environment, never from the config file itself, never logged."""

from __future__ import annotations

import os
import re
from pathlib import Path

from daemon.core.config import ConfigError


class SecretMissing(ConfigError):
    pass


def load_secret(name: str, environ: dict[str, str] | None = None) -> str:
    """A secret by name: ``$CREDENTIALS_DIRECTORY/<name>`` first, then ``INGESTD_SECRET_<NAME>``.

    The value is never logged; errors name the secret, not its value.
    """
    env = os.environ if environ is None else environ
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        f = Path(cred_dir) / name
        if f.is_file():
            return f.read_text().strip()
    var = "INGESTD_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()
    if var in env:
        return env[var]
    raise SecretMissing(f"secret {name!r}: not in $CREDENTIALS_DIRECTORY nor in ${var}")
