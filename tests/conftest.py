"""Fixtures every test package may use: the real PostgreSQL server (``pg/server.py``)."""

from pg.server import postgres, postgres_url

__all__ = ["postgres", "postgres_url"]
