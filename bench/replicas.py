"""Two replicas on PostgreSQL beside the SQLite default: latency, CPU a frame, takeover.

    .venv/bin/python bench/replicas.py [--quick] [--only latency,e2e,takeover]

Every contender is a real ``alertd run`` process (``python -m alertd run``) with the
benchmark config (``bench/common.py``: 10 accounts, 1 enabled, 100 rules), fed by
the benchmark simulator (its own process), delivering through apprise's ``json://`` to an HTTP
receiver in this process, which stamps each request with the wall clock. "sqlite" is one
daemon with its state directory; "pg" is two replicas ("a", "b") with ``[daemon] database``
on a throwaway PostgreSQL server (``scripts/postgres``, fresh for every round, so the same
flood's deterministic alert ids are new each time; trust auth, fsync off).

- latency: the simulator floods 1,000 frames/s; the probe rule (``bench/slow_channel.py``'s)
  alerts on one ``order.filled`` in eight (~10 alerts/s), titled ``probe <order id> at
  <received>`` (the wall-clock time the session took the frame), so the receiver measures
  frame-to-notifier time, including apprise's HTTP request, for both contenders. Rounds
  alternate sqlite, pg, sqlite, pg. With two replicas both see every frame and make the same
  alert id; the shared outbox keeps one, so the sample is the replica that queued it first,
  and a doubled alert would show as a repeated order id. The first second is warm-up.
- e2e: the simulator floods N frames as fast as it can (no probe rule); each daemon's CPU
  seconds come from ``/proc/PID/stat``; the end is when every daemon's CPU use fell below
  15% of a core. frames/s = N / (end - start); CPU a frame = CPU used / N, per process.
- takeover: all 10 accounts enabled, ``watchers = 1`` (with two replicas and the default 2,
  each already watches every account: nothing to take over), replicas a and b split them;
  b is SIGKILLed, and the time is measured from the kill to a's ``cluster.assignment ...
  watching=10`` line and to a's ``stream.connected`` line for the last of b's accounts
  (lines are stamped when they reach this process through a pipe).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import attrs
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    PYTHON,
    ROOT,
    Result,
    bench_config_text,
    machine_line,
    median,
    open_simulator,
    percentile,
)
from slow_channel import PROBE, PROBE_TITLE  # 1 order.filled in 8: ~10 alerts/s

WARMUP = 1.0  # seconds of each latency round not counted
QUIET = 2.0  # seconds without a new notification: delivery is done
IDLE = 0.15  # a process below this share of a core is done with the flood
CLK_TCK = os.sysconf("SC_CLK_TCK")
LEAKY_ENV = ("NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID",
             "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")  # fmt: skip


# -- the receiving end: apprise json:// posts to this ---------------------------------------


@attrs.define
class Receiver:
    """An HTTP server on 127.0.0.1 (own thread) that keeps (arrival wall time, body)."""

    got: list[tuple[float, bytes]] = attrs.field(factory=list)
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                now = time.time()
                with receiver.lock:
                    receiver.got.append((now, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"json://127.0.0.1:{self.server.server_address[1]}/bench"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def snapshot(self) -> list[tuple[float, bytes]]:
        with self.lock:
            return list(self.got)

    def clear(self) -> None:
        with self.lock:
            self.got.clear()

    def messages(self) -> list[tuple[float, str, str]]:
        """(arrival, title, message) of every post apprise made."""
        out = []
        for at, body in self.snapshot():
            try:
                got = json.loads(body)
            except ValueError:
                continue
            out.append((at, str(got.get("title", "")), str(got.get("message", ""))))
        return out

    def probes(self, since: float) -> tuple[list[float], int, int]:
        """Frame-to-receiver seconds of every probe whose frame arrived after ``since``; how
        many probe alerts arrived in all, and how many of them were distinct orders."""
        samples, orders = [], []
        for at, title, _ in self.messages():
            for m in PROBE_TITLE.finditer(title):
                orders.append(m.group(1))
                received = datetime.fromisoformat(m.group(2)).timestamp()
                if received >= since:
                    samples.append(at - received)
        return samples, len(orders), len(set(orders))

    def gaps(self) -> int:
        """Gap notifications other than the reconnect after the end marker (overflows)."""
        return sum(m.startswith("gap ") and not m.startswith("gap offline")
                   for _, _, m in self.messages())  # fmt: skip

    async def wait_quiet(self, limit: float) -> None:
        """Until nothing new arrived for QUIET seconds (or ``limit`` seconds passed)."""
        with trio.move_on_after(limit):
            seen = -1
            while seen != len(self.got):
                seen = len(self.got)
                await trio.sleep(QUIET)


# -- alertd processes ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


@attrs.define(eq=False)
class Alertd:
    """An ``alertd run`` whose stderr (its log) is read line by line, each line stamped with
    ``time.monotonic()`` when it arrives here."""

    name: str
    process: trio.Process
    lines: list[tuple[float, str]] = attrs.field(factory=list)
    _changed: trio.Event = attrs.field(factory=trio.Event)

    async def pump(self) -> None:
        assert self.process.stderr is not None
        buffer = b""
        async for chunk in self.process.stderr:
            buffer += chunk
            *done, buffer = buffer.split(b"\n")
            now = time.monotonic()
            self.lines += [(now, line.decode(errors="replace")) for line in done]
            self._changed.set()
            self._changed = trio.Event()

    async def wait_line(self, pattern: str, after: float = 0.0) -> tuple[float, re.Match[str]]:
        """The first line after ``after`` (monotonic) that matches ``pattern``, and its stamp."""
        regex, i = re.compile(pattern), 0
        while True:
            while i < len(self.lines):
                at, line = self.lines[i]
                i += 1
                if at >= after and (m := regex.search(line)):
                    return at, m
            if self.process.returncode is not None:
                tail = "\n".join(line for _, line in self.lines[-20:])
                raise RuntimeError(f"alertd {self.name} exited {self.process.returncode}:\n{tail}")
            await self._changed.wait()

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)


def config_text(
    sim_url: str, channel: str, state_dir: Path, *, probe: bool, database: str | None = None,
    replica: str | None = None, watchers: int = 2, takeover: float | None = None,
    all_enabled: bool = False,
) -> str:  # fmt: skip
    text = bench_config_text(sim_url, accounts=10, state_dir=str(state_dir))
    if probe:
        text += "\n" + PROBE
    text = text.replace('bench = "json://127.0.0.1:9/bench"', f'bench = "{channel}"')
    if all_enabled:
        text = text.replace("enabled = false", "enabled = true")
    extra = ""
    if database is not None:
        extra = f'database = "{database}"\nreplica = "{replica}"\nwatchers = {watchers}\n'
        if takeover is not None:
            extra += f'takeover_after = "{takeover:g}s"\n'
    return text.replace("[daemon]\n", "[daemon]\n" + extra, 1)


@asynccontextmanager
async def postgres() -> AsyncIterator[str]:
    """A throwaway PostgreSQL server (``scripts/postgres``); its URL."""
    tmp = tempfile.mkdtemp(prefix="alertd-bench-pg.")
    script = str(ROOT / "scripts" / "postgres")
    done = await trio.run_process([script, "start", tmp], capture_stdout=True, check=True)
    try:
        yield done.stdout.decode().strip()
    finally:
        with trio.CancelScope(shield=True):
            await trio.run_process([script, "stop", tmp], check=False)
            await trio.run_process(["rm", "-rf", tmp], check=False)


@asynccontextmanager
async def daemons(
    nursery: trio.Nursery, texts: dict[str, str], tmp: Path
) -> AsyncIterator[dict[str, Alertd]]:
    """One ``alertd run`` per config; stopped with SIGTERM (then SIGKILL) at the end."""
    env = {k: v for k, v in os.environ.items() if k not in LEAKY_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    running: dict[str, Alertd] = {}
    try:
        for name, text in texts.items():
            state = tmp / f"state-{name}"
            state.mkdir()
            path = tmp / f"{name}.toml"
            path.write_text(text)
            proc = await trio.lowlevel.open_process(
                [PYTHON, "-m", "alertd", "run", "-c", str(path), "--state-dir", str(state)],
                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, cwd=ROOT,
            )  # fmt: skip
            running[name] = Alertd(name=name, process=proc)
            nursery.start_soon(running[name].pump)
        yield running
    finally:
        with trio.CancelScope(shield=True):
            for d in running.values():
                if d.process.returncode is None:
                    d.process.send_signal(signal.SIGTERM)
            for d in running.values():
                with trio.move_on_after(10):
                    await d.process.wait()
                if d.process.returncode is None:
                    d.process.kill()
                    await d.process.wait()


def contenders(kind: str, sim_url: str, channel: str, tmp: Path, database: str | None,
               **options: object) -> dict[str, str]:  # fmt: skip
    if kind == "sqlite":
        return {"sqlite": config_text(sim_url, channel, tmp / "state-sqlite", **options)}  # type: ignore[arg-type]
    names = ("a",) if kind == "pg1" else ("a", "b")  # pg1: one replica alone on PostgreSQL
    return {
        name: config_text(
            sim_url, channel, tmp / f"state-{name}", database=database, replica=name, **options
        )  # type: ignore[arg-type]
        for name in names
    }


# -- the three measurements ---------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Round:
    kind: str
    load: float
    frames: int = 0
    samples: list[float] = attrs.field(factory=list)
    probes: int = 0  # probe alerts that reached the receiver
    distinct: int = 0  # of those, distinct orders (fewer: an alert was doubled)
    gaps: int = 0
    sent: int = 0  # notifications that reached the receiver
    seconds: float = 0.0  # e2e: start to the last daemon's end
    cpu: dict[str, float] = attrs.field(factory=dict)  # per process, seconds


async def _connected(ds: dict[str, Alertd]) -> None:
    for d in ds.values():
        await d.wait_line(r"stream\.connected account=bench ")
    await trio.sleep(0.5)


@asynccontextmanager
async def setting(
    kind: str, *, probe: bool
) -> AsyncIterator[tuple[object, Receiver, dict[str, Alertd]]]:
    receiver = Receiver()
    channel = receiver.start()
    try:
        with tempfile.TemporaryDirectory(prefix="alertd-bench-replicas-") as tmp:
            async with trio.open_nursery() as nursery:
                async with open_simulator() as sim:
                    if kind.startswith("pg"):
                        async with postgres() as url:
                            texts = contenders(kind, sim.url(), channel, Path(tmp), url,
                                               probe=probe)  # fmt: skip
                            async with daemons(nursery, texts, Path(tmp)) as ds:
                                with trio.fail_after(60):
                                    await _connected(ds)
                                yield sim, receiver, ds
                    else:
                        texts = contenders(kind, sim.url(), channel, Path(tmp), None, probe=probe)
                        async with daemons(nursery, texts, Path(tmp)) as ds:
                            with trio.fail_after(60):
                                await _connected(ds)
                            yield sim, receiver, ds
                nursery.cancel_scope.cancel()
    finally:
        receiver.stop()


async def latency_round(kind: str, seconds: float, rate: float) -> Round:
    async with setting(kind, probe=True) as (sim, receiver, ds):
        receiver.clear()
        load = os.getloadavg()[0]
        with trio.fail_after(seconds * 3 + 60):
            before = {n: d.cpu() for n, d in ds.items()}
            await sim.flood(int(rate * (seconds + WARMUP)), rate)  # type: ignore[attr-defined]
            start = time.monotonic()
            since = time.time() + WARMUP
            made, _ = await sim.done()  # type: ignore[attr-defined]
            # CPU share of a core each daemon used while the flood was sent
            took = time.monotonic() - start
            cpu = {n: (d.cpu() - before[n]) / took for n, d in ds.items()}
        await receiver.wait_quiet(30)
        samples, probes, distinct = receiver.probes(since)
        return Round(kind=kind, load=load, frames=made, samples=samples, probes=probes,
                     distinct=distinct, gaps=receiver.gaps(), cpu=cpu)  # fmt: skip


async def e2e_round(kind: str, count: int) -> Round:
    async with setting(kind, probe=False) as (sim, receiver, ds):
        load = os.getloadavg()[0]
        before = {n: d.cpu() for n, d in ds.items()}
        with trio.fail_after(300):
            start = time.monotonic()
            await sim.flood(count, 1e7)  # type: ignore[attr-defined]
            made, _ = await sim.done()  # type: ignore[attr-defined]
            ends: dict[str, float] = {}
            last = {n: (time.monotonic(), d.cpu()) for n, d in ds.items()}
            while len(ends) < len(ds):
                await trio.sleep(0.25)
                for n, d in ds.items():
                    now, cpu = time.monotonic(), d.cpu()
                    if n not in ends and (cpu - last[n][1]) / (now - last[n][0]) < IDLE:
                        ends[n] = last[n][0]
                    last[n] = (now, cpu)
        cpu = {n: last[n][1] - before[n] for n in ds}
        return Round(kind=kind, load=load, frames=made, seconds=max(ends.values()) - start,
                     cpu=cpu, gaps=receiver.gaps(), sent=len(receiver.messages()))  # fmt: skip


ASSIGNED = r"cluster\.assignment replica={} live=a,b watching=(\d+) accounts=(\S+)"


async def takeover_round(takeover: float) -> tuple[float, float, int, float]:
    """(kill to a's assignment of all 10, kill to a's last connect, b's accounts, load)."""
    receiver = Receiver()
    channel = receiver.start()
    try:
        with tempfile.TemporaryDirectory(prefix="alertd-bench-takeover-") as tmp:
            async with trio.open_nursery() as nursery, open_simulator() as sim, postgres() as url:
                texts = contenders("pg", sim.url(), channel, Path(tmp), url, probe=False,
                                   watchers=1, takeover=takeover, all_enabled=True)  # fmt: skip
                async with daemons(nursery, texts, Path(tmp)) as ds:
                    with trio.fail_after(60):
                        mine = {}
                        for n, d in ds.items():
                            _, m = await d.wait_line(ASSIGNED.format(n))  # both live: split
                            mine[n] = m.group(2).split(",")
                            for account in mine[n]:
                                await d.wait_line(rf"stream\.connected account={account} ")
                    await trio.sleep(1.0)
                    load = os.getloadavg()[0]
                    ds["b"].process.send_signal(signal.SIGKILL)
                    killed = time.monotonic()
                    with trio.fail_after(takeover * 3 + 30):
                        assigned, _ = await ds["a"].wait_line(
                            r"cluster\.assignment replica=a live=a watching=10 ", after=killed
                        )
                        connected = assigned
                        for account in mine["b"]:
                            at, _ = await ds["a"].wait_line(
                                rf"stream\.connected account={account} ", after=killed
                            )
                            connected = max(connected, at)
                nursery.cancel_scope.cancel()
        return assigned - killed, connected - killed, len(mine["b"]), load
    finally:
        receiver.stop()


# -- reporting ----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def run(quick: bool, only: Sequence[str] = ("latency", "e2e", "takeover")) -> list[Result]:
    results: list[Result] = []
    order = ["sqlite", "pg"] * (1 if quick else 2)
    if "latency" in only:
        seconds = 5.0 if quick else 10.0
        print(f"replicas latency: {seconds:g} s at 1,000 frames/s a round, rounds {order}")
        rounds = []
        for kind in order:
            r = trio.run(latency_round, kind, seconds, 1_000.0)
            rounds.append(r)
            print(f"  {kind:>6}: {r.probes:,} probe alerts ({r.distinct:,} orders), "
                  f"{len(r.samples):>5,} measured  p50 {ms(percentile(r.samples, 50))}"
                  f"  p99 {ms(percentile(r.samples, 99))}  max {ms(max(r.samples, default=0))}"
                  f"  gaps {r.gaps}  CPU share of a core: "
                  + ", ".join(f"{n} {c:.2f}" for n, c in r.cpu.items())
                  + f"  load {r.load:.2f}", flush=True)  # fmt: skip
        for kind in ("sqlite", "pg"):
            mine = [r for r in rounds if r.kind == kind]
            label = "one daemon, SQLite" if kind == "sqlite" else "two replicas, PostgreSQL"
            results.append(Result(
                name=f"replicas: latency p50/p99 at 1,000/s, {label}",
                measured=", ".join(f"{ms(percentile(r.samples, 50))} / "
                                   f"{ms(percentile(r.samples, 99))}" for r in mine)
                + f" (load {', '.join(f'{r.load:.1f}' for r in mine)})",
            ))  # fmt: skip
    if "e2e" in only:
        count = 10_000 if quick else 30_000
        print(f"replicas e2e: {count:,} frames as fast as the simulator sends, rounds {order}")
        rounds = []
        for kind in order:
            r = trio.run(e2e_round, kind, count)
            rounds.append(r)
            per = ", ".join(f"{n} {r.cpu[n] / r.frames * 1e6:.0f} us" for n in r.cpu)
            print(f"  {kind:>6}: {r.frames / r.seconds:>7,.0f} frames/s  CPU a frame: {per}"
                  f"  gaps {r.gaps}  notifications {r.sent}  load {r.load:.2f}",
                  flush=True)  # fmt: skip
        for kind in ("sqlite", "pg"):
            mine = [r for r in rounds if r.kind == kind]
            label = "one daemon, SQLite" if kind == "sqlite" else "each of two replicas"
            results.append(Result(
                name=f"replicas: e2e frames/s, CPU a frame, {label}",
                measured="; ".join(
                    f"{r.frames / r.seconds:,.0f}/s at "
                    + "/".join(f"{c / r.frames * 1e6:.0f}" for c in r.cpu.values()) + " us"
                    for r in mine) + f" (load {', '.join(f'{r.load:.1f}' for r in mine)})",
            ))  # fmt: skip
    if "takeover" in only:
        for takeover, n in ((15.0, 1 if quick else 2), (3.0, 1 if quick else 3)):
            got = [trio.run(takeover_round, takeover) for _ in range(n)]
            for assigned, connected, moved, load in got:
                print(f"  takeover_after {takeover:g}s: {moved} accounts, assignment after "
                      f"{assigned:.2f} s, all connected after {connected:.2f} s, load {load:.2f}",
                      flush=True)  # fmt: skip
            results.append(Result(
                name=f"replicas: SIGKILL to accounts watched again, takeover_after {takeover:g}s",
                measured=", ".join(f"{c:.2f} s" for _, c, _, _ in got)
                + f" (median {median([c for _, c, _, _ in got]):.2f} s; "
                f"load {', '.join(f'{x[3]:.1f}' for x in got)})",
                target=f"<= {takeover:g} s",
                ok=all(c <= takeover for _, c, _, _ in got),
            ))  # fmt: skip
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round of each")
    parser.add_argument("--only", default="latency,e2e,takeover", help="comma-separated parts")
    args = parser.parse_args()
    print(machine_line())
    results = run(args.quick, args.only.split(","))
    for r in results:
        print(f"{r.name}: {r.measured}" + (f" (target {r.target})" if r.ok is not None else ""))
    return 0 if all(r.ok is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
