"""``alertd check``'s look at ``[daemon] database``: is PostgreSQL reachable, and is its schema
the version this alertd expects (one line either way, never a traceback)."""

from __future__ import annotations

from alertd.config.model import Config


def database_status(config: Config) -> tuple[bool, str] | None:
    """(fine, one line) for a config with ``[daemon] database``; None without one."""
    database = config.daemon.database
    if database is None:
        return None
    from alertd.store import postgres  # psycopg only for those who use it

    return postgres.check(database.reveal())
