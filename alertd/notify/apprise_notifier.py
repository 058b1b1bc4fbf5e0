"""The ``Notifier`` that sends through apprise 2.x, in worker threads.

Why one ``apprise.Apprise`` per URL: apprise reports per service, but delivery retries per
(notification, URL) row, so sending each URL on its own keeps one failing URL of a channel
from re-sending to the others.

Limits: a global ``CapacityLimiter`` (``dispatch.workers``) bounds threads, and each URL may
have only one call in flight, so a hanging service holds at most one thread and never starves
other channels. Timeouts: apprise's own ``cto``/``rto`` URL arguments bound each socket
operation, apprise's ``timeout`` bounds the whole call, and trio abandons the thread shortly
after that as a last resort (the thread keeps its limiter slots until it really ends).

apprise types and exceptions stay in this module: callers see ``SendResult``.
"""

from __future__ import annotations

import logging
import re
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise
import attrs
import trio

from alertd.config.model import Secret
from alertd.notify import console as _console  # registers console://, alertd(s)://
from alertd.notify.notifier import DEFAULT_TIMEOUT, MessageLimits, Outgoing, SendResult
from alertd.notify.webhook import is_webhook, payload

log = logging.getLogger(__name__)

_ = _console
CONNECT_TIMEOUT_MAX = 10.0  # seconds: a service that takes longer to accept a socket is down
ABANDON_GRACE = 5.0  # seconds past the timeout before trio stops waiting for the thread
# HTTP statuses worth retrying: timeouts, rate limits, server errors. Other 4xx answers (bad
# token, unknown chat) will not get better by themselves.
_RETRYABLE_4XX = frozenset({408, 425, 429})
_HTTP_STATUS = re.compile(r"error=(\d{3})")
_SECRET_MIN = 4  # URL parts at least this long are masked in details


# alertd severity -> apprise's message type, which services show as colour or icon; a
# resolved notice is a success whatever its severity
NOTIFY_TYPES = {
    "info": apprise.NotifyType.INFO,
    "warning": apprise.NotifyType.WARNING,
    "critical": apprise.NotifyType.FAILURE,
}
BODY_FORMATS = {
    "text": apprise.NotifyFormat.TEXT,
    "markdown": apprise.NotifyFormat.MARKDOWN,
    "html": apprise.NotifyFormat.HTML,
}
# Severity -> the service's own urgency, as apprise URL arguments (apprise plugin class name
# -> severity -> arguments); warning is each service's default. A URL that sets the argument
# itself keeps its own value.
URGENCY: dict[str, dict[str, dict[str, str]]] = {
    "NotifyTelegram": {"info": {"silent": "yes"}},
    "NotifyNtfy": {"info": {"priority": "low"}, "critical": {"priority": "high"}},
    # Pushover's -1 arrives without sound or vibration; -2 would not notify at all, and 2
    # (emergency) repeats until acknowledged, which needs settings of its own.
    "NotifyPushover": {"info": {"priority": "-1"}, "critical": {"priority": "1"}},
}


def notify_type(message: Outgoing) -> Any:
    """apprise's message type for ``message``: success for a resolved notice, else by
    severity."""
    if message.status == "resolved":
        return apprise.NotifyType.SUCCESS
    return NOTIFY_TYPES.get(message.severity, apprise.NotifyType.WARNING)


