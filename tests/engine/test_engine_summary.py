"""The ``summary`` rule type: a digest on a schedule in the configured timezone, with per
account fills, cancels, blind windows and stream state, what alertd sent and what is
silenced (read from a real SQLite state database), counts that survive a restart, and a
config check that refuses a schedule it cannot keep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trio

from alertd.cli import main
from alertd.config.model import RuleSettings
from alertd.daemon.virtual_clock import VirtualClock
from alertd.engine import Engine, RuleStateStore, compile_rules, run_engine
from alertd.engine.compile import RuleCompileError
from alertd.engine.rule_types.schedule import next_due
from alertd.events import Alert, Event, StreamConnected, StreamGap
from alertd.store import notifications
from alertd.store.outbox import Outbox
from alertd.store.silences import add_silence

from .factories import T0, FakeWall, cancelled, database, disconnected, engine, filled, rule

BERLIN = "Europe/Berlin"
HOUR = 3600.0
# T0 is 2026-03-01 12:00 UTC (13:00 CET): 08:00 CET the next morning is 19 hours later.
NEXT_0800 = 19 * HOUR


def daily(**kw: Any) -> RuleSettings:
    settings: dict[str, Any] = {"every": 86400.0, "at": "08:00", "notify": ["me"], **kw}
    return rule("daily", type="summary", **settings)


def gap(since: float, until: float, *, account: str = "main") -> StreamGap:
    return StreamGap(
        exchange="piexgo",
        account=account,
        time=T0 + timedelta(seconds=until),
        received=T0 + timedelta(seconds=until),
        stream="*",
        since=T0 + timedelta(seconds=since),
        until=T0 + timedelta(seconds=until),
        why="offline",
    )


def connected(t: float, *, account: str = "main") -> StreamConnected:
    when = T0 + timedelta(seconds=t)
    return StreamConnected(exchange="piexgo", account=account, time=when, received=when, stream="*")


def feed(e: Engine, events: list[tuple[float, Event]]) -> list[Alert]:
    out: list[Alert] = []
    for t, event in events:
        out += e.process(event, t)
    return out


def test_summary_goes_out_at_local_time_with_the_days_counts() -> None:
    """At 08:00 Berlin time (not before) one digest lists fills and cancels with notional,
    the blind window with its length, disconnects and the connection now, zone named."""
    e = engine(daily(), accounts=("main", "alt"), timezone=BERLIN)
    e.start(0.0)
    quiet = feed(
        e,
        [
            (60.0, connected(60.0)),
            (100.0, filled("1", price="4003.9", amount="0.5")),
            (200.0, filled("2", price="100", amount="1.5")),
            (300.0, cancelled("3")),
            (400.0, disconnected(t=400.0)),
            (415.7, gap(400.0, 415.7)),
            (415.7, gap(400.0, 415.7)),  # the same window from a second stream: one blind time
            (416.0, connected(416.0)),
        ],
    )
    assert quiet == []
    assert e.advance(NEXT_0800 - 1) == []
    [alert] = e.advance(NEXT_0800)
    assert alert.rule == "daily" and alert.status == "firing"
    assert alert.title == "daily Mon 02 Mar 08:00 CET: 1 of 2 up, 2 fills, blind 1 time"
    lines = alert.body.splitlines()
    assert lines[0] == "Sun 13:00 to Mon 08:00 CET (19h)"
    assert "alt: no connection news since alertd started" in lines
    main_at = lines.index("main (piexgo): up since Sun 13:06 (18h 53m)")
    assert lines[main_at + 1 : main_at + 6] == [
        " 2 fills, 2,151.95 USDT",
        " 1 cancel",
        " blind 1 time, 15.7s in all:",
        "  Sun 13:06:40.0-Sun 13:06:55.7 (15.7s) offline",
        " 1 disconnect",
    ]
    assert "Messages: not counted" in lines


def test_next_period_starts_from_zero_and_keeps_the_connection_state() -> None:
    """The day after, the digest covers only its own day: no fills, still up since then."""
    e = engine(daily(), timezone=BERLIN)
    e.start(0.0)
    feed(e, [(60.0, connected(60.0)), (100.0, filled("1"))])
    [first] = e.advance(NEXT_0800)
    assert "1 fill" in first.body
    assert e.advance(NEXT_0800 + 86400 - 1) == []
    [second] = e.advance(NEXT_0800 + 86400)
    assert second.id != first.id
    assert second.title == "daily Tue 03 Mar 08:00 CET: up, 0 fills"
    assert second.body.splitlines()[0] == "Mon 08:00 to Tue 08:00 CET (1d)"
    assert " no fills, no cancels" in second.body
    assert "main (piexgo): up since Sun 13:01 (1d 18h)" in second.body


def test_schedule_keeps_local_time_across_daylight_saving_and_sub_day_periods() -> None:
    """A daily 08:00 stays 08:00 local across the spring change; 6h at 08:00 is 02/08/14/20."""
    tz = ZoneInfo(BERLIN)
    before = datetime(2026, 3, 28, 9, 0, tzinfo=tz).timestamp()
    first = next_due(before, every=86400, at=datetime(1, 1, 1, 8).time(), tz=tz, last=None)
    assert datetime.fromtimestamp(first, tz) == datetime(2026, 3, 29, 8, 0, tzinfo=tz)
    assert datetime.fromtimestamp(first, UTC).hour == 6  # summer time: UTC+2
    six = [datetime(2026, 3, 20, 9, 0, tzinfo=tz).timestamp()]
    for _ in range(4):
        six.append(next_due(six[-1], every=6 * HOUR, at=datetime(1, 1, 1, 8).time(), tz=tz,
                            last=None))  # fmt: skip
    assert [datetime.fromtimestamp(t, tz).hour for t in six[1:]] == [14, 20, 2, 8]
    weekly = next_due(first, every=7 * 86400, at=datetime(1, 1, 1, 8).time(), tz=tz, last=first)
    assert datetime.fromtimestamp(weekly, tz) == datetime(2026, 4, 5, 8, 0, tzinfo=tz)


def test_counts_survive_a_restart(tmp_path: Path) -> None:
    """Counts saved before a restart are in the next morning's digest of the new process."""
    db = database(tmp_path)
    a = engine(daily(), state=RuleStateStore(db), timezone=BERLIN)
    a.start(0.0)
    feed(a, [(100.0, filled("1")), (200.0, filled("2")), (300.0, gap(250.0, 290.0))])
    a.flush_state()

    # A new process, a new trio clock origin, three hours later by the wall clock.
    b = engine(
        daily(), state=RuleStateStore(db), timezone=BERLIN, wall=FakeWall(T0 + timedelta(hours=3))
    )
    b.start(0.0)
    feed(b, [(10.0, filled("3"))])
    assert b.advance(NEXT_0800 - 3 * HOUR - 1) == []
    [alert] = b.advance(NEXT_0800 - 3 * HOUR)
    assert alert.body.splitlines()[0] == "Sun 13:00 to Mon 08:00 CET (19h)"
    assert " 3 fills, 6,005.85 USDT" in alert.body
    assert " blind 1 time, 40.0s in all:" in alert.body
    assert "late" not in alert.body


