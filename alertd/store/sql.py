"""What the table modules need of a database, whichever it is: SQLite in the state directory
(``database.Database``, the default) or PostgreSQL shared by replicas
(``postgres.PostgresDatabase``).

The table modules are plain functions over a ``Connection``: ``execute``/``executemany``
with ``?`` placeholders (the PostgreSQL connection rewrites them), cursors with ``rowcount``,
``fetchone``, ``fetchall`` and iteration. Most SQL is the same for both (``INSERT ... ON
CONFLICT DO NOTHING``, ``ON CONFLICT (...) DO UPDATE``); where it must differ, the module
asks ``claims(conn)`` and keeps both versions side by side. ``Store`` is what the stages hold
(``run``/``write`` in a worker thread, one call at a time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

import attrs
import trio

T = TypeVar("T")


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...

    def executescript(self, sql_script: str, /) -> Cursor: ...

    def close(self) -> None: ...


@attrs.frozen(kw_only=True)
class Claims:
    """On a database shared by replicas: who this process is (``claimant``: replica name and
    process epoch) and how long its claim on an outbox row lasts unrenewed (``lease``,
    seconds)."""

    replica: str
    claimant: str
    lease: float


class Store(Protocol):
    """A database as the stages use it (see ``database.Database``)."""

    def run_sync(self, fn: Callable[[Connection], T]) -> T: ...

    def write_sync(self, fn: Callable[[Connection], T]) -> T: ...

    async def run(self, fn: Callable[[Connection], T]) -> T: ...

    async def write(self, fn: Callable[[Connection], T]) -> T: ...

    async def upkeep(self, *, task_status: trio.TaskStatus[None] = ...) -> None: ...

    def close(self) -> None: ...


def claims(conn: Connection) -> Claims | None:
    """The claims of a connection to a shared database (PostgreSQL); None for SQLite."""
    found = getattr(conn, "claims", None)
    return found if isinstance(found, Claims) else None


def is_shared(conn: Connection) -> bool:
    """Whether ``conn`` is a PostgreSQL connection (schema migrated by ``schema.py``)."""
    return claims(conn) is not None
