"""A string that a regular expression matches, built from the pattern's parse tree: sample
values for apprise's token patterns in the tests that go over every plugin."""

from __future__ import annotations

import re
import string
from re import _constants as c  # type: ignore[attr-defined]
from re import _parser as p  # type: ignore[attr-defined]
from typing import Any

_CATEGORIES = {
    c.CATEGORY_DIGIT: "7",
    c.CATEGORY_WORD: "k",
    c.CATEGORY_SPACE: " ",
    c.CATEGORY_NOT_DIGIT: "k",
    c.CATEGORY_NOT_WORD: "-",
    c.CATEGORY_NOT_SPACE: "k",
}


def _char(items: list[tuple[Any, Any]], salt: int) -> str:
    """A character of a ``[...]`` set, varied by ``salt`` where the set allows."""
    if items and items[0][0] is c.NEGATE:
        taken = {chr(v) for op, v in items[1:] if op is c.LITERAL}
        return next(ch for ch in "k7Zq" if ch not in taken)
    choices: list[str] = []
    for op, value in items:
        if op is c.LITERAL:
            choices.append(chr(value))
        elif op is c.RANGE:
            low, high = value
            choices.extend(chr(x) for x in range(low, min(high, low + 25) + 1))
        elif op is c.CATEGORY:
            choices.append(_CATEGORIES.get(value, "k"))
    alnum = [ch for ch in choices if ch.isalnum()] or choices
    return alnum[salt % len(alnum)]


def _build(tree: Any, salt: int) -> str:
    out = []
    for i, (op, value) in enumerate(tree):
        s = salt + i
        if op is c.LITERAL:
            out.append(chr(value))
        elif op is c.NOT_LITERAL:
            out.append("k" if chr(value) != "k" else "q")
        elif op is c.ANY:
            out.append(string.ascii_letters[s % 52])
        elif op is c.IN:
            out.append(_char(value, s))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            low, high, sub = value
            # optional parts left out (a "bot" prefix, trailing spaces); others a dozen long
            count = 0 if low == 0 else max(low, min(high, 12))
            out.extend(_build(sub, s + n) for n in range(count))
        elif op is c.SUBPATTERN:
            out.append(_build(value[-1], s))
        elif op is c.BRANCH:
            out.append(_build(value[1][0], s))
        elif op in (c.AT, c.ASSERT, c.ASSERT_NOT, c.GROUPREF):
            continue
        else:
            raise ValueError(f"cannot sample {op}")
    return "".join(out)


def sample(pattern: str, salt: int = 0) -> str:
    """A string ``re.search(pattern, ...)`` matches (checked), varied by ``salt``."""
    text = _build(p.parse(pattern), salt)
    if re.search(pattern, text, re.IGNORECASE) is None:
        raise ValueError(f"no sample for {pattern!r}")
    return text
