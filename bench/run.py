"""Every alertd benchmark, then one table: benchmark, measured, target, pass/fail.

    .venv/bin/python bench/run.py            # full: about 55 minutes (memory alone is 32)
    .venv/bin/python bench/run.py --quick    # CI-sized: about 4 minutes
    .venv/bin/python bench/run.py --only e2e,latency

Exits 1 when a target is missed, so it can serve as a check. decode.py and engine.py run as
they are, in subprocesses; their summary rows are read from their output.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import e2e  # noqa: E402
import latency  # noqa: E402
import memory  # noqa: E402
import reconnect  # noqa: E402
import replicas  # noqa: E402
import slow_channel  # noqa: E402
import startup  # noqa: E402
from common import PYTHON, ROOT, Result, machine  # noqa: E402

DECODE_TARGET = 100_000
ENGINE_TARGET = 50_000


def _script(name: str, quick: bool) -> tuple[int, str]:
    cmd = [PYTHON, str(HERE / name)] + (["--quick"] if quick else [])
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    print(done.stdout, end="")
    print(done.stderr, end="", file=sys.stderr)
    return done.returncode, done.stdout


def decode(quick: bool) -> list[Result]:
    code, out = _script("decode.py", quick)
    rates = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+(?: \([^)]*\))?)\s+([\d,]+)\s+[\d.]+\s+[\d,]+$", line)
        if m:
            rates[m.group(1)] = int(m.group(2).replace(",", ""))
    gated = {k: v for k, v in rates.items() if "order" in k or "alance" in k}
    if not gated:
        return [Result(name="decode", measured="no output", target="ran", ok=False)]
    slowest = min(gated, key=lambda k: gated[k])
    return [
        Result(
            name="decode: slowest order/balance kind",
            measured=f"{gated[slowest]:,} frames/s ({slowest})",
            target=f">= {DECODE_TARGET:,}/s",
            ok=code == 0 and gated[slowest] >= DECODE_TARGET,
        )
    ]


def engine(quick: bool) -> list[Result]:
    code, out = _script("engine.py", quick)
    results = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0].isdigit() and parts[1].isdigit():
            rules, rate = int(parts[0]), int(parts[3].replace(",", ""))
            if rules == 1000:
                results.append(
                    Result(
                        name="engine: 1,000 rules",
                        measured=f"{rate:,} events/s",
                        target=f">= {ENGINE_TARGET:,}/s",
                        ok=code == 0 and rate >= ENGINE_TARGET,
                    )
                )
            else:
                results.append(
                    Result(name=f"engine: {rules:,} rules", measured=f"{rate:,} events/s")
                )
    return results or [Result(name="engine", measured="no output", target="ran", ok=False)]


BENCHMARKS: dict[str, Callable[[bool], list[Result]]] = {
    "decode": decode,
    "engine": engine,
    "startup": startup.run,
    "e2e": e2e.run,
    "latency": latency.run,
    "memory": memory.run,
    "reconnect": reconnect.run,
    "slow_channel": slow_channel.run,
    "replicas": replicas.run,
}


def table(results: list[Result]) -> str:
    rows = [("benchmark", "measured", "target", "result")]
    for r in results:
        verdict = "-" if r.ok is None else ("pass" if r.ok else "FAIL")
        rows.append((r.name, r.measured, r.target, verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in rows]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized runs")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}")
    facts = machine()
    results: list[Result] = []
    for name in chosen:
        print(f"\n=== {name} ===", flush=True)
        try:
            results += BENCHMARKS[name](args.quick)
        except Exception as e:  # one broken benchmark must not hide the others' numbers
            print(f"{name} failed: {type(e).__name__}: {e}", file=sys.stderr)
            results.append(Result(name=name, measured=f"error: {type(e).__name__}", target="ran",
                                  ok=False))  # fmt: skip
    print(
        f"\nalertd benchmarks ({'quick' if args.quick else 'full'}): nproc={facts['nproc']}, "
        f"{facts['cpu']}, {facts['python']}, {facts['os']}, {facts['date']}, "
        f"load average at start {facts['load']}\n"
    )
    print(table(results))
    return 1 if any(r.ok is False for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
