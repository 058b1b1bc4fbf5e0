"""Resident memory of ``alertd run`` with 50 accounts of 3 streams each, over a sustained run.

    .venv/bin/python bench/memory.py [--quick] [--minutes M] [--rate R]

Real processes: ``alertd simulate --scenario normal --rate R`` (ordinary activity, R actions
a second, every frame to each of the 50 connections), and ``python -m alertd run -c CONFIG
--state-dir DIR`` with 50 Piexgo accounts (``pinfo``, ``dealinfo.btc_usdt``,
``depth.btc_usdt``), the 100 benchmark rules and one channel, a ``json://`` webhook served by
a small HTTP receiver in this process (so apprise really delivers, on loopback only).

VmRSS (``/proc/PID/status``) of the alertd process is sampled every few seconds. The start
value is taken once every account is connected and the warm-up has passed; growth is the last
minute's median (the last samples' in --quick) over that. Target: growth under 5 %.

Warm-up is the time after which every bounded structure is full at the benchmark's rate, so
that what grows after it is growth, not a structure filling up to its bound. It is computed,
not guessed (``warmup_seconds``): the longest of the decoders' closed-order memory
(twice ``MAX_CLOSED_ORDERS`` closes, to fill it and let its set settle, / orders closed a
second: the simulator's own model, stepped for the same seed, gives closes per action, times
``--rate`` actions a second), the longest time
window in the rules and dispatch (``STATE_WINDOW``), and a 60 s floor, plus 10 % for the
simulator's random pacing. ``--quick`` uses 15 s instead (a smoke test, said in its output).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alertd.protocols.orders import MAX_CLOSED_ORDERS
from alertd.simulator.activity import Activity, OrderFact
from common import (
    Result,
    bench_rules,
    connected_count,
    machine_line,
    median,
    read_rss_kib,
    start_alertd,
    start_cli_simulator,
    stop_processes,
)

ACCOUNTS = 50
STREAMS = ("pinfo", "dealinfo.btc_usdt", "depth.btc_usdt")
TARGET_GROWTH = 0.05
SEED = 1  # the simulator's seed, passed explicitly: the warm-up is computed for it
# The longest time window state is kept for in the benchmark's rules and dispatch: absence
# ``after = "5m"`` and the rate rules' ``cooldown = "5m"`` (rate ``within`` 1m, dispatch
# ``group_interval`` 30 s). order_timeout's hours only apply to open orders, and the
# simulator keeps at most four open.
STATE_WINDOW = 300.0
WARMUP_FLOOR = 60.0
WARMUP_MARGIN = 1.1  # the simulator's pacing is random around its mean


def closes_per_action(seed: int = SEED, steps: int = 20_000) -> float:
    """Orders filled or cancelled per simulator action, from the simulator's own model (the
    Piexgo world every benchmark account receives in full)."""
    world = Activity.for_exchange("piexgo", seed=seed, start_us=0)
    closes = 0
    for _ in range(steps):
        for fact in world.step():
            if isinstance(fact, OrderFact) and fact.state in ("filled", "cancelled"):
                closes += 1
    return closes / steps


def warmup_seconds(rate: float) -> tuple[float, str]:
    """Seconds until every bounded structure is full at ``rate`` actions a second, and why."""
    closes = closes_per_action() * rate
    # Full is not settled: past the bound every close also forgets one id, and the dummy slots
    # that leaves in the set make it resize once more (1,000 ids: 2,048 -> 4,096 slots after
    # ~230 closes past the bound, 32 KiB an account, 1.6 MiB for 50; a 643 s warm-up that
    # ended before it counted that as growth). Twice the bound is a round figure past it.
    fill = 2 * MAX_CLOSED_ORDERS / closes
    parts = {
        f"closed-order memory (2 x {MAX_CLOSED_ORDERS:,} closes) at {closes:.2f} closes/s": fill,
        "rule/dispatch windows": STATE_WINDOW,
        "floor": WARMUP_FLOOR,
    }
    why, longest = max(parts.items(), key=lambda kv: kv[1])
    return longest * WARMUP_MARGIN, f"{why}: {longest:.0f} s, +10%"


def config_text(sim_port: int, hook_port: int, state_dir: str) -> str:
    names = ["bench"] + [f"other{i:02d}" for i in range(1, ACCOUNTS)]
    streams = ", ".join(f'"{s}"' for s in STREAMS)
    parts = [
        f'[daemon]\nstate_dir = "{state_dir}"\nlog_level = "info"\ntimezone = "UTC"\n',
        *(
            f'[[accounts]]\nname = "{name}"\nexchange = "piexgo"\n'
            f'url = "ws://127.0.0.1:{sim_port}/piexgo/ws"\nstreams = [{streams}]\n'
            for name in names
        ),
        f'[channels]\nhook = "json://127.0.0.1:{hook_port}/alerts"\n',
        '[dispatch]\ndefault_channel = "hook"\n',
        *bench_rules(ACCOUNTS),
    ]
    return "\n".join(parts)


async def serve_webhook(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Answer every HTTP request with 200 (and count nothing: only the sender's memory
    matters here). Hand-written: a dozen lines, and no HTTP server is a dependency."""

    async def handle(stream: trio.SocketStream) -> None:
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            while len(body) < length:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                body += chunk
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await stream.aclose()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handle, listeners)
        task_status.started(port)


