"""Which streams an account watches and keeps, what its settings say about watching them
(``HealthPolicy``), and how a stream fact is made.

One truth for the daemon and for ``alertd replay``: both decide what an account keeps with
``keeps`` (through ``health.StreamHealth``), so a capture replays to the events the daemon saw.

An account that names no ``streams`` keeps everything. For Piexgo that is little (nothing is
subscribed, so only replies arrive); for Cryptology, which pushes a partner's orders, wallet
and market messages unasked, it is all of them: a user who writes only the design's core keys
expects every fill, cancel and shortfall.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

import attrs

from alertd.config.model import AccountSettings
from alertd.events import Event
from alertd.protocols import Decoder
from alertd.sources.login import LoginReplies

CONNECTION = "*"  # the stream name of facts about the whole connection

StreamFact = Literal["connected", "disconnected"]  # the connection facts a capture holds
STREAM_FACTS: tuple[StreamFact, ...] = ("connected", "disconnected")

E = TypeVar("E", bound=Event)


def keeps(watched: Collection[str], stream: str | None) -> bool:
    """Whether an account watching ``watched`` (normalized names, see ``watched_streams``)
    keeps an event of ``stream`` (``decoder.stream_for(event)``): always for an event of no
    stream, everything when the account names no streams, else the streams it names."""
    return stream is None or not watched or stream in watched


def watched_streams(decoder: Decoder, configured: Sequence[str]) -> dict[str, str]:
    """The account's streams, normalized name -> as configured (what subscribe frames say);
    ``ValueError`` naming the valid forms for a name the exchange does not have."""
    return {decoder.normalize_stream(name): name for name in configured}


def stale_budgets(
    settings: AccountSettings, decoder: Decoder, watched: dict[str, str]
) -> dict[str, float]:
    """Seconds without a frame after which each watched stream is stale: its ``stale_after``
    entry (by the name as configured or normalized), else ``market_stale_after`` for market
    streams; account streams are quiet by nature and get none. Zero means never."""
    budgets = {}
    for name, configured in watched.items():
        budget = settings.stale_after.get(configured, settings.stale_after.get(name))
        if budget is None and decoder.is_market_stream(name):
            budget = settings.market_stale_after
        if budget is not None and budget > 0:
            budgets[name] = float(budget)
    return budgets


@attrs.frozen(kw_only=True)
class HealthPolicy:
    """What an account's settings say about watching it; replaced when a reload changes them."""

    url: str = ""  # for log lines only
    watched: frozenset[str] = frozenset()  # normalized stream names; empty keeps everything
    budgets: Mapping[str, float] = attrs.field(factory=dict)  # stream -> seconds until stale
    snapshot: bool = False  # await Piexgo's balance snapshot before reporting an offline gap
    snapshot_wait: float = 3.0
    login: LoginReplies | None = None  # None: no login frame is sent, nothing answers one
    login_timeout: float = 10.0

    @classmethod
    def for_account(cls, settings: AccountSettings, decoder: Decoder) -> HealthPolicy:
        """``ValueError`` naming the valid forms for a stream the exchange does not have."""
        watched = watched_streams(decoder, settings.streams)
        return cls(
            url=settings.url,
            watched=frozenset(watched),
            budgets=stale_budgets(settings, decoder, watched),
            snapshot=settings.exchange == "piexgo" and "pinfo" in watched,
            snapshot_wait=settings.snapshot_wait,
            login=LoginReplies.for_account(settings.exchange, settings.auth),
            login_timeout=settings.auth.login_timeout,
        )


def stream_fact(
    cls: Callable[..., E],
    *,
    exchange: str,
    account: str,
    at: datetime,
    stream: str = CONNECTION,
    **fields: Any,
) -> E:
    """A ``stream.*`` event that alertd itself observed at ``at`` (both its ``time`` and
    ``received``): it comes from no exchange frame."""
    return cls(exchange=exchange, account=account, time=at, received=at, stream=stream, **fields)
