"""The engine tests' real state databases are closed after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .factories import close_databases


@pytest.fixture(autouse=True)
def _close_databases() -> Iterator[None]:
    yield
    close_databases()
