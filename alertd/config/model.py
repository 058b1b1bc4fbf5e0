"""The configuration schema: what the TOML file may say, as attrs classes.

This module is the contract between the loader (``config.load``) and the stages that read
settings (sources, engine, dispatch, notify, daemon). Each section class belongs to the stage
named in its docstring; add fields with a default so that configs written today keep working.

Durations in the TOML file are strings ("30s", "5m", "4h", "1d") and arrive here as float
seconds (``Duration``). Secret references (``{env:NAME}``, ``{cred:NAME}``) are resolved by the
loader into ``Secret`` values that never print their content.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, NewType

import attrs

Duration = NewType("Duration", float)  # seconds; written "30s", "5m", "4h", "1d" in TOML


@attrs.frozen
class Secret:
    """A resolved secret. ``repr``/``str`` never show it; ``reveal()`` is the one way out."""

    _value: str = attrs.field(repr=False)
    source: str = ""  # where it came from, e.g. "env:PIEXGO_KEY", safe to log

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return f"<secret {self.source}>" if self.source else "<secret>"


# -- [daemon] ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class HeartbeatSettings:
    """``[daemon.heartbeat]``: the dead-man's switch (daemon/heartbeat). alertd pings ``url``
    every ``interval`` while it is healthy and reports ``/fail`` with the reason when it is
    not (healthchecks.io's protocol; an Uptime Kuma push URL works too); a hung or dead alertd
    stops pinging, which is what the service alerts on."""

    # The ping URL, its secret written by reference ("{env:NAME}", "{cred:NAME}") and resolved
    # by the loader (config/heartbeat), as channel URLs are.
    url: Secret
    # "healthchecks" (<url>, <url>/start, <url>/fail) or "uptime-kuma" (?status=up|down&msg=);
    # "auto": uptime-kuma when the URL has a status= query or an /api/push/ path.
    kind: Literal["auto", "healthchecks", "uptime-kuma"] = "auto"
    interval: Duration = Duration(60.0)  # a ping this often while healthy
    timeout: Duration = Duration(10.0)  # for one ping; a ping still running is not repeated
    # A notification undelivered this long (a channel failing, delivery stuck) is unhealthy.
    channel_failing_after: Duration = Duration(600.0)
    # A pipeline probe (daemon/health) not back from delivery's workers this long is unhealthy:
    # longer than a channel's send timeout, or one slow send would count as a wedged worker.
    pipeline_timeout: Duration = Duration(120.0)


@attrs.frozen(kw_only=True)
class DaemonSettings:
    """``[daemon]``: process-wide settings (daemon/app)."""

    state_dir: str = "/var/lib/alertd"  # $STATE_DIRECTORY overrides under systemd
    timezone: str = "UTC"  # for times people read in messages and quiet hours
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    metrics_listen: str | None = None  # e.g. "127.0.0.1:9108"; off when unset
    drain_timeout: Duration = Duration(10.0)  # how long SIGTERM waits for the outbox
    # New connections to one exchange endpoint (scheme://host:port), for all accounts
    # together (sources/admission): at most ``connect_burst`` at once, then this many a second.
    connect_rate: float = 2.0
    connect_burst: int = 10
    record_dir: str | None = None  # like --record DIR
    heartbeat: HeartbeatSettings | None = None  # [daemon.heartbeat]; off when absent
    # PostgreSQL shared by replicas (config/database.py): "postgresql://USER:{env:NAME}@HOST/DB",
    # the password by reference. Unset: SQLite in state_dir, as for a single daemon.
    database: Secret | None = None
    replica: str | None = None  # this replica's name; default: host name[@unit instance]
    # How long a replica's claim on an outbox row outlives the replica: a row it held when it
    # died is sent by another after this long (marked as a possible repeat if it was sending).
    delivery_lease: Duration = Duration(15.0)
    # Replicas on a shared database (alertd/cluster): how many replicas watch each account
    # (1: shard only), and how soon a dead replica's accounts are watched by another.
    watchers: int = 2
    takeover_after: Duration = Duration(15.0)
    # While the shared database cannot be reached (store/spool.py): how long one call to it is
    # tried again before it counts as away, and then dispatch's writes go to the spool in
    # state_dir, at most spool_max alerts (a full spool makes dispatch wait for the database).
    database_retry: Duration = Duration(10.0)
    spool_max: int = 100_000


# -- [[accounts]] -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AuthSettings:
    """``[accounts.auth]``: how to log in (sources). Neither exchange document fixes this, so
    it is configurable: extra handshake headers and/or a login frame sent before subscribing,
    both jinja templates that see ``api_key``, ``api_secret`` (revealed only inside the
    template), ``timestamp`` (ms), ``nonce`` and ``hmac_sha256(secret, message)``."""

    api_key: Secret | None = None
    api_secret: Secret | None = None
    headers: dict[str, str] = attrs.field(factory=dict)
    login_frame: str | None = None
    # A reply that means the login failed: the login is rejected when a frame received within
    # login_timeout has this key equal to this value (e.g. {"event" = "error"}).
    reject_when: dict[str, str] = attrs.field(factory=dict)
    # A reply that means the login succeeded; when set, alertd waits for it before subscribing.
    accept_when: dict[str, str] = attrs.field(factory=dict)
    login_timeout: Duration = Duration(10.0)


@attrs.frozen(kw_only=True)
class AccountSettings:
    """``[[accounts]]``: one websocket session (sources)."""

    name: str
    exchange: Literal["piexgo", "cryptology"]
    url: str
    streams: list[str] = attrs.field(factory=list)
    enabled: bool = True
    auth: AuthSettings = attrs.field(factory=AuthSettings)
    connect_timeout: Duration = Duration(10.0)
    ping_interval: Duration = Duration(20.0)
    ping_timeout: Duration = Duration(10.0)
    # No frame for this long on a stream is ``stream.stale``. Keys are stream names; market
    # streams default to ``market_stale_after``; account streams are quiet by nature: none.
    stale_after: dict[str, Duration] = attrs.field(factory=dict)
    market_stale_after: Duration | None = Duration(60.0)
    backoff_initial: Duration = Duration(1.0)
    backoff_max: Duration = Duration(60.0)
    stable_after: Duration = Duration(60.0)  # backoff resets only after this long connected
    max_message_size: int = 1_048_576
    queue_size: int = 1000
    # How long closing a connection may take (close handshake) before the socket is dropped.
    close_timeout: Duration = Duration(5.0)
    # After a reconnect, how long to wait for the balance snapshot (Piexgo sends one after the
    # pinfo subscribe) before the stream.gap goes out with the balances that moved while down.
    snapshot_wait: Duration = Duration(3.0)


# -- [channels] -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class QuietHours:
    """A daily window in ``timezone`` (default: the daemon's) when notifications wait."""

    start: str  # "22:00"
    end: str  # "07:00"
    days: list[str] = attrs.field(factory=list)  # ["mon", ...]; empty means every day
    timezone: str | None = None
    # Rule names (globs) the window applies to; empty means every rule. This is how quiet hours
    # are set per rule: [[dispatch.quiet_hours]] with rules = ["price-*"].
    rules: list[str] = attrs.field(factory=list)
    # Severities that go out at once all the same, e.g. ["critical"] (dispatch/quiet.py).
    let_through: list[Literal["info", "warning", "critical"]] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class ChannelSettings:
    """``[channels.NAME]`` (notify). A plain string ``NAME = "url"`` is the same as a table
    with ``urls = ["url"]``. URLs are apprise URLs with secrets by reference."""

    urls: list[Secret]
    rate_limit: str | None = None  # "20/1m": at most 20 messages a minute, then a digest
    max_length: int | None = None  # characters; default per service (Telegram 4096)
    quiet_hours: list[QuietHours] = attrs.field(factory=list)
    timeout: Duration = Duration(30.0)
    # What bodies (the rules' templates) are written in; apprise converts them for the
    # service, so a markdown headline shows bold on Telegram and Slack.
    format: Literal["text", "markdown", "html"] = "text"


# -- [dispatch] -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class InhibitSettings:
    """While an alert of ``source_rule`` fires for an account, hold back alerts of the
    ``target_rules`` (or of the ``target_kinds``) for the same account."""

    source_rule: str
    target_rules: list[str] = attrs.field(factory=list)
    target_kinds: list[str] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class DispatchSettings:
    """``[dispatch]``: routing, grouping, retries (dispatch/notify)."""

    default_channel: str | None = None  # for rules that name no channel
    fallback_channel: str | None = None  # told about alerts that expire undelivered
    group_wait: Duration = Duration(0.0)  # hold the first alert of a group this long
    group_interval: Duration = Duration(30.0)  # then send at most one message per interval
    retry_initial: Duration = Duration(2.0)
    retry_max: Duration = Duration(300.0)
    max_age: Duration = Duration(86400.0)  # give up on an alert this old
    workers: int = 4  # apprise worker threads
    inhibit: list[InhibitSettings] = attrs.field(factory=list)
    quiet_hours: list[QuietHours] = attrs.field(factory=list)  # for every channel
    # While a stream.disconnected alert fires for an account, hold back that account's
    # stream.stale and absence-rule alerts (the "stream down" alert already says it all).
    inhibit_stream_down: bool = True
    # An inhibition nobody clears (no stream.connected alert, no resolution) ends after this.
    inhibit_max: Duration = Duration(3600.0)
    group_max_items: int = 50  # alerts listed one by one in a grouped message or digest
    # A URL whose due rows, one message each, would take longer than this to send is
    # behind: what waits goes out as digests until it keeps up again (notify/backlog).
    catch_up: Duration = Duration(1.0)
    # A message sent longer than this after its alert was made says how late it is (0: never).
    late_after: Duration = Duration(300.0)


# -- [[rules]] --------------------------------------------------------------------------------

RuleType = Literal["event", "threshold", "rate", "absence", "order_timeout", "summary"]


@attrs.frozen(kw_only=True)
class RuleSettings:
    """``[[rules]]`` (engine). ``type`` picks the behaviour:

    - ``event``: every matching event is an alert (subject to cooldown).
    - ``threshold``: ``value`` (an expression) crosses ``below``/``above``; fires once, resolves
      when back past ``resolve_below``/``resolve_above`` (hysteresis); ``for`` = pending time.
    - ``rate``: ``count`` matching events within ``within``, per ``key``.
    - ``absence``: no matching event for ``after``, per ``key``.
    - ``order_timeout``: an order open longer than ``open_for``, or a partial fill with no
      progress for ``stalled_for``.
    - ``summary``: a digest of every account's day (fills, cancels, blind windows, streams,
      messages sent and failed, silences) ``every`` period at ``at`` in the daemon's timezone.
    """

    name: str
    on: str | list[str] = "*"  # event kind or glob ("order.*")
    type: RuleType = "event"
    account: str | list[str] | None = None
    symbol: str | list[str] | None = None
    side: Literal["buy", "sell"] | None = None
    currency: str | list[str] | None = None
    where: str | None = None  # jinja expression over the event's fields
    key: str | None = None  # template; default depends on type (account, symbol, ...)
    # threshold
    value: str | None = None  # expression, e.g. "balance"
    below: Decimal | None = None
    above: Decimal | None = None
    resolve_below: Decimal | None = None
    resolve_above: Decimal | None = None
    for_: Duration | None = attrs.field(default=None, alias="for_")  # TOML key "for"
    # rate
    count: int | None = None
    within: Duration | None = None
    # absence
    after: Duration | None = None
    # order_timeout
    open_for: Duration | None = None
    stalled_for: Duration | None = None
    # summary: its schedule (default every "1d" at "08:00", [daemon] timezone)
    every: Duration | None = None
    at: str | None = None  # "HH:MM"
    # noise control
    cooldown: Duration | None = None  # per key: no new alert this soon after the last one
    repeat: Duration | None = None  # re-send a still-firing threshold/absence alert this often
    # message
    severity: Literal["info", "warning", "critical"] = "warning"
    title: str | None = None  # template
    resolved_title: str | None = None  # template, for resolutions (default: says resolved)
    message: str | None = None  # template (body)
    resolved_message: str | None = None  # template, for threshold/absence resolution
    notify: list[str] = attrs.field(factory=list)  # channel names
    enabled: bool = True


# -- the whole file ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Config:
    daemon: DaemonSettings = attrs.field(factory=DaemonSettings)
    accounts: list[AccountSettings] = attrs.field(factory=list)
    channels: dict[str, ChannelSettings] = attrs.field(factory=dict)
    dispatch: DispatchSettings = attrs.field(factory=DispatchSettings)
    rules: list[RuleSettings] = attrs.field(factory=list)
