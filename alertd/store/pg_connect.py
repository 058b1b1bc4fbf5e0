"""Connections to the PostgreSQL database replicas share, as the table modules use them
(``PgConnection``: ``?`` placeholders rewritten to psycopg's ``%s``, this process's
``Claims`` carried), one connection of its own for tools (``connect``), ``alertd check``'s
look at it (``check``), and psycopg's errors in one line (``DatabaseUnavailable``: the
server by host, port and database, never the password). The pooled store the daemon uses is
``postgres.PostgresDatabase``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import psycopg
import psycopg.conninfo

from alertd.store import schema
from alertd.store.spool import DatabaseUnreachable
from alertd.store.sql import Claims, Cursor

CONNECT_TIMEOUT = 10.0  # seconds for one connection attempt
DEFAULT_LEASE = 15.0


class DatabaseUnavailable(DatabaseUnreachable):
    """The database cannot be reached or refused a call; the message names it and says why."""


@cache
def _placeholders(sql: str) -> str:
    # The table modules write no literal "?" or "%" of their own into their SQL.
    return sql.replace("%", "%%").replace("?", "%s")


def where(url: str) -> str:
    """``host:port/database`` of a URL, for messages (never its user or password)."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "the configured database (its URL cannot be parsed)"
    host = info.get("host") or info.get("hostaddr") or "localhost"
    port = info.get("port") or "5432"
    return f"{host}:{port}/{info.get('dbname') or info.get('user') or ''}"


def cause(error: BaseException, url: str) -> str:
    """psycopg's message in one line, any part of the URL's password removed."""
    text = " ".join(str(error).split()) or type(error).__name__
    try:
        password = psycopg.conninfo.conninfo_to_dict(url).get("password")
    except psycopg.Error:
        return f"{type(error).__name__} (the URL cannot be parsed)"
    if password:
        text = text.replace(str(password), "***")
    return text


class PgConnection:
    """A psycopg connection as the table modules use it (``sql.Connection``)."""

    def __init__(self, raw: psycopg.Connection[Any], claims: Claims) -> None:
        self.raw = raw
        self.claims = claims

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        return self.raw.execute(_placeholders(sql), parameters)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        cursor = self.raw.cursor()
        rows = list(parameters)
        if rows:
            cursor.executemany(_placeholders(sql), rows)
        return cursor

    def close(self) -> None:
        self.raw.close()

    def executescript(self, sql_script: str, /) -> Cursor:
        cursor = self.raw.cursor()
        for statement in sql_script.split(";"):
            if statement.strip():
                cursor.execute(_placeholders(statement))
        return cursor


def connect_raw(url: str, timeout: float) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=max(1, round(timeout)))
    except psycopg.Error as e:
        raise DatabaseUnavailable(f"cannot reach the database {where(url)}: {cause(e, url)}") from e


def connect(url: str, *, replica: str = "", timeout: float = CONNECT_TIMEOUT) -> PgConnection:
    """One connection of its own, schema migrated (``alertd silence``, tools, tests); the
    caller closes it."""
    raw = connect_raw(url, timeout)
    conn = PgConnection(raw, Claims(replica=replica, claimant=replica, lease=DEFAULT_LEASE))
    try:
        with raw.transaction():
            schema.migrate(conn)
    except BaseException:
        raw.close()
        raise
    return conn


def check(url: str, *, timeout: float = 5.0) -> tuple[bool, str]:
    """For ``alertd check``: (fine, one line) about the database: reachable or not, and its
    schema's version against this alertd's (a newer one is not fine; an older one or none
    is migrated when a replica starts)."""
    name = where(url)
    try:
        raw = connect_raw(url, timeout)
    except DatabaseUnavailable as e:
        return False, str(e)
    try:
        found = schema.version(PgConnection(raw, Claims(replica="", claimant="", lease=0)))
    except psycopg.Error as e:
        return False, f"the database {name}: {cause(e, url)}"
    finally:
        raw.close()
    expected = schema.VERSION
    if found is None:
        return True, f"database {name}: reachable, no alertd schema yet (created at start)"
    if found > expected:
        return False, (
            f"database {name}: schema version {found} is newer than this alertd's {expected}: "
            "upgrade alertd here"
        )
    if found < expected:
        return True, (
            f"database {name}: reachable, schema version {found} (migrated to {expected} "
            "when a replica starts)"
        )
    return True, f"database {name}: reachable, schema version {found} (as expected)"
