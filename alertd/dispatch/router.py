"""Which channels an alert goes to: the ones it names (its rule's ``notify``), else
``dispatch.default_channel``. Unknown names are reported, and replaced by the default channel
so that a typo does not make an alert vanish. And the outbox rows one message to a channel
becomes: one per URL."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from alertd.config.model import ChannelSettings, Config
from alertd.events import Alert
from alertd.store.outbox import Notification, notification_key


@attrs.frozen(kw_only=True)
class Route:
    channels: tuple[str, ...]
    unknown: tuple[str, ...] = ()


def route(alert: Alert, config: Config) -> Route:
    named = list(alert.channels)
    if not named:
        rule = next((r for r in config.rules if r.name == alert.rule), None)
        named = list(rule.notify) if rule is not None else []
    known = [c for c in named if c in config.channels]
    unknown = tuple(c for c in named if c not in config.channels)
    default = config.dispatch.default_channel
    if not known and default is not None and default in config.channels:
        known = [default]
    return Route(channels=tuple(dict.fromkeys(known)), unknown=unknown)


def rows_for(
    channel: str,
    settings: ChannelSettings,
    *,
    title: str,
    body: str,
    alert_ids: Sequence[str],
    created: float,
    severity: str,
    not_before: float | None = None,
) -> list[Notification]:
    """One outbox row per URL of ``channel``, each keyed by the channel, the URL and
    ``alert_ids``: the same alerts queued twice to one URL are one row."""
    ids = tuple(alert_ids)
    return [
        Notification(
            key=notification_key(channel, index, ids),
            channel=channel,
            url_index=index,
            title=title,
            body=body,
            alert_ids=ids,
            created=created,
            not_before=not_before,
            severity=severity,
        )
        for index in range(len(settings.urls))
    ]
