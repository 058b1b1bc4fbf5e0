"""The connection limit per exchange endpoint: a burst at once, then a steady rate, first come
first served, one bucket per endpoint."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from alertd.sources.admission import Admission, endpoint_of


async def _admit_all(gate: Admission, urls: list[str]) -> list[float]:
    """The trio time at which each attempt (started in this order) was let through."""
    times: list[float] = [0.0] * len(urls)

    async def one(i: int, url: str) -> None:
        await gate.admit(url)
        times[i] = trio.current_time()

    async with trio.open_nursery() as nursery:
        for i, url in enumerate(urls):
            nursery.start_soon(one, i, url)
    return times


def test_an_endpoint_is_scheme_host_and_port() -> None:
    """Paths, queries and the host's case do not make another endpoint; ports do."""
    assert endpoint_of("wss://API.example.com/ws?x=1") == "wss://api.example.com:443"
    assert endpoint_of("ws://127.0.0.1:8765/a") == endpoint_of("ws://127.0.0.1:8765/b")
    assert endpoint_of("ws://127.0.0.1:8765/") != endpoint_of("ws://127.0.0.1:8766/")


async def test_a_burst_goes_at_once_then_the_rate_applies(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With burst 3 and 2 a second, 9 attempts start at 0, 0, 0, 0.5, 1.0, ... 3.0 s."""
    gate = Admission(rate=2.0, burst=3)
    start = trio.current_time()
    times = await _admit_all(gate, ["ws://x:1/"] * 9)
    offsets = sorted(round(t - start, 3) for t in times)
    assert offsets == [0.0, 0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert gate.statistics().admitted == {"ws://x:1": 9}


async def test_in_no_second_are_more_than_rate_plus_burst_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """1,000 sessions coming back at once: never more than burst + rate in any one second."""
    gate = Admission(rate=5.0, burst=10)
    start = trio.current_time()
    times = sorted(t - start for t in await _admit_all(gate, ["wss://ex:443/"] * 1000))
    worst = max(sum(1 for t in times if s <= t < s + 1.0) for s in times)
    assert worst <= 15
    assert times[-1] == pytest.approx((1000 - 10) / 5.0)


async def test_a_failed_attempt_queues_behind_those_still_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A session that tries again joins the end of the queue: nobody tries twice while
    another has not tried once."""
    gate = Admission(rate=1.0, burst=1)
    order: list[str] = []

    async def session(name: str, attempts: int) -> None:
        for _ in range(attempts):
            await gate.admit("ws://x:1/")
            order.append(name)
            await trio.sleep(0.1)  # the attempt fails; the session's own backoff

    async with trio.open_nursery() as nursery:
        nursery.start_soon(session, "a", 2)
        await trio.testing.wait_all_tasks_blocked()
        for name in "bcd":
            nursery.start_soon(session, name, 1)
            await trio.testing.wait_all_tasks_blocked()
    assert order == ["a", "b", "c", "d", "a"]


async def test_endpoints_do_not_share_a_bucket(autojump_clock: trio.testing.MockClock) -> None:
    """Two exchanges each get their own burst."""
    gate = Admission(rate=1.0, burst=2)
    start = trio.current_time()
    times = await _admit_all(gate, ["ws://a:1/", "ws://a:1/", "ws://b:1/", "ws://b:1/"])
    assert [t - start for t in times] == [0.0, 0.0, 0.0, 0.0]


async def test_a_cancelled_wait_takes_no_token(autojump_clock: trio.testing.MockClock) -> None:
    """A session stopped while it waits (removed by a reload) leaves its turn to the next."""
    gate = Admission(rate=1.0, burst=1)
    await gate.admit("ws://x:1/")
    with trio.move_on_after(0.2):
        await gate.admit("ws://x:1/")
    assert gate.statistics().waiting == {}
    start = trio.current_time()
    await gate.admit("ws://x:1/")
    assert trio.current_time() - start == pytest.approx(0.8)
    assert gate.statistics().admitted == {"ws://x:1": 2}


def test_a_limit_that_admits_nothing_is_refused() -> None:
    """rate 0 or burst 0 would never open a connection."""
    with pytest.raises(ValueError, match="rate > 0"):
        Admission(rate=0.0)
    with pytest.raises(ValueError, match="burst >= 1"):
        Admission(burst=0)
