"""The event vocabulary of DESIGN.md: frozen value types that every stage passes on.

Events keep their fields in instance dicts rather than slots (``slots=False``): an event is
made for nearly every frame and turned into a mapping for the rules (``event_fields``) as
often, and both cost about half as much this way (bench/README.md, "Third round").

Amounts are ``Decimal``; times are timezone-aware UTC ``datetime``; durations are float
seconds. Each class carries its ``kind`` (the name rules match on) as a class attribute, and
``event_fields`` turns an event into the flat mapping that rule expressions and message
templates see.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

import attrs

Side = Literal["buy", "sell"]
PriceLevel = tuple[Decimal, Decimal]  # (price, quantity)


def normalize_symbol(symbol: str) -> str:
    """One form for every exchange: ``btc_usdt`` and ``BTC-USDT`` both give ``BTC_USDT``."""
    return symbol.strip().upper().replace("-", "_").replace("/", "_")


def utc_from_timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@attrs.frozen(kw_only=True, slots=False)
class Event:
    """Fields every event carries. ``time`` is when it happened, where the exchange says so,
    else when alertd received it; ``raw`` is the decoded frame the event came from.
    ``not_identity`` names the fields that do not tell two events apart (engine/alerts: the
    alert id of a cause): a frame seen again after a reconnect has a new ``received``."""

    kind: ClassVar[str] = ""
    not_identity: ClassVar[frozenset[str]] = frozenset({"raw", "received"})
    exchange: str
    account: str
    time: datetime
    received: datetime
    raw: Any = attrs.field(default=None, eq=False, repr=False)


# -- orders ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True, slots=False)
class OrderEvent(Event):
    """An order's lifecycle step. ``amount`` is the order's quantity in the base currency,
    ``remaining`` what is still open, ``filled`` what has executed so far (cumulative).
    ``fill_price``, ``notional`` (quote-currency value executed) and ``slippage`` (fraction by
    which the fill was worse than the order price, negative when better) are set where the
    exchange makes them derivable, else ``None``. ``order_time`` is the exchange's own time of
    the order where it means something other than this step (Piexgo's ``timestamp``: when the
    order was created); ``None`` elsewhere.

    An order step is told apart by the order and its amounts (``remaining`` only falls), not by
    ``time``: where the exchange gives no time of the step, ``time`` is when it was received,
    which differs between two connections that see the same frame."""

    not_identity: ClassVar[frozenset[str]] = frozenset({"raw", "received", "time"})
    order_id: str
    client_order_id: str | None = None
    symbol: str
    side: Side | None = None
    price: Decimal | None = None
    amount: Decimal | None = None
    remaining: Decimal | None = None
    filled: Decimal | None = None
    fill_price: Decimal | None = None
    notional: Decimal | None = None
    slippage: Decimal | None = None
    order_time: datetime | None = None


@attrs.frozen(kw_only=True, slots=False)
class OrderPlaced(OrderEvent):
    kind: ClassVar[str] = "order.placed"


@attrs.frozen(kw_only=True, slots=False)
class OrderPartiallyFilled(OrderEvent):
    """``last_filled`` is what this step executed; ``filled`` stays cumulative."""

    kind: ClassVar[str] = "order.partially_filled"
    last_filled: Decimal | None = None


@attrs.frozen(kw_only=True, slots=False)
class OrderFilled(OrderEvent):
    kind: ClassVar[str] = "order.filled"


@attrs.frozen(kw_only=True, slots=False)
class OrderCancelled(OrderEvent):
    kind: ClassVar[str] = "order.cancelled"


# -- wallet ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True, slots=False)
class BalanceChanged(Event):
    """``change`` is what the exchange sent, or the difference to the last value seen for the
    currency; ``None`` on first sight when the exchange does not send it."""

    kind: ClassVar[str] = "balance.changed"
    currency: str
    balance: Decimal
    change: Decimal | None = None
    reason: str | None = None


@attrs.frozen(kw_only=True, slots=False)
class FundsInsufficient(Event):
    kind: ClassVar[str] = "funds.insufficient"
    order_id: str
    currency: str


# -- market ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True, slots=False)
class Trade(Event):
    """``side`` is the taker's side where the exchange says it."""

    kind: ClassVar[str] = "trade"
    symbol: str
    price: Decimal
    amount: Decimal
    side: Side | None = None


@attrs.frozen(kw_only=True, slots=False)
class Book(Event):
    """Bids best (highest) first, asks best (lowest) first."""

    kind: ClassVar[str] = "book"
    symbol: str
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    best_bid: Decimal | None = None
    best_ask: Decimal | None = None
    spread: Decimal | None = None
    change_id: int | None = None


# -- the watching itself --------------------------------------------------------------------


@attrs.frozen(kw_only=True, slots=False)
class StreamEvent(Event):
    """What alertd saw of its own watching: ``stream`` is the stream it is about (``*``: the
    connection as a whole)."""

    stream: str


