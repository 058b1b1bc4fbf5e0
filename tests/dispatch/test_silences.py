"""Silences: managed with `alertd silence`, kept in the state database, honoured by a running
dispatcher without a restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import trio
import trio.testing

from alertd.cli import build_parser
from alertd.commands.silence import main as silence_main
from alertd.dispatch.silences import Silences, matches
from alertd.store.database import Database
from alertd.store.outbox import Outbox
from alertd.store.silences import Silence, add_silence, data_version
from alertd.store.sql import Connection

from .helpers import PausingDatabase, make_alert, make_config, no_jumps, queued, running, settle


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "alertd.toml"
    rules = "".join(
        f'[[rules]]\nname = "{name}"\non = "order.filled"\nnotify = ["me"]\n\n'
        for name in ("filled", "price-high", "order-filled")
    )
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n\n{rules}')
    return path


def silence(config_file: Path, *argv: str) -> int:
    """Run `alertd silence ARGV -c CONFIG` through the real argument parser."""
    action, *rest = argv
    return silence_main(
        build_parser().parse_args(["silence", action, "-c", str(config_file), *rest])
    )


def test_add_list_remove(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A silence added from the command line is listed with its matchers, then removed."""
    assert (
        silence(
            config_file,
            "add",
            "--rule",
            "price-*",
            "--match",
            "account=main",
            "--for",
            "2h",
            "--comment",
            "maintenance",
        )
        == 0
    )
    added = capsys.readouterr().out
    silence_id = added.split()[2].rstrip(":")
    assert silence(config_file, "list") == 0
    listed = capsys.readouterr().out
    assert silence_id in listed
    assert "rule=price-* account=main" in listed
    assert "(active)" in listed
    assert "# maintenance" in listed
    assert silence(config_file, "remove", silence_id) == 0
    capsys.readouterr()
    assert silence(config_file, "list") == 0
    assert capsys.readouterr().out.strip() == "no active silences"
    assert silence(config_file, "remove", silence_id) == 1
    assert "no silence" in capsys.readouterr().err


def test_bad_arguments_say_what_to_write(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed --match or --for is refused with a hint, exit code 2."""
    assert silence(config_file, "add", "--rule", "x", "--match", "main", "--for", "1h") == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert silence(config_file, "add", "--rule", "x", "--for", "2 hours") == 2
    assert "2h" in capsys.readouterr().err


def test_mistyped_rule_is_refused_with_a_suggestion(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--rule order_filled (the rule is order-filled) mutes nothing, so it is refused with a
    "did you mean" and nothing is added."""
    assert silence(config_file, "add", "--rule", "order_filled", "--for", "1h") == 2
    err = capsys.readouterr().err
    assert "did you mean 'order-filled'" in err
    assert "--force" in err
    assert silence(config_file, "list") == 0
    assert capsys.readouterr().out.strip() == "no active silences"


def test_unknown_label_key_is_refused_with_a_suggestion(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--match acount=main names a label no alert has, so it is refused with a "did you mean"."""
    code = silence(config_file, "add", "--rule", "filled", "--match", "acount=main", "--for", "1h")
    assert code == 2
    assert "did you mean 'account'" in capsys.readouterr().err


def test_force_adds_a_silence_that_matches_nothing_yet(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --force a silence for a rule not (yet) in the config is added all the same."""
    assert silence(config_file, "add", "--rule", "new-rule", "--for", "1h", "--force") == 0
    assert "rule=new-rule" in capsys.readouterr().out


def test_every_label_the_engine_sets_is_known() -> None:
    """The label keys `silence add` accepts include every one the rules engine puts on alerts."""
    from alertd.dispatch.labels import KNOWN_LABELS
    from alertd.engine.alerts import LABEL_FIELDS

    assert set(LABEL_FIELDS) <= KNOWN_LABELS


def test_expired_silences_are_listed_only_with_all(
    config_file: Path, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """`list` shows active silences; `list --all` also the ones that ended."""
    now = time.time()
    db.run_sync(
        lambda c: add_silence(c, rule="old", matchers={}, starts=now - 7200, ends=now - 3600)
    )
    silence(config_file, "list")
    assert "rule=old" not in capsys.readouterr().out
    silence(config_file, "list", "--all")
    assert "(expired)" in capsys.readouterr().out


def test_matching_uses_rule_glob_and_labels() -> None:
    """A silence mutes alerts whose rule matches its glob and whose labels match its matchers."""
    s = Silence(
        id="x", rule="price-*", matchers={"account": "main", "symbol": "BTC_*"}, starts=0, ends=10
    )
    hit = make_alert(1, rule="price-high", labels={"symbol": "BTC_USDT"})
    assert matches(s, hit)
    assert not matches(s, make_alert(2, rule="filled", labels={"symbol": "BTC_USDT"}))
    assert not matches(s, make_alert(3, rule="price-high", labels={"symbol": "ETH_USDT"}))
    assert not matches(s, make_alert(4, rule="price-high", account="other", labels={}))
    assert s.active(5) and not s.active(10)


async def test_running_dispatcher_honours_a_silence_added_later(
    config_file: Path,
    outbox: Outbox,
    silences: Silences,
    clock: trio.testing.MockClock,
) -> None:
    """A silence added with `alertd silence add` while the dispatcher runs mutes the next
    matching alert within seconds, without a restart; other rules still go out."""
    config = make_config()
    with trio.fail_after(3600):
        async with running(config, outbox, silences) as send:
            await send.send(make_alert(1))
            await settle()
            with no_jumps(clock):
                code = await trio.to_thread.run_sync(
                    silence, config_file, "add", "--rule", "filled", "--for", "2h"
                )
            assert code == 0
            await settle(2)
            await send.send(make_alert(2))
            await send.send(make_alert(3, rule="cancelled", key="main/ETH_USDT"))
            await settle()
            rows = await queued(outbox)
    assert [r.alert_ids for r in rows] == [("alert-1",), ("alert-3",)]


T = TypeVar("T")


class HeldSilenceChecks(PausingDatabase):
    """The state database, but once ``holding``, a look at whether the silences changed
    waits until ``release`` is set (another process holding the database, a slow disk)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.holding = False
        self.release = trio.Event()
        self.held = 0

    async def run(self, fn: Callable[[Connection], T]) -> T:
        if fn is data_version and self.holding and not self.release.is_set():
            self.held += 1
            await self.release.wait()
        return await super().run(fn)


async def test_an_alert_does_not_wait_for_the_silence_check(
    tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    """While the daemon's silence look runs in a task of its own (keep_fresh, started with
    its housekeeping; replay's virtual clock goes without it), alerts are still queued at
    once when that look waits for the database (it used to be one database round
    trip a second in an alert's path, the latency benchmark's tail)."""
    db = HeldSilenceChecks(tmp_path / "state" / "alertd.db")
    try:
        outbox, silences = Outbox(db), Silences(db)
        with trio.fail_after(3600):
            async with running(make_config(), outbox, silences) as send, trio.open_nursery() as n:
                await n.start(silences.keep_fresh, time.time)  # as the daemon runs it
                db.holding = True
                await settle(3)  # the background look is waiting by now
                assert db.held >= 1
                await send.send(make_alert(1))
                await settle()
                rows = await queued(outbox)
                db.release.set()
                n.cancel_scope.cancel()
        assert [r.alert_ids for r in rows] == [("alert-1",)]
    finally:
        db.close()
