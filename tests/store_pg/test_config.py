"""``[daemon] database`` and ``[daemon] replica``: the password only by reference, the URL a
PostgreSQL one, the replica's name usable, and nothing of the secret in any message."""

from __future__ import annotations

from pathlib import Path

from alertd.check import parse_config
from alertd.config.database import replica_name, unit_instance
from alertd.config.model import DaemonSettings
from alertd.config.secrets import SecretEnvironment

ENV = SecretEnvironment(environ={"PGPW": "s3cr:et@/x"}, credentials_dir=None)


def _problems(text: str) -> list[str]:
    _, problems = parse_config(text, secrets=ENV)
    return [str(p) for p in problems]


def test_password_reference_is_resolved_and_percent_encoded() -> None:
    """A password written {env:NAME} reaches the URL percent-encoded, held as a Secret."""
    config, problems = parse_config(
        '[daemon]\ndatabase = "postgresql://alertd:{env:PGPW}@db.example:5433/alertd"\n',
        secrets=ENV,
    )
    assert problems == []
    assert config is not None and config.daemon.database is not None
    assert config.daemon.database.reveal() == (
        "postgresql://alertd:s3cr%3Aet%40%2Fx@db.example:5433/alertd"
    )
    assert "s3cr" not in repr(config) and config.daemon.database.source == "env:PGPW"


def test_without_database_the_store_stays_sqlite() -> None:
    """No [daemon] database is the single daemon of today: no URL, no problem."""
    config, problems = parse_config("[daemon]\n", secrets=ENV)
    assert problems == [] and config is not None and config.daemon.database is None


def test_literal_password_is_refused_without_echoing_it() -> None:
    """A password written into the URL (or its query) is refused, and never shown."""
    for url in (
        "postgresql://alertd:hunter2@db/alertd",
        "postgresql://alertd@db/alertd?password=hunter2",
    ):
        problems = _problems(f'[daemon]\ndatabase = "{url}"\n')
        assert len(problems) == 1, url
        assert "by reference" in problems[0] and "hunter2" not in problems[0]


def test_whole_url_by_reference_and_unset_variable() -> None:
    """The whole URL may be one reference; an unset one is a problem naming the variable."""
    env = SecretEnvironment(environ={"DB": "postgresql://u:pw@h/d"}, credentials_dir=None)
    config, problems = parse_config('[daemon]\ndatabase = "{env:DB}"\n', secrets=env)
    assert problems == [] and config is not None and config.daemon.database is not None
    problems = _problems('[daemon]\ndatabase = "postgresql://u:{env:NOPE}@h/d"\n')
    assert len(problems) == 1 and "NOPE is not set" in problems[0]


def test_other_schemes_and_bad_replica_names_are_refused() -> None:
    """A URL of another database and a replica name with spaces are each one problem."""
    problems = _problems('[daemon]\ndatabase = "mysql://u@h/d"\nreplica = "two words"\n')
    assert len(problems) == 2
    assert "PostgreSQL URL" in problems[0] and "not a replica name" in problems[1]


def test_replica_defaults_to_host_and_unit_instance(tmp_path: Path) -> None:
    """The replica name is the configured one, else the host name; a template unit's
    instance is read from the process's cgroup."""
    assert replica_name(DaemonSettings(replica="r1")) == "r1"
    assert replica_name(DaemonSettings())
    cgroup = tmp_path / "cgroup"
    cgroup.write_text("0::/system.slice/system-alertd.slice/alertd@desk2.service\n")
    assert unit_instance(cgroup) == "desk2"
    cgroup.write_text("0::/user.slice/user-1000.slice/session-2.scope\n")
    assert unit_instance(cgroup) is None
