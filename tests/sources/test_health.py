"""Stream health as a machine of plain values: facts in, events and requests out, no sockets
and no clock. Times are passed in: ``T0`` and offsets from it, as trio and wall time both."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from alertd.config.model import AuthSettings, Duration
from alertd.events import BalanceEvidence, utc_from_timestamp
from alertd.protocols import decoder_for
from alertd.sources.health import StreamHealth
from alertd.sources.outputs import Emit, Log, LoginAnswered, Output, Record, Wakeup
from alertd.sources.streams import keeps
from protocols import frames

from .helpers import account, balance_frame, deal_frame

T0 = 1_700_000_000.0
ACK = json.dumps({"op": "subscribe", "topic": "pinfo", "status": "ok"})
LOGIN_OK = '{"op":"login","status":"ok"}'
LOGIN_ERROR = '{"op":"login","status":"error","msg":"bad key"}'


def at(offset: float) -> dict[str, Any]:
    """``now`` and ``wall`` for the moment ``T0 + offset``."""
    return {"now": T0 + offset, "wall": wall(offset)}


def wall(offset: float) -> datetime:
    return utc_from_timestamp(T0 + offset)


def piexgo(**kw: Any) -> StreamHealth:
    return StreamHealth.for_account(account("ws://127.0.0.1:1/ws", **kw))


def cryptology(streams: list[str]) -> StreamHealth:
    settings = account("ws://127.0.0.1:1/ws", exchange="cryptology", streams=streams)
    return StreamHealth.for_account(settings)


def events(outputs: list[Output]) -> list[Any]:
    return [o.event for o in outputs if isinstance(o, Emit)]


def kinds(outputs: list[Output]) -> list[str]:
    return [e.kind for e in events(outputs)]


# -- down, up and the offline gap ---------------------------------------------------------------


def test_the_first_failed_attempt_is_announced_and_retries_are_quiet() -> None:
    """The first failure is one stream.disconnected (and a capture line); later failures are
    only a log line at info; the first connect has no downtime and no gap."""
    h = piexgo()
    first = h.ended("connect to x:1 failed: connection refused", **at(0))
    again = h.ended("connect to x:1 failed: connection refused", **at(1))
    up = h.came_up(**at(2))
    [down] = events(first)
    assert (down.kind, down.reason, down.time) == (
        "stream.disconnected",
        "connect to x:1 failed: connection refused",
        wall(0),
    )
    assert Record("disconnected", reason=down.reason) in first
    assert events(again) == []
    assert [(o.level, o.message) for o in again if isinstance(o, Log)] == [
        (logging.INFO, "stream.connect_failed account=%s reason=%s")
    ]
    assert kinds(up) == ["stream.connected"] and events(up)[0].downtime is None


def test_a_lost_connection_is_reported_with_downtime_and_an_offline_gap() -> None:
    """Up, a frame, lost, up again: disconnected with the reason, then connected with the
    downtime and a gap from the last frame received to the reconnect."""
    h = piexgo(streams=["dealinfo.btc_usdt"])
    h.came_up(**at(0))
    h.frame(deal_frame(), **at(5))
    down = h.ended("closed with 1011 INTERNAL_ERROR", **at(8))
    up = h.came_up(**at(20))
    [lost] = events(down)
    assert (lost.kind, lost.reason) == ("stream.disconnected", "closed with 1011 INTERNAL_ERROR")
    connected, gap = events(up)
    assert connected.kind == "stream.connected" and connected.downtime == 12.0
    assert (gap.kind, gap.why, gap.since, gap.until, gap.evidence) == (
        "stream.gap",
        "offline",
        wall(5),
        wall(20),
        (),
    )
    assert (gap.stream, gap.exchange, gap.account) == ("*", "piexgo", "main")


def test_piexgo_gap_waits_for_the_balance_snapshot_and_shows_what_moved() -> None:
    """After a reconnect with pinfo the gap goes out when the snapshot is complete, after the
    events of the frame that ended it, with the balances that differ from before the loss."""
    h = piexgo(streams=["pinfo"])
    h.came_up(**at(0))
    for i, frame in enumerate([ACK, balance_frame("BTC", "1.5"), balance_frame("USDT", "1000")]):
        h.frame(frame, **at(0.25 * (i + 1)))
    h.ended("closed with 1006 ABNORMAL_CLOSURE", **at(1))
    up = h.came_up(**at(10))
    assert kinds(up) == ["stream.connected"]
    assert Wakeup(T0 + 10.5) in up and h.next_wakeup() == T0 + 10.5  # snapshot_wait 0.5 s
    snapshot = [ACK, balance_frame("BTC", "1.5"), balance_frame("USDT", "750")]
    snapshot.append(balance_frame("ETH", "2"))
    during = [h.frame(f, **at(10 + 0.05 * i)) for i, f in enumerate(snapshot)]
    assert "stream.gap" not in [k for out in during for k in kinds(out)]
    end = h.frame(balance_frame("BTC", "1.6"), **at(10.3))  # a token again: live activity
    assert kinds(end) == ["balance.changed", "stream.gap"]
    gap = events(end)[1]
    assert (gap.since, gap.until) == (wall(0.75), wall(10))
    assert gap.evidence == (
        BalanceEvidence(currency="ETH", before=None, after=Decimal(2)),
        BalanceEvidence(currency="USDT", before=Decimal(1000), after=Decimal(750)),
    )
    assert h.next_wakeup() is None


def test_a_late_snapshot_sends_the_gap_when_snapshot_wait_is_up() -> None:
    """Without a complete snapshot the gap goes out at snapshot_wait, with what came."""
    h = piexgo(streams=["pinfo"])
    h.came_up(**at(0))
    h.frame(balance_frame("USDT", "1000"), **at(0.5))
    h.ended("closed with 1006 ABNORMAL_CLOSURE", **at(1))
    h.came_up(**at(10))
    h.frame(ACK, **at(10.1))
    h.frame(balance_frame("USDT", "900"), **at(10.2))
    assert h.tick(**at(10.4)) == []
    [gap] = events(h.tick(**at(10.5)))
    assert gap.until == wall(10) and gap.time == wall(10.5)
    assert gap.evidence == (
        BalanceEvidence(currency="USDT", before=Decimal(1000), after=Decimal(900)),
    )


def test_an_unreported_gap_widens_into_the_next() -> None:
    """A connection that falls again before its gap went out gives one gap later, from the
    first outage, with the balances seen before it."""
    h = piexgo(streams=["pinfo"])
    h.came_up(**at(0))
    h.frame(balance_frame("BTC", "1.5"), **at(0.5))
    h.ended("closed with 1006 ABNORMAL_CLOSURE", **at(1))
    first = h.came_up(**at(2))
    second = h.ended("closed with 1006 ABNORMAL_CLOSURE", **at(3))
    assert "stream.gap" not in kinds(first) + kinds(second)
    h.came_up(**at(10))
    for i, frame in enumerate([ACK, balance_frame("BTC", "2"), deal_frame()]):
        out = h.frame(frame, **at(10 + 0.1 * (i + 1)))
    [gap] = [e for e in events(out) if e.kind == "stream.gap"]
    assert (gap.since, gap.until) == (wall(0.5), wall(10))
    assert gap.evidence == (
        BalanceEvidence(currency="BTC", before=Decimal("1.5"), after=Decimal(2)),
    )


def test_a_session_stopped_while_up_is_announced_by_the_next() -> None:
    """Stopping a connected session announces nothing (it may be a shutdown); the next
    session announces the loss with restart_reason, and the reconnect reports the gap."""
    h = piexgo(streams=["dealinfo.btc_usdt"])
    h.came_up(**at(0))
    h.frame(deal_frame(), **at(1))
    stop = h.stopped(**at(2))
    assert stop == [Record("disconnected", stopped=True)]
    assert not h.statistics().connected
    h.restart_reason = "account reloaded with changed settings"
    [down] = events(h.session_started(wall=wall(3)))
    assert events(h.session_started(wall=wall(3))) == []  # announced once
    connected, gap = events(h.came_up(**at(4)))
    assert down.reason == "account reloaded with changed settings" and down.time == wall(3)
    assert connected.downtime == 2.0 and (gap.since, gap.until) == (wall(1), wall(4))


def test_a_session_stopped_while_down_leaves_retries_quiet() -> None:
    """A session restarted while the stream is down and announced does not announce again."""
    h = piexgo()
    h.ended("connect to x:1 failed: connection refused", **at(0))
    assert h.stopped(**at(1)) == [] and h.session_started(wall=wall(1)) == []
    assert events(h.ended("connect to x:1 failed: connection refused", **at(2))) == []


# -- stale streams ------------------------------------------------------------------------------


def test_a_quiet_stream_is_stale_once_per_silence_and_a_frame_rearms_it() -> None:
    """A market stream with a budget is stale once at its deadline; a frame re-arms it (and
    asks for a wakeup at the new deadline); account streams have no budget."""
    h = piexgo(streams=["pinfo", "dealinfo.btc_usdt"], market_stale_after=Duration(5))
    up = h.came_up(**at(0))
    assert Wakeup(T0 + 5) in up and h.next_wakeup() == T0 + 5
    assert h.tick(**at(4.75)) == []
    [stale] = events(h.tick(**at(5)))
    assert (stale.kind, stale.stream, stale.silent_for) == ("stream.stale", "dealinfo.btc_usdt", 5)
    assert events(h.tick(**at(50))) == [] and h.next_wakeup() is None
    rearm = h.frame(deal_frame(), **at(60))
    assert kinds(rearm) == ["trade"] and Wakeup(T0 + 65) in rearm
    [again] = events(h.tick(**at(65.5)))
    assert again.silent_for == 5.5


def test_nothing_is_stale_while_down() -> None:
    """A lost connection has no deadlines; the next connect starts the budgets afresh."""
    h = piexgo(streams=["dealinfo.btc_usdt"], market_stale_after=Duration(5))
    h.came_up(**at(0))
    h.ended("closed with 1006 ABNORMAL_CLOSURE", **at(1))
    assert h.next_wakeup() is None and h.tick(**at(100)) == []
    h.came_up(**at(200))
    assert h.next_wakeup() == T0 + 205


# -- frames: login replies, bad frames ----------------------------------------------------------


def login_account() -> StreamHealth:
    auth = AuthSettings(login_frame='{"op":"login"}', login_timeout=Duration(2))
    return piexgo(auth=auth)


def test_login_replies_within_the_window_are_verdicts_not_events() -> None:
    """In the login window a rejection is a stream.error with an excerpt and a verdict, an
    acceptance only a verdict; neither is decoded."""
    h = login_account()
    h.login_sent(now=T0)
    rejected = h.frame(LOGIN_ERROR, **at(0.5))
    [error] = events(rejected)
    assert error.reason == "login rejected by the server" and "bad key" in error.excerpt
    assert rejected[-1] == LoginAnswered("rejected")
    h.login_sent(now=T0 + 1)
    accepted = h.frame(LOGIN_OK, **at(1.25))
    assert events(accepted) == [] and accepted[-1] == LoginAnswered("accepted")
    assert h.statistics().decode_errors == 0


def test_outside_the_login_window_a_reply_is_an_ordinary_frame() -> None:
    """After the window closes, a login-shaped frame is decoded like any other."""
    h = login_account()
    h.login_sent(now=T0)
    [error] = events(h.frame(LOGIN_ERROR, **at(2.5)))
    assert error.reason == "piexgo rejected the login: bad key"
    assert h.statistics().decode_errors == 1


def test_an_unanswered_login_is_an_error() -> None:
    """No verdict within login_timeout is a stream.error saying so."""
    [error] = events(login_account().login_unanswered(wall=wall(2)))
    assert error.reason == "login not answered within 2s"


def test_a_bad_frame_is_a_counted_error_and_the_stream_goes_on() -> None:
    """A frame that cannot be read is a bounded stream.error; the next frame is decoded."""
    h = piexgo()
    h.came_up(**at(0))
    bad = h.frame('{"topic": "dealinfo", oops', **at(1))
    good = h.frame(deal_frame(), **at(2))
    [emit] = [o for o in bad if isinstance(o, Emit)]
    assert emit.event.kind == "stream.error" and emit.bounded
    assert emit.event.excerpt.startswith('{"topic": "dealinfo", oops')
    assert kinds(good) == ["trade"]
    stats = h.statistics()
    assert (stats.frames, stats.decode_errors, stats.last_frame) == (2, 1, T0 + 2)
    assert stats.connected and stats.connected_since == T0


def test_an_oversize_frame_is_a_counted_error_naming_the_limit() -> None:
    """trio-websocket's 1009 close becomes a stream.error that names max_message_size."""
    h = piexgo()
    [error] = events(h.frame_too_big(4096, wall=wall(0)))
    assert "max_message_size (4096 bytes)" in error.reason
    assert h.statistics().decode_errors == 1


