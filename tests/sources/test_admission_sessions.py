"""Real sessions behind the connection limit: many accounts on one exchange connect, and come
back after the exchange drops them all, never faster than the limit and none twice first."""

from __future__ import annotations

import trio
import trio_websocket

from alertd.events import Event
from alertd.sources.admission import Admission
from alertd.sources.supervisor import Sources

from .helpers import EventLog, FakePiexgo, account

ACCOUNTS = 20
RATE, BURST = 10.0, 5


def _most_in_one_second(times: list[float]) -> int:
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


async def test_many_accounts_never_storm_the_exchange() -> None:
    """20 accounts start and, after the exchange drops every connection, come back with no
    more than burst + rate attempts in any second, and no account tries twice before every
    account has tried once."""
    fake = FakePiexgo(send_snapshot=False)
    attempts: list[tuple[float, str]] = []  # (trio time, account) of each handshake

    async def counting(request: trio_websocket.WebSocketRequest) -> None:
        attempts.append((trio.current_time(), request.path.rpartition("=")[2]))
        await fake.handler(request)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                trio_websocket.serve_websocket, counting, "127.0.0.1", 0, None
            )
            fake.port = server.port
            send, receive = trio.open_memory_channel[Event](1000)
            log = EventLog()
            nursery.start_soon(log.consume, receive)
            gate = Admission(rate=RATE, burst=BURST)
            settings = [
                account(f"{fake.url}?a={i}", name=f"acct{i}", streams=["pinfo"], ping_interval=0)
                for i in range(ACCOUNTS)
            ]
            sources = Sources(settings, send, admission=gate)
            await nursery.start(sources.run)
            await log.wait_for("stream.connected", ACCOUNTS)
            started = [t for t, _ in attempts]
            assert len(started) == ACCOUNTS  # nothing failed, so one attempt each

            attempts.clear()
            await fake.drop()
            await log.wait_for("stream.connected", 2 * ACCOUNTS)
            nursery.cancel_scope.cancel()

    again = [t for t, _ in attempts]
    assert _most_in_one_second(started) <= BURST + RATE
    assert _most_in_one_second(again) <= BURST + RATE
    first_round = [name for _, name in attempts[:ACCOUNTS]]
    assert sorted(first_round) == sorted(str(i) for i in range(ACCOUNTS))
    assert gate.statistics().admitted == {fake.url.rsplit("/", 2)[0]: len(started) + len(again)}
