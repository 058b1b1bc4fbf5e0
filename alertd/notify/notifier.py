"""What delivery needs from a notification service: send one message (``Outgoing``) to one
URL and say whether a failure is worth retrying (Alertmanager's ``recoverable``)."""

from __future__ import annotations

from typing import Literal, Protocol

import attrs

from alertd.config.model import Secret
from alertd.events import Alert, AlertStatus
from alertd.messages.level import RESOLVED

DEFAULT_TIMEOUT = 30.0  # seconds; ChannelSettings.timeout overrides

BodyFormat = Literal["text", "markdown", "html"]


@attrs.frozen(kw_only=True)
class Outgoing:
    """One message as a service gets it: what it says, how urgent it is, whether it is a
    recovery, and what the body is written in (``body_format``, the channel's ``format``:
    apprise converts it for the service)."""

    title: str
    body: str
    severity: str = "warning"  # "info", "warning", "critical": colour, icon and urgency
    status: AlertStatus = "firing"  # "resolved": shown as a success
    body_format: BodyFormat = "text"
    # The alerts it carries, for services that take them (``MessageLimits.alerts``: the
    # structured webhook); empty for the others.
    alerts: tuple[Alert, ...] = ()

    @classmethod
    def at_level(
        cls,
        title: str,
        body: str,
        level: str,
        *,
        body_format: BodyFormat = "text",
        alerts: tuple[Alert, ...] = (),
    ) -> Outgoing:
        """A message stored with its level (``messages.level``): a resolved notice is good
        news, sent at ``info``'s urgency."""
        resolved = level == RESOLVED
        return cls(
            title=title,
            body=body,
            severity="info" if resolved else level,
            status="resolved" if resolved else "firing",
            body_format=body_format,
            alerts=alerts,
        )

    @property
    def level(self) -> str:
        """``resolved`` for a recovery, else the severity (what a transcript shows)."""
        return RESOLVED if self.status == "resolved" else self.severity


@attrs.frozen(kw_only=True)
class SendResult:
    """``detail`` is for people and logs: never contains a secret."""

    ok: bool
    recoverable: bool = True
    detail: str = ""


@attrs.frozen(kw_only=True)
class MessageLimits:
    """``body``: the most characters one message may carry (None: no known limit).
    ``title_in_body``: the service has no title field and puts the title into the text.
    ``html``: the text is sent as HTML, so ``&``, ``<`` and ``>`` grow when escaped.
    ``alerts``: the service takes the alerts themselves (``Outgoing.alerts``)."""

    body: int | None = None
    title_in_body: bool = False
    html: bool = False
    alerts: bool = False


class Notifier(Protocol):
    async def send(
        self, url: Secret, message: Outgoing, *, service_timeout: float = DEFAULT_TIMEOUT
    ) -> SendResult:
        """Deliver one message to one URL. Never raises for a delivery failure."""
        ...

    def limits(self, url: Secret) -> MessageLimits:
        """What one message to ``url`` may hold. Cheap and without I/O."""
        ...
