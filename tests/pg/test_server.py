"""The PostgreSQL fixture itself: a real server answers, and each test gets its own database."""

from __future__ import annotations

import psycopg

from pg.server import PostgresServer


def test_each_test_gets_an_empty_database_of_its_own(postgres: PostgresServer) -> None:
    """Two fresh databases are distinct and start without tables."""
    first, second = postgres.fresh_database(), postgres.fresh_database()
    assert first != second
    with psycopg.connect(first) as conn:
        conn.execute("CREATE TABLE marker (x int)")
    with psycopg.connect(second) as conn:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'marker'"
        ).fetchone()
    assert row == (0,)


def test_a_restarted_server_answers_again_on_the_same_url(postgres: PostgresServer) -> None:
    """``restart`` brings the server back where the tests' URLs point."""
    url = postgres.fresh_database()
    postgres.restart()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