def test_a_summary_due_while_alertd_was_down_goes_out_at_start_once(tmp_path: Path) -> None:
    """Started after 08:00 went by, alertd sends that digest at once, marked late, and the
    next one at the next 08:00."""
    db = database(tmp_path)
    a = engine(daily(), state=RuleStateStore(db), timezone=BERLIN)
    a.start(0.0)
    feed(a, [(100.0, filled("1"))])
    a.flush_state()

    late_wall = FakeWall(T0 + timedelta(seconds=NEXT_0800 + 2 * HOUR))  # 10:00 CET
    b = engine(daily(), state=RuleStateStore(db), timezone=BERLIN, wall=late_wall)
    [alert] = b.advance(0.0)
    assert alert.body.splitlines()[:2] == [
        "Sun 13:00 to Mon 10:00 CET (21h)",
        "late: due 08:00, alertd was not running",
    ]
    assert " 1 fill, 2,001.95 USDT" in alert.body
    assert b.advance(22 * HOUR - 1) == []
    [next_day] = b.advance(22 * HOUR)
    assert next_day.body.splitlines()[0] == "Mon 10:00 to Tue 08:00 CET (22h)"


def test_messages_and_silences_are_read_from_the_state_database(tmp_path: Path) -> None:
    """The digest counts the outbox's messages of the period by outcome, names channels
    still failing, and lists the silences in force with their end in local time."""
    db = database(tmp_path)
    Outbox(db)  # the outbox tables, as the daemon creates them
    start = T0.timestamp()

    def queue(key: str, channel: str, created: float) -> notifications.Notification:
        return notifications.Notification(
            key=key, channel=channel, url_index=0, title="t", body="b", created=created
        )

    def fill(conn: notifications.Connection) -> None:
        notifications.insert(
            conn,
            [
                queue("old", "me", start - 10),  # before the period: not counted
                queue("a", "me", start + 10),
                queue("b", "me", start + 20),
                queue("c", "ops", start + 30),
                queue("d", "ops", start + 40),
            ],
        )
        notifications.mark_delivered(conn, ["old", "a", "b"], start + 50)
        notifications.mark_finished(conn, ["c"], "expired", reason="gave up", now=start + 60)
        notifications.mark_retry(conn, [("d", start + 90)], error="503", now=start + 70)

    def silence(conn: notifications.Connection) -> None:
        add_silence(conn, rule="price-*", matchers={"account": "main"}, starts=start,
                    ends=start + 30 * HOUR, comment="maintenance")  # fmt: skip
        add_silence(conn, rule="old", matchers={}, starts=start, ends=start + HOUR)

    db.write_sync(fill)
    db.run_sync(silence)  # as `alertd silence add` does, outside a transaction
    e = engine(daily(), state=RuleStateStore(db), timezone=BERLIN)
    e.start(0.0)
    [alert] = e.advance(NEXT_0800)
    lines = alert.body.splitlines()
    assert lines[-4:] == [
        "Messages: 2 sent, 1 failed, 1 waiting",
        " failing: ops",
        "Silenced: 1",
        " price-* [account=main] until 19:00 (maintenance)",
    ]
    assert alert.title.endswith(", 1 failed")


