"""``alertd test-notify -c CONFIG CHANNEL``: send one test message through a channel and say,
per URL (secrets masked), what happened. Exit 0 when every URL took it, 1 otherwise, 2 when
the config or channel name is wrong."""

from __future__ import annotations

import argparse
import socket
import sys
from datetime import UTC, datetime

import trio

from alertd.config.model import ChannelSettings
from alertd.messages.formats import zone
from alertd.messages.split import split_message
from alertd.notify.apprise_notifier import AppriseNotifier
from alertd.notify.notifier import Outgoing, SendResult


def build_test_message(channel: str, timezone: str = "UTC") -> tuple[str, str]:
    """The test message's title and body; the time is in ``timezone`` (``[daemon]
    timezone``, as every time alertd's messages show), with the zone named."""
    now = datetime.now(UTC).astimezone(zone(timezone)).strftime("%Y-%m-%d %H:%M:%S %Z")
    if not now.endswith(timezone):
        now += f" ({timezone})"
    return (
        f"alertd test: channel {channel}",
        f"If you can read this, alertd can reach you through channel {channel}.\n"
        f"Sent by `alertd test-notify` on {socket.gethostname()} at {now}.",
    )


async def send_test(
    notifier: AppriseNotifier, name: str, settings: ChannelSettings, timezone: str = "UTC"
) -> list[tuple[str, SendResult]]:
    """Send the test message to each URL of a channel, in turn: (masked URL, result)."""
    title, body = build_test_message(name, timezone)
    results: list[tuple[str, SendResult]] = []
    for url in settings.urls:
        limits = notifier.limits(url)
        result = SendResult(ok=True)
        for part in split_message(
            title,
            body,
            settings.max_length or limits.body,
            title_in_body=limits.title_in_body,
            html=limits.html,
        ):
            message = Outgoing(title=part.title, body=part.body, body_format=settings.format)
            result = await notifier.send(url, message, service_timeout=settings.timeout)
            if not result.ok:
                break
        results.append((notifier.describe(url), result))
    return results


def main(args: argparse.Namespace) -> int:
    from alertd.check import load_config  # lazy: keeps `alertd --help` fast
    from alertd.config.errors import ConfigError

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"alertd test-notify: the config has problems:\n{exc.format()}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"alertd test-notify: cannot read {args.config}: {exc}", file=sys.stderr)
        return 2
    settings = config.channels.get(args.channel)
    if settings is None:
        known = ", ".join(sorted(config.channels)) or "none"
        print(
            f"alertd test-notify: no channel {args.channel!r} in [channels] (known: {known})",
            file=sys.stderr,
        )
        return 2
    notifier = AppriseNotifier(workers=config.dispatch.workers)
    results = trio.run(send_test, notifier, args.channel, settings, config.daemon.timezone)
    for described, result in results:
        if result.ok:
            print(f"ok      {described}")
        else:
            kind = "retryable" if result.recoverable else "permanent"
            print(f"FAILED  {described}: {result.detail} ({kind})")
    failed = sum(1 for _, r in results if not r.ok)
    print(f"{args.channel}: {len(results) - failed} of {len(results)} URL(s) took the test message")
    return 1 if failed else 0
