"""Checks across the file, after each section has its types: names that refer to other
sections, rule fields that depend on the rule's type, time zones, stream names.

Each check sees only the pieces that structured cleanly (a rule with a bad duration is still
checked for its channels), so one run of ``alertd check`` reports as much as it can.
"""

from __future__ import annotations

import fnmatch
import re
import zoneinfo
from collections.abc import Callable, Collection, Iterable, Sequence
from functools import cache

from alertd.config.database import check_database
from alertd.config.durations import format_duration
from alertd.config.errors import TomlPath, did_you_mean
from alertd.config.model import (
    AccountSettings,
    ChannelSettings,
    DaemonSettings,
    DispatchSettings,
    QuietHours,
    RuleSettings,
)
from alertd.events import EVENT_KINDS

Found = list[tuple[TomlPath, str]]

_CLOCK = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


# -- ranges -----------------------------------------------------------------------------------
# The smallest value of each setting that still lets alertd do its job. Values below these
# type-check but leave the daemon silent or frantic at run time (workers = 0: nothing is ever
# sent; max_age = "0s": every alert expires unsent), so check refuses them with the reason.
# Each entry: field -> (least allowed value, why smaller does not work); a float is a duration
# in seconds, an int a count.
Minimums = dict[str, tuple[float | int, str]]

ACCOUNT_MINIMUMS: Minimums = {
    "connect_timeout": (1.0, "a connection attempt needs time to open a socket and TLS"),
    "ping_interval": (1.0, "the heartbeat is how a half-open connection is noticed"),
    "ping_timeout": (1.0, "a pong needs time to come back over the network"),
    "backoff_initial": (0.1, "reconnecting without a pause hammers the exchange"),
    # order updates and balance snapshots are JSON frames of a few hundred bytes up to many
    # kilobytes; below 1 KiB nearly every frame would be refused as a stream.error
    "max_message_size": (1024, "a larger frame is refused, and exchange frames often are"),
    "queue_size": (10, "smaller drops events in every burst of frames"),
}
AUTH_MINIMUMS: Minimums = {
    "login_timeout": (1.0, "the login reply needs time to come back"),
}
# max_length: the splitter never cuts parts below 64 characters (split.MIN_BUDGET), and each
# part also carries the title and a " (3/10)" marker; below 100 the limit cannot be kept and
# a message is mostly overhead.
CHANNEL_MINIMUMS: Minimums = {
    "max_length": (100, "a message part must hold a title, a part marker and some text"),
    "timeout": (1.0, "a delivery needs time to reach the service"),
}
DISPATCH_MINIMUMS: Minimums = {
    "workers": (1, "with no worker thread nothing is ever sent"),
    "retry_initial": (0.1, "retrying without a pause hammers a failing service"),
    "max_age": (60.0, "an alert must outlive a few retries, or it expires unsent"),
    "group_max_items": (1, "a grouped message must list at least one alert"),
    "catch_up": (0.1, "shorter makes nearly every message a digest"),
}


def _minimums(settings: object, minimums: Minimums, path: TomlPath, out: Found) -> None:
    for field, (least, why) in minimums.items():
        value = getattr(settings, field)
        if value is None or value >= least:
            continue
        if isinstance(least, float):
            shown, allowed = f'"{format_duration(value)}"', f'"{format_duration(least)}" or longer'
        else:
            shown, allowed = str(value), f"{least:g} or more"
        out.append(((*path, field), f"{shown} is too small: allowed is {allowed} ({why})"))


def _not_below(settings: object, field: str, floor: str, path: TomlPath, out: Found) -> None:
    """``field`` (a duration) is at least ``floor`` (another duration of the same table)."""
    value, least = getattr(settings, field), getattr(settings, floor)
    if value < least:
        out.append(
            (
                (*path, field),
                f'"{format_duration(value)}" is less than {floor} "{format_duration(least)}": '
                f'allowed is "{format_duration(least)}" or longer',
            )
        )


