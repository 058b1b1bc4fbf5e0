"""What is wrong with a configuration file, said so a person can find and fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

import attrs

PathPart = str | int
TomlPath = tuple[PathPart, ...]


def format_path(path: Sequence[PathPart]) -> str:
    """``("rules", 2, "cooldown")`` -> ``rules[2].cooldown``; odd keys are quoted."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.replace("_", "").replace("-", "").isalnum():
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


def one_line(text: str) -> str:
    """``text`` with every character that would break or hide a line (newline, carriage
    return, NUL, other controls) shown as its escape: a value quoted in a message keeps the
    message one line, and the terminal shows what the file holds."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean "x"?)`` for the closest candidate, or ``""`` when nothing is close."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


@attrs.frozen(kw_only=True)
class Problem:
    """One thing wrong with the file. ``line`` (1-based) is where the key is written, when the
    locator found it; ``column`` is known only for syntax errors."""

    file: str
    path: str  # "rules[2].cooldown"; "" for the file as a whole
    line: int | None
    message: str
    column: int | None = None

    def __str__(self) -> str:
        return one_line(self._text())

    def _text(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.column is not None:
            # syntax errors follow the compiler convention FILE:LINE:COL: message
            return f"{where}: {self.message}"
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The file cannot be used. ``problems`` lists every problem found, in file order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(self.format())

    def format(self) -> str:
        """One line per problem."""
        return "\n".join(str(p) for p in self.problems)
