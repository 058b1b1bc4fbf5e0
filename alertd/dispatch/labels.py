"""The labels silences and inhibitions match on: the alert's own ``labels`` plus what every
alert has (``rule``, ``key``, ``severity``, ``status``, ``account``, ``kind``)."""

from __future__ import annotations

from fnmatch import fnmatchcase

from alertd.events import Alert

# Every label key an alert can carry: what alert_labels adds, plus what the rules engine puts
# into Alert.labels (engine/alerts.py LABEL_FIELDS; a test keeps the two in step). `alertd
# silence add` refuses other --match keys: a mistyped key would silently mute nothing.
KNOWN_LABELS = frozenset(
    {"rule", "key", "severity", "status", "account", "kind", "symbol", "currency", "side"}
)


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
