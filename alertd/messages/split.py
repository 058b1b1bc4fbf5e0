"""Fit a message into what a service accepts: split on line boundaries with "(1/3)" markers,
or, past ``MAX_PARTS``, cut with a marker that says how much was left out. Never dropped.

Pure functions over strings. ``title_in_body`` is for services (Telegram) that have no title
field and prepend the title to the text, so every part must leave room for it. ``html`` is for
services whose text is sent as HTML: ``&``, ``<`` and ``>`` grow when escaped, and lengths are
measured after that growth.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

MAX_PARTS = 10  # past this many messages a split is a flood; cut instead and say so
TITLE_OVERHEAD = 16  # what a service adds around a merged title (Telegram: "<b>", "\r\n")
MIN_BUDGET = 64  # never split into slivers, even under an absurdly long title
_CUT_NOTE = "\n[cut: {} more characters not shown]"


@attrs.frozen(kw_only=True)
class Part:
    title: str
    body: str


# What a character costs once escaped for HTML (newlines may become "\r\n").
_HTML_COST = {"&": 5, "<": 4, ">": 4, '"': 6, "'": 6, "\n": 2}

Measure = Callable[[str], int]


def _html_len(text: str) -> int:
    return len(text) + sum(_HTML_COST.get(c, 1) - 1 for c in text if c in _HTML_COST)


def _marker(index: int, total: int) -> str:
    return f" ({index}/{total})"


def _prefix_within(line: str, budget: int, measure: Measure) -> int:
    """How many leading characters of ``line`` fit in ``budget`` (at least one)."""
    used = 0
    for i, char in enumerate(line):
        used += measure(char)
        if used > budget:
            return max(1, i)
    return len(line)


def _chunks(body: str, budget: int, measure: Measure) -> list[str]:
    """Pack whole lines into chunks measuring at most ``budget``; a line longer than the
    budget is cut into pieces that fill it."""
    chunks: list[str] = []
    current = ""
    for whole_line in body.split("\n"):
        line = whole_line
        while measure(line) > budget:
            if current:
                chunks.append(current)
                current = ""
            cut = _prefix_within(line, budget, measure)
            chunks.append(line[:cut])
            line = line[cut:]
        candidate = line if not current else f"{current}\n{line}"
        if measure(candidate) <= budget:
            current = candidate
        else:
            chunks.append(current)
            current = line
    if current or not chunks:
        chunks.append(current)
    return chunks


def split_message(
    title: str,
    body: str,
    limit: int | None,
    *,
    title_in_body: bool = False,
    html: bool = False,
) -> list[Part]:
    """The parts to send, in order. One part (unchanged) when the message fits."""
    if limit is None or limit <= 0:
        return [Part(title=title, body=body)]
    measure: Measure = _html_len if html else len
    overhead = measure(title) + TITLE_OVERHEAD if title_in_body else 0
    if measure(body) + overhead <= limit:
        return [Part(title=title, body=body)]
    reserve = len(_marker(MAX_PARTS, MAX_PARTS)) if title_in_body else 0
    budget = max(MIN_BUDGET, limit - overhead - reserve)
    chunks = _chunks(body, budget, measure)
    if len(chunks) > MAX_PARTS:
        kept = chunks[:MAX_PARTS]
        note_room = len(_CUT_NOTE.format(len(body)))
        last = kept[-1][: _prefix_within(kept[-1], max(1, budget - note_room), measure)]
        shown = sum(len(c) + 1 for c in kept[:-1]) + len(last)  # + 1: the joining newline
        kept[-1] = last + _CUT_NOTE.format(len(body) - shown)
        chunks = kept
    total = len(chunks)
    return [
        Part(title=f"{title}{_marker(i, total)}", body=chunk)
        for i, chunk in enumerate(chunks, start=1)
    ]
