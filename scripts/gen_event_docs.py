"""Writes docs/events.md from alertd/events.py, so the field reference cannot drift from the
code (tests/test_docs.py fails when the file is out of date).

    .venv/bin/python scripts/gen_event_docs.py          # rewrite docs/events.md
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import attrs

from alertd import events

OUT = Path(__file__).resolve().parent.parent / "docs" / "events.md"

INTRO = """\
# Events: what rules match on

Generated from `alertd/events.py` by `scripts/gen_event_docs.py`; do not edit by hand.

Every event carries `exchange`, `account` (the name given in the config), `kind`, `time`
(exchange time where the frame has one, else receive time) and `received` (local receive
time), plus `raw` (the decoded frame it came from, for templates). Amounts are exact decimals,
times are timezone-aware UTC, durations are seconds. A field the exchange did not give is
`none`. Stream facts (`stream.*`) about the whole connection have `stream = "*"`.

A rule may use, in `where`, `value`, `key` and its templates, the fields every kind it matches
has (`on = "order.*"` can use `notional`; `on = "*"` cannot); `alertd check` names the ones
that are missing.
"""

COMMON = ("exchange", "account", "time", "received", "raw")


def _type_text(t: object) -> str:
    text = t if isinstance(t, str) else getattr(t, "__name__", repr(t))
    text = str(text).replace("Side", '"buy" | "sell"').replace("PriceLevel", "(price, qty)")
    return text.replace("|", "\\|")


def _prose(doc: str) -> str:
    return doc.replace("``", "`")


def render() -> str:
    parts = [INTRO]
    for cls in events.EVENT_TYPES:
        doc = inspect.getdoc(cls)
        own = [a for a in attrs.fields(cls) if a.name not in COMMON]
        parts.append(f"\n## `{cls.kind}`\n")
        if doc and doc != inspect.getdoc(events.Event):
            parts.append("\n" + _prose(doc) + "\n")
        parts.append("\n| field | type |\n|---|---|\n")
        for a in own:
            parts.append(f"| `{a.name}` | {_type_text(a.type)} |\n")
    parts.append("\n## `stream.gap` evidence\n\n")
    parts.append(_prose(inspect.getdoc(events.BalanceEvidence) or "") + "\n")
    parts.append("\n| field | type |\n|---|---|\n")
    for a in attrs.fields(events.BalanceEvidence):
        parts.append(f"| `{a.name}` | {_type_text(a.type)} |\n")
    parts.append("| `change` | Decimal \\| None (after - before) |\n")
    return "".join(parts)


def main() -> int:
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
