"""Secret references: ``{env:NAME}`` (an environment variable) and ``{cred:NAME}`` (the file
``$CREDENTIALS_DIRECTORY/NAME`` that systemd's ``LoadCredential=`` provides).

Invariant 5: secrets come from the environment or credentials, never from the TOML text, and
never reach a log or a message. So every message here names the reference, never the value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import attrs

from alertd.config.model import Secret

REFERENCE = re.compile(r"\{(env|cred):([^{}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CRED_NAME = re.compile(r"[A-Za-z0-9_.@-]+")


@attrs.frozen(kw_only=True)
class SecretEnvironment:
    """Where references are looked up; tests pass their own instead of the process's."""

    environ: Mapping[str, str] = attrs.field(factory=lambda: dict(os.environ))
    credentials_dir: str | None = None

    @classmethod
    def from_process(cls) -> SecretEnvironment:
        env = dict(os.environ)
        return cls(environ=env, credentials_dir=env.get("CREDENTIALS_DIRECTORY"))


# The shipped unit hands over /etc/alertd/credentials/alertd with LoadCredential=alertd:DIR (an
# instance alertd@NAME reads /etc/alertd/credentials/NAME), and systemd names each file in it
# "alertd_<file name>": the file smtp_password is {cred:alertd_smtp_password}.
UNIT_PREFIX = "alertd_"
UNIT_DIR = "/etc/alertd/credentials/alertd"


def _where_to_put(name: str) -> str:
    """How to provide credential ``name``: the shipped unit's directory first (the usual
    case), a LoadCredential= line of one's own second."""
    if name.startswith(UNIT_PREFIX) and len(name) > len(UNIT_PREFIX):
        file = name[len(UNIT_PREFIX) :]
        return (
            f"put it in the file {UNIT_DIR}/{file} (the shipped unit names it {name}), "
            f"or add LoadCredential={name}:/path/to/file to the unit"
        )
    return (
        f"with the shipped unit, put the file in {UNIT_DIR}/ and write "
        f"{{cred:{UNIT_PREFIX}<file name>}} (it names each file {UNIT_PREFIX}<file name>), "
        f"or add LoadCredential={name}:/path/to/file to the unit"
    )


# ${NAME} and $NAME: what a shell (or a systemd Environment= line) would expand, and alertd
# does not; upper-case only for the bare form, so a "$" in a URL or a price is left alone.
_SHELL = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Z_][A-Z0-9_]+)\b")


def _shell(text: str, braced_only: bool) -> re.Match[str] | None:
    m = _SHELL.search(text)
    while m is not None and braced_only and m.group(1) is None:
        m = _SHELL.search(text, m.end())
    return m


def shell_name(text: str) -> str:
    """``env:NAME`` for the first ``${NAME}`` in ``text`` (which must hold one)."""
    m = _shell(text, braced_only=True)
    assert m is not None
    return f"env:{m.group(1)}"


def shell_reference(text: str, *, braced_only: bool = False) -> str | None:
    """What to write instead of a shell-style ``${NAME}`` (or ``$NAME``, unless
    ``braced_only``: a template may hold a "$" of its own) in ``text``, or None."""
    m = _shell(text, braced_only)
    if m is None:
        return None
    name = m.group(1) or m.group(2)
    return (
        f'shell-style "{m.group(0)}" is not expanded: write {{env:{name}}} in its place '
        f"(or {{cred:NAME}} for a systemd credential)"
    )


def has_reference(text: str) -> bool:
    return REFERENCE.search(text) is not None


def reference_names(text: str) -> list[str]:
    """``["env:NAME", ...]`` in order: safe to log, used as a ``Secret``'s ``source``."""
    return [f"{kind}:{name}" for kind, name in REFERENCE.findall(text)]


def _lookup(kind: str, name: str, where: SecretEnvironment) -> tuple[str | None, str | None]:
    """(value, None) or (None, what is wrong)."""
    if kind == "env":
        if not _ENV_NAME.fullmatch(name):
            return None, f'"{{env:{name}}}" is not a valid environment variable name'
        value = where.environ.get(name)
        if value is None:
            return None, f"environment variable {name} is not set (referenced as {{env:{name}}})"
        if value == "":
            return None, f"environment variable {name} is empty (referenced as {{env:{name}}})"
        return value, None
    if not _CRED_NAME.fullmatch(name) or name in (".", ".."):
        return None, f'"{{cred:{name}}}" is not a valid credential name'
    if not where.credentials_dir:
        return None, (
            f"{{cred:{name}}} needs $CREDENTIALS_DIRECTORY, which is not set "
            f"(systemd sets it for the service; {_where_to_put(name)})"
        )
    path = Path(where.credentials_dir) / name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        found = f"{UNIT_PREFIX}{name}"
        if (Path(where.credentials_dir) / found).is_file():
            hint = (
                f"did you mean {{cred:{found}}}? (the shipped unit adds the {UNIT_PREFIX} prefix)"
            )
        else:
            hint = _where_to_put(name)
        return None, (
            f"credential {name} not found in $CREDENTIALS_DIRECTORY ({where.credentials_dir}); "
            f"{hint}"
        )
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"credential {name} cannot be read: {type(exc).__name__}"
    # `echo token > file` leaves a newline that is never part of the token
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    if text == "":
        return None, f"credential {name} is empty"
    return text, None


def expand(text: str, where: SecretEnvironment) -> tuple[str | None, list[str]]:
    """``text`` with every reference replaced, or (None, problems) if any cannot be."""
    problems: list[str] = []

    def substitute(m: re.Match[str]) -> str:
        value, problem = _lookup(m.group(1), m.group(2), where)
        if problem is not None:
            problems.append(problem)
            return ""
        assert value is not None
        return value

    out = REFERENCE.sub(substitute, text)
    return (None, problems) if problems else (out, [])


def resolve(text: str, where: SecretEnvironment, *, source: str) -> tuple[Secret | None, list[str]]:
    """A ``Secret`` holding ``text`` with its references resolved, or (None, problems)."""
    value, problems = expand(text, where)
    if value is None:
        return None, problems
    return Secret(value, source=source), []
