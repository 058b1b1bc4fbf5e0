"""Replicas as real ``alertd run`` processes on a real PostgreSQL server, watching a real
websocket exchange: every account has its watchers, a SIGKILLed replica's accounts are taken
over within ``takeover_after``, and its death pages nobody."""

from __future__ import annotations

import collections
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from integration.conftest import NotifySocket, Proc, Procs, Receiver

from .helpers import Exchange, replica_toml, start_exchange, wait_for

# [daemon] takeover_after in these tests, seconds: a lease of 3/5 of it (3 s) outlives the
# stalls of a loaded machine, where a 1.8 s lease let a live replica look dead for a moment
TAKEOVER = 5.0
START = 30.0  # seconds for three replicas to start and connect every account (CI is slow)
STATUS_WAIT = 12.0  # seconds: the status line goes to systemd every 5 s
HEALTH_CHECK = 6.0  # seconds: the health check runs every 5 s
RULES = "\n".join(
    f'[[rules]]\nname = "{kind}"\non = "stream.{kind}"\nnotify = ["hook"]\n'
    'title = "{{ kind }} {{ account }}"\n'
    for kind in ("disconnected", "connected", "gap")
)
BACK = re.compile(r"cluster\.back account=(\S+) since=(\S+) until=(\S+)")


def replica_config(
    tmp_path: Path, name: str, *, database: str, exchange: Exchange, accounts: list[str],
    hook: str, metrics_port: int | None = None,
) -> Path:  # fmt: skip
    """A replica's config: the shared accounts, each on this replica's own path (the health
    check's reconnect budget: connect_timeout 1 s, 1.5 s)."""
    path = tmp_path / f"{name}.toml"
    metrics = [f'metrics_listen = "127.0.0.1:{metrics_port}"'] if metrics_port else []
    path.write_text(
        replica_toml(
            name, database=database, exchange=exchange, accounts=accounts, hook=hook,
            watchers=2, takeover_after=TAKEOVER, rules=RULES, daemon=metrics,
        )
    )  # fmt: skip
    return path


