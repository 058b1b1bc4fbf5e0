"""Where the state directory is: one rule for every command that opens it (``run``,
``silence``, ``status``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def state_directory(
    override: str | None, configured: str, environ: Mapping[str, str] = os.environ
) -> Path:
    """``--state-dir`` when given, else systemd's ``$STATE_DIRECTORY`` (its first entry), else
    ``[daemon] state_dir``."""
    if override:
        return Path(override)
    from_systemd = environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(from_systemd or configured)