# -- the stream filter --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("watched", "stream", "kept"),
    [
        (frozenset(), "account", True),  # no streams named: everything
        (frozenset(), "trades.BTC_USD", True),
        (frozenset({"account"}), "account", True),
        (frozenset({"account"}), "book.BTC_USD", False),
        (frozenset({"account"}), None, True),  # of no stream: always
    ],
)
def test_keeps(watched: frozenset[str], stream: str | None, kept: bool) -> None:
    """An account keeps events of the streams it names, everything if it names none, and
    events of no stream always."""
    assert keeps(watched, stream) is kept


def test_cryptology_without_streams_keeps_every_event() -> None:
    """A Cryptology account with only the core keys keeps every message the exchange pushes:
    fills, cancels, balances, shortfalls, trades and books."""
    h, decoder = cryptology([]), decoder_for("cryptology", "main")
    got = [e for frame in frames.CRYPTOLOGY_RECEIVED for e in events(h.frame(frame, **at(0)))]
    assert got == [e for f in frames.CRYPTOLOGY_RECEIVED for e in decoder.decode(f, wall(0))]
    assert {e.kind for e in got} == {
        "order.placed",
        "order.cancelled",
        "balance.changed",
        "funds.insufficient",
        "trade",
        "book",
    }


def test_cryptology_streams_choose_what_is_kept() -> None:
    """Named streams keep only their events: "account" no market data, a book only books."""
    account_only, book_only = cryptology(["account"]), cryptology(["book.BTC_USD"])
    seen_account, seen_book = set(), set()
    for frame in frames.CRYPTOLOGY_RECEIVED:
        seen_account |= set(kinds(account_only.frame(frame, **at(0))))
        seen_book |= set(kinds(book_only.frame(frame, **at(0))))
    assert "trade" not in seen_account and "book" not in seen_account
    assert "order.placed" in seen_account and "funds.insufficient" in seen_account
    assert seen_book == {"book"}
