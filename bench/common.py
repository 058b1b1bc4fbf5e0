"""Shared pieces of the end-to-end benchmarks (e2e, latency, memory, start-up).

- ``machine()``: the facts a number needs next to it (nproc, CPU, Python, date, load).
- ``Result``: one row of ``bench/run.py``'s table.
- ``SimulatorProcess``: the exchange simulator in its own process (so the client side keeps
  its own core), driven over stdin/stdout: "flood N frames at R/s once these topics are
  subscribed", then an end marker frame. A fresh process with the same seed and epoch floods
  byte-identical frames, which is how the ceiling client and alertd see *the same* flood.
  ``python bench/common.py simulator`` is that process's entry point.
- ``LineProcess`` / ``open_line_process``: any such child process (the simulator, e2e's
  replay sender and its contenders); ``ChildReport``: the contender's side (CPU time on
  request, the ``end`` line).
- ``start_cli_simulator`` / ``start_alertd`` / ``stop_processes`` / ``connected_count``:
  ``alertd simulate`` and ``alertd run`` as child processes (memory, reconnect), watched
  through alertd's log; ``logging_to`` / ``daemon_running``: an in-process ``Daemon`` with a
  notifier of the benchmark's own (latency, slow channel).
- ``bench_config()``: a TOML config for one Piexgo account on the simulator, with the 100
  benchmark rules (``bench_rules``), a latency probe rule, and a channel that goes to a
  ``CountingNotifier`` (the ``Notifier`` protocol: counts, timestamps, never sends).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import trio

from alertd.config.model import Secret
from alertd.notify.notifier import DEFAULT_TIMEOUT, MessageLimits, Outgoing, SendResult

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SEED = 7
EPOCH = 1_767_225_600.0  # 2026-01-01 UTC: pinned, so that every simulator run floods the same
PIEXGO_TOPICS = ("pinfo", "dealinfo.btc_usdt", "dealinfo.eth_usdt")  # all the flood sends
MARKER = "bench-end"  # the close reason after a flood; alertd reports it as stream.disconnected
SETTLE = 0.2  # seconds between a subscription and the flood, for the acks and snapshot
PROBE_RULE = "latency-probe"
START_TIMEOUT = 30.0  # seconds a child process may take to say it is ready


# -- facts ------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> dict[str, str]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": f"{load:.2f}",
    }


def machine_line() -> str:
    m = machine()
    return (
        f"nproc={m['nproc']} cpu={m['cpu']!r} python={m['python']} date={m['date']} "
        f"load1={m['load']}"
    )


@attrs.frozen(kw_only=True)
class Result:
    """One row of the summary table. ``ok`` None: informational, no target."""

    name: str
    measured: str
    target: str = "-"
    ok: bool | None = None


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100), nearest-rank: a value that was actually measured."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def read_rss_kib(pid: int | str = "self") -> int | None:
    """VmRSS of a process in KiB (None when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


# -- the notifier at the end of the pipeline --------------------------------------------------


@attrs.define
class CountingNotifier:
    """A ``Notifier`` that sends nothing: counts messages, notices the end marker, and for the
    latency probe rule (whose message is ``probe <event received time>``) records how long
    after the frame's arrival the notifier was called (wall clock, microseconds resolution).
    """

    sent: int = 0
    gaps: int = 0  # stream.gap notifications (an overflow would be one)
    latencies: list[float] = attrs.field(factory=list)  # seconds
    marker_at: float | None = None  # trio clock when the end marker's alert arrived
    _marker: trio.Event = attrs.field(factory=trio.Event)

    async def send(
        self, url: Secret, message: Outgoing, *, service_timeout: float = DEFAULT_TIMEOUT
    ) -> SendResult:
        title, body = message.title, message.body
        now = time.time()
        self.sent += 1
        if body.startswith("probe "):
            received = datetime.fromisoformat(body[6:].strip())
            self.latencies.append(now - received.timestamp())
        elif body.startswith("gap "):
            self.gaps += 1
        elif MARKER in body or MARKER in title:
            self.marker_at = trio.current_time()
            self._marker.set()
        await trio.lowlevel.checkpoint()
        return SendResult(ok=True)

    def limits(self, url: Secret) -> MessageLimits:
        return MessageLimits()

    async def wait_marker(self) -> float:
        await self._marker.wait()
        assert self.marker_at is not None
        return self.marker_at

    def reset(self) -> None:
        self.sent = 0
        self.gaps = 0
        self.latencies = []
        self.marker_at = None
        self._marker = trio.Event()


# -- config -----------------------------------------------------------------------------------


def account_names(accounts: int) -> list[str]:
    """``bench`` (the flooded account) and ``accounts - 1`` others."""
    return ["bench"] + [f"other{i:02d}" for i in range(1, accounts)]


def bench_rules(accounts: int = 1) -> list[str]:
    """100 rules as TOML tables, with ``where`` filters so that few events alert. They come
    in tens (one of each type and kind) and ten ``k`` is about account ``k % accounts``:
    with ``accounts=10`` ten rules are about the flooded account and 90 about nine others,
    as in a config that watches ten accounts; with ``accounts=1`` all 100 are about the
    flooded account, the worst case (every event meets dozens of candidate rules)."""
    names = account_names(accounts)
    out = []
    symbols = ("BTC_USDT", "ETH_USDT")
    for i in range(100):
        sym = symbols[i % 2]
        big = 40_000 + 1_000 * i  # notional in USDT: a fill this big is rare in the flood
        choice = i % 10
        if choice in (0, 1):
            body = (
                f'on = "order.filled"\nsymbol = "{sym}"\n'
                f'where = "notional is not none and notional > {big}"\n'
                'message = "{{ side }} {{ amount }} {{ symbol }} at {{ fill_price }}"'
            )
        elif choice == 2:
            body = (
                f'on = "trade"\nsymbol = "{sym}"\nwhere = "amount * price > {big * 4}"\n'
                'key = "{{ symbol }}"\ncooldown = "10s"'
            )
        elif choice == 3:
            body = (
                'type = "threshold"\non = "balance.changed"\ncurrency = "USDT"\n'
                f'value = "balance"\nbelow = {1_000 + i}\nresolve_above = {5_000 + i}'
            )
        elif choice == 4:
            body = (
                'type = "threshold"\non = "balance.changed"\n'
                f'currency = "{"BTC" if i % 20 < 10 else "ETH"}"\n'
                f'value = "balance"\nabove = {1_000_000 + i}'
            )
        elif choice == 5:
            body = (
                'type = "rate"\non = "order.cancelled"\ncount = 500\nwithin = "1m"\ncooldown = "5m"'
            )
        elif choice == 6:
            body = f'type = "absence"\non = "trade"\nsymbol = "{sym}"\nafter = "5m"'
        elif choice == 7:
            body = (
                f'type = "order_timeout"\non = "order.*"\nopen_for = "{2 + i}h"\nstalled_for = "1h"'
            )
        elif choice == 8:
            body = (
                f'on = "order.partially_filled"\nside = "{"buy" if i % 20 < 10 else "sell"}"\n'
                f'where = "filled is not none and filled * price > {big * 2}"'
            )
        else:
            body = (
                f'on = "order.placed"\nsymbol = "{sym}"\n'
                f'where = "price is not none and amount * price > {big * 3}"'
            )
        account = names[(i // 10) % len(names)]
        out.append(f'[[rules]]\nname = "r{i:03d}"\naccount = "{account}"\n{body}\n')
    return out


PROBE = f"""[[rules]]
name = "{PROBE_RULE}"
on = "order.filled"
account = "bench"
# one group per alert: grouping must not hold a probe back behind another
key = "{{{{ order_id }}}}/{{{{ kind }}}}"
message = "probe {{{{ received }}}}"
"""

MARKER_RULE = """[[rules]]
name = "bench-end"
on = "stream.disconnected"
message = "end {{ reason }}"

[[rules]]
name = "bench-gap"
on = "stream.gap"
key = "{{ stream }} {{ since }} {{ until }}"
message = "gap {{ why }} {{ raw }}"
"""


def bench_config_text(
    url: str,
    *,
    rules: int = 100,
    accounts: int = 1,
    probe: bool = False,
    state_dir: str = "/nonexistent",
    log_level: str = "info",
) -> str:
    """A config for one Piexgo account ("bench") on the simulator at ``url``; with
    ``accounts`` > 1 the others are configured but disabled (their rules are loaded)."""
    chosen = bench_rules(accounts)[:rules]
    streams = ", ".join(f'"{t}"' for t in PIEXGO_TOPICS)
    parts = [
        f'[daemon]\nstate_dir = "{state_dir}"\nlog_level = "{log_level}"\ntimezone = "UTC"\n',
        *(
            f'[[accounts]]\nname = "{name}"\nexchange = "piexgo"\nurl = "{url}"\n'
            f"streams = [{streams}]\nqueue_size = 1000\nenabled = {str(i == 0).lower()}\n"
            for i, name in enumerate(account_names(accounts))
        ),
        '[channels]\nbench = "json://127.0.0.1:9/bench"\n',
        # group_wait 0s: grouping adds no deliberate delay (the latency benchmark relies on it)
        '[dispatch]\ndefault_channel = "bench"\ngroup_wait = "0s"\n',
        *chosen,
        MARKER_RULE,
    ]
    if probe:
        parts.append(PROBE)
    return "\n".join(parts)


def parse(text: str):  # type: ignore[no-untyped-def]
    from alertd.check import parse_config

    config, problems = parse_config(text, file="bench.toml")
    if config is None or problems:
        raise SystemExit("bench config is invalid:\n" + "\n".join(str(p) for p in problems))
    return config


# -- alertd and its simulator as child processes, alertd in process ---------------------------


def connected_count(log: Path) -> int:
    """How many ``stream.connected`` lines alertd's log holds so far."""
    try:
        return log.read_text(errors="replace").count("stream.connected account=")
    except OSError:
        return 0


async def start_cli_simulator(
    *, port: int = 0, rate: float, seed: int = SEED
) -> tuple[trio.Process, int]:
    """``alertd simulate --scenario normal`` on ``port`` (0: any), once it says it listens
    (within ``START_TIMEOUT``); the process and its port."""
    sim = await trio.lowlevel.open_process(
        [
            *(PYTHON, "-m", "alertd", "--log-level", "warning", "simulate", "--port", str(port)),
            *("--scenario", "normal", "--rate", str(rate), "--seed", str(seed)),
        ],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert sim.stdout is not None
    data = b""
    with trio.fail_after(START_TIMEOUT):
        while (found := re.search(rb"listening on ws://[^:]+:(\d+)", data)) is None:
            chunk = await sim.stdout.receive_some(4096)
            if not chunk:
                raise RuntimeError("the simulator ended before it listened")
            data += chunk
    return sim, int(found.group(1))


async def start_alertd(config: Path, state_dir: str | Path, log: Path) -> trio.Process:
    """``alertd run -c config``, its output (both streams) to ``log``, not told to notify
    systemd (a NOTIFY_SOCKET of the benchmark's own session is dropped)."""
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    with log.open("w") as out:
        return await trio.lowlevel.open_process(
            [PYTHON, "-m", "alertd", "run", "-c", str(config), "--state-dir", str(state_dir)],
            stdout=out,
            stderr=out,
            cwd=ROOT,
            env=env,
        )


async def stop_processes(*procs: trio.Process | None, grace: float = 20.0) -> None:
    """SIGTERM each process still running, wait up to ``grace`` seconds (shielded: this runs
    in ``finally`` blocks), then SIGKILL."""
    for proc in procs:
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            with trio.move_on_after(grace) as scope:
                scope.shield = True
                await proc.wait()
            if proc.returncode is None:
                proc.kill()


@contextlib.contextmanager
def logging_to(path: Path) -> Iterator[None]:
    """alertd's log lines (level info) into ``path`` while inside; none after."""
    from alertd.daemon.logs import configure_logging

    with path.open("w") as log_file:
        configure_logging("info", stream=log_file)
        try:
            yield
        finally:
            logging.getLogger().handlers.clear()


@contextlib.asynccontextmanager
async def daemon_running(text: str, state_dir: str, notifier: Any) -> AsyncIterator[Any]:
    """A ``Daemon`` on config ``text`` with ``notifier``, run in this process while inside;
    at the end it is stopped without draining what is left in its outbox."""
    from alertd.daemon import heap
    from alertd.daemon.app import Daemon

    os.environ.pop("NOTIFY_SOCKET", None)
    daemon = Daemon(
        config=parse(text), state_dir=Path(state_dir), notifier=notifier, handle_signals=False
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        heap.settle()  # as alertd run does once the daemon is up (alertd.daemon.heap)
        yield daemon
        daemon.request_stop()
        daemon.request_stop()  # the second request skips draining the backlog


# -- processes driven by lines on stdin and stdout ----------------------------------------------


@attrs.define(eq=False)
class LineProcess:
    """The benchmark's side of a child process that talks in lines: commands go to its stdin
    (``tell``), and ``expect`` reads its stdout up to the next line starting with a word."""

    process: trio.Process
    _buffer: bytearray = attrs.field(factory=bytearray, kw_only=True)

    async def _readline(self) -> str:
        assert self.process.stdout is not None
        while b"\n" not in self._buffer:
            chunk = await self.process.stdout.receive_some(4096)
            if not chunk:
                raise RuntimeError(f"{self.process.args!r} ended early")
            self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line.decode()

    async def expect(self, word: str) -> list[str]:
        """The words after ``word`` on the next line that starts with it (others are skipped)."""
        while True:
            parts = (await self._readline()).split()
            if parts and parts[0] == word:
                return parts[1:]

    async def tell(self, line: str) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(line.encode() + b"\n")


class open_line_process:
    """Start ``cmd`` with pipes for stdin and stdout (stderr is ours); at the end, wait up to
    ``grace`` seconds for it to exit by itself, then terminate it (then kill), and wait."""

    def __init__(self, cmd: Sequence[str], *, grace: float = 0.0) -> None:
        self._cmd = list(cmd)
        self._grace = grace
        self._proc: trio.Process | None = None

    async def start(self) -> trio.Process:
        self._proc = await trio.lowlevel.open_process(
            self._cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT
        )
        return self._proc

    async def __aenter__(self) -> LineProcess:
        return LineProcess(await self.start())

    async def __aexit__(self, *exc: object) -> None:
        assert self._proc is not None
        proc = self._proc
        with trio.move_on_after(self._grace) as scope:
            scope.shield = True
            await proc.wait()
        if proc.returncode is None:
            proc.terminate()
        with trio.move_on_after(5) as scope:
            scope.shield = True
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
            with trio.CancelScope(shield=True):
                await proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with trio.CancelScope(shield=True):
                    await stream.aclose()


class ChildReport:
    """The child's side of ``LineProcess``: ``say`` writes a line to stdout, and a thread
    answers every ``cpu`` line on stdin with ``cpu <seconds>``, this process's CPU time (all
    threads, ``time.process_time``), whatever its event loop is doing. The benchmark asks
    just before the flood starts; the child says ``end <monotonic> <cpu> [key=value ...]``
    itself when the flood's end reaches it (``time.monotonic`` is comparable across
    processes, trio's clock is not)."""

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        threading.Thread(target=self._answer, name="bench-cpu", daemon=True).start()

    def say(self, *words: object) -> None:
        with self._lock:
            sys.stdout.write(" ".join(map(str, words)) + "\n")
            sys.stdout.flush()

    def end(self, at: float | None = None, **facts: object) -> None:
        cpu = time.process_time()
        at = time.monotonic() if at is None else at
        self.say("end", f"{at:.6f}", f"{cpu:.6f}", *(f"{k}={v}" for k, v in facts.items()))

    def _answer(self) -> None:
        for line in sys.stdin:
            if line.strip() == "cpu":
                self.say("cpu", f"{time.process_time():.6f}")


# -- the simulator in its own process ---------------------------------------------------------


@attrs.define(eq=False)
class SimulatorProcess(LineProcess):
    """Client side of ``python bench/common.py simulator`` (see ``open_simulator``)."""

    port: int = 0

    def url(self, exchange: str = "piexgo") -> str:
        return f"ws://127.0.0.1:{self.port}/{exchange}/ws"

    async def flood(self, count: int, rate: float, topics: Sequence[str] = PIEXGO_TOPICS) -> float:
        """Ask for ``count`` frames at ``rate``/s once ``topics`` are subscribed; returns the
        trio time at which the simulator said it started (the client's t0)."""
        await self.tell(f"flood {count} {rate} {','.join(topics)}")
        await self.expect("flooding")
        return trio.current_time()

    async def done(self) -> tuple[int, float]:
        """(frames made, seconds the simulator spent making them)."""
        made, seconds = await self.expect("done")
        return int(made), float(seconds)


def simulator_command(seed: int = SEED, epoch: float = EPOCH) -> list[str]:
    return [PYTHON, str(Path(__file__).resolve()), "simulator", "--seed", str(seed),
            "--epoch", str(epoch)]  # fmt: skip


class open_simulator(open_line_process):
    """Start the simulator process; stop it (and wait for it) at the end."""

    def __init__(self, seed: int = SEED, epoch: float = EPOCH) -> None:
        super().__init__(simulator_command(seed, epoch))

    async def __aenter__(self) -> SimulatorProcess:
        sim = SimulatorProcess(await self.start())
        with trio.fail_after(30):
            (port,) = await sim.expect("port")
        sim.port = int(port)
        return sim


async def _written(sim: Any, frames: int) -> None:
    """Until the simulator has written ``frames`` Piexgo frames in all (a counter it keeps
    without an event to wait on, hence the short polling)."""
    while sim.frames_sent["piexgo"] < frames:  # noqa: ASYNC110
        await trio.sleep(0.0005)


async def _simulator_main(seed: int, epoch: float) -> None:
    from alertd.simulator.server import Simulator, serve

    stdout = sys.stdout

    def say(*words: object) -> None:
        stdout.write(" ".join(map(str, words)) + "\n")
        stdout.flush()

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                async for _ in signals:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(stop_on_signal)
            sim: Simulator = await nursery.start(
                lambda task_status: serve(
                    scenario="quiet", seed=seed, epoch=epoch, task_status=task_status
                )
            )
            say("port", sim.port)
            stdin = trio.lowlevel.FdStream(os.dup(0))
            buffer = b""
            while True:
                while b"\n" not in buffer:
                    chunk = await stdin.receive_some(4096)
                    if not chunk:
                        nursery.cancel_scope.cancel()
                        return
                    buffer += chunk
                line, _, buffer = buffer.partition(b"\n")
                verb, *args = line.decode().split()
                if verb != "flood":
                    continue
                count, rate, topics = int(args[0]), float(args[1]), args[2].split(",")
                await sim.wait_subscribed("piexgo", topics)
                await trio.sleep(SETTLE)  # acks and the balance snapshot go out first
                sent_before = sim.frames_sent["piexgo"]
                say("flooding")
                start = trio.current_time()
                made = await sim.flood("piexgo", count, rate)
                # Everything is written, then the connection is closed (1000): the close is
                # the end marker, and a close cannot be dropped by a full queue on the
                # client side, where a frame could.
                await _written(sim, sent_before + made)
                seconds = trio.current_time() - start
                sim.drop_connections("piexgo", code=1000, reason=MARKER)
                say("done", made, f"{seconds:.6f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="benchmark helpers")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("simulator", help="the flood simulator process, driven over stdin")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--epoch", type=float, default=EPOCH)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # outbox-full retries are expected, not news
    trio.run(_simulator_main, args.seed, args.epoch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
