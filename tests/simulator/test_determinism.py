"""The same seed and scenario give the same frames; another seed gives others."""

from __future__ import annotations

import trio

from .helpers import client, collect, running, subscribe

EPOCH = 1_700_000_000.0  # pinned, so that timestamps match too
TOPICS = ("pinfo", "dealinfo.btc_usdt", "depth.btc_usdt", "dealinfo.eth_usdt", "depth.eth_usdt")


async def first_frames(seed: int, count: int = 25) -> tuple[list[str], list[str]]:
    async with running(seed=seed, epoch=EPOCH) as sim:
        async with client(sim.url("piexgo")) as ws:
            await subscribe(ws, *TOPICS)
            piexgo = await collect(ws, count)
        async with client(sim.url("cryptology")) as ws:
            cryptology = await collect(ws, count)
    return piexgo, cryptology


async def test_same_seed_same_frames(clock: trio.abc.Clock) -> None:
    """Two fresh simulators with seed 7 send byte-identical first frames on both exchanges."""
    with trio.fail_after(600):
        assert await first_frames(7) == await first_frames(7)


async def test_other_seed_other_frames(clock: trio.abc.Clock) -> None:
    """Seeds 7 and 8 differ on both exchanges."""
    with trio.fail_after(600):
        (p7, c7), (p8, c8) = await first_frames(7), await first_frames(8)
    assert p7 != p8 and c7 != c8
