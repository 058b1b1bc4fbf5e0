"""Latency behind a slow channel: a notifier that takes 200 ms a call, no rate limit.

    .venv/bin/python bench/slow_channel.py [--quick] [--seconds S]

The simulator (its own process) floods Piexgo frames at a steady 1,000 frames/s into the real
daemon in this process (sources -> engine with the 100 benchmark rules -> dispatch -> SQLite
outbox -> delivery -> the notifier) for 10 minutes (``--quick``: 60 s). One more rule, the
probe, alerts on one ``order.filled`` in eight (order ids divisible by 8: about 1% of the
frames, 10 alerts/s), each alone in its group, titled ``probe <order id> at <received>``
(``received``: the wall-clock time the session took the frame from trio-websocket). The
notifier sleeps 200 ms a call, as Telegram can take, and reads every probe title in what it
is given (a single message or a digest, which lists every row by title), so each probe
alert's frame-to-notifier latency is measured whether it came alone or in a digest. One
message at a time, 10 alerts/s behind 200 ms a message is a backlog growing by 5 a second.

Reported: p50/p99 over the run, the p99 of the first and of the last minute (``--quick``:
10 s), how many probe alerts were queued (the outbox, read after the run), how many reached
the notifier, how many twice, and how many messages carried them.

Target: p99 < 2 s, the last minute's p99 no more than the first's + 0.5 s (flat), every probe
alert delivered exactly once. The first second is warm-up, not counted.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import attrs
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alertd.config.model import Secret
from alertd.notify.notifier import DEFAULT_TIMEOUT, MessageLimits, Outgoing, SendResult
from alertd.store.database import db_path
from common import (
    Result,
    bench_config_text,
    daemon_running,
    logging_to,
    machine_line,
    open_simulator,
    percentile,
)

RATE = 1_000.0  # frames/s
SEND_TIME = 0.2  # seconds the notifier takes a call
TARGET_P99 = 2.0  # seconds
FLAT = 0.5  # seconds the last window's p99 may exceed the first's
WARMUP = 1.0
DRAIN_WAIT = 60.0  # seconds after the flood for the last alerts to reach the notifier
QUIET = 3.0  # seconds without a call after the flood: delivery has caught up

PROBE = """[[rules]]
name = "slow-probe"
on = "order.filled"
account = "bench"
where = "(order_id | int) % 8 == 0"
key = "{{ order_id }}/{{ kind }}"
title = "probe {{ order_id }} at {{ received }}"
message = "-"
"""
PROBE_TITLE = re.compile(r"probe (\S+) at (\d{4}-\d\d-\d\d[ T][\d:.]+(?:[+-]\d\d:\d\d)?)")


@attrs.define
class SlowNotifier:
    """A ``Notifier`` that takes ``SEND_TIME`` a call and notes, for every probe alert in a
    message (alone or in a digest), when it arrived and how long after its frame."""

    calls: int = 0
    probe_messages: int = 0  # messages carrying at least one probe alert
    digests: int = 0  # of those, carrying more than one
    seen: Counter[str] = attrs.field(factory=Counter)  # probe alert (order id) -> times seen
    samples: list[tuple[float, float]] = attrs.field(factory=list)  # (trio time, latency s)
    disconnects: int = 0  # stream.disconnected alerts (the bench-end rule: "end <reason>")
    last_call: float = 0.0  # trio time the last call returned

    async def send(
        self, url: Secret, message: Outgoing, *, service_timeout: float = DEFAULT_TIMEOUT
    ) -> SendResult:
        self.calls += 1
        now, at = time.time(), trio.current_time()
        text = message.title + "\n" + message.body
        found = {m.group(1): m.group(2) for m in PROBE_TITLE.finditer(text)}
        for order, received in found.items():
            self.seen[order] += 1
            self.samples.append((at, now - datetime.fromisoformat(received).timestamp()))
        if found:
            self.probe_messages += 1
            self.digests += len(found) > 1
        await trio.sleep(SEND_TIME)
        self.disconnects += text.count("\u2022 end ") + message.body.startswith("end ")
        self.last_call = trio.current_time()
        return SendResult(ok=True)

    def limits(self, url: Secret) -> MessageLimits:
        return MessageLimits(body=4096)  # as Telegram: a digest is a few dozen alerts

    async def wait_quiet(self) -> None:
        """Until no call came for ``QUIET`` seconds."""
        while (idle := trio.current_time() - self.last_call) < QUIET:  # noqa: ASYNC110 - a count, no event
            await trio.sleep(QUIET - idle)


@attrs.frozen(kw_only=True)
class Run:
    seconds: float
    samples: list[float]
    first: list[float]  # latencies of the first window
    last: list[float]  # of the last window
    window: float
    queued: int  # probe alerts in the outbox
    delivered_rows: int  # of those, delivered
    seen: int  # distinct probe alerts the notifier saw
    twice: int  # seen more than once
    messages: int
    digests: int
    backlog: bool
    cut_short: bool  # the simulator did not say it was done in time (a reconnect in between)
    disconnects: int


def queued_probes(state_dir: Path) -> tuple[int, int]:
    """(probe rows in the outbox, of those delivered), read from the SQLite file."""
    with sqlite3.connect(db_path(state_dir)) as conn:
        rows = conn.execute(
            "SELECT status, COUNT(*) FROM outbox WHERE title LIKE 'probe %' GROUP BY status"
        ).fetchall()
    counts = dict(rows)
    return sum(counts.values()), counts.get("delivered", 0)


async def measure(seconds: float, window: float, catch_up: str | None = None) -> Run:
    count = int(RATE * (seconds + WARMUP))
    with tempfile.TemporaryDirectory(prefix="alertd-slow-") as tmp:
        with logging_to(Path(tmp) / "alertd.log"):
            async with open_simulator() as sim:
                text = bench_config_text(sim.url(), accounts=10, state_dir=tmp) + PROBE
                if catch_up is not None:  # e.g. "1d": one message an alert, as before
                    text = text.replace("[dispatch]\n", f'[dispatch]\ncatch_up = "{catch_up}"\n')
                notifier = SlowNotifier()
                async with daemon_running(text, tmp, notifier):
                    t0 = await sim.flood(count, RATE)
                    # A stream reconnect in between can leave the simulator flooding a gone
                    # connection: the run ends on time all the same.
                    with trio.move_on_at(t0 + WARMUP + seconds + 30) as flood:
                        await sim.done()
                    with trio.move_on_after(DRAIN_WAIT) as drain:
                        await notifier.wait_quiet()
                    backlog = drain.cancelled_caught
        queued, delivered = queued_probes(Path(tmp))
    start, end = t0 + WARMUP, t0 + WARMUP + seconds
    # A probe's frame time is its arrival minus its latency (both on this process's clocks).
    timed = [(at - lat, lat) for at, lat in notifier.samples if at - lat >= start]
    return Run(
        seconds=seconds,
        samples=[lat for _, lat in timed],
        first=[lat for t, lat in timed if t < start + window],
        last=[lat for t, lat in timed if end - window <= t < end],
        window=window,
        queued=queued,
        delivered_rows=delivered,
        seen=len(notifier.seen),
        twice=sum(1 for n in notifier.seen.values() if n > 1),
        messages=notifier.probe_messages,
        digests=notifier.digests,
        backlog=backlog,
        cut_short=flood.cancelled_caught,
        disconnects=notifier.disconnects,
    )


def run(quick: bool, seconds: float | None = None, catch_up: str | None = None) -> list[Result]:
    duration = seconds or (60.0 if quick else 600.0)
    window = 10.0 if duration < 300 else 60.0
    print(
        f"slow channel: {duration:g} s at {RATE:,.0f} frames/s, ~1% probe alerts, a "
        f"{SEND_TIME * 1000:.0f} ms notifier, no rate limit"
        + (f", catch_up {catch_up}" if catch_up else "")
    )
    r = trio.run(measure, duration, window, catch_up)
    p50, p99 = percentile(r.samples, 50), percentile(r.samples, 99)
    first, last = percentile(r.first, 99), percentile(r.last, 99)
    once = r.seen == r.queued == r.delivered_rows and r.twice == 0 and not r.backlog
    print(
        f"  {len(r.samples):,} probe alerts measured: p50 {p50:.3f} s  p99 {p99:.3f} s  "
        f"max {max(r.samples, default=float('nan')):.3f} s\n"
        f"  p99 first {r.window:g} s {first:.3f} s, last {r.window:g} s {last:.3f} s\n"
        f"  queued {r.queued:,}, delivered {r.delivered_rows:,}, seen by the notifier "
        f"{r.seen:,}, twice {r.twice}; in {r.messages:,} messages ({r.digests:,} digests)"
        + ("  BACKLOG left after the flood" if r.backlog else "")
        + (f"\n  stream disconnects during the run: {r.disconnects}" if r.disconnects else "")
        + ("  (the simulator never said done)" if r.cut_short else ""),
        flush=True,
    )
    return [
        Result(
            name="slow channel (200 ms, 10 alerts/s): p50 / p99",
            measured=f"{p50:.2f} / {p99:.2f} s",
            target=f"p99 < {TARGET_P99:g} s",
            ok=p99 < TARGET_P99,
        ),
        Result(
            name=f"slow channel: p99 first / last {r.window:g} s",
            measured=f"{first:.2f} / {last:.2f} s",
            target=f"last <= first + {FLAT:g} s",
            ok=last <= first + FLAT,
        ),
        Result(
            name="slow channel: every alert once",
            measured=f"{r.seen:,} of {r.queued:,} queued, {r.twice} twice, {r.messages:,} messages",
            target="all, none twice",
            ok=once,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 s instead of 10 minutes")
    parser.add_argument("--seconds", type=float, help="measured seconds")
    parser.add_argument("--catch-up", help='[dispatch] catch_up ("1d": as before issue 17)')
    args = parser.parse_args()
    print(machine_line())
    results = run(args.quick, args.seconds, args.catch_up)
    return 0 if all(r.ok is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
