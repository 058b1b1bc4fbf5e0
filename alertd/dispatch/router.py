"""Which channels an alert goes to: the ones it names (its rule's ``notify``), else
``dispatch.default_channel``. Unknown names are reported, and replaced by the default channel
so that a typo does not make an alert vanish."""

from __future__ import annotations

import attrs

from alertd.config.model import Config
from alertd.events import Alert


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
