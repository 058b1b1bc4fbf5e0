"""The labels silences and inhibitions match on: the alert's own ``labels`` plus what every
alert has (``rule``, ``key``, ``severity``, ``status``, ``account``, ``kind``)."""

from __future__ import annotations

from fnmatch import fnmatchcase

from alertd.events import Alert


def alert_labels(alert: Alert) -> dict[str, str]:
    out = {
        "rule": alert.rule,
        "key": alert.key,
        "severity": alert.severity,
        "status": alert.status,
    }
    if alert.account is not None:
        out["account"] = alert.account
    if alert.event_kind is not None:
        out["kind"] = alert.event_kind
    out.update({str(k): str(v) for k, v in alert.labels.items()})
    return out


def glob_match(pattern: str, value: str) -> bool:
    """Shell-style glob, case-sensitive ("order.*", "price-?")."""
    return fnmatchcase(value, pattern)
