"""The text of one alert: its title and body from the rule's templates, or alertd's default
text when the rule gives none, with a fallback that names the error when a template fails at
render time (the alert still goes out). A resolved alert uses the rule's
``resolved_message``. The rules engine builds the context and calls ``alert_text``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import jinja2

from alertd.events import AlertStatus
from alertd.messages import stream
from alertd.messages.formats import bps, dec

log = logging.getLogger(__name__)

# The fields the default body lists, in this order, when the event has them.
BODY_FIELDS = (
    "exchange", "account", "order_id", "client_order_id", "symbol", "currency", "side",
    "price", "amount", "filled", "remaining", "fill_price", "notional", "slippage",
    "balance", "change", "reason", "stream", "why",
)  # fmt: skip


class RuleTemplates(Protocol):
    """A rule's name and its compiled message templates, None where the rule has none (the
    engine's ``CompiledRule`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def title(self) -> jinja2.Template | None: ...
    @property
    def message(self) -> jinja2.Template | None: ...
    @property
    def resolved_message(self) -> jinja2.Template | None: ...
    @property
    def resolved_title(self) -> jinja2.Template | None: ...


def _text(value: Any) -> str:
    if isinstance(value, Decimal):
        return dec(value)
    return str(value)


def summary(ctx: Mapping[str, Any]) -> str:
    """One line describing the event, e.g. ``order.filled BTC_USDT buy 0.5 @ 4003.9``."""
    kind = ctx.get("kind") or "-"
    parts = [kind]
    if kind.startswith("order."):
        price = ctx.get("fill_price") or ctx.get("price")
        amount = ctx.get("amount")
        if kind == "order.partially_filled" and ctx.get("filled") is not None:
            amount = ctx.get("filled")
        parts += [ctx.get("symbol"), ctx.get("side")]
        if amount is not None:
            parts.append(_text(amount) + (f" @ {_text(price)}" if price is not None else ""))
        if kind == "order.partially_filled" and ctx.get("amount") is not None:
            parts.append(f"of {_text(ctx['amount'])}")
    elif kind == "balance.changed":
        parts += [ctx.get("currency"), _text(ctx.get("balance"))]
        if ctx.get("change") is not None:
            change = ctx["change"]
            parts.append(f"({'+' if change >= 0 else ''}{_text(change)})")
    elif kind == "funds.insufficient":
        parts += [ctx.get("currency"), f"order {ctx.get('order_id')}"]
    elif kind == "trade":
        parts += [ctx.get("symbol"), ctx.get("side"), f"{_text(ctx.get('amount'))}"]
        parts.append(f"@ {_text(ctx.get('price'))}")
    elif kind == "book":
        parts += [ctx.get("symbol"), f"bid {_text(ctx.get('best_bid'))}"]
        parts.append(f"ask {_text(ctx.get('best_ask'))}")
    elif kind.startswith("stream."):
        return stream.headline(ctx)  # in words, not field names
    return " ".join(str(p) for p in parts if p is not None)


def default_body(
    ctx: Mapping[str, Any],
    skip: frozenset[str] = frozenset(),
    *,
    localtime: Callable[[datetime], str] = datetime.isoformat,
) -> str:
    """The body of an alert whose rule has no ``message``: the rule, then each known field;
    ``localtime`` shows a time in the display zone, with the zone named (the template
    helper of the same name). Slippage reads in basis points, not as a raw fraction."""
    lines = [f"rule: {ctx.get('rule')} ({ctx.get('type')}), key {ctx.get('key')}"]
    if str(ctx.get("kind")).startswith("stream."):  # what happened first; no "stream: *"
        lines.insert(0, stream.sentence(ctx))
        skip = skip | ({"stream"} if ctx.get("stream") == stream.CONNECTION else set())
    for name in BODY_FIELDS:
        value = ctx.get(name)
        if value is not None and name not in skip:
            text = bps(value) if name == "slippage" else _text(value)
            lines.append(f"{name}: {text}")
    for name in ("time", "order_time"):
        when = ctx.get(name)
        if isinstance(when, datetime):
            lines.append(f"{name}: {localtime(when)}")
    return "\n".join(lines)


def render(
    rule: str, field: str, template: jinja2.Template | None, ctx: Mapping[str, Any]
) -> tuple[str | None, str | None]:
    """(text, None) or, when the template fails now, (None, error description)."""
    if template is None:
        return None, None
    try:
        return template.render(ctx).strip(), None
    except Exception as exc:  # a user's template: anything can fail (1/0, None + 1)
        log.warning(
            "engine.template_error rule=%s field=%s error=%s: %s",
            rule,
            field,
            type(exc).__name__,
            exc,
        )
        return None, f"{type(exc).__name__}: {exc}"


def alert_text(
    rule: RuleTemplates,
    status: AlertStatus,
    ctx: Mapping[str, Any],
    *,
    default_title: str,
    default_text: str,
) -> tuple[str, str]:
    """Title and body of ``rule``'s alert in ``status``; ``ctx`` is what templates see. A
    template that fails falls back to the default text, with a first line that says so.

    A resolution is titled by the rule's ``resolved_title``; without one, by its ``title``
    with ``RESOLVED`` before it unless it says so (so it never reads as the alert it
    ends), else by ``default_title`` (which says resolved already)."""
    resolved = status == "resolved"
    body_field = "resolved_message" if resolved else "message"
    if resolved and rule.resolved_title is not None:
        title, title_err = render(rule.name, "resolved_title", rule.resolved_title, ctx)
    else:
        title, title_err = render(rule.name, "title", rule.title, ctx)
        if resolved and title is not None and "resolved" not in title.lower():
            title = f"RESOLVED {title}"
    body_template = rule.resolved_message if resolved else rule.message
    body, body_err = render(rule.name, body_field, body_template, ctx)
    if title is None:
        title = default_title
    if body is None:
        body = default_text
        if body_err is not None or title_err is not None:
            body = (
                f"(alertd: the rule's template failed: {body_err or title_err}; "
                f"default text follows)\n{default_text}"
            )
    elif title_err is not None:
        body = f"(alertd: the rule's title template failed: {title_err})\n{body}"
    return title, body
