"""A deterministic, protocol-neutral market and account: the world the simulator streams.

``Activity.step()`` performs one random action (a trade, a book change, an order placed,
partially filled, filled or cancelled, a deposit or withdrawal, an order refused for lack of
funds) and returns the facts it produced. ``frames`` renders facts into each exchange's
frames. Pure and synchronous: the same seed gives the same facts, so tests can compare runs.

Amounts are ``Decimal`` throughout; times are integer microseconds since the Unix epoch, taken
from a virtual schedule (``advance``), never from a clock, so that they are reproducible.
"""

from __future__ import annotations

import random
from decimal import ROUND_DOWN, Decimal
from typing import Literal

import attrs

Side = Literal["buy", "sell"]
OrderState = Literal["placed", "partial", "filled", "cancelled"]

SATOSHI = Decimal("0.00000001")  # balances and volumes carry 8 decimals, as in the Piexgo doc
CENT = Decimal("0.01")  # price tick of every simulated market
BOOK_LEVELS = 5  # the Piexgo doc shows five levels a side
MAX_OPEN_ORDERS = 4  # enough for interleaved lifecycles, few enough that orders finish soon


@attrs.frozen(kw_only=True)
class Market:
    """A trading pair: ``symbol`` in the normalized form ``BASE_QUOTE``."""

    symbol: str
    base: str
    quote: str
    start_price: Decimal
    min_qty: Decimal  # smallest order or deal size
    max_qty: Decimal  # largest ordinary order size


@attrs.frozen(kw_only=True)
class Timed:
    """What every fact (and each deal of a trade) carries: when it happened, in microseconds
    of the virtual schedule."""

    at_us: int


@attrs.frozen(kw_only=True)
class OrderFact(Timed):
    """An order changed. ``remaining`` is what is left to fill; ``filled_quote`` is the quote
    value executed so far and ``avg_price`` its average price (0 before any fill)."""

    order_id: int
    client_order_id: int
    symbol: str
    side: Side
    price: Decimal
    volume: Decimal
    remaining: Decimal
    filled_quote: Decimal
    avg_price: Decimal
    created_us: int
    state: OrderState
    closed_inline: bool = False


@attrs.frozen(kw_only=True)
class BalanceFact(Timed):
    """A balance moved to ``balance`` (by ``change``); ``seq`` increases with every change."""

    currency: str
    balance: Decimal
    change: Decimal
    reason: str
    seq: int


@attrs.frozen(kw_only=True)
class InsufficientFundsFact(Timed):
    """An order was refused: the account lacks ``currency``."""

    order_id: int
    client_order_id: int
    symbol: str
    currency: str


@attrs.frozen(kw_only=True)
class Deal(Timed):
    taker_side: Side
    price: Decimal
    amount: Decimal


@attrs.frozen(kw_only=True)
class TradeFact(Timed):
    """One or more public deals on ``symbol``."""

    symbol: str
    deals: tuple[Deal, ...]


@attrs.frozen(kw_only=True)
class BookFact(Timed):
    """The aggregated book of ``symbol``: bids best (highest) first, asks best (lowest) first.
    Either side may be empty."""

    symbol: str
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    change_id: int


Fact = OrderFact | BalanceFact | InsufficientFundsFact | TradeFact | BookFact


@attrs.define
class _Order:
    order_id: int
    client_order_id: int
    market: Market
    side: Side
    price: Decimal
    volume: Decimal
    remaining: Decimal
    created_us: int
    filled_qty: Decimal = Decimal(0)
    filled_quote: Decimal = Decimal(0)

    def reserved(self) -> tuple[str, Decimal]:
        """The currency and amount this order holds back from the free balance."""
        if self.side == "buy":
            return self.market.quote, (self.remaining * self.price).quantize(SATOSHI)
        return self.market.base, self.remaining

    def avg_price(self) -> Decimal:
        if not self.filled_qty:
            return Decimal(0)
        return (self.filled_quote / self.filled_qty).quantize(CENT)


