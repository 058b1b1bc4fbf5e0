"""What stream health (``health.StreamHealth``) gives out. Its outputs ask whoever drives it,
in order: hand an event on, write a log line, note a connection fact in the capture, call
back at a trio time, go on with (or give up) a login. Plain values, like mitmproxy's
commands: the live session carries them out; replay hands the events on and may ignore the
rest. And its ``statistics()`` snapshot.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import attrs

from alertd.events import Event
from alertd.sources.login import LoginReply
from alertd.sources.streams import CONNECTION, StreamFact


class Emit(NamedTuple):
    """Hand ``event`` on. ``stream`` is where it came from (an overflow gap names it);
    ``bounded`` events count against the account's buffer, facts about the connection never
    do (losing a ``stream.disconnected`` would make alertd blind without saying so). A named
    tuple, not an attrs class: there is one for nearly every frame, and it costs half."""

    event: Event
    stream: str = CONNECTION
    bounded: bool = False


@attrs.frozen
class Log:
    """A log line, as ``logging`` takes it: ``message`` with lazy %-style ``args``."""

    level: int
    message: str
    args: tuple[Any, ...] = ()


@attrs.frozen
class Record:
    """A connection fact for the capture. ``stopped``: alertd stopped watching a connection
    that was up (reload, crash, shutdown); an outage only if a next session announces it."""

    fact: StreamFact
    reason: str | None = None
    stopped: bool = False


@attrs.frozen
class Wakeup:
    """Call ``tick`` at trio time ``at``: a deadline came nearer than the last one."""

    at: float


@attrs.frozen
class LoginAnswered:
    """The frame answered the login; the session goes on (accepted) or gives up (rejected)."""

    verdict: LoginReply


Output = Emit | Log | Record | Wakeup | LoginAnswered


@attrs.define
class HealthCounts:
    """What an account's stream health counts as it goes (``StreamHealth`` increments them;
    the first fields of its ``HealthStatistics``)."""

    frames: int = 0  # frames received
    decode_errors: int = 0  # frames that could not be read (malformed, unknown, oversize)
    reconnects: int = 0  # connection attempts after the first of each session


@attrs.frozen(kw_only=True)
class HealthStatistics(HealthCounts):
    """An account's stream health at one moment: its counts, frozen, and the connection's
    state. Times are trio seconds."""

    connected: bool
    connected_since: float | None  # None while down
    last_frame: float | None
