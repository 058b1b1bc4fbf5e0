"""Alerts from the simulator's activity reach a real webhook through the real daemon; a
daemon killed with undelivered alerts delivers them after restart, none twice; and one killed
while a backlog drains resends only what the webhook held at the moment, marked as such."""

from __future__ import annotations

import collections
import re
import signal
import time
from pathlib import Path

import pytest
import trio

from alertd.store.database import Database, db_path
from alertd.store.outbox import Notification, Outbox, notification_key

from .conftest import (
    START_TIMEOUT,
    NotifySocket,
    Procs,
    Receiver,
    Sim,
    config_text,
    wait_until,
)

FIRST_ALERT_TIMEOUT = 20.0
BACKLOG = 300
REPEAT = "[possible repeat] "  # documented: the start of a title that may be a second copy
TITLE = re.compile(r"^filled (px|cr) \w+$")
MESSAGE = re.compile(r"^(buy|sell) \d+(\.\d+)? [A-Z]+_[A-Z]+ filled at \d+(\.\d+)?$")


@pytest.mark.slow
def test_an_order_fill_arrives_at_the_webhook(
    procs: Procs, sim: Sim, receiver: Receiver, notify: NotifySocket, tmp_path: Path
) -> None:
    """An order the simulator fills arrives as apprise's json:// POST with the rule's title and
    message rendered from the fill."""
    config = tmp_path / "alertd.toml"
    config.write_text(config_text(sim_port=sim.port, hook=receiver.url("hooks/alertd")))
    daemon = procs.daemon(config, state_dir=tmp_path / "state", notify=notify)
    notify.wait_for("READY", "1", timeout=START_TIMEOUT, dump=daemon.tail)

    [post, *_] = wait_until(receiver.delivered, FIRST_ALERT_TIMEOUT, "a POST", dump=daemon.tail)
    assert post.path == "/hooks/alertd"
    assert post.content_type.startswith("application/json")
    assert post.body["version"] == "1.0"
    assert TITLE.match(post.title), post.body
    assert MESSAGE.match(post.message), post.body


@pytest.mark.slow
def test_alerts_pending_at_sigkill_are_delivered_after_restart_once(
    procs: Procs, sim: Sim, receiver: Receiver, tmp_path: Path
) -> None:
    """Alerts the webhook refused (500) before the daemon was SIGKILLed arrive after a restart on
    the same state directory with no new exchange activity, and no alert arrives twice."""
    state = tmp_path / "state"
    config = tmp_path / "alertd.toml"
    config.write_text(config_text(sim_port=sim.port, hook=receiver.url()))
    first = procs.daemon(config, state_dir=state, name="alertd-run-1")
    wait_until(receiver.delivered, FIRST_ALERT_TIMEOUT, "a first delivery", dump=first.tail)

    receiver.status = 500
    delivered_before = len(receiver.delivered())

    def queued() -> int:
        return sum(int(m.group(1)) for m in first.matches(r"dispatch\.queued .* rows=(\d+)"))

    def refused_titles() -> set[str]:
        return {p.title for p in receiver.snapshot() if p.status == 500}

    # At least two alerts held in the outbox, and the webhook has refused at least two of them.
    wait_until(
        lambda: queued() >= delivered_before + 2 and len(refused_titles()) >= 2,
        FIRST_ALERT_TIMEOUT * 2,
        "two alerts refused by the webhook",
        dump=first.tail,
    )
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    pending_titles = refused_titles()
    total = queued()  # every alert that reached the outbox before the kill
    assert total > len(receiver.delivered())

    # Restart against an exchange that says nothing: only the outbox can produce deliveries.
    receiver.status = 200
    quiet = procs.simulator("quiet")
    config.write_text(config_text(sim_port=quiet.port, hook=receiver.url()))
    second = procs.daemon(config, state_dir=state, name="alertd-run-2")
    wait_until(
        lambda: len(receiver.delivered()) >= total,
        15,
        f"{total} deliveries in all",
        dump=second.tail,
    )
    # The drain on SIGTERM would send any row wrongly left pending: that shows up as a duplicate.
    second.wait_for_line(r"stream\.connected account=px", 10)
    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0, second.tail()

    # A request the webhook held at the kill is resent marked as a possible repeat.
    delivered = [p.title.removeprefix(REPEAT) for p in receiver.delivered()]
    twice = [t for t, n in collections.Counter(delivered).items() if n > 1]
    assert twice == [], twice
    assert len(delivered) == total
    assert pending_titles <= set(delivered)
    assert second.matches(r"dispatch\.queued") == []
    assert second.matches(r"daemon\.stopped pending=0")


