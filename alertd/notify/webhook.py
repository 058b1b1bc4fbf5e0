"""``alertd://`` and ``alertds://``: alertd's structured webhook, an apprise plugin of its own
(apprise's ``@notify`` hook) that POSTs the whole notification as JSON to
``http(s)://host[:port]/path``: its status, severity, title and message, and each alert it
carries (id, rule, key, status, severity, account, event kind, labels, time, text), so
something downstream can route or store alerts.

apprise hands a custom plugin only a title and a body, so ``AppriseNotifier`` sends this
plugin the JSON document itself as the body (``payload``), with no length limit (``limits``:
never split). Importing this module registers both schemes (``alertd.notify.console`` does,
so every process that knows ``console://`` knows these too).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from typing import Any, cast

import requests
from apprise.decorators import notify

from alertd.events import Alert
from alertd.notify.notifier import Outgoing

_Handler = Callable[..., bool]
_register = cast(Callable[..., Callable[[_Handler], _Handler]], notify)  # apprise is untyped

SCHEMES = {"alertd": "http", "alertds": "https"}
VERSION = 1  # of the payload; a field is added without changing it, never renamed
# Logged on apprise's logger, so apprise's result carries it (``error=404``: not worth a
# retry, like any other 4xx but 408, 425 and 429; see apprise_notifier._classify).
_apprise_log = logging.getLogger("apprise")


def alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "rule": alert.rule,
        "key": alert.key,
        "status": alert.status,
        "severity": alert.severity,
        "account": alert.account,
        "kind": alert.event_kind,
        "labels": dict(alert.labels),
        "created": alert.created.isoformat(),
        "title": alert.title,
        "message": alert.body,
        "fields": dict(alert.fields),
    }


def payload(message: Outgoing) -> str:
    """The JSON document one notification becomes."""
    document = {
        "version": VERSION,
        "status": message.status,
        "severity": message.severity,
        "title": message.title,
        "message": message.body,
        "alerts": [alert_json(a) for a in message.alerts],
    }
    return json.dumps(document, ensure_ascii=False)


def is_webhook(plugin: Any) -> bool:
    """Whether ``plugin`` (an apprise plugin object) is this module's."""
    return getattr(plugin, "secure_protocol", None) in SCHEMES


def _timeouts(query: dict[str, str]) -> tuple[float, float]:
    return float(query.get("cto", 10)), float(query.get("rto", 30))


def _post(body: str, title: str, *args: Any, meta: dict[str, Any], **kwargs: Any) -> bool:
    scheme = SCHEMES[meta["schema"]]
    port = f":{meta['port']}" if meta.get("port") else ""
    target = f"{scheme}://{meta['host']}{port}{meta.get('fullpath') or '/'}"
    try:
        answer = requests.post(
            target,
            data=body.encode(),
            headers={"Content-Type": "application/json", "User-Agent": "alertd"},
            timeout=_timeouts(meta.get("qsd") or {}),
            verify=bool(meta.get("verify", True)),
        )
    except requests.RequestException as exc:
        _apprise_log.warning("alertd webhook: %s", type(exc).__name__)
        return False
    if 200 <= answer.status_code < 300:
        return True
    _apprise_log.warning("alertd webhook: refused, error=%d", answer.status_code)
    return False


with warnings.catch_warnings():
    # As in console.py: registering loads apprise's plugins once (imghdr's warning).
    warnings.filterwarnings("ignore", message=".*imghdr", category=DeprecationWarning)
    for _scheme in SCHEMES:
        _register(on=_scheme, name="alertd webhook")(_post)
