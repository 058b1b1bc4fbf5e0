"""Replicas on a shared PostgreSQL database (``[daemon] database``): who watches which account,
takeover when a replica dies, and the cluster's view of stream health (``replica``, ``view``;
the tables are ``store.cluster``)."""

from __future__ import annotations

import trio

from alertd.cluster.replica import ClusterSources, ClusterStatistics
from alertd.config.database import replica_name
from alertd.config.model import Config
from alertd.events import Event
from alertd.sources.capture import Recorder
from alertd.store.cluster import ClusterStore, ClusterStoreError

__all__ = ["ClusterError", "ClusterSources", "ClusterStatistics", "database_url", "open_sources"]


class ClusterError(Exception):
    """The cluster's database cannot be used; the message says why (never the password)."""


def database_url(config: Config) -> str | None:
    """The shared database's URL, or None when replicas share none (a single daemon)."""
    database = config.daemon.database
    return database.reveal() if database is not None and database.reveal() else None


async def open_sources(
    config: Config, send: trio.MemorySendChannel[Event], recorder: Recorder | None
) -> ClusterSources:
    """This replica's intake on the config's database, its tables ready."""
    url = database_url(config)
    if url is None:
        raise ClusterError("[daemon] database is not set")
    store = ClusterStore(url)
    try:
        await trio.to_thread.run_sync(store.open)
    except ClusterStoreError as e:
        raise ClusterError(f"[daemon] database: {e}") from None
    daemon = config.daemon
    return ClusterSources(
        config.accounts,
        send,
        store,
        replica_name(daemon),
        watchers=daemon.watchers,
        takeover_after=daemon.takeover_after,
        recorder=recorder,
    )
