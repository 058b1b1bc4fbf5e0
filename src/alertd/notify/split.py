"""Fit a message into what a service accepts: split on line boundaries with "(1/3)" markers,
or, past ``MAX_PARTS``, cut with a marker that says how much was left out. Never dropped.

Pure functions over strings. ``title_in_body`` is for services (Telegram) that have no title
field and prepend the title to the text, so every part must leave room for it.
"""

from __future__ import annotations

import attrs

MAX_PARTS = 10  # past this many messages a split is a flood; cut instead and say so
TITLE_OVERHEAD = 16  # what a service adds around a merged title (Telegram: "<b>", "\r\n")
MIN_BUDGET = 64  # never split into slivers, even under an absurdly long title
_CUT_NOTE = "\n[cut: {} more characters not shown]"


@attrs.frozen(kw_only=True)
class Part:
    title: str
    body: str


def _marker(index: int, total: int) -> str:
    return f" ({index}/{total})"


def _chunks(body: str, budget: int) -> list[str]:
    """Pack whole lines into chunks of at most ``budget`` characters; a line longer than the
    budget is cut into pieces of exactly ``budget``."""
    chunks: list[str] = []
    current = ""
    for whole_line in body.split("\n"):
        line = whole_line
        while len(line) > budget:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:budget])
            line = line[budget:]
        candidate = line if not current else f"{current}\n{line}"
        if len(candidate) <= budget:
            current = candidate
        else:
            chunks.append(current)
            current = line
    if current or not chunks:
        chunks.append(current)
    return chunks


def split_message(
    title: str, body: str, limit: int | None, *, title_in_body: bool = False
) -> list[Part]:
    """The parts to send, in order. One part (unchanged) when the message fits."""
    if limit is None or limit <= 0:
        return [Part(title=title, body=body)]
    overhead = len(title) + TITLE_OVERHEAD if title_in_body else 0
    if len(body) + overhead <= limit:
        return [Part(title=title, body=body)]
    reserve = len(_marker(MAX_PARTS, MAX_PARTS)) if title_in_body else 0
    budget = max(MIN_BUDGET, limit - overhead - reserve)
    chunks = _chunks(body, budget)
    if len(chunks) > MAX_PARTS:
        kept = chunks[:MAX_PARTS]
        note_room = len(_CUT_NOTE.format(len(body)))
        last = kept[-1][: max(0, budget - note_room)]
        shown = sum(len(c) + 1 for c in kept[:-1]) + len(last)  # + 1: the joining newline
        kept[-1] = last + _CUT_NOTE.format(len(body) - shown)
        chunks = kept
    total = len(chunks)
    return [
        Part(title=f"{title}{_marker(i, total)}", body=chunk)
        for i, chunk in enumerate(chunks, start=1)
    ]
