"""While an account's stream is down, its stale and absence alerts give way to the one
"stream down" alert."""

from __future__ import annotations

import trio
import trio.testing

from alertd.config.model import InhibitSettings, RuleSettings
from alertd.dispatch.silences import Silences
from alertd.store.outbox import Outbox

from .helpers import make_alert, make_config, queued, running, settle

RULES = [
    RuleSettings(name="down", on="stream.disconnected"),
    RuleSettings(name="up", on="stream.connected"),
    RuleSettings(name="stale", on="stream.stale"),
    RuleSettings(name="quiet-book", type="absence", on="book"),
    RuleSettings(name="filled", on="order.filled"),
]


def down(n: int, account: str = "main") -> object:
    return make_alert(
        n, rule="down", key=account, account=account, event_kind="stream.disconnected"
    )


async def test_stale_and_absence_alerts_are_held_while_the_stream_is_down(
    outbox: Outbox, silences: Silences, clock: trio.testing.MockClock
) -> None:
    """After a stream.disconnected alert, the account's stale and absence alerts are not
    sent, another account's are, and after stream.connected they are sent again."""
    config = make_config(rules=RULES)
    with trio.fail_after(3600):
        async with running(config, outbox, silences) as send:
            await send.send(down(1))
            await settle()
            await send.send(
                make_alert(2, rule="stale", key="main/depth", event_kind="stream.stale")
            )
            await send.send(make_alert(3, rule="quiet-book", key="main/BTC", event_kind=None))
            await send.send(
                make_alert(
                    4, rule="stale", key="alt/depth", account="alt", event_kind="stream.stale"
                )
            )
            await settle()
            await send.send(make_alert(5, rule="up", key="main", event_kind="stream.connected"))
            await settle()
            await send.send(make_alert(6, rule="stale", key="main/x", event_kind="stream.stale"))
            await settle()
    ids = [r.alert_ids for r in await queued(outbox)]
    assert ids == [("alert-1",), ("alert-4",), ("alert-5",), ("alert-6",)]


async def test_stale_alert_waiting_in_its_group_is_held_when_the_stream_goes_down(
    outbox: Outbox, silences: Silences, clock: trio.testing.MockClock
) -> None:
    """A stale alert still in group wait when the disconnect arrives is held back too."""
    config = make_config(rules=RULES, group_wait=10)
    with trio.fail_after(3600):
        async with running(config, outbox, silences) as send:
            await send.send(
                make_alert(1, rule="stale", key="main/depth", event_kind="stream.stale")
            )
            await settle(2)
            await send.send(down(2))
            await settle(20)
    assert [r.alert_ids for r in await queued(outbox)] == [("alert-2",)]


async def test_inhibition_ends_after_inhibit_max(
    outbox: Outbox, silences: Silences, clock: trio.testing.MockClock
) -> None:
    """A "down" nobody clears stops muting the account after dispatch.inhibit_max."""
    config = make_config(rules=RULES, inhibit_max=600)
    with trio.fail_after(3600):
        async with running(config, outbox, silences) as send:
            await send.send(down(1))
            await settle(700)
            await send.send(
                make_alert(2, rule="stale", key="main/depth", event_kind="stream.stale")
            )
            await settle()
    assert [r.alert_ids for r in await queued(outbox)] == [("alert-1",), ("alert-2",)]


async def test_configured_inhibition(
    outbox: Outbox, silences: Silences, clock: trio.testing.MockClock
) -> None:
    """While source_rule fires for an account its target rules are held; its resolution
    lifts that."""
    config = make_config(
        rules=RULES,
        inhibit=[InhibitSettings(source_rule="exchange-maintenance", target_rules=["fill*"])],
    )
    with trio.fail_after(3600):
        async with running(config, outbox, silences) as send:
            await send.send(make_alert(1, rule="exchange-maintenance", key="main"))
            await settle()
            await send.send(make_alert(2))
            await settle()
            await send.send(
                make_alert(3, rule="exchange-maintenance", key="main", status="resolved")
            )
            await settle()
            await send.send(make_alert(4, key="main/ETH_USDT"))
            await settle(40)  # the resolution waits for its group's interval
    ids = sorted(r.alert_ids for r in await queued(outbox))
    assert ids == [("alert-1",), ("alert-3",), ("alert-4",)]
