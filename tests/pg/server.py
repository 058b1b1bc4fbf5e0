"""A real PostgreSQL server for the tests that need one.

`.ci/run` starts one (``scripts/postgres start``) and exports its URL and directory as
``ALERTD_TEST_POSTGRES_URL`` and ``ALERTD_TEST_POSTGRES_DIR``. Without them (a developer's
machine), the first test that asks starts a server of its own in a temporary directory and
stops it at the end of the session. Where neither works, the tests that need it are skipped
with the reason, never silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import psycopg
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres"
START_TIMEOUT = 180.0  # seconds: may include apt-get install on a fresh machine


@attrs.frozen(kw_only=True)
class PostgresServer:
    """``url`` reaches the server's maintenance database; ``fresh_database`` makes an empty
    database per test; ``restart`` stops and starts the server on the same port."""

    url: str
    directory: Path

    def fresh_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + "/" + name

    def restart(self) -> None:
        subprocess.run([str(SCRIPT), "restart", str(self.directory)], check=True, timeout=120)

    def stop(self) -> None:
        """Stop the server (fast: its connections are cut); ``start`` brings it back."""
        subprocess.run([str(SCRIPT), "stop", str(self.directory)], check=True, timeout=120)

    def start(self) -> None:
        """Start a stopped server again on its port, with the options ``scripts/postgres``
        gave it."""
        port = (self.directory / "port").read_text().strip()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {self.directory} -c fsync=off "
            "-c max_connections=200"
        )
        where = self.directory
        command = [_pg_ctl(), "-D", f"{where}/data", "-l", f"{where}/server.log",
                   "-w", "-t", "60", "-o", options, "start"]  # fmt: skip
        if os.geteuid() == 0:  # the server runs as postgres (scripts/postgres)
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, timeout=120, capture_output=True)


def _pg_ctl() -> str:
    found = shutil.which("pg_ctl") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))), None
    )
    if found is None:
        pytest.skip("no pg_ctl found to start a PostgreSQL server again")
    return found


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test module's own (about a second to start), for tests
    that stop it: the session's server is shared with tests running beside them."""
    directory = Path(tempfile.mkdtemp(prefix="alertd-pg-own-"))
    done = subprocess.run(
        [str(SCRIPT), "start", str(directory)],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"no PostgreSQL server could be started: {reason}")
    try:
        yield PostgresServer(url=done.stdout.strip().splitlines()[-1], directory=directory)
    finally:
        subprocess.run([str(SCRIPT), "stop", str(directory)], check=False, timeout=120)
        shutil.rmtree(directory, ignore_errors=True)


def _start(tmp: Path) -> tuple[str, bool]:
    url = os.environ.get("ALERTD_TEST_POSTGRES_URL")
    if url:
        return url, False
    done = subprocess.run(
        [str(SCRIPT), "start", str(tmp)],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"no PostgreSQL server could be started: {reason}")
    return done.stdout.strip().splitlines()[-1], True


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (skipped, with the reason, where none can run)."""
    # Not under pytest's tmp_path: as root that is private to root, and the server runs as an
    # unprivileged user that must reach its directory.
    given = os.environ.get("ALERTD_TEST_POSTGRES_DIR")
    directory = Path(given or tempfile.mkdtemp(prefix="alertd-pg-"))
    url, owned = _start(directory)
    try:
        yield PostgresServer(url=url, directory=directory)
    finally:
        if owned:
            subprocess.run([str(SCRIPT), "stop", str(directory)], check=False, timeout=120)
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """An empty database of its own for one test."""
    return postgres.fresh_database()
