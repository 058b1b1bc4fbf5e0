"""From a rule's decision to an ``Alert``: its idempotency id, key and labels. The text comes
from ``alertd.messages.alert`` (templates, default text, the fallback when a template fails).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from alertd.engine.compile import CompiledRule
from alertd.events import Alert, AlertStatus, Event, event_fields
from alertd.messages.alert import alert_text

# Re-exported: the rule types compose their default texts from these.
from alertd.messages.alert import default_body as default_body  # noqa: PLC0414
from alertd.messages.alert import summary as summary  # noqa: PLC0414

LABEL_FIELDS = ("account", "symbol", "currency", "side", "kind")


def event_identity(event: Event) -> str:
    """The cause an event gives its alerts: its fields but those that only say when alertd saw
    it (``Event.not_identity``), so a frame seen again after a reconnect, or by a second
    replica, is the same cause, hence the same alert id."""
    parts = []
    skip = event.not_identity
    for name, value in event_fields(event).items():
        if name not in skip:
            text = value.isoformat() if isinstance(value, datetime) else value
            parts.append(f"{name}={text}")
    return "|".join(parts)


def timer_identity(tag: str, deadline_epoch: float) -> str:
    return f"timer:{tag}@{deadline_epoch:.3f}"


def alert_id(rule: str, key: str, status: str, cause: str) -> str:
    text = "\x00".join((rule, key, status, cause))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def labels_of(rule: CompiledRule, ctx: Mapping[str, Any]) -> dict[str, str]:
    labels = {"rule": rule.name, "severity": rule.settings.severity}
    for name in LABEL_FIELDS:
        value = ctx.get(name)
        if value is not None:
            labels[name] = str(value)
    return labels


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
    title, body = alert_text(
        rule, status, ctx, default_title=default_title, default_text=default_text
    )
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
        fields=json_fields(ctx, rule.globals),
    )


# What a template context holds besides the event's and the rule type's values.
_NOT_FIELDS = frozenset({"raw", "rule", "key", "status", "severity", "type", "now"})


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    if attrs.has(type(value)):
        return {k: _json_value(v) for k, v in attrs.asdict(value, recurse=False).items()}
    return str(value)


def json_fields(ctx: Mapping[str, Any], helpers: Mapping[str, Any]) -> dict[str, Any]:
    """The data of a template context (the event's fields, the rule type's values) as JSON
    values, without the template helpers and what the alert says elsewhere."""
    return {
        name: _json_value(ctx[name])
        for name in sorted(ctx)
        if name not in _NOT_FIELDS and name not in helpers and not callable(ctx[name])
    }
