"""`alertd simulate` without --seed starts another world each time (no order id repeats
across restarts), says which seed it drew, and its --help states every default."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import pytest
import trio

from alertd.cli import main

from .helpers import client

LINE = re.compile(r"^simulator listening on ws://127\.0\.0\.1:(\d+) .* seed=(\d+)$")


async def _order_ids(port: int, count: int) -> set[str]:
    """The order ids of the first ``count`` order frames the Cryptology side sends."""
    ids: set[str] = set()
    async with client(f"ws://127.0.0.1:{port}/cryptology/ws") as ws:
        while len(ids) < count:
            frame = json.loads(await ws.get_message())
            if "order_id" in frame and "Order" in str(frame.get("@type", "")):
                ids.add(str(frame["order_id"]))
    return ids


async def _start_and_read(*argv: str) -> tuple[int, set[str]]:
    """Start `alertd simulate --port 0 ARGV`, return its seed and first order ids, stop it."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "alertd", "simulate", "--port", "0", "--rate", "40", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        out = b""
        while b"\n" not in out:
            chunk = await proc.stdout.receive_some()
            assert chunk, "simulate exited before printing its listening line"
            out += chunk
        match = LINE.match(out.decode().splitlines()[0])
        assert match, out
        ids = await _order_ids(int(match.group(1)), 3)
        proc.send_signal(signal.SIGINT)
        assert await proc.wait() == 0
        return int(match.group(2)), ids
    finally:
        if proc.returncode is None:
            proc.kill()
        with trio.CancelScope(shield=True):
            await proc.wait()
        assert proc.stdout is not None
        await proc.stdout.aclose()


async def test_two_starts_without_a_seed_share_no_order_id() -> None:
    """Two simulators started without --seed draw different seeds and send different order
    ids; the seed printed is the one to pass to see that world again."""
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            results: list[tuple[int, set[str]]] = []

            async def one() -> None:
                results.append(await _start_and_read())

            nursery.start_soon(one)
            nursery.start_soon(one)
    (seed_a, ids_a), (seed_b, ids_b) = results
    assert seed_a != seed_b
    assert ids_a and ids_b and not ids_a & ids_b


async def test_a_given_seed_gives_the_same_orders_again() -> None:
    """--seed N gives the same order ids on every start."""
    with trio.fail_after(60):
        seed_a, ids_a = await _start_and_read("--seed", "11")
        seed_b, ids_b = await _start_and_read("--seed", "11")
    assert seed_a == seed_b == 11
    assert ids_a == ids_b


def test_help_states_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """`alertd simulate --help` gives the default host, port, scenario and what happens
    without --seed."""
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "default 127.0.0.1" in text
    assert "default 8765" in text
    assert "default normal" in text
    assert "default: a new one each start" in text
