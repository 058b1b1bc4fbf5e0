"""``[daemon] database`` and ``[daemon] replica``: the PostgreSQL database replicas share, and
this replica's name in it.

``database`` is a ``postgresql://`` URL. ``database_retry`` (how long a call is tried again
before the database counts as away) and ``spool_max`` (alerts the local spool holds while it
is away: store/spool.py) are checked here too. Its password, if any, is written by reference
(``postgresql://alertd:{cred:alertd_pg_password}@db.example/alertd``), or the whole URL is one
(``{env:ALERTD_DATABASE}``); a literal password is refused like every literal secret
(invariant 5). A password given by reference is percent-encoded into the URL, so any
characters may appear in it. The resolved URL is a ``Secret``: it is never printed.

``replica`` defaults to the host name, with ``@INSTANCE`` for an instance of the template unit
``alertd@INSTANCE.service`` (found in this process's cgroup), so two instances on one machine
have different names.
"""

from __future__ import annotations

import re
import socket
import urllib.parse
from pathlib import Path
from typing import Any

from alertd.config.errors import TomlPath
from alertd.config.model import DaemonSettings, Secret
from alertd.config.secrets import (
    REFERENCE,
    SecretEnvironment,
    expand,
    reference_names,
    shell_reference,
)

Found = list[tuple[TomlPath, str]]

SCHEMES = ("postgresql", "postgres")
PATH: TomlPath = ("daemon", "database")
_UNIT = re.compile(r"/alertd@([^/]+)\.service$", re.MULTILINE)
_REPLICA = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:-]{0,62}")

_BY_REFERENCE = (
    "write the password by reference, e.g. postgresql://alertd:{env:PGPASSWORD}@host/alertd "
    "or postgresql://alertd:{cred:alertd_pg_password}@host/alertd: secrets come from the "
    "environment or systemd credentials, never from the config file"
)


def literal_password(text: str) -> bool:
    """Whether the URL ``text`` (as written) carries a password that is not a reference."""
    if REFERENCE.fullmatch(text.strip()):
        return False
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        return False  # not a URL at all: check_database says so
    userinfo, at, _ = parts.netloc.rpartition("@")
    _, colon, password = userinfo.partition(":")
    if at and colon and password and not REFERENCE.fullmatch(password):
        return True
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key == "password" and value and not REFERENCE.fullmatch(value):
            return True
    return False


def _resolve(text: str, where: SecretEnvironment) -> tuple[str | None, list[str]]:
    """The URL with its references resolved; a password reference percent-encoded."""
    head, at, tail = text.rpartition("@")
    scheme, sep, userinfo = head.partition("://")
    user, colon, password = userinfo.partition(":")
    if at and sep and colon and REFERENCE.fullmatch(password):
        value, problems = expand(password, where)
        if value is None:
            return None, problems
        text = f"{scheme}://{user}:{urllib.parse.quote(value, safe='')}@{tail}"
    return expand(text, where)


def resolve_database(raw: dict[str, Any], where: SecretEnvironment, found: Found) -> None:
    """Replace ``[daemon] database`` in ``raw`` by a ``Secret``, in place (the loader's
    secrets step); a literal password or a reference that cannot be resolved is a problem."""
    daemon = raw.get("daemon")
    if not isinstance(daemon, dict) or not isinstance(daemon.get("database"), str):
        return
    text: str = daemon["database"]
    source = ",".join(reference_names(text)) or "daemon.database"
    if literal_password(text):
        found.append((PATH, shell_reference(text) or _BY_REFERENCE))
        daemon["database"] = Secret("", source="literal")
        return
    value, problems = _resolve(text, where)
    found.extend((PATH, p) for p in problems)
    daemon["database"] = Secret(value or "", source=source)


def check_database(daemon: DaemonSettings, out: Found) -> None:
    """The URL is a ``postgresql://`` one (checked on the resolved value, never echoed: it
    may hold a password), and the replica's name is usable."""
    database = daemon.database
    if database is not None and database.source != "literal" and database.reveal():
        scheme = database.reveal().partition("://")[0].lower()
        if scheme not in SCHEMES:
            out.append(
                (PATH, 'must be a PostgreSQL URL: "postgresql://USER:{env:NAME}@HOST/DATABASE"')
            )
    if not daemon.database_retry >= 0.5:
        out.append(
            (
                ("daemon", "database_retry"),
                f"{daemon.database_retry:g}s is too short: allowed is 0.5s or more (a call "
                "tried again within it rides out a restart without spooling)",
            )
        )
    if not daemon.spool_max >= 1:
        out.append(
            (("daemon", "spool_max"), f"{daemon.spool_max} is too small: allowed is 1 or more")
        )
    if daemon.replica is not None and not _REPLICA.fullmatch(daemon.replica):
        out.append(
            (
                ("daemon", "replica"),
                f"{daemon.replica!r} is not a replica name: 1-63 letters, digits and . _ - @ :"
                ", starting with a letter or digit",
            )
        )


def unit_instance(cgroup: Path = Path("/proc/self/cgroup")) -> str | None:
    """The instance of ``alertd@INSTANCE.service`` this process runs in, if it does."""
    try:
        m = _UNIT.search(cgroup.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    return m.group(1) if m else None


def default_replica() -> str:
    """The host name, and ``@INSTANCE`` under the template unit."""
    host = socket.gethostname() or "localhost"
    instance = unit_instance()
    return f"{host}@{instance}" if instance else host


def replica_name(daemon: DaemonSettings) -> str:
    """This replica's name: ``[daemon] replica``, else ``default_replica()``."""
    return daemon.replica or default_replica()