@attrs.frozen(kw_only=True, slots=False)
class StreamConnected(StreamEvent):
    """``downtime`` is seconds since the previous connection was lost (None on first connect)."""

    kind: ClassVar[str] = "stream.connected"
    reason: str | None = None
    downtime: float | None = None


@attrs.frozen(kw_only=True, slots=False)
class StreamDisconnected(StreamEvent):
    kind: ClassVar[str] = "stream.disconnected"
    reason: str


@attrs.frozen(kw_only=True)
class BalanceEvidence:
    """What a balance snapshot after a gap shows moved while alertd was blind (each one is
    also in a gap's ``evidence`` list; ``stream.gap.evidence`` events carry the same
    fields)."""

    currency: str
    before: Decimal | None
    after: Decimal

    @property
    def change(self) -> Decimal | None:
        return None if self.before is None else self.after - self.before


@attrs.frozen(kw_only=True, slots=False)
class StreamGap(StreamEvent):
    """Events may have been missed between ``since`` and ``until``. ``why`` is one of
    ``offline`` (connection was down), ``alertd stopped`` / ``alertd crashed`` (alertd itself
    was not running: ``down_for`` says how long), ``overflow`` (a queue was full),
    ``sequence`` (an exchange sequence number jumped)."""

    kind: ClassVar[str] = "stream.gap"
    since: datetime
    until: datetime
    why: str
    evidence: tuple[BalanceEvidence, ...] = ()
    down_for: float | None = None


@attrs.frozen(kw_only=True, slots=False)
class StreamGapEvidence(StreamEvent):
    """The first balance of ``currency`` after an offline gap (``since`` to ``until``, for
    ``why``) differs from the last one seen before it: it moved while alertd was blind."""

    kind: ClassVar[str] = "stream.gap.evidence"
    since: datetime
    until: datetime
    why: str
    currency: str
    before: Decimal
    after: Decimal
    change: Decimal


@attrs.frozen(kw_only=True, slots=False)
class StreamStale(StreamEvent):
    kind: ClassVar[str] = "stream.stale"
    silent_for: float


@attrs.frozen(kw_only=True, slots=False)
class StreamError(StreamEvent):
    kind: ClassVar[str] = "stream.error"
    reason: str
    excerpt: str = ""


EVENT_TYPES: tuple[type[Event], ...] = (
    OrderPlaced,
    OrderPartiallyFilled,
    OrderFilled,
    OrderCancelled,
    BalanceChanged,
    FundsInsufficient,
    Trade,
    Book,
    StreamConnected,
    StreamDisconnected,
    StreamGap,
    StreamGapEvidence,
    StreamStale,
    StreamError,
)
EVENT_KINDS: Mapping[str, type[Event]] = {cls.kind: cls for cls in EVENT_TYPES}

_FIELD_NAMES: dict[type[Event], tuple[str, ...]] = {
    cls: ("kind", *(a.name for a in attrs.fields(cls))) for cls in EVENT_TYPES
}


def field_names(kind: str) -> tuple[str, ...]:
    """The names an expression or template may use for events of ``kind``."""
    return _FIELD_NAMES[EVENT_KINDS[kind]]


def event_fields(event: Event) -> dict[str, Any]:
    """The flat mapping rule expressions and templates see (``kind`` included): the fields
    in their declared order, which is the order the instance dict holds them in."""
    return event_context(event, {})


def event_context(event: Event, names: Mapping[str, Any]) -> dict[str, Any]:
    """``names`` (the rules' globals), then ``event_fields(event)`` over them, in one copy."""
    return {**names, "kind": event.kind, **event.__dict__}


# -- alerts ---------------------------------------------------------------------------------

AlertStatus = Literal["firing", "resolved"]


@attrs.frozen(kw_only=True)
class Alert:
    """What the rules engine hands to dispatch.

    ``id`` is the idempotency key: deterministic from the rule, the key and what caused the
    alert, so the same cause seen twice (a replayed frame after a reconnect, a restart) is the
    same alert and is delivered once. ``key`` groups alerts of one rule (for example
    ``main/BTC_USDT``); ``labels`` are what silences and inhibitions match on. ``fields`` are
    the causing event's fields and what the rule type adds (``value``, ``threshold``,
    ``count``...), as JSON values: amounts as exact decimal strings, times in ISO 8601 UTC
    (for the structured webhook, which hands them to whatever routes or stores alerts).
    """

    id: str
    rule: str
    key: str
    status: AlertStatus = "firing"
    severity: str = "warning"
    title: str
    body: str
    channels: tuple[str, ...] = ()
    account: str | None = None
    event_kind: str | None = None
    labels: Mapping[str, str] = attrs.field(factory=dict)
    created: datetime
    fields: Mapping[str, Any] = attrs.field(factory=dict, eq=False)


SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}


def highest_severity(severities: Iterable[str]) -> str:
    """The most severe of ``severities`` (what a grouped message or digest is shown as)."""
    return max(severities, key=lambda s: SEVERITY_ORDER.get(s, 1), default="warning")
