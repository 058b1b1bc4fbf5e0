"""apprise's first plugin load warns (imghdr is deprecated); with warnings as errors, as under
pytest, the literal-secret check must still see a URL's private parts in a fresh process."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import warnings
warnings.simplefilter("error")
from alertd.check.channel_urls import read_service
service = read_service("discord://1234567890/abcdefghijklmnopqrstuvwxyz0123456789")
print(sorted(p.token for p in service.private) if service else None)
"""


def test_private_parts_are_found_even_when_warnings_are_errors() -> None:
    """A fresh process that makes every warning an error still reads Discord's ID and token
    as private (before the fix the warning hid them and the literal passed)."""
    done = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['webhook_id', 'webhook_token']"
