"""From a rule's decision to an ``Alert``: idempotency id, key, labels, and title/body
rendered from the rule's templates, or a default text when the rule gives none. A template
that fails at render time still yields the alert, with a fallback body naming the error."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import jinja2

from alertd.engine.compile import CompiledRule
from alertd.engine.expressions import dec, duration
from alertd.events import Alert, AlertStatus, Event, event_fields

log = logging.getLogger(__name__)

LABEL_FIELDS = ("account", "symbol", "currency", "side", "kind")
# Fields that identify an event and not the moment alertd saw it: a frame replayed after a
# reconnect has a new ``received`` but is the same cause, hence the same alert id.
_NOT_IDENTITY = frozenset({"raw", "received"})


def event_identity(event: Event) -> str:
    parts = []
    for name, value in event_fields(event).items():
        if name not in _NOT_IDENTITY:
            text = value.isoformat() if isinstance(value, datetime) else value
            parts.append(f"{name}={text}")
    return "|".join(parts)


def timer_identity(tag: str, deadline_epoch: float) -> str:
    return f"timer:{tag}@{deadline_epoch:.3f}"


def alert_id(rule: str, key: str, status: str, cause: str) -> str:
    text = "\x00".join((rule, key, status, cause))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _text(value: Any) -> str:
    if isinstance(value, Decimal):
        return dec(value)
    return str(value)


def labels_of(rule: CompiledRule, ctx: Mapping[str, Any]) -> dict[str, str]:
    labels = {"rule": rule.name, "severity": rule.settings.severity}
    for name in LABEL_FIELDS:
        value = ctx.get(name)
        if value is not None:
            labels[name] = str(value)
    return labels


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
        parts.append(ctx.get("stream"))
        for name in ("reason", "why"):
            if ctx.get(name):
                parts.append(f"({ctx[name]})")
        if ctx.get("silent_for") is not None and kind == "stream.stale":
            parts.append(f"silent {duration(ctx['silent_for'])}")
    return " ".join(str(p) for p in parts if p is not None)


def default_body(ctx: Mapping[str, Any], skip: frozenset[str] = frozenset()) -> str:
    lines = [f"rule: {ctx.get('rule')} ({ctx.get('type')}), key {ctx.get('key')}"]
    for name in ("exchange", "account", "order_id", "client_order_id", "symbol", "currency",
                 "side", "price", "amount", "filled", "remaining", "fill_price", "notional",
                 "slippage", "balance", "change", "reason", "stream", "why"):  # fmt: skip
        value = ctx.get(name)
        if value is not None and name not in skip:
            lines.append(f"{name}: {_text(value)}")
    when = ctx.get("time")
    if isinstance(when, datetime):
        lines.append(f"time: {when.isoformat()}")
    return "\n".join(lines)


def render(
    rule: CompiledRule, field: str, template: jinja2.Template | None, ctx: Mapping[str, Any]
) -> tuple[str | None, str | None]:
    """(text, None) or, when the template fails now, (None, error description)."""
    if template is None:
        return None, None
    try:
        return template.render(ctx).strip(), None
    except Exception as exc:  # a user's template: anything can fail (1/0, None + 1)
        log.warning(
            "engine.template_error rule=%s field=%s error=%s: %s",
            rule.name,
            field,
            type(exc).__name__,
            exc,
        )
        return None, f"{type(exc).__name__}: {exc}"


def build_alert(
    rule: CompiledRule,
    *,
    key: str,
    status: AlertStatus,
    ctx: Mapping[str, Any],
    cause: str,
    created: datetime,
    default_title: str,
    default_text: str,
) -> Alert:
    """The alert for ``rule``/``key`` in ``status``; ``ctx`` is what templates see."""
    settings = rule.settings
    title_t = rule.title
    body_t = rule.resolved_message if status == "resolved" else rule.message
    title, title_err = render(rule, "title", title_t, ctx)
    body, body_err = render(
        rule, "resolved_message" if status == "resolved" else "message", body_t, ctx
    )
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
    return Alert(
        id=alert_id(rule.name, key, status, cause),
        rule=rule.name,
        key=key,
        status=status,
        severity=settings.severity,
        title=title,
        body=body,
        channels=tuple(settings.notify),
        account=ctx.get("account"),
        event_kind=ctx.get("kind"),
        labels=labels_of(rule, ctx),
        created=created,
    )
