"""The repository's docs stand on their own and match the code."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_events_reference_is_generated_from_the_code() -> None:
    """docs/events.md is what scripts/gen_event_docs.py makes of alertd/events.py now."""
    render = runpy.run_path(str(ROOT / "scripts" / "gen_event_docs.py"))["render"]
    on_disk = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    assert on_disk == render(), "docs/events.md is stale: run scripts/gen_event_docs.py"


def test_readme_points_only_at_files_in_the_repository() -> None:
    """Every repository path the README names in backticks or links exists (no DESIGN.md)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "DESIGN.md" not in text
    named = set(re.findall(r"\]\(((?:docs|bench|systemd|scripts)/[^)#\s]+)\)", text))
    named |= set(
        re.findall(r"`((?:docs|bench|systemd|scripts)/[\w./-]+\.(?:md|py|service))`", text)
    )
    assert named, "the README names no files (pattern broken?)"
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing
