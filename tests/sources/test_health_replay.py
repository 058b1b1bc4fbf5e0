"""Run and replay agree: whatever a live session tells stream health, the capture it writes,
replayed through a fresh machine, gives the same events (Hypothesis drives the session)."""

from __future__ import annotations

import json
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from alertd.config.model import AuthSettings, Duration
from alertd.events import Event, utc_from_timestamp
from alertd.sources.capture import fact_line, frame_line, parse_line
from alertd.sources.health import StreamHealth
from alertd.sources.outputs import Emit, Output, Record

from .helpers import account, balance_frame, deal_frame, depth_frame

T0 = 1_700_000_000.0
STEP = 0.25  # every time is T0 plus a multiple of this: exact as float and as datetime
LOGIN_OK = '{"op":"login","status":"ok"}'
LOGIN_ERROR = '{"op":"login","status":"error","msg":"bad key"}'
ACK = json.dumps({"op": "subscribe", "topic": "pinfo", "status": "ok"})
FRAMES = [
    ACK,
    balance_frame("BTC", "1"),
    balance_frame("BTC", "2"),
    balance_frame("USDT", "10"),
    deal_frame(),
    depth_frame(100.0, 1),
    '{"topic": "dealinfo", oops',
    LOGIN_ERROR,  # while up, outside the login window: an ordinary bad frame
]
REASONS = ["connect to x:1 failed: connection refused", "closed with 1011 INTERNAL_ERROR"]

actions = st.lists(
    st.one_of(
        st.tuples(st.just("fail"), st.sampled_from(REASONS)),
        st.tuples(st.just("connect")),
        st.tuples(st.just("reject")),
        st.tuples(st.just("frame"), st.sampled_from(FRAMES)),
        st.tuples(st.just("lose"), st.sampled_from(REASONS)),
        st.tuples(st.just("restart"), st.sampled_from(["account reloaded", "crashed"])),
        st.tuples(st.just("wait"), st.integers(min_value=1, max_value=40)),
    ),
    max_size=60,
)


def machine(login: bool) -> StreamHealth:
    auth = AuthSettings(login_frame='{"op":"login"}', login_timeout=Duration(2))
    settings = account(
        "ws://127.0.0.1:1/ws",
        market_stale_after=Duration(2),
        snapshot_wait=Duration(1),
        auth=auth if login else AuthSettings(),
    )
    return StreamHealth.for_account(settings)


@attrs.define
class Live:
    """Plays a session's part: feeds stream health as the session does, and writes the
    capture lines the session's recorder would."""

    health: StreamHealth
    t: float = T0
    events: list[Event] = attrs.field(factory=list)
    capture: list[str] = attrs.field(factory=list)

    def at(self, t: float) -> dict[str, Any]:
        return {"now": t, "wall": utc_from_timestamp(t)}

    def take(self, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, Emit):
                self.events.append(out.event)
            elif isinstance(out, Record):
                line = fact_line("main", out.fact, self.t, reason=out.reason, stopped=out.stopped)
                self.capture.append(line)

    def advance(self, steps: int = 1) -> None:
        """Time passes; the session's timer task ticks at every deadline on the way."""
        until = self.t + steps * STEP
        while (w := self.health.next_wakeup()) is not None and w < until:
            self.t = max(self.t, w)
            self.take(self.health.tick(**self.at(w)))
        self.t = until

    def frame(self, frame: str) -> None:
        self.capture.append(frame_line("main", frame, self.t))
        self.take(self.health.frame(frame, **self.at(self.t)))

    def play(self, action: tuple[Any, ...]) -> None:
        h, name = self.health, action[0]
        self.advance()
        if name == "wait":
            self.advance(action[1])
        elif h.connected and name in ("lose", "restart"):
            if name == "lose":
                self.take(h.ended(action[1], **self.at(self.t)))
            else:
                self.take(h.stopped(**self.at(self.t)))
                h.restart_reason = action[1]
                self.advance()
                self.take(h.session_started(wall=utc_from_timestamp(self.t)))
        elif h.connected and name == "frame":
            self.frame(action[1])
        elif not h.connected and name in ("fail", "connect", "reject"):
            if name == "fail":
                self.take(h.ended(action[1], **self.at(self.t)))
                return
            login = h.policy.login is not None
            if login:
                h.login_sent(now=self.t)
                self.advance()
                self.frame(LOGIN_OK if name == "connect" else LOGIN_ERROR)
            if name == "reject" and login:
                self.take(h.ended("login rejected", **self.at(self.t)))
            elif name == "connect":
                self.advance()
                self.take(h.came_up(**self.at(self.t)))


def replay(health: StreamHealth, capture: list[str], end: float) -> list[Event]:
    """The capture through ``StreamHealth.replay``, ticking at every deadline before each
    record and up to ``end``, as ``alertd replay`` does on its virtual clock."""
    out: list[Event] = []

    def tick_until(t: float) -> None:
        while (w := health.next_wakeup()) is not None and w < t:
            wall = utc_from_timestamp(w)
            out.extend(o.event for o in health.tick(now=w, wall=wall) if isinstance(o, Emit))

    for number, line in enumerate(capture, start=1):
        record = parse_line(line, where=f"capture:{number}", line=number)
        tick_until(record.ts)
        out.extend(o.event for o in health.replay(record) if isinstance(o, Emit))
    tick_until(end)
    return out


@settings(max_examples=300, deadline=None)
@given(actions=actions, login=st.booleans())
def test_replay_of_the_capture_gives_the_events_of_the_run(
    actions: list[tuple[Any, ...]], login: bool
) -> None:
    """The events stream health gave a live session equal, one for one and field for field,
    those it gives when the session's capture is replayed: downs and their reasons, ups and
    their downtime, gaps with their windows and evidence, stale streams, errors, and login
    replies kept out of the decoder."""
    live = Live(machine(login))
    for action in actions:
        live.play(action)
    live.advance()
    assert replay(machine(login), live.capture, live.t) == live.events


def test_the_agreement_covers_every_stream_fact() -> None:
    """One scripted run shows each kind of stream fact, so the property above is not
    vacuous for any of them."""
    live = Live(machine(login=True))
    script: list[tuple[Any, ...]] = [
        ("fail", REASONS[0]),
        ("reject",),
        ("connect",),
        ("frame", ACK),
        ("frame", balance_frame("BTC", "1")),
        ("frame", "{oops"),
        ("wait", 20),
        ("lose", REASONS[1]),
        ("connect",),
        ("frame", ACK),
        ("frame", balance_frame("BTC", "2")),
        ("frame", deal_frame()),
        ("restart", "account reloaded"),
        ("connect",),
    ]
    for action in script:
        live.play(action)
    live.advance(10)
    kinds = {e.kind for e in live.events}
    assert kinds >= {
        "stream.connected",
        "stream.disconnected",
        "stream.gap",
        "stream.stale",
        "stream.error",
        "balance.changed",
        "trade",
    }
    gaps = [e for e in live.events if e.kind == "stream.gap"]
    assert any(g.evidence for g in gaps)
    reasons = [e.reason for e in live.events if e.kind == "stream.disconnected"]
    assert reasons == [REASONS[0], REASONS[1], "account reloaded"]
    assert replay(machine(login=True), live.capture, live.t) == live.events
