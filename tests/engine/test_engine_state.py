"""Rule state across a restart and a reload, with a real SQLite file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from alertd.config.model import AccountSettings, Config
from alertd.engine import Engine, compile_rules

from .factories import FakeWall, balance, engine, filled, placed, rule, store_at


def low(**kw):
    return rule(
        "low",
        type="threshold",
        on="balance.changed",
        value="balance",
        below=Decimal(100),
        resolve_above=Decimal(150),
        **kw,
    )


def test_fired_threshold_is_not_fired_again_after_restart(tmp_path: Path) -> None:
    """Engine A fires; engine B on the same file neither re-fires nor forgets to resolve."""
    a = engine(low(), state=store_at(tmp_path))
    assert [x.status for x in a.process(balance(50), 10.0)] == ["firing"]
    a.flush_state()

    b = engine(low(), state=store_at(tmp_path))
    assert b.process(balance(40), 0.0) == []  # new process, new clock origin: still firing
    [resolved] = b.process(balance(160), 1.0)
    assert resolved.status == "resolved" and resolved.key == "main/USDT"
    b.flush_state()

    c = engine(low(), state=store_at(tmp_path))
    assert [x.status for x in c.process(balance(50), 0.0)] == ["firing"]


def test_changed_rule_definition_starts_afresh(tmp_path: Path) -> None:
    """If the threshold itself changed, the old firing state is dropped, not misapplied."""
    a = engine(low(), state=store_at(tmp_path))
    a.process(balance(50), 0.0)
    a.flush_state()
    b = engine(
        rule("low", type="threshold", on="balance.changed", value="balance", below=Decimal(60)),
        state=store_at(tmp_path),
    )
    assert [x.status for x in b.process(balance(50), 0.0)] == ["firing"]
    b.flush_state()
    assert {r.rule for r in store_at(tmp_path).load_sync()} == {"low"}
    assert all(r.fingerprint == b.rules[0].fingerprint for r in store_at(tmp_path).load_sync())


def test_message_edit_keeps_state(tmp_path: Path) -> None:
    """Editing only the message keeps the firing state (no duplicate alert)."""
    a = engine(low(), state=store_at(tmp_path))
    a.process(balance(50), 0.0)
    a.flush_state()
    b = engine(low(message="new text"), state=store_at(tmp_path))
    assert b.process(balance(50), 0.0) == []


def test_open_order_deadline_survives_restart_at_wall_time(tmp_path: Path) -> None:
    """An order seen 40 minutes before a restart times out 20 minutes after it (open_for 1h)."""
    wall = FakeWall()
    a = engine(
        rule("slow", type="order_timeout", open_for=3600), state=store_at(tmp_path), wall=wall
    )
    a.process(placed("5"), 1000.0)
    a.flush_state()

    wall.now = wall.at(2400)  # 40 minutes later, a new process whose clock starts at 7.0
    b = engine(
        rule("slow", type="order_timeout", open_for=3600), state=store_at(tmp_path), wall=wall
    )
    b.start(7.0)
    assert b.next_deadline() == 7.0 + 1200
    [alert] = b.advance(7.0 + 1200)
    assert alert.key == "main/5" and "open for 1h" in alert.title


def test_cooldown_survives_restart(tmp_path: Path) -> None:
    """An event rule in cooldown stays quiet after a restart until the cooldown ends."""
    wall = FakeWall()
    r = rule(on="order.filled", key="{{ account }}", cooldown=600)
    a = engine(r, state=store_at(tmp_path), wall=wall)
    assert len(a.process(filled("1"), 0.0)) == 1
    a.flush_state()
    wall.now = wall.at(300)
    b = engine(r, state=store_at(tmp_path), wall=wall)
    assert b.process(filled("2"), 0.0) == []
    assert len(b.process(filled("3"), 301.0)) == 1


def test_absence_firing_survives_restart_and_resolves(tmp_path: Path) -> None:
    """A key firing for absence before a restart resolves (not re-fires) when events return."""
    r = rule("quiet", type="absence", on="balance.changed", after=60)
    a = engine(r, state=store_at(tmp_path))
    a.start(0.0)
    assert len(a.advance(60.0)) == 1
    a.flush_state()
    b = engine(r, state=store_at(tmp_path))
    b.start(0.0)
    assert b.advance(1000.0) == []
    assert [x.status for x in b.process(balance(1), 1001.0)] == ["resolved"]


def test_reload_keeps_unchanged_rules_state() -> None:
    """reload keeps a firing threshold of an unchanged rule and drops a changed one's."""
    e = engine(
        low(),
        rule("other", type="threshold", on="balance.changed", value="balance", above=Decimal(1000)),
    )
    e.process(balance(50), 0.0)  # low fires
    e.process(balance(5000, currency="BTC"), 1.0)  # other fires
    e.reload(
        compile_rules(
            [
                low(message="edited"),
                rule(
                    "other",
                    type="threshold",
                    on="balance.changed",
                    value="balance",
                    above=Decimal(2000),
                ),
            ],
            timezone="UTC",
        )
    )
    assert e.process(balance(40), 2.0) == []  # low: still firing, no duplicate
    assert [a.rule for a in e.process(balance(5000, currency="BTC"), 3.0)] == ["other"]
    changes = e.take_state_changes()
    assert changes.keep is not None and len(changes.keep) == 2


def test_reload_drops_timers_of_removed_rules() -> None:
    """A removed order_timeout rule no longer fires its armed timers."""
    e = engine(rule("slow", type="order_timeout", open_for=60))
    e.process(placed("1"), 0.0)
    e.reload([])
    assert e.next_deadline() is None
    assert e.advance(1000.0) == []


def test_snapshot_restores_into_a_fresh_engine() -> None:
    """snapshot() rows given to start(restored=...) bring back a firing threshold."""
    a = engine(low())
    a.process(balance(50), 0.0)
    b = engine(low())
    b.start(0.0, a.snapshot())
    assert b.process(balance(40), 1.0) == []
    assert b.process(balance(200), 2.0)[0].status == "resolved"


def test_account_removed_while_down_gets_no_absence_alert_after_restart(
    tmp_path: Path,
) -> None:
    """An account taken out of the config between two runs is not reported as gone quiet by
    the next run; the accounts still configured are watched as before."""
    r = rule("quiet", type="absence", on="balance.changed", after=60)

    def config(*names: str) -> Config:
        accounts = [
            AccountSettings(name=n, exchange="piexgo", url="ws://127.0.0.1:1/ws") for n in names
        ]
        return Config(accounts=accounts, rules=[r])

    a = Engine.from_config(config("main", "old"), state=store_at(tmp_path))
    a.start(0.0)
    a.process(balance(1, account="old"), 10.0)
    a.process(balance(1, account="main"), 10.0)
    a.flush_state()

    b = Engine.from_config(config("main"), state=store_at(tmp_path))
    b.start(0.0)
    alerts = b.advance(10_000.0)
    assert [x.key for x in alerts] == ["main"]
