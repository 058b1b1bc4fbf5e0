"""Replicas on a shared PostgreSQL database (``[daemon] database``): who watches which account,
takeover when a replica dies, and the cluster's view of stream health (``replica``, ``view``;
the tables are ``store.cluster``)."""

from __future__ import annotations

import attrs
import trio

from alertd.cluster.replica import ClusterSources, ClusterStatistics
from alertd.config.database import replica_name
from alertd.config.model import AccountSettings, Config
from alertd.engine.assignments import Assignments
from alertd.events import Event
from alertd.sources.admission import Admission
from alertd.sources.capture import Recorder
from alertd.store.cluster import ClusterStore

__all__ = [
    "ClusterSources",
    "ClusterStatistics",
    "assignments",
    "database_url",
    "replica_sources",
    "watched",
    "watched_accounts",
]


def database_url(config: Config) -> str | None:
    """The shared database's URL, or None when replicas share none (a single daemon)."""
    database = config.daemon.database
    return database.reveal() if database is not None and database.reveal() else None


def replica_sources(
    config: Config, send: trio.MemorySendChannel[Event], recorder: Recorder | None
) -> ClusterSources:
    """This replica's intake on the config's database (an ``IntakeFactory``)."""
    daemon = config.daemon
    return ClusterSources(
        config.accounts,
        send,
        ClusterStore(database_url(config) or ""),
        replica_name(daemon),
        watchers=daemon.watchers,
        takeover_after=daemon.takeover_after,
        recorder=recorder,
        admission=Admission.for_daemon(daemon),
    )


def assignments(intake: object) -> Assignments | None:
    """What the engine of a replica is told it owns (``intake``'s), or None: a single
    daemon's engine owns every account."""
    return intake.assignments if isinstance(intake, ClusterSources) else None


def watched(config: Config, intake: object) -> Config:
    """``config`` with only the accounts ``intake`` watches when it is a replica's (the others
    are other replicas' to watch, not down here: the status line and the heartbeat count
    these); any other intake's ``config`` as it is."""
    if not isinstance(intake, ClusterSources):
        return config
    watching = intake.watching
    return attrs.evolve(config, accounts=[a for a in config.accounts if a.name in watching])


def watched_accounts(config: Config, intake: object) -> list[AccountSettings]:
    """The enabled accounts of ``config`` this process watches (``watched``)."""
    return [a for a in watched(config, intake).accounts if a.enabled]
