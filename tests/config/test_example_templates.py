"""Every rule template a user copies (config.example.toml, the demo's config, the README's
examples) reads sensibly on both exchanges: rendered by the real engine over events decoded
from frames of each exchange, no text shows ``None``, an exponent or a raw long fraction."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from alertd.check import load_config, parse_config
from alertd.config.model import Config
from alertd.config.secrets import SecretEnvironment
from alertd.engine import Engine, compile_rules
from alertd.engine.expressions import compile_template, environment
from alertd.events import Alert, Event, OrderEvent
from alertd.protocols import decoder_for

from .conftest import EXAMPLE, REPO

DEMO = REPO / "alertd" / "commands" / "demo.toml"
README = REPO / "README.md"
T0 = datetime(2026, 12, 1, 17, 52, 11, tzinfo=UTC)

_NONE = re.compile(r"\bNone\b")
_EXPONENT = re.compile(r"\d[eE][+-]?\d")
_RAW_FRACTION = re.compile(r"\d\.\d{9,}")  # -0.0000175191944674: a ratio nobody can read


def _piexgo_frames() -> Iterator[str]:
    order = {
        "order_price": "46301.2500000000",
        "price": "46294.88",
        "stop": "0",
        "market_price": "0",
        "volume": "0.25000000",
        "amount": "11573.72000000",
        "type": "buy",
        "timestamp": int(T0.timestamp()) - 3600,
        "order_id": "1136203593297424385",
        "market": "BTC_USDT",
        "flag": 0,
        "id": 1,
    }
    for status, remain in ((0, "0.25000000"), (0, "0.10000000"), (2, "0.00000000")):
        data = {**order, "status": status, "remain": remain}
        yield json.dumps({"topic": "pinfo", "type": "order", "data": data})
    for value in ("100000.12345678", "12.5", "100000.5"):
        yield json.dumps(
            {"topic": "pinfo", "type": "balance", "data": {"token": "USDT", "value": value}}
        )


def _cryptology_frames() -> Iterator[str]:
    when = [int(T0.timestamp()), 250_000]
    base = {"order_id": 7, "trade_pair": "BTC_USD", "time": when, "client_order_id": 12}
    yield json.dumps(
        {**base, "@type": "BuyOrderPlaced", "amount": "0.25", "price": "46301.25"}
        | {"closed_inline": False}
    )
    yield json.dumps({**base, "@type": "BuyOrderAmountChanged", "amount": "0.1"})
    yield json.dumps({**base, "@type": "BuyOrderClosed"})
    for balance in ("100000.12345678", "12.5", "100000.5"):
        for currency in ("USD", "USDT"):
            yield json.dumps(
                {
                    "@type": "SetBalance",
                    "balance": balance,
                    "change": "1",
                    "currency": currency,
                    "reason": "trade",
                    "time": when,
                }
            )
    for order_id in range(10):
        yield json.dumps({"@type": "InsufficientFunds", "order_id": order_id, "currency": "USD"})


def _events(config: Config) -> list[Event]:
    events: list[Event] = []
    for account in config.accounts:
        frames = _piexgo_frames() if account.exchange == "piexgo" else _cryptology_frames()
        decoder = decoder_for(account.exchange, account.name)
        for i, frame in enumerate(frames):
            events += decoder.decode(frame, T0 + timedelta(seconds=i))
    return events


def _alerts(config: Config) -> list[Alert]:
    """What the engine makes of both exchanges' events, timers run out a day later."""
    now = [0.0]

    def wall() -> datetime:
        return T0 + timedelta(seconds=now[0])

    rules = compile_rules(list(config.rules), timezone=config.daemon.timezone)
    engine = Engine(rules, wall=wall, accounts=tuple(a.name for a in config.accounts))
    engine.start(0.0)
    alerts: list[Alert] = []
    for i, event in enumerate(_events(config)):
        now[0] = float(i)
        alerts += engine.process(event, now[0])
    for step in range(1, 49):
        now[0] = step * 1800.0
        alerts += engine.advance(now[0])
    return alerts


def _readme_configs(secrets: SecretEnvironment) -> Iterator[tuple[str, Config]]:
    """Each README ``toml`` block of rules, in a config with one account of each exchange."""
    header = """
[[accounts]]
name = "main"
exchange = "piexgo"
url = "wss://example.invalid/ws"
streams = ["pinfo"]

[[accounts]]
name = "hedge"
exchange = "piexgo"
url = "wss://example.invalid/ws"
streams = ["pinfo"]

[[accounts]]
name = "desk"
exchange = "cryptology"
url = "wss://example.invalid/v1/connect"

[channels.me]
urls = ["json://localhost/"]
"""
    text = README.read_text()
    for n, block in enumerate(re.findall(r"```toml\n(.*?)```", text, re.S)):
        if "[[rules]]" not in block or "[[accounts]]" in block or "[channels" in block:
            continue
        config, problems = parse_config(header + block, secrets=secrets)
        assert config is not None, f"README toml block {n}: {[str(p) for p in problems]}"
        yield f"README block {n}", config


def _configs(secrets: SecretEnvironment) -> Iterator[tuple[str, Config]]:
    yield "config.example.toml", load_config(EXAMPLE, secrets=secrets)
    yield "demo.toml", load_config(DEMO, secrets=secrets)
    yield from _readme_configs(secrets)


def test_every_example_template_reads_sensibly_on_both_exchanges(
    secrets: SecretEnvironment,
) -> None:
    """No title or body of an example rule shows None, an exponent or a raw long fraction,
    and fills of both exchanges did render (so the check saw what it claims to)."""
    bad: list[str] = []
    filled_on: set[str] = set()
    for where, config in _configs(secrets):
        exchange_of = {a.name: a.exchange for a in config.accounts}
        for alert in _alerts(config):
            for text in (alert.title, alert.body):
                for pattern in (_NONE, _EXPONENT, _RAW_FRACTION):
                    if pattern.search(text):
                        bad.append(f"{where}, rule {alert.rule}: {text!r}")
            if alert.event_kind == "order.filled" and alert.account:
                filled_on.add(exchange_of[alert.account])
    assert bad == []
    assert filled_on == {"piexgo", "cryptology"}


@pytest.mark.parametrize(
    ("template", "text"),
    [
        ("{{ slippage | bps }}", "-1.4 bp"),
        ("{{ slippage | pct }}", "-0.01%"),
        ("{{ notional | num(2) }}", "11,573.72"),
    ],
)
def test_the_helpers_read_a_piexgo_fill(template: str, text: str) -> None:
    """The percent, basis-point and thousands helpers read a Piexgo fill at 46,294.88 under a
    46,301.25 limit (6.37 better: 0.0138%, 1.4 bp) as a person writes it."""
    decoder = decoder_for("piexgo", "main")
    frames = list(_piexgo_frames())
    decoder.decode(frames[0], T0)
    decoder.decode(frames[1], T0)
    [fill] = decoder.decode(frames[2], T0)
    assert isinstance(fill, OrderEvent)
    fields = {"slippage": fill.slippage, "notional": fill.notional}
    compiled = compile_template(environment("UTC"), template, fields)
    assert compiled.render(fields) == text