def _queue_backlog(state: Path, n: int) -> None:
    """``n`` notifications pending for the ``hook`` channel, written to the state database
    as dispatch writes them (a channel that had been down while alerts piled up)."""

    async def go() -> None:
        db = Database(db_path(state))
        try:
            now = time.time()
            await Outbox(db).enqueue(
                [
                    Notification(
                        key=notification_key("hook", 0, [f"backlog-{i}"]),
                        channel="hook",
                        url_index=0,
                        title=f"backlog {i:03d}",
                        body=f"alert {i} of the backlog",
                        alert_ids=(f"backlog-{i}",),
                        created=now,
                    )
                    for i in range(n)
                ]
            )
        finally:
            db.close()

    trio.run(go)


@pytest.mark.slow
def test_sigkill_while_a_backlog_drains_resends_only_what_was_in_flight(
    procs: Procs, receiver: Receiver, tmp_path: Path
) -> None:
    """A backlog of 300 drains to a real webhook while the daemon is SIGKILLed twice: once
    while the webhook holds a request unanswered, once at whatever moment the 150th arrives.
    Every notification arrives; each kill costs at most one extra copy (the one in the
    service's hands), and every copy beyond the first says it may be a repeat."""
    state = tmp_path / "state"
    _queue_backlog(state, BACKLOG)
    quiet = procs.simulator("quiet")
    config = tmp_path / "alertd.toml"
    # One message a notification, as a channel that keeps up gets them: a backlog this large
    # would go out as digests ([dispatch] catch_up), whose kills test_kill_cycles counts.
    dispatch = 'catch_up = "1h"'
    config.write_text(config_text(sim_port=quiet.port, hook=receiver.url(), dispatch=dispatch))

    # Kill 1: the webhook stops answering after 60; killed while it holds the 61st.
    first = procs.daemon(config, state_dir=state, name="alertd-run-1")
    wait_until(lambda: len(receiver.snapshot()) >= 60, START_TIMEOUT, "60 POSTs", dump=first.tail)
    with receiver.lock:
        receiver.hang = True
    wait_until(
        lambda: any(p.status == 0 for p in receiver.snapshot()), 10, "a held POST", dump=first.tail
    )
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    [held] = [p.title for p in receiver.snapshot() if p.status == 0]
    with receiver.lock:
        receiver.hang = False

    # Kill 2: at whatever the daemon is doing when the 150th POST has arrived.
    second = procs.daemon(config, state_dir=state, name="alertd-run-2")
    wait_until(lambda: len(receiver.snapshot()) >= 150, 20, "150 POSTs", dump=second.tail)
    second.send_signal(signal.SIGKILL)
    assert second.wait(10) == -signal.SIGKILL

    third = procs.daemon(config, state_dir=state, name="alertd-run-3")

    def titles() -> set[str]:
        return {p.title.removeprefix(REPEAT) for p in receiver.delivered()}

    wait_until(lambda: len(titles()) >= BACKLOG, 30, "every title delivered", dump=third.tail)
    third.send_signal(signal.SIGTERM)
    assert third.wait(15) == 0, third.tail()

    posts = receiver.snapshot()
    assert titles() == {f"backlog {i:03d}" for i in range(BACKLOG)}  # nothing lost
    copies: dict[str, list[str]] = collections.defaultdict(list)
    for post in posts:
        copies[post.title.removeprefix(REPEAT)].append(post.title)
    for title, sent in copies.items():
        assert all(later == REPEAT + title for later in sent[1:]), sent
    # Each kill touches at most the one notification in the service's hands: sent again, or
    # (when the kill came after its hand-off was written down but before the request left)
    # sent once with the mark.
    touched = {t for t, sent in copies.items() if len(sent) > 1 or sent[0] != t}
    assert len(touched) <= 2, {t: copies[t] for t in touched}
    assert len(posts) - BACKLOG <= 2
    assert copies[held] == [held, REPEAT + held]  # the request the webhook held
    assert third.matches(r"daemon\.stopped pending=0")