def start(
    procs: Procs, tmp_path: Path, name: str, config: Path, notify: NotifySocket | None = None
) -> Proc:
    return procs.daemon(config, state_dir=tmp_path / f"state-{name}", name=name, notify=notify)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthz(port: int) -> str:
    """What ``/healthz`` answers ("ok: ..." when healthy), "" while it cannot be reached."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return str(answer.read().decode())
    except urllib.error.HTTPError as e:
        return str(e.read().decode())
    except OSError:
        return ""


def statuses(notify: NotifySocket, after: float) -> list[str]:
    """The STATUS= lines systemd was sent since ``after`` (monotonic)."""
    return [n.fields["STATUS"] for n in notify.snapshot() if n.at >= after and "STATUS" in n.fields]


@pytest.mark.slow
async def test_three_replicas_keep_two_watchers_on_every_account_through_a_sigkill(
    procs: Procs, receiver: Receiver, notify: NotifySocket, postgres_url: str, tmp_path: Path
) -> None:
    """Three replicas and 30 accounts with watchers = 2: every account has two connections
    from two replicas; after one is SIGKILLed every account has two again (from the two left)
    within takeover_after, each survivor logs its new assignment and counts in its status
    line and health check the accounts it watches, and nobody is paged."""
    names = ["r1", "r2", "r3"]
    accounts = [f"acct{i:02d}" for i in range(30)]
    with trio.fail_after(110):  # under pytest-timeout's 120 s
        async with trio.open_nursery() as nursery:
            exchange = await start_exchange(nursery)
            exchange.frame_interval = 1.0
            replicas = {}
            port = free_port()
            for name in names:
                config = replica_config(
                    tmp_path, name, database=postgres_url, exchange=exchange,
                    accounts=accounts, hook=receiver.url(),
                    metrics_port=port if name == "r1" else None,
                )  # fmt: skip
                replicas[name] = start(
                    procs, tmp_path, name, config, notify if name == "r1" else None
                )

            def two_each(among: set[str]) -> bool:
                seen = exchange.watchers()
                return sorted(seen) == accounts and all(
                    len(rs) == 2 and set(rs) <= among for rs in seen.values()
                )

            await wait_for(lambda: two_each(set(names)), START, "two watchers an account")
            # What each replica logs it watches is what the exchange sees it connected to.
            assigned = r"cluster\.assignment replica=\S+ live=r1,r2,r3 watching=\d+ accounts=(\S+)"
            logged = {
                n: set(p.matches(assigned)[-1].group(1).split(",")) for n, p in replicas.items()
            }
            seen = {n: {a for a, rs in exchange.watchers().items() if n in rs} for n in names}
            assert logged == seen
            mine = len(logged["r1"])
            since, want = time.monotonic(), f"{mine}/{mine} accounts connected"
            await wait_for(
                lambda: any(s.startswith(want) for s in statuses(notify, since)),
                STATUS_WAIT,
                f"r1's status line counting the {mine} accounts it watches",
            )
            # Past the reconnect budget, /healthz: the accounts others watch are not down here.
            await trio.sleep(HEALTH_CHECK)
            assert (await trio.to_thread.run_sync(healthz, port)).startswith(f"ok: {want}")

            replicas["r3"].send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await wait_for(lambda: two_each({"r1", "r2"}), TAKEOVER * 3, "the takeover")
            took = time.monotonic() - killed
            print(f"takeover after SIGKILL: {took:.2f}s (takeover_after {TAKEOVER:g}s)")
            # takeover_after bounds it (lease 3/5 of it, a round 1/5); the survivors' rounds
            # run late on a loaded machine (3.75 s seen with 3 s at load 7): half on top
            assert took <= TAKEOVER * 1.5
            for name in ("r1", "r2"):
                await wait_for(
                    lambda p=replicas[name]: p.matches(
                        r"cluster\.assignment replica=\S+ live=r1,r2 watching=30 "
                    ),
                    5,
                    f"{name} logging that it watches all 30",
                )
            since = time.monotonic()
            await wait_for(
                lambda: any(s.startswith("30/30 accounts") for s in statuses(notify, since)),
                STATUS_WAIT,
                "r1's status line counting all 30",
            )
            assert [p.title for p in receiver.snapshot()] == []
            nursery.cancel_scope.cancel()


@pytest.mark.slow
async def test_both_replicas_killed_is_one_gap_for_the_window_neither_watched(
    procs: Procs, receiver: Receiver, postgres_url: str, tmp_path: Path
) -> None:
    """Both replicas SIGKILLed and started again later: for each account one
    stream.disconnected, one stream.connected and one stream.gap reach the webhook, and the
    gap (logged as cluster.back) spans the time neither replica ran."""
    names, accounts = ["r1", "r2"], ["acct0", "acct1"]
    with trio.fail_after(110):  # under pytest-timeout's 120 s
        async with trio.open_nursery() as nursery:
            exchange = await start_exchange(nursery)
            configs = {
                name: replica_config(
                    tmp_path,
                    name,
                    database=postgres_url,
                    exchange=exchange,
                    accounts=accounts,
                    hook=receiver.url(),
                )
                for name in names
            }
            first = [start(procs, tmp_path, name, configs[name]) for name in names]
            both = dict.fromkeys(accounts, names)
            await wait_for(lambda: exchange.watchers() == both, START, "both watching")
            await wait_for(
                lambda: (
                    {m[1] for p in first for m in p.matches(r"cluster\.seen account=(\S+)")}
                    == set(accounts)
                ),
                START,
                "the cluster seeing both accounts",
            )
            seen = datetime.now(UTC)
            for proc in first:
                proc.send_signal(signal.SIGKILL)
            killed = datetime.now(UTC)
            await trio.sleep(TAKEOVER)
            restarted = datetime.now(UTC)
            second = [start(procs, tmp_path, name, configs[name]) for name in names]
            await wait_for(lambda: len(receiver.delivered()) >= 6, START, "six notifications")
            await wait_for(lambda: exchange.watchers() == both, START, "both watching again")
            await trio.sleep(TAKEOVER)  # time for a second copy to arrive, if one would
            titles = collections.Counter(p.title for p in receiver.delivered())
            assert titles == {
                f"stream.{kind} {account}": 1
                for kind in ("disconnected", "connected", "gap")
                for account in accounts
            }
            windows = {m.group(1): m for p in second for m in p.matches(BACK.pattern)}
            assert sorted(windows) == accounts
            for m in windows.values():
                since, until = (
                    datetime.fromisoformat(m.group(2)),
                    datetime.fromisoformat(m.group(3)),
                )
                assert seen - timedelta(seconds=TAKEOVER) <= since <= killed
                assert restarted <= until <= restarted + timedelta(seconds=START)
            nursery.cancel_scope.cancel()
