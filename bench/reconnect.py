"""Connection storms: N accounts connecting at start and after an exchange restart, counted by a
proxy in front of the simulator.

    .venv/bin/python bench/reconnect.py [--quick] [--accounts 100,1000] [--rate R] [--burst B]

Real processes: ``alertd simulate`` (the exchange) and ``alertd run`` with N Piexgo accounts
(``pinfo`` each, a query ``?a=I`` in each URL so the proxy can tell them apart) pointed at a
TCP proxy in this process. The proxy counts every connection attempt (a TCP accept, with the
account read from the request line) and forwards it to the simulator; while the simulator is
down it closes each attempt at once, as a restarting exchange refuses them.

Measured per N: the time until every account is connected (``stream.connected`` lines in
alertd's log), the peak attempts in any one second (sliding over the attempts; an attempt is
timed when its request line arrives, and also shown by TCP accept), then the same
after the simulator is killed and started again on its port 3 s later, and whether any account
tried twice in the first second after the exchange went away. Target: the peak stays within
``connect_burst + connect_rate`` (what the limit allows in one second; 5 % more for attempts
the proxy sees a few milliseconds apart from their tokens), and no account tries twice in that
first second. The time to all connected after a restart is mostly each session's own backoff,
grown while the exchange refused it. Resident memory and CPU of the alertd process are shown
once all are connected (idle: the simulator runs at ``--rate 0.01`` actions a second).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

import attrs
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Result,
    connected_count,
    machine_line,
    read_rss_kib,
    start_alertd,
    start_cli_simulator,
    stop_processes,
)

DOWN_SECONDS = 3.0
SETTLE_SECONDS = 5.0  # after the last account connected, before idle is measured
IDLE_SECONDS = 10.0  # idle CPU is measured over at least this (--minutes: that long)
SAMPLE_SECONDS = 5.0  # between RSS samples while holding
CONNECT_LIMIT_SECONDS = 900.0


@attrs.define(eq=False)
class Proxy:
    """Counts attempts (trio time, account) and pumps bytes to ``upstream`` when it is up."""

    upstream: int = 0
    up: bool = True
    attempts: list[tuple[float, str]] = attrs.field(factory=list)
    # When each TCP connection was accepted: the request line comes a few task switches of
    # alertd's later, so a busy alertd bunches request lines that left its limit spread out.
    accepted: list[float] = attrs.field(factory=list)
    _open: set[trio.SocketStream] = attrs.field(factory=set)

    async def handle(self, client: trio.SocketStream) -> None:
        self.accepted.append(trio.current_time())
        self._open.add(client)
        try:
            head = b""
            while b"\r\n" not in head:
                chunk = await client.receive_some(4096)
                if not chunk:
                    return
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode(errors="replace")
            self.attempts.append((trio.current_time(), line.partition("?a=")[2].split()[0]))
            if not self.up:
                return
            try:
                server = await trio.open_tcp_stream("127.0.0.1", self.upstream)
            except OSError:
                return
            self._open.add(server)
            async with server, trio.open_nursery() as nursery:
                await server.send_all(head)
                nursery.start_soon(_pump, client, server, nursery.cancel_scope)
                nursery.start_soon(_pump, server, client, nursery.cancel_scope)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            self._open.discard(client)
            await client.aclose()

    async def drop_all(self) -> None:
        for stream in list(self._open):
            await stream.aclose()


async def _pump(src: trio.SocketStream, dst: trio.SocketStream, scope: trio.CancelScope) -> None:
    try:
        while chunk := await src.receive_some(65536):
            await dst.send_all(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    scope.cancel()


def peak_per_second(times: list[float]) -> int:
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _start_simulator(port: int) -> trio.Process:
    sim, _ = await start_cli_simulator(port=port, rate=0.01, seed=1)
    return sim


async def _wait_connected(log: Path, count: int) -> float:
    start = trio.current_time()
    with trio.fail_after(CONNECT_LIMIT_SECONDS):
        while connected_count(log) < count:  # noqa: ASYNC110 (a log file, no event to wait on)
            await trio.sleep(0.2)
    return trio.current_time() - start


async def hold(pid: int, minutes: float) -> dict[str, float]:
    """Idle CPU (a fraction of one core, CPU seconds from /proc) and resident memory of
    ``pid`` while it holds every account connected: over ``IDLE_SECONDS`` when ``minutes`` is
    0, else over ``minutes`` with RSS sampled every ``SAMPLE_SECONDS``; growth is the last
    minute's median RSS against the first minute's."""
    seconds = max(IDLE_SECONDS, 60.0 * minutes)
    cpu0, t0 = _cpu_seconds(pid), trio.current_time()
    samples: list[tuple[float, float]] = []  # (seconds since t0, MiB)
    while (elapsed := trio.current_time() - t0) < seconds:
        samples.append((elapsed, (read_rss_kib(pid) or 0) / 1024))
        await trio.sleep(min(SAMPLE_SECONDS, seconds - elapsed))
    idle_cpu = (_cpu_seconds(pid) - cpu0) / (trio.current_time() - t0)
    rss = (read_rss_kib(pid) or 0) / 1024
    samples.append((trio.current_time() - t0, rss))
    first = statistics.median(m for t, m in samples if t <= 60.0)
    last = statistics.median(m for t, m in samples if t >= samples[-1][0] - 60.0)
    return {
        "rss_mib": rss,
        "rss_max_mib": max(m for _, m in samples),
        "idle_cpu": idle_cpu,
        "idle_seconds": trio.current_time() - t0,
        "rss_first_mib": first,
        "rss_last_mib": last,
        "growth": (last - first) / first if first else 0.0,
    }


def config_text(accounts: int, proxy_port: int, state: str, rate: float, burst: int) -> str:
    parts = [
        f'[daemon]\nstate_dir = "{state}"\nlog_level = "info"\ntimezone = "UTC"\n'
        f"connect_rate = {rate}\nconnect_burst = {burst}\n",
        *(
            f'[[accounts]]\nname = "a{i}"\nexchange = "piexgo"\n'
            f'url = "ws://127.0.0.1:{proxy_port}/piexgo/ws?a={i}"\nstreams = ["pinfo"]\n'
            for i in range(accounts)
        ),
        '[channels]\nnull = "json://127.0.0.1:9/none"\n',
        '[dispatch]\ndefault_channel = "null"\n',
    ]
    return "\n".join(parts)


async def measure(accounts: int, rate: float, burst: int, minutes: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="alertd-reconnect-") as tmp:
        log = Path(tmp) / "alertd.log"
        proxy = Proxy()
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            proxy_port = listeners[0].socket.getsockname()[1]
            nursery.start_soon(trio.serve_listeners, proxy.handle, listeners)
            probe = trio.socket.socket()
            await probe.bind(("127.0.0.1", 0))
            sim_port = probe.getsockname()[1]
            probe.close()
            sim = await _start_simulator(sim_port)
            proxy.upstream = sim_port
            config = Path(tmp) / "alertd.toml"
            config.write_text(config_text(accounts, proxy_port, tmp, rate, burst))
            daemon: trio.Process | None = None
            try:
                spawned = trio.current_time()
                daemon = await start_alertd(config, tmp, log)
                print(f"  alertd pid {daemon.pid} ({accounts} accounts)", flush=True)
                own0 = _own_cpu_seconds()
                start_seconds = await _wait_connected(log, accounts)
                # Who was busy while they connected: alertd (CPU a connection), the simulator
                # and this process's proxy share the machine's two cores.
                connect_cpu = {
                    "alertd_cpu_per_connect_ms": 1000 * _cpu_seconds(daemon.pid) / accounts,
                    "simulator_cpu": _cpu_seconds(sim.pid) / start_seconds,
                    "alertd_cpu": _cpu_seconds(daemon.pid) / start_seconds,
                    "proxy_cpu": (_own_cpu_seconds() - own0) / start_seconds,
                }
                start_peak = peak_per_second([t for t, _ in proxy.attempts])
                # Start-up (Python, the config's N accounts, the database) comes before the
                # first attempt; the limit governs from that attempt to the last account.
                first_attempt = min(t for t, _ in proxy.attempts) - spawned
                start_accept_peak = peak_per_second(proxy.accepted)
                await trio.sleep(SETTLE_SECONDS)
                idle = await hold(daemon.pid, minutes)

                proxy.attempts.clear()
                proxy.accepted.clear()
                down = trio.current_time()
                sim.kill()
                await sim.wait()
                proxy.up = False
                await proxy.drop_all()
                await trio.sleep(DOWN_SECONDS)
                sim = await _start_simulator(sim_port)
                proxy.up = True
                again_seconds = await _wait_connected(log, 2 * accounts)
                first_second = Counter(a for t, a in proxy.attempts if t < down + 1.0)
                return {
                    **connect_cpu,
                    "start_seconds": start_seconds,
                    "first_attempt_seconds": first_attempt,
                    "start_peak": start_peak,
                    **idle,
                    "restart_seconds": again_seconds,  # from the exchange listening again
                    "restart_peak": peak_per_second([t for t, _ in proxy.attempts]),
                    "start_accept_peak": start_accept_peak,
                    "restart_accept_peak": peak_per_second(proxy.accepted),
                    "restart_attempts": len(proxy.attempts),
                    "twice_in_first_second": sum(1 for n in first_second.values() if n > 1),
                }
            finally:
                await stop_processes(daemon, sim, grace=30)
                nursery.cancel_scope.cancel()


def run(
    quick: bool,
    sizes: list[int] | None = None,
    rate: float = 50.0,
    burst: int = 10,
    minutes: float = 0.0,
) -> list[Result]:
    sizes = sizes or ([100] if quick else [100, 1000])
    # A token bucket lets burst + rate through in any one second; the proxy times an attempt
    # when its request line arrives, a few ms after the token, so neighbours can bunch: 5 %.
    allowed = (burst + rate) * 1.05
    results: list[Result] = []
    print(f"reconnect: {machine_line()}; limit {burst} at once, then {rate:g}/s", flush=True)
    for n in sizes:
        m = trio.run(measure, n, rate, burst, minutes)
        limit_time = max(0.0, (n - burst) / rate)  # what the limit alone makes startup take
        print(
            f"  {n} accounts: start {m['start_seconds']:.1f} s (the limit's time "
            f"{limit_time:.1f} s; first attempt at {m['first_attempt_seconds']:.1f} s, so "
            f"{m['start_seconds'] - m['first_attempt_seconds']:.1f} s from it; "
            f"peak {m['start_peak']:.0f}/s), "
            f"after a restart {m['restart_seconds']:.1f} s (peak {m['restart_peak']:.0f}/s, "
            f"{m['restart_attempts']:.0f} attempts, {m['twice_in_first_second']:.0f} accounts "
            f"twice in the first second); {m['rss_mib']:.0f} MiB (max {m['rss_max_mib']:.0f}), "
            f"idle CPU {100 * m['idle_cpu']:.1f}% over {m['idle_seconds']:.0f} s; "
            f"RSS median first minute {m['rss_first_mib']:.1f} MiB, last minute "
            f"{m['rss_last_mib']:.1f} MiB ({100 * m['growth']:+.2f}%)",
            flush=True,
        )
        print(
            f"  while connecting: alertd {m['alertd_cpu_per_connect_ms']:.2f} ms CPU a connection "
            f"(start-up included), {100 * m['alertd_cpu']:.0f}% of a core; simulator "
            f"{100 * m['simulator_cpu']:.0f}%, proxy {100 * m['proxy_cpu']:.0f}%; peak TCP "
            f"accepts/s start {m['start_accept_peak']:.0f}, restart {m['restart_accept_peak']:.0f}",
            flush=True,
        )
        ok = max(m["start_peak"], m["restart_peak"]) <= allowed and not m["twice_in_first_second"]
        results.append(
            Result(
                name=f"reconnect: {n} accounts, peak attempts/s (start / restart)",
                measured=f"{m['start_peak']:.0f} / {m['restart_peak']:.0f}; all connected in "
                f"{m['start_seconds']:.1f} s (limit {limit_time:.1f} s), back in "
                f"{m['restart_seconds']:.1f} s",
                target=f"<= {burst + rate:g}/s (+5%), none twice in 1 s",
                ok=ok,
            )
        )
        held = f"{m['idle_seconds']:.0f} s"
        results.append(
            Result(
                name=f"many accounts: {n}, RSS / idle CPU / growth over {held}",
                measured=f"{m['rss_mib'] * 1.048576:.0f} MB / {100 * m['idle_cpu']:.1f}% / "
                f"{100 * m['growth']:+.2f}%",
                target="<= 250 MB / <= 5% / < 5% (5,000 accounts)" if n >= 5000 else "-",
                ok=(m["rss_mib"] * 1.048576 <= 250 and m["idle_cpu"] <= 0.05 and m["growth"] < 0.05)
                if n >= 5000
                else None,
            )
        )
    return results


def main() -> int:
    # The proxy times each attempt in this process, which holds three tasks and two sockets
    # an account: its collector's full passes over them would stall the clock it reads and
    # bunch the attempts it sees. Nothing here lives long enough to need collecting.
    gc.disable()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 accounts only")
    parser.add_argument("--accounts", help="comma-separated sizes (default 100,1000)")
    parser.add_argument("--rate", type=float, default=50.0, help="connect_rate (default 50)")
    parser.add_argument("--burst", type=int, default=10, help="connect_burst (default 10)")
    parser.add_argument(
        "--minutes",
        type=float,
        default=0.0,
        help="hold every account connected this long, sampling RSS (default: 10 s idle)",
    )
    args = parser.parse_args()
    sizes = [int(x) for x in args.accounts.split(",")] if args.accounts else None
    results = run(args.quick, sizes, args.rate, args.burst, args.minutes)
    return 0 if all(r.ok is not False for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