async def measure(
    minutes: float, warmup: float, interval: float, rate: float
) -> tuple[list[tuple[float, int]], float]:
    """RSS samples (seconds since the start value, KiB) and the seconds taken to connect."""
    with tempfile.TemporaryDirectory(prefix="alertd-memory-") as tmp:
        state = Path(tmp)
        log = state / "alertd.log"
        async with trio.open_nursery() as nursery:
            hook_port = await nursery.start(serve_webhook)
            sim: trio.Process | None = None
            daemon: trio.Process | None = None
            try:
                sim, sim_port = await start_cli_simulator(rate=rate, seed=SEED)
                config = state / "alertd.toml"
                config.write_text(config_text(sim_port, hook_port, tmp))
                daemon = await start_alertd(config, tmp, log)
                t0 = trio.current_time()
                with trio.fail_after(120):
                    while connected_count(log) < ACCOUNTS:  # noqa: ASYNC110 (a file, no event)
                        await trio.sleep(0.5)
                connect_seconds = trio.current_time() - t0
                print(
                    f"  {ACCOUNTS} accounts connected after {connect_seconds:.1f} s; "
                    f"warm-up {warmup:.0f} s",
                    flush=True,
                )
                # shown a minute apart, so that the approach to the plateau can be seen
                warm_end = trio.current_time() + warmup
                while (now := trio.current_time()) < warm_end:
                    rss = read_rss_kib(daemon.pid)
                    if rss is not None:
                        print(
                            f"  warm-up t={now - t0:>5.0f} s  rss {rss / 1024:7.1f} MiB", flush=True
                        )
                    await trio.sleep(min(60.0, warm_end - now))
                samples: list[tuple[float, int]] = []
                start = trio.current_time()
                end = start + minutes * 60
                next_print = start
                while True:
                    now = trio.current_time()
                    rss = read_rss_kib(daemon.pid)
                    if rss is None or daemon.returncode is not None:
                        raise RuntimeError(f"alertd exited early; see its log:\n{log.read_text()}")
                    samples.append((now - start, rss))
                    if now >= next_print:
                        print(f"  t={now - start:>5.0f} s  rss {rss / 1024:7.1f} MiB", flush=True)
                        next_print = now + max(60.0, interval)
                    if now >= end:
                        break
                    await trio.sleep(interval)
                return samples, connect_seconds
            finally:
                await stop_processes(daemon, sim)
                nursery.cancel_scope.cancel()


def run(quick: bool, minutes: float | None = None, rate: float | None = None) -> list[Result]:
    length = minutes if minutes is not None else (1.0 if quick else 10.0)
    interval = 2.0 if quick else 5.0
    pace = rate or 10.0
    steady, why = warmup_seconds(pace)
    warmup = 15.0 if quick else steady
    print(
        f"memory: alertd run, {ACCOUNTS} accounts x {len(STREAMS)} streams, 100 rules, "
        f"simulator 'normal' at {pace:g} actions/s, {length:g} min after warm-up"
    )
    print(f"  steady state after {steady:.0f} s ({why})")
    if quick:
        print("  --quick: 15 s warm-up, before steady state: growth includes structures filling")
    samples, _ = trio.run(measure, length, warmup, interval, pace)
    values = [kib for _, kib in samples]
    first = values[0]
    tail_window = 60.0 if length >= 3 else 10.0
    last_t = samples[-1][0]
    tail = [kib for t, kib in samples if t >= last_t - tail_window]
    last = median(tail)
    growth = (last - first) / first
    # the second half's slope (least squares), to tell a plateau from a slow climb
    half = [(t, kib) for t, kib in samples if t >= last_t / 2]
    slope = 0.0
    if len(half) >= 2:
        mt = sum(t for t, _ in half) / len(half)
        mk = sum(k for _, k in half) / len(half)
        var = sum((t - mt) ** 2 for t, _ in half)
        if var:
            slope = sum((t - mt) * (k - mk) for t, k in half) / var * 60 / 1024  # MiB/min
    print(
        f"memory: start {first / 1024:.1f} MiB, end (median of the last {tail_window:g} s) "
        f"{last / 1024:.1f} MiB, min {min(values) / 1024:.1f}, max {max(values) / 1024:.1f} MiB, "
        f"{len(values)} samples over {last_t:.0f} s: growth {growth * 100:+.2f}%; "
        f"second half's slope {slope:+.3f} MiB/min"
    )
    return [
        Result(
            name=f"memory at start (after {warmup:.0f} s warm-up)",
            measured=f"{first / 1024:.1f} MiB",
        ),
        Result(
            name=f"memory growth over {last_t / 60:.1f} min",
            measured=f"{growth * 100:+.2f}% ({last / 1024:.1f} MiB)",
            target=f"< {TARGET_GROWTH * 100:.0f}%",
            ok=growth < TARGET_GROWTH,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 minute after 15 s warm-up (not steady state)"
    )
    parser.add_argument("--minutes", type=float, help="minutes sampled after warm-up (10)")
    parser.add_argument("--rate", type=float, help="simulator actions a second (default 10)")
    args = parser.parse_args()
    print(machine_line())
    results = run(args.quick, args.minutes, args.rate)
    return 0 if all(r.ok is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