@pytest.fixture
def virtual_clock() -> VirtualClock:
    """The daemon's virtual clock (it does not jump while SQLite works in a thread)."""
    return VirtualClock(start=1000.0)


async def test_the_engine_task_sends_the_summary_on_the_virtual_clock(
    virtual_clock: VirtualClock, tmp_path: Path
) -> None:
    """run_engine on a mock clock sends the 08:00 digest of a day of virtual time, with
    the events it was given, and nothing before."""
    base = T0.timestamp() - trio.current_time()
    e = Engine(
        compile_rules([daily()], timezone=BERLIN),
        state=RuleStateStore(database(tmp_path)),
        wall=lambda: datetime.fromtimestamp(base + trio.current_time(), UTC),
        accounts=("main",),
    )
    events_send, events_recv = trio.open_memory_channel[Event](10)
    alerts_send, alerts_recv = trio.open_memory_channel[Alert](10)
    with trio.fail_after(2 * 86400):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_engine, e, events_recv, alerts_send)
            start = trio.current_time()
            await events_send.send(filled("1"))
            await events_send.send(cancelled("2"))
            with trio.move_on_after(NEXT_0800 - 1):
                await alerts_recv.receive()
                raise AssertionError("a summary before 08:00")
            alert = await alerts_recv.receive()
            assert trio.current_time() - start == pytest.approx(NEXT_0800)
            assert " 1 fill, 2,001.95 USDT" in alert.body and " 1 cancel" in alert.body
            await events_send.aclose()
    assert e.statistics().alerts_out == 1


BAD = """[[accounts]]
name = "main"
exchange = "piexgo"
url = "wss://example.test/ws"
streams = ["pinfo"]

[channels]
me = "json://localhost:9/"

[[rules]]
name = "daily"
type = "summary"
every = "{every}"
at = "{at}"
notify = ["me"]
"""


