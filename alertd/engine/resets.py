"""Which rules' state a reload drops, and why, in words for the log (``engine.reset``)."""

from __future__ import annotations

from collections.abc import Sequence

from alertd.engine.compile import STATE_FIELDS, CompiledRule, toml_name


def resets(current: Sequence[CompiledRule], rules: Sequence[CompiledRule]) -> list[tuple[str, str]]:
    """The rules of ``current`` whose state a reload to ``rules`` drops, each with why: gone
    from the config, or a setting its state depends on changed (named)."""
    new = {r.name: r for r in rules}
    out = []
    for old in current:
        rule = new.get(old.name)
        if rule is None:
            out.append((old.name, "removed from the config"))
        elif rule.fingerprint != old.fingerprint:
            was, now = old.settings, rule.settings
            changed = [toml_name(f) for f in STATE_FIELDS if getattr(now, f) != getattr(was, f)]
            out.append((old.name, f"changed {','.join(changed) or 'settings'}"))
    return out