# Order sizes by coin, the same on both exchanges: (smallest order or deal, largest ordinary).
_LOT_LIMITS = {"BTC": (Decimal("0.001"), Decimal("0.25")), "ETH": (Decimal("0.01"), Decimal("3"))}


def _markets(quote: str, start_prices: dict[str, str]) -> tuple[Market, ...]:
    """One market per coin of ``start_prices`` (base -> start price) against ``quote``."""
    return tuple(
        Market(
            symbol=f"{base}_{quote}",
            base=base,
            quote=quote,
            start_price=Decimal(price),
            min_qty=_LOT_LIMITS[base][0],
            max_qty=_LOT_LIMITS[base][1],
        )
        for base, price in start_prices.items()
    )


PIEXGO_MARKETS = _markets("USDT", {"BTC": "42150.00", "ETH": "2285.00"})
CRYPTOLOGY_MARKETS = _markets("USD", {"BTC": "42120.00", "ETH": "2283.50"})


@attrs.define
class Activity:
    """One exchange's world. Only ``step``, ``flood_step``, ``advance`` and
    ``balance_snapshot`` are meant to be called; everything else is its state."""

    rng: random.Random
    markets: tuple[Market, ...]
    now_us: int
    balances: dict[str, Decimal]
    # Cryptology reports refused orders (InsufficientFunds) and may fill an order on
    # placement (closed_inline); Piexgo's document has neither, so its world never does.
    refusals: bool
    inline_fills: bool
    empty_books: bool
    mids: dict[str, Decimal] = attrs.field(factory=dict)
    orders: dict[int, _Order] = attrs.field(factory=dict)
    balance_seq: dict[str, int] = attrs.field(factory=dict)
    next_order_id: int = 0
    next_client_order_id: int = 0
    next_balance_seq: int = 0
    change_id: dict[str, int] = attrs.field(factory=dict)

    @classmethod
    def for_exchange(cls, exchange: str, *, seed: int, start_us: int) -> Activity:
        """The world of ``exchange`` ("piexgo" or "cryptology") for ``seed``."""
        # A string seed is hashed with SHA-512 by random.Random: stable across runs and
        # versions, and different per exchange so the two worlds do not mirror each other.
        rng = random.Random(f"alertd-simulator:{exchange}:{seed}")
        if exchange == "piexgo":
            markets, quote = PIEXGO_MARKETS, "USDT"
            first_order, first_balance = rng.randrange(10**18, 2 * 10**18), 10_000_000
            refusals = inline = empty = False
        elif exchange == "cryptology":
            markets, quote = CRYPTOLOGY_MARKETS, "USD"
            first_order, first_balance = rng.randrange(100_000, 900_000), 1
            refusals = inline = empty = True
        else:
            raise ValueError(f"unknown exchange {exchange!r} (use piexgo or cryptology)")
        world = cls(
            rng=rng,
            markets=markets,
            now_us=start_us,
            balances={"BTC": Decimal("1.5"), "ETH": Decimal("20"), quote: Decimal("50000")},
            refusals=refusals,
            inline_fills=inline,
            empty_books=empty,
            next_order_id=first_order,
            next_client_order_id=rng.randrange(1000, 9000),
            next_balance_seq=first_balance + rng.randrange(1_000_000),
        )
        for m in markets:
            world.mids[m.symbol] = m.start_price
            world.change_id[m.symbol] = rng.randrange(10_000, 40_000)
        for currency in world.balances:
            world.balance_seq[currency] = world._take_balance_seq()
        return world

    # --- schedule -------------------------------------------------------------------------

    def advance(self, dt_us: int) -> None:
        """Move the world's clock forward (the caller sleeps the same amount)."""
        self.now_us += max(1, dt_us)

    def balance_snapshot(self) -> list[BalanceFact]:
        """Every balance as it stands, with the sequence number of its last change."""
        return [
            BalanceFact(
                at_us=self.now_us,
                currency=c,
                balance=v,
                change=Decimal(0),
                reason="snapshot",
                seq=self.balance_seq[c],
            )
            for c, v in sorted(self.balances.items())
        ]

    # --- actions --------------------------------------------------------------------------

    def step(self) -> list[Fact]:
        """One ordinary action, chosen at random with weights that look like a quiet market
        with an active account."""
        r = self.rng.random()
        if r < 0.27:
            return self._trade()
        if r < 0.47:
            return self._book()
        if r < 0.64 or not self.orders:
            return self._place()
        if r < 0.95:
            return self._work_order()
        return self._transfer()

    def flood_step(self) -> list[Fact]:
        """One action for a benchmark flood: account and trade traffic only, no books."""
        r = self.rng.random()
        if r < 0.4:
            return self._trade()
        if r < 0.65 or not self.orders:
            return self._place()
        return self._work_order()

    def _market(self) -> Market:
        return self.rng.choice(self.markets)

    def _qty(self, m: Market) -> Decimal:
        steps = int(m.max_qty / m.min_qty)
        return m.min_qty * self.rng.randint(1, steps)

    def _take_balance_seq(self) -> int:
        self.next_balance_seq += self.rng.randint(1, 37)
        return self.next_balance_seq

    def _trade(self) -> list[Fact]:
        m = self._market()
        mid = self.mids[m.symbol]
        # a random walk of at most 0.05 % a step keeps prices plausible over hours
        move = (mid * Decimal(self.rng.randint(-50, 50)) / Decimal(100_000)).quantize(CENT)
        mid = max(CENT, mid + move)
        self.mids[m.symbol] = mid
        deals = []
        for i in range(self.rng.randint(1, 3)):
            side: Side = "buy" if self.rng.random() < 0.5 else "sell"
            offset = CENT * self.rng.randint(0, 20)
            price = mid + offset if side == "buy" else max(CENT, mid - offset)
            deals.append(
                Deal(
                    at_us=self.now_us + i * 1000,
                    taker_side=side,
                    price=price,
                    amount=self._qty(m) / 2,
                )
            )
        return [TradeFact(at_us=self.now_us, symbol=m.symbol, deals=tuple(deals))]

    def _book(self) -> list[Fact]:
        m = self._market()
        mid = self.mids[m.symbol]
        self.change_id[m.symbol] += self.rng.randint(1, 40)
        half_spread = CENT * self.rng.randint(1, 8)

        def side(start: Decimal, sign: int) -> tuple[tuple[Decimal, Decimal], ...]:
            if self.empty_books and self.rng.random() < 0.04:
                return ()
            levels, price = [], start
            for _ in range(BOOK_LEVELS):
                qty = (m.min_qty * self.rng.randint(1, 400) / 2).quantize(Decimal("0.0001"))
                levels.append((price, qty))
                price = max(CENT, price + sign * CENT * self.rng.randint(1, 30))
            return tuple(levels)

        return [
            BookFact(
                at_us=self.now_us,
                symbol=m.symbol,
                bids=side(max(CENT, mid - half_spread), -1),
                asks=side(mid + half_spread, +1),
                change_id=self.change_id[m.symbol],
            )
        ]

    def _free(self, currency: str) -> Decimal:
        held = sum(
            (amt for c, amt in (o.reserved() for o in self.orders.values()) if c == currency),
            Decimal(0),
        )
        return self.balances[currency] - held

    def _place(self) -> list[Fact]:
        if len(self.orders) >= MAX_OPEN_ORDERS:
            return self._work_order()
        m = self._market()
        side: Side = "buy" if self.rng.random() < 0.5 else "sell"
        mid = self.mids[m.symbol]
        offset = (mid * Decimal(self.rng.randint(1, 30)) / Decimal(10_000)).quantize(CENT)
        price = max(CENT, mid - offset) if side == "buy" else mid + offset
        volume = self._qty(m)
        if self.refusals and self.rng.random() < 0.1:
            volume *= 80  # a fat finger, so that InsufficientFunds shows up now and then
        order_id, client_id = self._take_order_ids()
        currency, needed = (
            (m.quote, (volume * price).quantize(SATOSHI)) if side == "buy" else (m.base, volume)
        )
        if needed > self._free(currency):
            if self.refusals:
                return [
                    InsufficientFundsFact(
                        at_us=self.now_us,
                        order_id=order_id,
                        client_order_id=client_id,
                        symbol=m.symbol,
                        currency=currency,
                    )
                ]
            return self._trade()  # Piexgo has no refusal message: the order simply never was
        order = _Order(
            order_id=order_id,
            client_order_id=client_id,
            market=m,
            side=side,
            price=price,
            volume=volume,
            remaining=volume,
            created_us=self.now_us,
        )
        if self.inline_fills and self.rng.random() < 0.15:
            balances = self._fill(order, order.remaining)
            return [self._order_fact(order, "filled", closed_inline=True), *balances]
        self.orders[order_id] = order
        return [self._order_fact(order, "placed")]

    def _take_order_ids(self) -> tuple[int, int]:
        self.next_order_id += self.rng.randint(1, 5000)
        self.next_client_order_id += 1
        return self.next_order_id, self.next_client_order_id

    def _work_order(self) -> list[Fact]:
        if not self.orders:
            return self._trade()
        order = self.orders[self.rng.choice(sorted(self.orders))]
        r = self.rng.random()
        if r < 0.2:
            del self.orders[order.order_id]
            return [self._order_fact(order, "cancelled")]
        if r < 0.55:
            qty = order.remaining
        else:
            fraction = Decimal(self.rng.randint(10, 60)) / 100
            qty = (order.remaining * fraction).quantize(order.market.min_qty, ROUND_DOWN)
            if qty <= 0 or qty >= order.remaining:
                qty = order.remaining
        balances = self._fill(order, qty)
        if order.remaining == 0:
            del self.orders[order.order_id]
            return [self._order_fact(order, "filled"), *balances]
        return [self._order_fact(order, "partial"), *balances]

    def _fill(self, order: _Order, qty: Decimal) -> list[Fact]:
        """Execute ``qty`` of ``order`` at its limit or slightly better; move both balances."""
        improvement = CENT * self.rng.randint(0, 5)
        if order.side == "buy":
            fill_price = max(CENT, order.price - improvement)
        else:
            fill_price = order.price + improvement
        quote_value = (qty * fill_price).quantize(SATOSHI)
        order.remaining -= qty
        order.filled_qty += qty
        order.filled_quote += quote_value
        m = order.market
        if order.side == "buy":
            changes = [(m.base, qty), (m.quote, -quote_value)]
        else:
            changes = [(m.base, -qty), (m.quote, quote_value)]
        return [self._move(currency, change, "trade") for currency, change in changes]

    def _move(self, currency: str, change: Decimal, reason: str) -> BalanceFact:
        self.balances[currency] += change
        self.balance_seq[currency] = self._take_balance_seq()
        return BalanceFact(
            at_us=self.now_us,
            currency=currency,
            balance=self.balances[currency],
            change=change,
            reason=reason,
            seq=self.balance_seq[currency],
        )

    def _transfer(self) -> list[Fact]:
        currency = self.rng.choice(sorted(self.balances))
        unit = Decimal("100") if currency in ("USD", "USDT") else Decimal("0.05")
        amount = unit * self.rng.randint(1, 20)
        if self.rng.random() < 0.5 and self._free(currency) >= amount:
            return [self._move(currency, -amount, "withdrawal")]
        return [self._move(currency, amount, "deposit")]

    def _order_fact(self, order: _Order, state: OrderState, *, closed_inline: bool = False) -> Fact:
        return OrderFact(
            at_us=self.now_us,
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            symbol=order.market.symbol,
            side=order.side,
            price=order.price,
            volume=order.volume,
            remaining=order.remaining,
            filled_quote=order.filled_quote,
            avg_price=order.avg_price(),
            created_us=order.created_us,
            state=state,
            closed_inline=closed_inline,
        )
