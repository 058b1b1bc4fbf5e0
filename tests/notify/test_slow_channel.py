"""A channel that falls behind (its due rows would take longer than ``[dispatch] catch_up``
to send one message each) gets what waits as digests, never losing or reordering an alert,
and single messages again once it keeps up; a channel that keeps up sees no change."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import trio
import trio.testing

from alertd.config.model import Config
from alertd.dispatch.dispatcher import Dispatcher
from alertd.dispatch.muting import Muter
from alertd.dispatch.silences import Silences
from alertd.notify.apprise_notifier import AppriseNotifier
from alertd.notify.delivery import Delivery
from alertd.notify.notifier import MessageLimits, Notifier
from alertd.notify.recording import RecordingNotifier
from alertd.store.database import Database, db_path
from alertd.store.outbox import Outbox

from .helpers import channel, make_alert, make_config, wait_until

ID = re.compile(r"fill ([ab])-(\d+)")
Feed = Callable[[trio.MemorySendChannel[Any]], Awaitable[None]]


@contextmanager
def slow_receiver(seconds: float) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook on 127.0.0.1 that takes ``seconds`` to answer each POST, one at a time;
    yields its address and the JSON documents it received, in order."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            time.sleep(seconds)
            received.append(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@asynccontextmanager
async def pipeline(tmp_path: Path, config: Config, notifier: Notifier) -> AsyncIterator[Any]:
    """A real dispatcher and delivery on a SQLite outbox; yields (alert sender, delivery)."""
    db = Database(db_path(tmp_path))
    muter = Muter(config, Silences(db))
    outbox = Outbox(db)
    delivery = Delivery(config, outbox, notifier, muting=muter)
    send, receive = trio.open_memory_channel[Any](100)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await nursery.start(Dispatcher(config, outbox, muter).run, receive)
            yield send, delivery
            nursery.cancel_scope.cancel()
    finally:
        db.close()


def fill(account: str, n: int) -> Any:
    """Alert ``n`` about ``account``, alone in its group, its id in its title."""
    return make_alert(
        n,
        id=f"{account}-{n}",
        key=f"{account}/{n}",
        account=account,
        title=f"fill {account}-{n:02d}",
    )


def ids_in(text: str) -> list[tuple[str, int]]:
    return [(m.group(1), int(m.group(2))) for m in ID.finditer(text)]


def assert_each_once_in_order(seen: list[tuple[str, int]], expected: int) -> None:
    assert sorted(seen) == sorted({(a, n) for a, n in seen})  # none twice
    assert len(seen) == expected  # none lost
    for account in "ab":
        numbers = [n for a, n in seen if a == account]
        assert numbers == sorted(numbers)  # one account's alerts in the order they fired


async def test_a_burst_behind_a_slow_webhook_is_coalesced_then_single_again(
    tmp_path: Path,
) -> None:
    """Behind a webhook taking 200 ms a request, a 10-a-second burst arrives as digests, each
    alert once and in order per account, soon after the burst; later alerts, spaced so the
    channel keeps up, arrive one message each."""
    with slow_receiver(0.2) as (address, received), trio.fail_after(60):
        config = make_config({"hook": channel(f"json://{address}/hook")}, default_channel="hook")
        async with pipeline(tmp_path, config, AppriseNotifier()) as (send, delivery):
            for n in range(24):
                await send.send(fill("ab"[n % 2], n))
                await trio.sleep(0.1)
            burst_end = trio.current_time()
            await wait_until(lambda: delivery.statistics().delivered >= 24, step=0.05)
            caught_up_after = trio.current_time() - burst_end
            during = delivery.statistics()
            for n in range(24, 27):
                await trio.sleep(0.5)
                await send.send(fill("a", n))
            await wait_until(lambda: delivery.statistics().delivered >= 27, step=0.05)
            after = delivery.statistics()
    seen = [i for doc in received for i in ids_in(doc["title"] + "\n" + doc["message"])]
    assert_each_once_in_order(seen, 27)
    # One message at a time would have needed 24 x 0.2 s, ending 2.4 s after the burst.
    assert caught_up_after < 1.5
    assert during.digests >= 1 and during.catch_ups >= 1
    assert len(received) - 3 < 24  # the burst took fewer messages than alerts
    assert [doc["title"] for doc in received[-3:]] == ["fill a-24", "fill a-25", "fill a-26"]
    assert (after.digests, after.catch_ups) == (during.digests, during.catch_ups)


async def test_a_channel_that_keeps_up_gets_one_message_an_alert(
    tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    """With a fast service, a burst of 40 alerts is 40 messages in order: no digest."""
    notifier = RecordingNotifier()
    config = make_config({"me": channel("fake://me")}, default_channel="me")
    with trio.fail_after(600):
        async with pipeline(tmp_path, config, notifier) as (send, delivery):
            for n in range(40):
                await send.send(fill("ab"[n % 2], n))
            await wait_until(lambda: delivery.statistics().delivered >= 40, step=0.05)
            stats = delivery.statistics()
    assert [m.title for m in notifier.sent] == [f"fill {'ab'[n % 2]}-{n:02d}" for n in range(40)]
    assert (stats.digests, stats.catch_ups) == (0, 0)


async def test_digests_behind_a_rate_limit_fit_one_message_each(
    tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    """Behind a service that takes 1 s a message and 300 characters at most, under a rate
    limit it never reaches, a burst goes out as digests of at most 300 characters, every
    alert once and in order."""
    notifier = RecordingNotifier(
        delay={"fake://me": 1.0}, limits_by_url={"fake://me": MessageLimits(body=300)}
    )
    config = make_config({"me": channel("fake://me", rate_limit="1000/1m")}, default_channel="me")
    with trio.fail_after(600):
        async with pipeline(tmp_path, config, notifier) as (send, delivery):
            for n in range(40):
                await send.send(fill("ab"[n % 2], n))
                await trio.sleep(0.1)
            await wait_until(lambda: delivery.statistics().delivered >= 40, step=0.05)
            stats = delivery.statistics()
    texts = [m.message.title + "\n" + m.message.body for m in notifier.sent]
    assert_each_once_in_order([i for t in texts for i in ids_in(t)], 40)
    assert all(len(m.message.body) <= 300 for m in notifier.sent)
    assert stats.catch_ups >= 1 and stats.digests >= 2
    assert len(notifier.sent) < 40
