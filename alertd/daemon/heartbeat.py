"""The dead-man's switch (``[daemon.heartbeat]``): alertd tells an outside service that it is alive
and healthy, so that a dead machine, a hung process or a blind alertd is noticed. It speaks the
healthchecks.io ping protocol: ``<url>/start`` once when the daemon starts, ``<url>`` every
``interval`` while healthy, ``<url>/fail`` with the reason as the body when it is not. An Uptime
Kuma push URL (``kind = "uptime-kuma"``, or detected from a ``status=`` query or an
``/api/push/`` path) gets ``?status=up|down&msg=<text>`` instead. Health is asked every
``CHECK_EVERY`` seconds (at most ``interval``), so a turn for the worse is reported at once
instead of at the next regular ping, and a recovery too.

The heartbeat never goes through the outbox and never blocks anything: each ping is one HTTP
request (urllib) in a worker thread of its own, bounded by ``timeout`` and abandoned when that
passes; at most one is in flight, and a ping due while the previous one still runs is skipped
(logged once). A hung or dead alertd simply stops pinging, which is what the service alerts
on. Errors reaching the service are logged once per outage, with the cause and the URL masked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from urllib.parse import urlsplit

import attrs
import trio

from alertd.config.model import Config, HeartbeatSettings, Secret
from alertd.config.secrets import SecretEnvironment, resolve
from alertd.daemon.health import DaemonHealth, Health, PipelineCheck, SourcesView, Verdict
from alertd.daemon.logs import SecretMasker
from alertd.daemon.ping import (
    Kind,
    PingOutcome,
    PingRequest,
    Signal,
    detect_kind,
    masked_url,
    ping_request,
    send_ping,
)
from alertd.events import Event
from alertd.notify.delivery import Delivery
from alertd.store.outbox import Outbox

__all__ = ["Heartbeat", "HeartbeatError", "check_url", "detect_kind", "masked_url", "ping_request"]

log = logging.getLogger(__name__)

CHECK_EVERY = 5.0  # seconds between health checks: how soon a change is reported


class HeartbeatError(ValueError):
    """The ping URL cannot be used; the message names the reference, never the value."""


# -- the task ---------------------------------------------------------------------------------


@attrs.define
class HeartbeatCounts:
    """What the heartbeat counts as it pings (the first fields of its statistics)."""

    sent: int = 0  # pings the service accepted (start, ok and fail alike)
    failed: int = 0  # pings that did not get through (refused, timed out, HTTP error)
    skipped: int = 0  # pings not sent because the previous one was still in flight
    fails: int = 0  # fail signals among the pings tried


@attrs.frozen(kw_only=True)
class HeartbeatStatistics(HeartbeatCounts):
    """The heartbeat at one moment: its counts, frozen, and its last verdict."""

    in_flight: bool
    healthy: bool | None  # the last verdict; None before the first health check
    reason: str  # what the last verdict said
    unreachable: str | None  # the cause while the service cannot be reached, else None


@attrs.define(eq=False)
class Heartbeat:
    """Pings ``url`` (a resolved ``Secret``) as ``kind`` says, while ``health`` answers.

    ``run`` sends the start signal, then checks health every ``min(CHECK_EVERY, interval)``
    seconds and pings when the verdict changed or ``interval`` passed since the last ping. On
    cancellation a ping in flight is abandoned (its thread ends within ``timeout``). Nothing
    it meets stops it: an error in ``health`` is an unhealthy verdict, an error reaching the
    service is logged and the next ping tried as usual."""

    url: Secret | None  # None: no pings, health checks only (for /healthz)
    health: Health
    kind: Kind = "healthchecks"
    interval: float = 60.0
    timeout: float = 10.0
    check_every: float = CHECK_EVERY

    _limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(1))
    _pinging: bool = False  # a ping task is running (its thread may outlive it, see _limiter)
    _counts: HeartbeatCounts = attrs.field(factory=HeartbeatCounts)
    _skipping: bool = False
    _verdict: Verdict | None = None
    _reported: bool | None = None  # the health the last ping tried said
    _unreachable: str | None = None
    _health_broken: bool = False
    _last: tuple[Verdict, float] | None = None  # the last verdict, time.monotonic() then

    @classmethod
    def from_settings(cls, settings: HeartbeatSettings, health: Health) -> Heartbeat:
        """The heartbeat ``settings`` describe; ``HeartbeatError`` if the URL is not http(s)."""
        url = check_url(settings.url)
        return cls(
            url=url,
            health=health,
            kind=detect_kind(url.reveal(), settings.kind),
            interval=settings.interval,
            timeout=settings.timeout,
        )

    def statistics(self) -> HeartbeatStatistics:
        return HeartbeatStatistics(
            **attrs.asdict(self._counts, recurse=False),
            in_flight=self._busy(),
            healthy=None if self._verdict is None else self._verdict.healthy,
            reason="" if self._verdict is None else self._verdict.reason,
            unreachable=self._unreachable,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        every = min(self.check_every, self.interval)
        log.info(
            "heartbeat.start url=%s kind=%s interval=%.1f check_every=%.1f",
            "-" if self.url is None else masked_url(self.url.reveal()),
            self.kind,
            self.interval,
            every,
        )
        async with trio.open_nursery() as nursery:
            self._ping(nursery, "start", "alertd started")
            task_status.started()
            next_check = trio.current_time() + every
            next_ping = trio.current_time()  # the first verdict goes out at once
            while True:
                await trio.sleep_until(next_check)
                verdict = await self._check()
                now = trio.current_time()
                next_check = max(next_check + every, now)
                due = verdict.healthy != self._reported or now >= next_ping
                signal: Signal = "ok" if verdict.healthy else "fail"
                if due and self._ping(nursery, signal, verdict.reason):
                    self._reported = verdict.healthy
                    next_ping = now + self.interval

    async def _check(self) -> Verdict:
        """The health verdict, within ``timeout``; an error or no answer is unhealthy."""
        verdict: Verdict | None = None
        try:
            with trio.move_on_after(self.timeout):
                verdict = await self.health()
        except Exception as exc:
            if not self._health_broken:
                log.exception("heartbeat.health_failed (reported as unhealthy)")
            self._health_broken = True
            verdict = Verdict(False, f"alertd's health check failed ({type(exc).__name__})")
        else:
            self._health_broken = False
        if verdict is None:
            verdict = Verdict(
                False,
                f"alertd's health check did not answer within {self.timeout:g}s "
                "(the state database or the event loop is stuck)",
            )
        previous, self._verdict = self._verdict, verdict
        # one assignment, read by /healthz on another thread: its clock is the OS's
        self._last = (verdict, time.monotonic())
        if not verdict.healthy and (previous is None or previous.healthy):
            log.warning("heartbeat.unhealthy reason=%s", verdict.reason)
        elif verdict.healthy and previous is not None and not previous.healthy:
            log.info("heartbeat.healthy (was: %s)", previous.reason)
        return verdict

    def healthz(self) -> tuple[bool, str]:
        """The last verdict, for ``/healthz`` (read on the metrics server's thread, so it
        answers while the event loop is stuck): unhealthy when no check finished within two
        check intervals and a health timeout."""
        last = self._last
        if last is None:
            return False, "not checked yet"
        verdict, at = last
        age = time.monotonic() - at
        if age > 2 * min(self.check_every, self.interval) + self.timeout:
            return False, f"health not checked for {age:.0f}s: alertd's event loop is stuck"
        return verdict.healthy, verdict.reason

    def _busy(self) -> bool:
        return self._pinging or self._limiter.borrowed_tokens > 0

    def _ping(self, nursery: trio.Nursery, signal: Signal, message: str) -> bool:
        """Start one ping, unless the previous one is still in flight. Whether it started."""
        if self.url is None:
            return True  # nothing to ping: health is checked for /healthz
        if self._busy():
            self._counts.skipped += 1
            if not self._skipping:
                log.warning(
                    "heartbeat.skipped signal=%s (the previous ping is still in flight after "
                    "up to %gs; logged once until one gets through)",
                    signal,
                    self.timeout,
                )
            self._skipping = True
            return False
        self._skipping = False
        self._pinging = True
        if signal == "fail":
            self._counts.fails += 1
        request = ping_request(self.kind, self.url.reveal(), signal, message)
        nursery.start_soon(self._send, signal, request)
        return True

    async def _send(self, signal: Signal, request: PingRequest) -> None:
        try:
            outcome = PingOutcome(False, f"no answer within {self.timeout:g}s")
            with trio.move_on_after(self.timeout):
                outcome = await trio.to_thread.run_sync(
                    partial(send_ping, request, self.timeout),
                    abandon_on_cancel=True,
                    limiter=self._limiter,
                )
        finally:
            self._pinging = False
        self._record(signal, outcome)

    def _record(self, signal: Signal, outcome: PingOutcome) -> None:
        url = masked_url(self.url.reveal() if self.url else "")
        if outcome.ok:
            self._counts.sent += 1
            if self._unreachable is not None:
                log.info("heartbeat.reachable url=%s (was: %s)", url, self._unreachable)
            self._unreachable = None
            log.debug("heartbeat.sent signal=%s url=%s", signal, url)
            return
        self._counts.failed += 1
        if self._unreachable is None:
            log.warning(
                "heartbeat.unreachable url=%s signal=%s cause=%s (logged once until a ping "
                "gets through)",
                url,
                signal,
                outcome.cause,
            )
        self._unreachable = outcome.cause


def check_url(url: Secret) -> Secret:
    """``url`` (the loader resolved its references) if it is an http(s) URL, else a
    ``HeartbeatError`` naming the reference, never the value."""
    parts = urlsplit(url.reveal())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise HeartbeatError(
            f"[daemon.heartbeat] url: what {url.source} holds is not an http:// or https:// URL"
        )
    return url


def secret_parts(url: Secret, secrets: SecretEnvironment | None = None) -> list[Secret]:
    """Each reference of ``url`` (named by its ``source``) resolved on its own, for the log
    masker: a UUID pasted from the URL into an error text is masked too, not only the URL."""
    where = secrets if secrets is not None else SecretEnvironment.from_process()
    found = [resolve(f"{{{name}}}", where, source=name)[0] for name in url.source.split(",")]
    return [value for value in found if value is not None and value.reveal()]


def for_daemon(
    settings: HeartbeatSettings | None,
    *,
    config: Callable[[], Config],
    sources: SourcesView,
    outbox: Outbox,
    delivery: Delivery,
    events: trio.MemorySendChannel[Event] | None = None,
    masker: SecretMasker | None = None,
    secrets: SecretEnvironment | None = None,
) -> Heartbeat:
    """The daemon's heartbeat, its health read from the stages (see ``health``). ``config``
    gives the running config (a reload changes the accounts); ``events``, the engine's input,
    is where the pipeline probe enters. Without ``settings`` (no ``[daemon.heartbeat]``) it
    pings nothing and checks health with the defaults, for ``/healthz``. ``HeartbeatError``
    when the URL cannot be used."""
    beat = settings or HeartbeatSettings(url=Secret(""))
    settings, probe = beat, None
    if events is not None:
        probe = PipelineCheck(events, delivery.probes, settings.pipeline_timeout)
    health = DaemonHealth(
        accounts=lambda: config().accounts,
        sources=sources,
        outbox=outbox,
        delivery=delivery,
        channel_failing_after=settings.channel_failing_after,
        probe=probe,
    )
    if not beat.url.reveal():
        return Heartbeat(url=None, health=health, interval=beat.interval, timeout=beat.timeout)
    heartbeat = Heartbeat.from_settings(beat, health)
    if masker is not None:
        masker.add(beat.url, *secret_parts(beat.url, secrets))
    return heartbeat