def check_timezone(name: str, path: TomlPath, out: Found) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        out.append((path, f'"{name}" is not a time zone{did_you_mean(name, _zones())}'))


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _name_refs(
    names: Iterable[str], known: Sequence[str], what: str, path: TomlPath, out: Found
) -> None:
    for name in names:
        if name not in known:
            out.append((path, f'no {what} named "{name}"{did_you_mean(name, known)}'))


def _duplicates(
    items: Iterable[tuple[int, str]], section: str, out: Found, what: str = "name"
) -> None:
    first: dict[str, int] = {}
    for index, name in items:
        if name in first:
            out.append(
                (
                    (section, index, what),
                    f'"{name}" is already the {what} of {section}[{first[name]}]',
                )
            )
        else:
            first.setdefault(name, index)


def check_kind_pattern(pattern: str, path: TomlPath, out: Found) -> None:
    """An event kind, or a glob that matches at least one kind."""
    if pattern in EVENT_KINDS:
        return
    if any(c in pattern for c in "*?["):
        if not fnmatch.filter(EVENT_KINDS, pattern):
            out.append((path, f'"{pattern}" matches no event kind'))
        return
    hint = did_you_mean(pattern, EVENT_KINDS) or " (kinds: " + ", ".join(EVENT_KINDS) + ")"
    out.append((path, f'"{pattern}" is not an event kind{hint}'))


def _quiet_hours(hours: Sequence[QuietHours], path: TomlPath, out: Found) -> None:
    for i, q in enumerate(hours):
        for field in ("start", "end"):
            value = getattr(q, field)
            if not _CLOCK.fullmatch(value):
                out.append(((*path, i, field), f'"{value}" is not a time of day (use "22:00")'))
        for day in q.days:
            if day.lower() not in DAYS:
                hint = did_you_mean(day.lower(), DAYS) or f" (use {', '.join(DAYS)})"
                out.append(((*path, i, "days"), f'"{day}" is not a day{hint}'))
        if q.timezone is not None:
            check_timezone(q.timezone, (*path, i, "timezone"), out)


def check_daemon(daemon: DaemonSettings, out: Found) -> None:
    check_timezone(daemon.timezone, ("daemon", "timezone"), out)
    if daemon.metrics_listen is not None:
        from alertd.config.values import parse_listen  # the one parser of it

        try:
            parse_listen(daemon.metrics_listen)
        except ValueError:
            out.append(
                (
                    ("daemon", "metrics_listen"),
                    f'"{daemon.metrics_listen}" is not HOST:PORT (e.g. "127.0.0.1:9108")',
                )
            )
    check_heartbeat(daemon, out)
    check_database(daemon, out)
    if not daemon.connect_rate > 0:
        why = "allowed is more than 0 (new connections a second to one exchange endpoint)"
        out.append((("daemon", "connect_rate"), f"{daemon.connect_rate:g} is too small: {why}"))
    _minimums(daemon, DAEMON_MINIMUMS, ("daemon",), out)


DAEMON_MINIMUMS: Minimums = {
    "connect_burst": (1, "with no token no connection is ever opened"),
    "watchers": (1, "every account needs a replica watching it"),
    # a replica renews its lease five times per takeover_after; faster loads the database
    "takeover_after": (1.0, "replicas renew their leases several times within it"),
    "delivery_lease": (1.0, "a replica renews its claims on outbox rows several times within it"),
}

HEARTBEAT_MINIMUMS: Minimums = {
    "interval": (1.0, "pinging more often only loads the service, it does not notice sooner"),
    "timeout": (1.0, "a ping needs time to reach the service"),
    "channel_failing_after": (1.0, "a delivery needs time to reach the service"),
    "pipeline_timeout": (1.0, "a probe needs time to pass the engine, dispatch and delivery"),
}


def check_heartbeat(daemon: DaemonSettings, out: Found) -> None:
    """``[daemon.heartbeat]``: the durations are usable (its URL is the loader's secrets step:
    config/heartbeat)."""
    if daemon.heartbeat is not None:
        _minimums(daemon.heartbeat, HEARTBEAT_MINIMUMS, ("daemon", "heartbeat"), out)