@pytest.mark.parametrize(
    ("every", "at", "problem"),
    [
        ("1d", "08:00", None),
        ("12h", "20:30", None),
        ("1d", "8am", 'bad.toml:14 rules[0].at: "8am" is not a time of day (use e.g. "08:00")'),
        ("1d", "24:00", 'bad.toml:14 rules[0].at: "24:00" is not a time of day (use e.g. "08:00")'),
        (
            "7h",
            "08:00",
            'bad.toml:13 rules[0].every: "7h" does not divide a day nor is whole days: '
            'allowed are e.g. "1h", "6h", "12h", "1d", "7d"',
        ),
        (
            "10m",
            "08:00",
            'bad.toml:13 rules[0].every: "10m" is out of range: allowed is "1h" to "7d" '
            '(e.g. "1d")',
        ),
    ],
)
def test_check_accepts_a_summary_rule_and_refuses_a_bad_schedule(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    every: str,
    at: str,
    problem: str | None,
) -> None:
    """`alertd check` passes a good summary rule and names the line of a bad at/every."""
    monkeypatch.chdir(tmp_path)
    Path("bad.toml").write_text(BAD.format(every=every, at=at))
    code = main(["check", "-c", "bad.toml"])
    out, err = capsys.readouterr()
    if problem is None:
        assert (code, err) == (0, "")
        assert "1 rules" in out or "1 rule" in out
    else:
        assert code == 1
        assert err.splitlines() == [problem, "bad.toml: 1 problem"]


def test_templates_see_the_digest_and_its_period() -> None:
    """A summary rule's own title and message render with digest, since and until."""
    e = engine(
        daily(title="proof of life {{ localtime(until, '%H:%M %Z') }}", message="{{ digest }}"),
        timezone=BERLIN,
    )
    e.start(0.0)
    feed(e, [(100.0, filled("1"))])
    [alert] = e.advance(NEXT_0800)
    assert alert.title == "proof of life 08:00 CET"
    assert alert.body.splitlines()[0] == "Sun 13:00 to Mon 08:00 CET (19h)"


def test_a_reload_with_a_new_time_keeps_the_counts_and_moves_the_summary() -> None:
    """Editing at (same rule otherwise) keeps the day's counts and sends at the new time."""
    e = engine(daily(), timezone=BERLIN)
    e.start(0.0)
    feed(e, [(100.0, filled("1"))])
    e.reload(compile_rules([daily(at="09:30")], timezone=BERLIN))
    assert e.advance(NEXT_0800) == []
    [alert] = e.advance(NEXT_0800 + 1.5 * HOUR)
    assert alert.title.startswith("daily Mon 02 Mar 09:30 CET:")
    assert " 1 fill, 2,001.95 USDT" in alert.body


def test_a_removed_account_leaves_the_summary(tmp_path: Path) -> None:
    """An account no longer configured is not in the next digest, nor is its state kept."""
    e = engine(daily(), accounts=("main", "alt"), timezone=BERLIN)
    e.start(0.0)
    feed(e, [(100.0, filled("1", account="alt"))])
    assert [r.keys for r in e.statistics().rules] == [2]
    e.reload(compile_rules([daily()], timezone=BERLIN), accounts=["main"])
    [alert] = e.advance(NEXT_0800)
    assert "alt" not in alert.body and "main: no connection news" in alert.body
    assert [r.keys for r in e.statistics().rules] == [1]


@pytest.mark.parametrize(
    ("settings", "field"),
    [({"on": "order.*"}, "on"), ({"where": "true"}, "where"), ({"key": "x"}, "key")],
)
def test_filters_that_do_not_apply_are_refused(settings: dict[str, Any], field: str) -> None:
    """A summary rule naming a filter it cannot use gets one problem on that key."""
    with pytest.raises(RuleCompileError) as caught:
        compile_rules([daily(**settings)], timezone=BERLIN)
    assert [p for p, _ in caught.value.problems] == [("rules", 0, field)]
