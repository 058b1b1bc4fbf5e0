"""From a path to TOML data, or the one problem that stops it: the file is missing, not a
regular file, too large, not UTF-8, not TOML, or nested deeper than anything alertd reads.

Whatever the file holds, the answer is a ``Problem``, never an exception: ``alertd check``,
the daemon's reload and ``alertd silence`` all read files a person may have got wrong.
"""

from __future__ import annotations

import os
import stat
from decimal import Decimal
from typing import Any

import tomli

from alertd.config.errors import Problem, TomlPath

# A config of a few hundred rules is tens of kilobytes; a file far larger is the wrong file
# (a capture, a log, /dev/zero), and reading it whole would only cost memory.
MAX_BYTES = 4 * 1024 * 1024
# alertd's deepest setting is four levels down (dispatch.quiet_hours[0].days[0]); a file
# nested much deeper is a mistake, and past a few hundred levels tomli and copy.deepcopy
# exhaust the interpreter's stack.
MAX_DEPTH = 32


def _problem(file: str, message: str, line: int | None = None) -> Problem:
    return Problem(file=file, path="", line=line, message=message)


def read_text(file: str) -> str | Problem:
    """The text of ``file``, or why it cannot be read. Only a regular file is opened: a FIFO
    or a device (``-c /dev/zero``) would block or never end."""
    try:
        info = os.stat(file)
        if stat.S_ISDIR(info.st_mode):
            return _problem(file, "is a directory, not a config file")
        if not stat.S_ISREG(info.st_mode):
            return _problem(file, "is not a regular file (a device, socket or pipe)")
        if info.st_size > MAX_BYTES:
            return _problem(
                file, f"is {info.st_size:,} bytes, too large for a config (at most {MAX_BYTES:,})"
            )
        with open(file, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return _problem(file, "no such file")
    except OSError as exc:
        return _problem(file, f"cannot read: {exc.strerror or type(exc).__name__}")
    except ValueError:  # a NUL byte in the path
        return _problem(file, "cannot read: not a valid path")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return _problem(
            file, f"is not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as UTF-8", line
        )


def parse_toml(text: str, file: str) -> dict[str, Any] | Problem:
    """``text`` as TOML (floats as exact ``Decimal``), or its syntax error with line and column,
    or the path nested too deeply."""
    try:
        # TOML floats as exact decimals: a threshold such as 78622131.65220111 must not
        # drift through binary float (it would read back as ...112)
        raw = tomli.loads(text, parse_float=Decimal)
    except tomli.TOMLDecodeError as exc:
        # tomli knows lines only here, for syntax errors; for everything else see locate.py
        line = getattr(exc, "lineno", None)
        column = getattr(exc, "colno", None)
        message = getattr(exc, "msg", str(exc))
        return Problem(file=file, path="", line=line, column=column, message=message)
    except RecursionError:
        return _problem(file, _too_deep("arrays or inline tables are"))
    deep = too_deep(raw)
    if deep is not None:
        from alertd.config.errors import format_path
        from alertd.config.locate import Locator

        return Problem(
            file=file,
            path=format_path(deep),
            line=Locator(text).line(deep),
            message=_too_deep("tables or arrays are"),
        )
    return raw


def _too_deep(what: str) -> str:
    return (
        f"{what} nested too deeply (more than {MAX_DEPTH} levels; alertd's settings go "
        "four levels down at most)"
    )


def too_deep(raw: object) -> TomlPath | None:
    """The first path deeper than ``MAX_DEPTH``, or None. Iterative: the data may be nested
    deeper than Python's stack allows recursion."""
    stack: list[tuple[TomlPath, object]] = [((), raw)]
    while stack:
        path, value = stack.pop()
        if len(path) > MAX_DEPTH:
            return path
        if isinstance(value, dict):
            stack.extend(((*path, str(k)), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in enumerate(value))
    return None


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any] | Problem:
    """The TOML data in the file at ``path`` (nothing checked but its syntax), or the problem
    that stops reading it: for commands that need a key or two of a file that may not load
    (``alertd silence`` wants only state_dir and the rule names)."""
    file = os.fspath(path)
    text = read_text(file)
    return text if isinstance(text, Problem) else parse_toml(text, file)