def check_names(section: str, items: object, out: Found) -> None:
    """Names in ``[[section]]`` are unique (read from the raw file, so that an element with
    a problem elsewhere still counts)."""
    if isinstance(items, list):
        named = [(i, x.get("name")) for i, x in enumerate(items) if isinstance(x, dict)]
        _duplicates(((i, n) for i, n in named if isinstance(n, str)), section, out)


def _stream_normalizer(exchange: str) -> Callable[[str], str]:
    """The protocol module's own reading of stream names: one source of truth."""
    if exchange == "piexgo":
        from alertd.protocols.piexgo import normalize_stream
    else:
        from alertd.protocols.cryptology import normalize_stream
    return normalize_stream


def check_accounts(accounts: Sequence[tuple[int, AccountSettings]], out: Found) -> None:
    for i, account in accounts:
        path: TomlPath = ("accounts", i)
        if not account.url.startswith(("ws://", "wss://")):
            out.append(
                ((*path, "url"), f'"{account.url}" is not a websocket URL (ws:// or wss://)')
            )
        normalize = _stream_normalizer(account.exchange)
        streams: set[str] = set()
        for j, stream in enumerate(account.streams):
            try:
                streams.add(normalize(stream))
            except ValueError as exc:
                out.append(((*path, "streams", j), str(exc)))
        for stream in account.stale_after:
            try:
                known = normalize(stream) in streams
            except ValueError:
                known = False
            if not known:
                out.append(
                    (
                        (*path, "stale_after", stream),
                        f'"{stream}" is not one of this account\'s streams'
                        f"{did_you_mean(stream, account.streams)}",
                    )
                )
        if account.auth.api_secret is not None and account.auth.api_key is None:
            out.append(((*path, "auth", "api_key"), "api_secret is set but api_key is not"))
        _minimums(account, ACCOUNT_MINIMUMS, path, out)
        _minimums(account.auth, AUTH_MINIMUMS, (*path, "auth"), out)
        _not_below(account, "backoff_max", "backoff_initial", path, out)


def check_channels(
    channels: dict[str, ChannelSettings],
    out: Found,
    *,
    short: Collection[str] = (),
    url_problem: Callable[[str], str | None] = lambda url: None,
) -> None:
    """``short``: channels written as ``NAME = "url"``, whose URL problems go on that key;
    ``url_problem`` says what keeps the notifier from using a URL (None: nothing)."""
    for name, channel in channels.items():
        path: TomlPath = ("channels", name)
        if not channel.urls:
            out.append(((*path, "urls"), "a channel needs at least one URL"))
        for i, url in enumerate(channel.urls):
            # "" is also what an unresolved reference leaves (its problem is already reported)
            problem = url_problem(url.reveal()) if url.reveal() else "the URL is empty"
            if problem is not None:
                out.append((path if name in short else (*path, "urls", i), problem))
        if channel.rate_limit is not None:
            from alertd.config.values import parse_rate  # the one parser of it

            try:
                parse_rate(channel.rate_limit)
            except ValueError:
                out.append(
                    (
                        (*path, "rate_limit"),
                        f'"{channel.rate_limit}" is not a rate: allowed is COUNT/PERIOD with '
                        'COUNT at least 1 and PERIOD in s, m, h or d (e.g. "20/1m", "5/30s")',
                    )
                )
        _minimums(channel, CHANNEL_MINIMUMS, path, out)
        _quiet_hours(channel.quiet_hours, (*path, "quiet_hours"), out)


def check_dispatch(
    dispatch: DispatchSettings, channels: Sequence[str], rules: Sequence[str], out: Found
) -> None:
    for field in ("default_channel", "fallback_channel"):
        name = getattr(dispatch, field)
        if name is not None:
            _name_refs([name], channels, "channel", ("dispatch", field), out)
    for i, inhibit in enumerate(dispatch.inhibit):
        path: TomlPath = ("dispatch", "inhibit", i)
        _name_refs([inhibit.source_rule], rules, "rule", (*path, "source_rule"), out)
        for pattern in inhibit.target_rules:
            if not fnmatch.filter(rules, pattern):
                hint = did_you_mean(pattern, rules)
                out.append(((*path, "target_rules"), f'"{pattern}" matches no rule{hint}'))
        for kind in inhibit.target_kinds:
            check_kind_pattern(kind, (*path, "target_kinds"), out)
    _quiet_hours(dispatch.quiet_hours, ("dispatch", "quiet_hours"), out)
    _minimums(dispatch, DISPATCH_MINIMUMS, ("dispatch",), out)
    _not_below(dispatch, "retry_max", "retry_initial", ("dispatch",), out)


