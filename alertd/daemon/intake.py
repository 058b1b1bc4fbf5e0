"""What reads the accounts for the daemon: an ``Intake``. ``alertd run`` uses the websocket
sources (one session per account); ``alertd replay`` a capture on a virtual clock
(``capture_intake``). Every stage after it is the same."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import trio

from alertd import cluster
from alertd.config.model import AccountSettings, Config
from alertd.events import Event
from alertd.sources.admission import Admission
from alertd.sources.capture import Recorder
from alertd.sources.supervisor import Sources, SourcesStatistics


class Intake(Protocol):
    """What reads the accounts and sends their events (sources, or replay's capture)."""

    def statistics(self) -> SourcesStatistics: ...

    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None: ...

    async def update(self, accounts: Sequence[AccountSettings]) -> None: ...


# (config, where events go, the capture recorder if any) -> the intake
IntakeFactory = Callable[[Config, trio.MemorySendChannel[Event], Recorder | None], Intake]


def websocket_sources(
    config: Config, send: trio.MemorySendChannel[Event], recorder: Recorder | None
) -> Intake:
    if cluster.database_url(config) is not None:  # replicas: the accounts the cluster assigns
        return cluster.replica_sources(config, send, recorder)
    admission = Admission.for_daemon(config.daemon)
    return Sources(config.accounts, send, recorder=recorder, admission=admission)
