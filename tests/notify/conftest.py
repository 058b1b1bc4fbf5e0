"""Fixtures for the notify tests: a real SQLite state database, a gentle mock clock, and
apprise's HTTP transport, patched, for services whose hosts are fixed (Slack, Telegram,
Pushover)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import trio.testing

from alertd.store.database import Database, db_path
from alertd.store.outbox import Outbox


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(db_path(tmp_path))
    yield database
    database.close()


@pytest.fixture
def outbox(db: Database) -> Outbox:
    return Outbox(db)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Virtual time that jumps only after 20 ms of real idleness, so SQLite's worker threads
    finish before timers fire (see notes/HELPERS.md)."""
    return trio.testing.MockClock(autojump_threshold=0.02)


class FakeResponse:
    """What Slack's webhook ("ok") or Telegram's bot API ({"ok": true}) answers."""

    status_code = 200

    def __init__(self, url: str) -> None:
        self.text = "ok" if "hooks.slack.com" in url else '{"ok": true}'
        self.content = self.text.encode()


@pytest.fixture
def transport(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """apprise's HTTP calls (requests.post / requests.request), recorded and answered 200."""
    calls: list[dict[str, Any]] = []
    lock = threading.Lock()

    def record(method: str, url: str, **kw: Any) -> FakeResponse:
        with lock:
            calls.append({"method": method.upper(), "url": url, **kw})
        return FakeResponse(url)

    monkeypatch.setattr(requests, "post", lambda url, **kw: record("POST", url, **kw))
    monkeypatch.setattr(requests, "request", record)
    return calls
