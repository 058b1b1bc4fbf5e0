"""What delivery needs from a notification service: send one message to one URL and say
whether a failure is worth retrying (Alertmanager's ``recoverable``)."""

from __future__ import annotations

from typing import Protocol

import attrs

from alertd.config.model import Secret

DEFAULT_TIMEOUT = 30.0  # seconds; ChannelSettings.timeout overrides


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
    ``html``: the text is sent as HTML, so ``&``, ``<`` and ``>`` grow when escaped."""

    body: int | None = None
    title_in_body: bool = False
    html: bool = False


class Notifier(Protocol):
    async def send(
        self,
        url: Secret,
        title: str,
        body: str,
        *,
        service_timeout: float = DEFAULT_TIMEOUT,
        severity: str = "warning",
    ) -> SendResult:
        """Deliver one message to one URL. Never raises for a delivery failure. ``severity``
        ("info", "warning", "critical") sets how the service shows it (colour, icon)."""
        ...

    def limits(self, url: Secret) -> MessageLimits:
        """What one message to ``url`` may hold. Cheap and without I/O."""
        ...
