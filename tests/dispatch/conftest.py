"""Fixtures for the dispatch tests: a real SQLite state database (virtual time stands still
while it works) and a gentle mock clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio.testing

from alertd.dispatch.silences import Silences
from alertd.store.database import Database, db_path
from alertd.store.outbox import Outbox

from .helpers import PausingDatabase


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = PausingDatabase(db_path(tmp_path / "state"))
    yield database
    database.close()


@pytest.fixture
def outbox(db: Database) -> Outbox:
    return Outbox(db)


@pytest.fixture
def silences(db: Database) -> Silences:
    return Silences(db)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Virtual time that jumps only after 20 ms of real idleness, so SQLite's worker threads
    finish before timers fire (see notes/HELPERS.md)."""
    return trio.testing.MockClock(autojump_threshold=0.02)
