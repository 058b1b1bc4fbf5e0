"""Absence rules on replicas, as real ``alertd run`` processes on a real PostgreSQL server
watching a real websocket exchange: only the replica that owns an account (its first
watcher) decides its timers, so an account a replica does not watch is not reported silent,
two watchers page once, and a replica taking an account over continues from the shared rule
state."""

from __future__ import annotations

import collections
import signal
from pathlib import Path

import pytest
import trio

from integration.conftest import Procs, Receiver

from .helpers import replica_toml, start_exchange, wait_for

TAKEOVER = 5.0  # [daemon] takeover_after, seconds
AFTER = 2.0  # the absence rule's ``after``, seconds
START = 20.0  # seconds for two replicas to start and connect every account
RULES = f"""
[[rules]]
name = "quiet"
type = "absence"
on = "balance.changed"
after = "{AFTER:g}s"
notify = ["hook"]
title = "{{{{ status }}}} {{{{ account }}}}"
"""


def _titles(receiver: Receiver) -> collections.Counter[str]:
    return collections.Counter(p.title for p in receiver.delivered())


@pytest.mark.slow
async def test_only_the_owner_reports_silence_and_a_takeover_continues_from_shared_state(
    procs: Procs, receiver: Receiver, postgres_url: str, tmp_path: Path
) -> None:
    """Two replicas with watchers = 1 and four busy accounts: no replica reports the
    silence of the accounts it does not watch; an account gone quiet is paged once, by its
    watcher; after that watcher is SIGKILLed the other takes the account over without paging
    it again (nor the dead one's busy accounts), and resolves it when it speaks again."""
    accounts = [f"a{i}" for i in range(4)]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            exchange = await start_exchange(nursery)
            replicas = {}
            for name in ("r1", "r2"):
                config = tmp_path / f"{name}.toml"
                config.write_text(
                    replica_toml(
                        name, database=postgres_url, exchange=exchange, accounts=accounts,
                        hook=receiver.url(), watchers=1, takeover_after=TAKEOVER, rules=RULES,
                    )
                )  # fmt: skip
                replicas[name] = procs.daemon(
                    config, state_dir=tmp_path / f"state-{name}", name=name
                )
            await wait_for(
                lambda: (
                    sorted(exchange.watchers()) == accounts
                    and all(len(rs) == 1 for rs in exchange.watchers().values())
                    and len({rs[0] for rs in exchange.watchers().values()}) == 2
                ),
                START,
                "each account watched by one replica, both replicas watching",
            )
            await trio.sleep(AFTER * 2)  # each engine declared all four accounts at start
            assert _titles(receiver) == {}

            exchange.quiet.add("a1")
            await wait_for(lambda: _titles(receiver), AFTER + 4, "a1's silence paged")
            [owner] = exchange.watchers()["a1"]
            other = "r2" if owner == "r1" else "r1"
            await trio.sleep(1.5)  # the firing is saved to the shared table (within 1 s)
            replicas[owner].send_signal(signal.SIGKILL)
            await wait_for(
                lambda: all(rs == [other] for rs in exchange.watchers().values()),
                TAKEOVER * 2,
                f"{other} watching every account",
            )
            await trio.sleep(AFTER + 2.5)  # adoption (1.5 s after the takeover) and an after
            assert _titles(receiver) == {"firing a1": 1}

            exchange.quiet.discard("a1")
            await wait_for(
                lambda: _titles(receiver)["resolved a1"], AFTER + 2, "a1 resolved by the other"
            )
            assert _titles(receiver) == {"firing a1": 1, "resolved a1": 1}
            assert replicas[other].matches(r"engine\.adopt accounts=\S*a1")
            nursery.cancel_scope.cancel()


@pytest.mark.slow
async def test_two_watchers_of_a_silent_account_page_once_and_once_after_a_sigkill(
    procs: Procs, receiver: Receiver, postgres_url: str, tmp_path: Path
) -> None:
    """Two replicas both watching a quiet account (watchers = 2) report its silence once
    between them; when its owner is SIGKILLed the other, which watched it all along, takes
    it over firing and does not page it again."""
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            exchange = await start_exchange(nursery)
            exchange.quiet.add("q")
            replicas = {}
            for name in ("r1", "r2"):
                config = tmp_path / f"{name}.toml"
                config.write_text(
                    replica_toml(
                        name, database=postgres_url, exchange=exchange, accounts=["q", "busy"],
                        hook=receiver.url(), watchers=2, takeover_after=TAKEOVER, rules=RULES,
                    )
                )  # fmt: skip
                replicas[name] = procs.daemon(
                    config, state_dir=tmp_path / f"state-{name}", name=name
                )
            both = {"q": ["r1", "r2"], "busy": ["r1", "r2"]}
            await wait_for(lambda: exchange.watchers() == both, START, "both watching both")
            await wait_for(lambda: _titles(receiver), AFTER * 3, "q's silence paged")
            await trio.sleep(AFTER * 2)  # a second page, if the other watcher sent one
            assert _titles(receiver) == {"firing q": 1}
            killed = next(n for n, p in replicas.items() if p.matches(r"engine\.own accounts=q"))
            await trio.sleep(1.5)  # the firing is saved to the shared table (within 1 s)
            replicas[killed].send_signal(signal.SIGKILL)
            survivor = "r2" if killed == "r1" else "r1"
            await wait_for(
                lambda: replicas[survivor].matches(r"engine\.adopt accounts=\S*q"),
                TAKEOVER * 2,
                f"{survivor} adopting q",
            )
            await trio.sleep(AFTER + 1)
            assert _titles(receiver) == {"firing q": 1}
            nursery.cancel_scope.cancel()
