"""The notifier of ``alertd replay``: every message succeeds and is handed to a recorder (the
replay's transcript) instead of a service, so nothing leaves the machine.

The URLs it is given are markers (``replay://N``) put in place of each channel URL, so each
send is known by where it goes whatever URLs channels share; ``limits`` answers for the real
URL, as apprise would, so messages split the way they would live.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import attrs
import trio

from alertd.config.model import Secret
from alertd.events import utc_from_timestamp
from alertd.notify.apprise_notifier import AppriseNotifier
from alertd.notify.notifier import DEFAULT_TIMEOUT, MessageLimits, Outgoing, SendResult


def format_time(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds: ``2019-06-05T11:39:36.000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@attrs.frozen(kw_only=True)
class ChannelUrl:
    """One URL of a channel: what delivery sends each message to."""

    channel: str
    index: int
    url: Secret

    def __str__(self) -> str:
        return self.channel if self.index == 0 else f"{self.channel}#{self.index + 1}"


@attrs.frozen(kw_only=True)
class SentNotification:
    at: float  # trio time, which is the capture's Unix time
    to: ChannelUrl
    message: Outgoing

    def format(self) -> str:
        """A transcript entry: time, channel and level (the severity, or ``resolved``);
        then the title and the body."""
        head = f"{format_time(utc_from_timestamp(self.at))} -> {self.to} ({self.message.level})"
        lines = [head, f"  title: {self.message.title}"]
        lines += [f"  | {line}" for line in self.message.body.splitlines() or [""]]
        return "\n".join(lines)


@attrs.define
class PrintingNotifier:
    """Every message succeeds and goes to ``record``; ``urls`` maps each marker URL to the
    channel URL it stands for."""

    record: Callable[[SentNotification], None]
    urls: dict[str, ChannelUrl]
    _apprise: AppriseNotifier = attrs.field(factory=AppriseNotifier)

    async def send(
        self, url: Secret, message: Outgoing, *, service_timeout: float = DEFAULT_TIMEOUT
    ) -> SendResult:
        to = self.urls[url.reveal()]
        self.record(SentNotification(at=trio.current_time(), to=to, message=message))
        return SendResult(ok=True, detail="printed by alertd replay")

    def limits(self, url: Secret) -> MessageLimits:
        return self._apprise.limits(self.urls[url.reveal()].url)
