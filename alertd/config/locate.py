"""Where in a TOML file a key is written: TOML path -> line number.

tomli reports line and column only for syntax errors; the values it returns carry no
position. So this module scans the (already valid) text once and records, for every key,
table header (``[[rules]]`` number N is path ``("rules", N)``) and array element, the line it
starts on. A problem deeper than anything written (a missing key) is placed on the line of the
nearest written ancestor, usually its table header.

It is a scanner, not a parser: it relies on tomli having accepted the text first.
"""

from __future__ import annotations

import bisect
import contextlib
import re

from alertd.config.errors import TomlPath

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR_END = re.compile(r"[,\]}\n#]")


class Locator:
    """Line numbers of a TOML document's keys, by path."""

    def __init__(self, text: str) -> None:
        self._lines: dict[TomlPath, int] = {}
        # Text tomli accepted but this scanner does not follow: fewer lines, never a crash.
        with contextlib.suppress(IndexError, ValueError):
            _Scanner(text, self._lines).document()

    def line(self, path: TomlPath) -> int | None:
        """Line (1-based) of ``path``, or of its nearest ancestor that is written down."""
        for end in range(len(path), 0, -1):
            found = self._lines.get(path[:end])
            if found is not None:
                return found
        return None


class _Scanner:
    def __init__(self, text: str, out: dict[TomlPath, int]) -> None:
        self.text = text
        self.pos = 0
        self.out = out
        self.arrays: dict[TomlPath, int] = {}  # array-of-tables path -> elements so far
        # where each newline is, so a line number is a binary search, not a count from the
        # top (which made a 5,000-account file take 4.5 s to locate)
        self.newlines = [m.start() for m in re.finditer("\n", text)]

    # -- low level ------------------------------------------------------------------------

    @property
    def lineno(self) -> int:
        return bisect.bisect_left(self.newlines, self.pos) + 1

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def record(self, path: TomlPath) -> None:
        self.out.setdefault(path, self.lineno)

    def skip_space(self, *, newlines: bool) -> None:
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c in " \t\r" or (newlines and c == "\n"):
                self.pos += 1
            elif c == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                return

    def skip_string(self) -> str:
        """Skip a string of any of the four kinds; return its (roughly unescaped) content."""
        for quote in ('"""', "'''"):
            if self.peek(3) == quote:
                end = self.text.index(quote, self.pos + 3)
                # a closing run may have up to two extra quotes that belong to the content
                while self.text[end + 3 : end + 4] == quote[0]:
                    end += 1
                content = self.text[self.pos + 3 : end]
                self.pos = end + 3
                return content
        quote = self.text[self.pos]
        i = self.pos + 1
        while self.text[i] != quote:
            i += 2 if quote == '"' and self.text[i] == "\\" else 1
        content = self.text[self.pos + 1 : i]
        self.pos = i + 1
        return content.replace('\\"', '"').replace("\\\\", "\\") if quote == '"' else content

    def key(self) -> list[str]:
        """A possibly dotted, possibly quoted key."""
        parts = []
        while True:
            self.skip_space(newlines=False)
            if self.peek() in ('"', "'"):
                parts.append(self.skip_string())
            else:
                m = _BARE_KEY.match(self.text, self.pos)
                if m is None:
                    raise ValueError("not a key")
                parts.append(m.group())
                self.pos = m.end()
            self.skip_space(newlines=False)
            if self.peek() != ".":
                return parts
            self.pos += 1

    # -- grammar --------------------------------------------------------------------------

    def resolve(self, keys: list[str]) -> TomlPath:
        """Header keys -> path, stepping into the latest element of each array of tables."""
        path: TomlPath = ()
        for k in keys:
            path = (*path, k)
            if path in self.arrays:
                path = (*path, self.arrays[path] - 1)
        return path

    def document(self) -> None:
        prefix: TomlPath = ()
        while True:
            self.skip_space(newlines=True)
            if self.pos >= len(self.text):
                return
            if self.peek(2) == "[[":
                self.pos += 2
                keys = self.key()
                self.pos += 2  # "]]"
                table = (*self.resolve(keys[:-1]), keys[-1])
                self.record(table)
                self.arrays[table] = self.arrays.get(table, 0) + 1
                prefix = (*table, self.arrays[table] - 1)
                self.record(prefix)
            elif self.peek() == "[":
                self.pos += 1
                keys = self.key()
                self.pos += 1  # "]"
                prefix = self.resolve(keys)
                for end in range(1, len(prefix) + 1):
                    self.record(prefix[:end])
            else:
                self.keyval(prefix)

    def keyval(self, prefix: TomlPath) -> None:
        keys = self.key()
        path = prefix
        for k in keys:
            path = (*path, k)
            self.record(path)
        self.skip_space(newlines=False)
        self.pos += 1  # "="
        self.value(path)

    def value(self, path: TomlPath) -> None:
        self.skip_space(newlines=False)
        c = self.peek()
        if c in ('"', "'"):
            self.skip_string()
        elif c == "[":
            self.pos += 1
            index = 0
            while True:
                self.skip_space(newlines=True)
                if self.peek() == "]":
                    self.pos += 1
                    return
                self.record((*path, index))
                self.value((*path, index))
                self.skip_space(newlines=True)
                if self.peek() == ",":
                    self.pos += 1
                    index += 1
                elif self.peek() != "]":
                    raise ValueError("lost in an array")
        elif c == "{":
            self.pos += 1
            while True:
                self.skip_space(newlines=True)
                if self.peek() == "}":
                    self.pos += 1
                    return
                self.keyval(path)
                self.skip_space(newlines=True)
                if self.peek() == ",":
                    self.pos += 1
                elif self.peek() != "}":
                    raise ValueError("lost in an inline table")
        else:
            m = _SCALAR_END.search(self.text, self.pos)
            self.pos = len(self.text) if m is None else m.start()
