"""A ``Notifier`` fake for tests: records every message, answers from a script."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import trio

from alertd.config.model import Secret
from alertd.notify.notifier import DEFAULT_TIMEOUT, MessageLimits, Outgoing, SendResult


@attrs.frozen(kw_only=True)
class SentMessage:
    url: str  # revealed: tests use fake URLs
    message: Outgoing
    at: float  # trio.current_time()

    @property
    def title(self) -> str:
        return self.message.title

    @property
    def body(self) -> str:
        return self.message.body

    @property
    def severity(self) -> str:
        return self.message.severity


@attrs.define
class RecordingNotifier:
    """Records messages in ``sent`` (successful ones) and ``attempts`` (all).

    ``answer(url, title, body)`` decides each outcome (default: success); ``delay`` seconds are
    slept before answering, per URL, to play a slow or hanging service; ``limits_by_url`` fakes
    a service's length limit.
    """

    answer: Callable[[str, str, str], SendResult] | None = None
    delay: dict[str, float] = attrs.field(factory=dict)
    limits_by_url: dict[str, MessageLimits] = attrs.field(factory=dict)
    sent: list[SentMessage] = attrs.field(factory=list)
    attempts: list[SentMessage] = attrs.field(factory=list)

    async def send(
        self, url: Secret, message: Outgoing, *, service_timeout: float = DEFAULT_TIMEOUT
    ) -> SendResult:
        raw = url.reveal()
        record = SentMessage(url=raw, message=message, at=trio.current_time())
        self.attempts.append(record)
        with trio.move_on_after(service_timeout):
            await trio.sleep(self.delay.get(raw, 0.0))
            if self.answer is None:
                result = SendResult(ok=True)
            else:
                result = self.answer(raw, message.title, message.body)
            if result.ok:
                self.sent.append(record)
            return result
        return SendResult(
            ok=False, recoverable=True, detail=f"no answer within {service_timeout:g}s"
        )

    def limits(self, url: Secret) -> MessageLimits:
        return self.limits_by_url.get(url.reveal(), MessageLimits())