def with_arguments(url: str, arguments: dict[str, str]) -> str:
    """``url`` with ``arguments`` it does not set itself. Appended as text rather than
    re-encoded, so the user's own arguments stay byte for byte."""
    names = {k for k, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    extra = [f"{k}={v}" for k, v in arguments.items() if k not in names]
    if not extra:
        return url
    joiner = "&" if "?" in url else "?"
    return url + joiner + "&".join(extra)


def with_timeouts(url: str, timeout: float) -> str:
    """``url`` with apprise's connect/read timeouts (``cto``/``rto``) unless it sets them."""
    return with_arguments(
        url, {"cto": f"{min(timeout, CONNECT_TIMEOUT_MAX):g}", "rto": f"{timeout:g}"}
    )


def urgency(plugin: Any, severity: str) -> dict[str, str]:
    """The URL arguments that give ``severity`` the service's own urgency (none for
    services without one)."""
    return URGENCY.get(type(plugin).__name__, {}).get(severity, {})


def secret_fragments(url: str) -> list[str]:
    """The parts of ``url`` that may be secret: user, password, host parts that are not DNS
    names or addresses (Telegram's bot token sits there), path segments, query values."""
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    pieces = [unquote(p) for p in userinfo.split(":")]
    pieces += [p for p in hostport.split(":") if "." not in p and not p.isdigit()]
    pieces += [unquote(seg) for seg in parts.path.split("/")]
    pieces += [v for _, v in parse_qsl(parts.query)]
    found = {p for p in pieces if len(p) >= _SECRET_MIN}
    return sorted(found, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` with every possibly secret fragment of ``url`` replaced by ``***``."""
    for fragment in secret_fragments(url):
        text = text.replace(fragment, "***")
    return text


def masked_url(url: str) -> str:
    """A form of ``url`` safe to print: apprise's privacy form (tokens shortened) without its
    default arguments, and every possibly secret fragment of ``url`` masked as well."""
    plugin: Any = apprise.Apprise.instantiate(url)
    if plugin is None:
        return f"{urlsplit(url).scheme}://***"
    private = str(plugin.url(privacy=True)).split("?", 1)[0]
    return scrub(private, url)


def unusable(url: str) -> str:
    """``url`` masked, with apprise's words on why it cannot use it (which its logger, not
    passed on, would otherwise have said alone)."""
    capture: Any = apprise.LogCapture
    with capture(level=logging.WARNING, fmt="%(message)s") as captured:
        shown = masked_url(url)
    # Lines quoting the URL are left out: apprise's privacy form keeps a password's ends.
    lines = [line for line in captured.getvalue().splitlines() if "://" not in line]
    words = "; ".join(dict.fromkeys(lines))
    return f"{shown} ({scrub(words, url)})" if words else shown


@attrs.define
class _BothLimiters:
    """Acquire a per-URL limiter, then the global one; trio's ``to_thread`` accepts any object
    with these two methods and releases only when the thread has really finished."""

    first: trio.CapacityLimiter
    second: trio.CapacityLimiter

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        await self.first.acquire_on_behalf_of(borrower)
        try:
            await self.second.acquire_on_behalf_of(borrower)
        except BaseException:
            self.first.release_on_behalf_of(borrower)
            raise

    def release_on_behalf_of(self, borrower: object) -> None:
        self.second.release_on_behalf_of(borrower)
        self.first.release_on_behalf_of(borrower)


def _classify(result: Any, url: str) -> SendResult:
    """Turn an ``apprise.AppriseResult`` for one URL into a ``SendResult``."""
    if bool(result):
        return SendResult(ok=True, detail="delivered")
    status = str(getattr(result.status, "name", result.status))
    messages = [entry.message for entry in result.logs() if entry.level in {"WARNING", "ERROR"}]
    detail = scrub("; ".join(messages[-2:]), url) or status.lower()
    if status == "TIMEOUT":
        return SendResult(ok=False, recoverable=True, detail=f"timed out: {detail}")
    codes = [int(c) for c in _HTTP_STATUS.findall(" ".join(messages))]
    if codes and 400 <= codes[-1] < 500 and codes[-1] not in _RETRYABLE_4XX:
        return SendResult(ok=False, recoverable=False, detail=detail)
    return SendResult(ok=False, recoverable=True, detail=detail)


class AppriseNotifier:
    """Sends through apprise. ``workers`` bounds the threads used at once."""

    def __init__(self, *, workers: int = 4) -> None:
        self._limiter = trio.CapacityLimiter(workers)
        self._per_url: dict[str, trio.CapacityLimiter] = {}
        # apprise and urllib3 log request URLs, tokens included, at DEBUG: keep them at
        # WARNING or above whatever the daemon's log level (secrets never reach logs).
        for name in ("apprise", "urllib3"):
            chatty = logging.getLogger(name)
            chatty.setLevel(max(logging.WARNING, chatty.getEffectiveLevel()))
        # What apprise says of a send is its outcome's cause (SendResult.detail), which
        # alertd logs once (delivery.retry/expired): apprise's own lines would say it twice.
        # Its per-call capture is a handler on its logger, so it still sees every record.
        logging.getLogger("apprise").propagate = False
        # In memory only: apprise's persistent store would write files next to the daemon.
        self._asset = apprise.AppriseAsset(storage_mode="memory")

    def limits(self, url: Secret) -> MessageLimits:
        plugin: Any = apprise.Apprise.instantiate(url.reveal(), asset=self._asset)
        if plugin is None:
            return MessageLimits()
        if is_webhook(plugin):  # one JSON document, never split
            return MessageLimits(alerts=True)
        body_max = int(getattr(plugin, "body_maxlen", 0) or 0)
        title_max = int(getattr(plugin, "title_maxlen", 0) or 0)
        formats = plugin.notify_format
        primary = formats[0] if isinstance(formats, tuple | list) else formats
        return MessageLimits(
            body=body_max or None,
            title_in_body=title_max <= 0,
            html=primary == apprise.NotifyFormat.HTML,
        )

    def describe(self, url: Secret) -> str:
        """A form of ``url`` safe to print."""
        return masked_url(url.reveal())

    async def send(
        self, url: Secret, message: Outgoing, *, service_timeout: float = DEFAULT_TIMEOUT
    ) -> SendResult:
        raw = url.reveal()
        per_url = self._per_url.setdefault(raw, trio.CapacityLimiter(1))
        limiter = cast(trio.CapacityLimiter, _BothLimiters(per_url, self._limiter))
        with trio.move_on_after(service_timeout + ABANDON_GRACE):
            return await trio.to_thread.run_sync(
                self._send_sync,
                raw,
                message,
                service_timeout,
                limiter=limiter,
                abandon_on_cancel=True,
            )
        return SendResult(
            ok=False, recoverable=True, detail=f"no answer within {service_timeout:g}s"
        )

    def _send_sync(self, raw: str, message: Outgoing, timeout: float) -> SendResult:
        plugin: Any = apprise.Apprise.instantiate(raw, asset=self._asset)
        ap = apprise.Apprise(asset=self._asset)
        if plugin is None or not ap.add(
            with_arguments(with_timeouts(raw, timeout), urgency(plugin, message.severity))
        ):
            return SendResult(
                ok=False, recoverable=False, detail=f"not a usable apprise URL: {unusable(raw)}"
            )
        try:
            # The body format is always given (the channel's, plain text by default): apprise
            # converts it for the service (escaped for HTML ones, line breaks kept in
            # email); without it apprise would guess.
            result = ap.notify(
                body=payload(message) if is_webhook(plugin) else message.body,
                title=message.title,
                body_format=BODY_FORMATS[message.body_format],
                notify_type=notify_type(message),
                timeout=timeout,
                log_level=logging.WARNING,
            )
        except Exception as exc:  # apprise's own errors, e.g. AppriseImproperlyConfigured
            return SendResult(ok=False, recoverable=False, detail=scrub(str(exc), raw))
        with result:
            return _classify(result, raw)