def check_rules(
    rules: Sequence[tuple[int, RuleSettings]],
    *,
    accounts: Sequence[str],
    channels: Sequence[str],
    default_channel: str | None,
    out: Found,
) -> None:
    for i, rule in rules:
        path: TomlPath = ("rules", i)
        for pattern in _as_list(rule.on):
            check_kind_pattern(pattern, (*path, "on"), out)
        _name_refs(_as_list(rule.account), accounts, "account", (*path, "account"), out)
        _name_refs(rule.notify, channels, "channel", (*path, "notify"), out)
        if not rule.notify and default_channel is None:
            out.append(
                (
                    (*path, "notify"),
                    "the rule names no channel and [dispatch] default_channel is not set",
                )
            )
        _rule_type_fields(rule, path, out)


def _rule_type_fields(rule: RuleSettings, path: TomlPath, out: Found) -> None:
    """The fields a rule's type cannot work without. (Which fields each type ignores, and
    the numbers' ranges, are checked by the engine, which owns their meaning.)"""

    def need(condition: bool, key: str, message: str) -> None:
        if not condition:
            out.append(((*path, key), message))

    if rule.type == "threshold":
        need(rule.value is not None, "value", 'a threshold rule needs "value" (e.g. "balance")')
        need(
            rule.below is not None or rule.above is not None,
            "below",
            'a threshold rule needs "below" or "above"',
        )
    elif rule.type == "rate":
        need(rule.count is not None, "count", 'a rate rule needs "count" (e.g. 3)')
        need(rule.within is not None, "within", 'a rate rule needs "within" (e.g. "10m")')
    elif rule.type == "absence":
        need(rule.after is not None, "after", 'an absence rule needs "after" (e.g. "5m")')
    elif rule.type == "order_timeout":
        need(
            rule.open_for is not None or rule.stalled_for is not None,
            "open_for",
            'an order_timeout rule needs "open_for" or "stalled_for" (e.g. "1h")',
        )
    elif rule.type == "summary":
        out.extend(((*path, key), message) for key, message in summary_schedule_problems(rule))


SUMMARY_EVERY_MIN = 3600.0  # a digest more often than hourly is noise, not proof of life
SUMMARY_EVERY_MAX = 7 * 86400.0  # a week without proof of life is too long to notice
DAY = 86400


def summary_schedule_problems(rule: RuleSettings) -> list[tuple[str, str]]:
    """(key, message) for a summary rule's ``every`` and ``at`` that cannot make a schedule:
    ``at`` is a time of day, ``every`` divides a day (so the times repeat each day) or is
    whole days, from "1h" to "7d". The one check of them: the engine's compiler asks it too."""
    found: list[tuple[str, str]] = []
    if rule.at is not None and not _CLOCK.fullmatch(rule.at):
        found.append(("at", f'"{rule.at}" is not a time of day (use e.g. "08:00")'))
    every = rule.every
    if every is not None:
        seconds = round(every)
        shown = format_duration(every)
        if not SUMMARY_EVERY_MIN <= every <= SUMMARY_EVERY_MAX:
            found.append(
                ("every", f'"{shown}" is out of range: allowed is "1h" to "7d" (e.g. "1d")')
            )
        elif float(seconds) != float(every) or (DAY % seconds and seconds % DAY):
            found.append(
                (
                    "every",
                    f'"{shown}" does not divide a day nor is whole days: allowed are e.g. '
                    '"1h", "6h", "12h", "1d", "7d"',
                )
            )
    return found
