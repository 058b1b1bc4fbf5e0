"""The one muting interface: silences and inhibitions answer through ``Muter``, which
dispatch feeds and delivery asks."""

from __future__ import annotations

import trio

from alertd.config.model import RuleSettings
from alertd.dispatch.muting import Muted, Muter, Muting
from alertd.dispatch.silences import Silences

from .helpers import make_alert, make_config

RULES = [
    RuleSettings(name="down", on="stream.disconnected"),
    RuleSettings(name="stale", on="stream.stale"),
    RuleSettings(name="filled", on="order.filled"),
]
STALE = {"rule": "stale", "key": "main/depth", "event_kind": "stream.stale"}
DOWN = {"rule": "down", "key": "main", "event_kind": "stream.disconnected"}


async def test_a_silence_and_an_inhibition_are_named_in_what_they_answer(
    silences: Silences,
) -> None:
    """A silenced alert is answered with its silence's id, an inhibited one with the rule
    that inhibits it, and an alert neither covers with None."""
    muter: Muting = Muter(make_config(rules=RULES), silences)
    assert isinstance(muter, Muter)
    with trio.fail_after(20):
        silence = await silences.add(
            rule="filled", matchers={"side": "sell"}, starts=0, ends=100, comment=""
        )
        await muter.refresh(10)
    muter.observe(make_alert(1, **DOWN), now=0)
    sold = make_alert(2, labels={"side": "sell"})
    assert muter.muted(sold, wall=10, now=0) == Muted(
        how="silenced", by=f"silence {silence.id}", source=silence.id
    )
    assert muter.muted(make_alert(3, **STALE), wall=10, now=0) == Muted(
        how="inhibited", by="rule down", source="down"
    )
    assert muter.muted(make_alert(4, labels={"side": "buy"}), wall=10, now=0) is None
    assert muter.muted(sold, wall=100, now=0) is None  # the silence has ended


async def test_may_mute_is_false_only_when_nothing_could_mute(
    silences: Silences,
) -> None:
    """With no silence in force and no stream down, may_mute says nothing can be muted; a
    silence in force or a stream down says something may be."""
    muter = Muter(make_config(rules=RULES), silences)
    with trio.fail_after(20):
        await silences.add(rule="filled", matchers={}, starts=50, ends=100, comment="")
        await muter.refresh(0)
    assert not muter.may_mute(wall=10, now=0)
    assert muter.may_mute(wall=60, now=0)
    muter.observe(make_alert(1, **DOWN), now=0)
    assert muter.may_mute(wall=10, now=0)
    muter.observe(make_alert(2, rule="up", key="main", event_kind="stream.connected"), now=1)
    assert not muter.may_mute(wall=10, now=1)


async def test_a_reload_changes_what_inhibits(silences: Silences) -> None:
    """After update_config with inhibit_stream_down off, a down stream no longer holds
    back its stale alerts."""
    muter = Muter(make_config(rules=RULES), silences)
    muter.observe(make_alert(1, **DOWN), now=0)
    assert muter.muted(make_alert(2, **STALE), wall=0, now=1) is not None
    muter.update_config(make_config(rules=RULES, inhibit_stream_down=False))
    assert muter.muted(make_alert(2, **STALE), wall=0, now=1) is None
