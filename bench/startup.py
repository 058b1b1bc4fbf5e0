"""Start-up: ``alertd check`` on the example config, and ``alertd run`` until READY=1.

    .venv/bin/python bench/startup.py [--quick]

- check: wall time of ``alertd check -c config.example.toml`` as a fresh process, with every
  ``{env:...}`` it references set to a dummy value and every ``{cred:...}`` a file in a
  temporary ``$CREDENTIALS_DIRECTORY``.
- ready: wall time from spawning ``python -m alertd run`` to its ``READY=1`` datagram on a
  ``NOTIFY_SOCKET`` this benchmark binds (as systemd would). The config is the example with
  its exchange URLs pointed at a closed loopback port and metrics off: READY comes once every
  stage has started, before any connection is up, so nothing leaves the machine.

Each is run several times; the median is reported (min and max too). The baseline
``python -c pass`` is printed for scale. There is no target in the issue; these are recorded.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, ROOT, Result, machine_line, median

EXAMPLE = ROOT / "config.example.toml"
READY_TIMEOUT = 30.0


# Dummy values in the form each service's URL needs (alertd check validates URLs with
# apprise, so "dummy" in a Telegram token is refused); other names get a plain dummy.
SHAPED = {
    "TELEGRAM_BOT_TOKEN": "123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQr",
    "TELEGRAM_CHAT_ID": "12345678",
    "SLACK_TOKENS": "T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
}


def secret_environment(text: str, cred_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    for name in set(re.findall(r"\{env:([A-Za-z0-9_]+)\}", text)):
        env[name] = SHAPED.get(name, f"dummy-{name.lower()}")
    for name in set(re.findall(r"\{cred:([A-Za-z0-9_.-]+)\}", text)):
        (cred_dir / name).write_text(f"dummy-{name}\n")
    env["CREDENTIALS_DIRECTORY"] = str(cred_dir)
    return env


def time_command(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return elapsed


def local_config(text: str, state_dir: Path) -> str:
    text = re.sub(r'url = "wss?://[^"]+"', 'url = "ws://127.0.0.1:9/ws"', text)
    text = re.sub(r"(?m)^metrics_listen = .*$", "", text)
    return re.sub(r'(?m)^state_dir = "[^"]*"', f'state_dir = "{state_dir}"', text)


def time_ready(config: Path, env: dict[str, str], tmp: Path) -> float:
    path = tmp / "notify.sock"
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(READY_TIMEOUT)
    env = {**env, "NOTIFY_SOCKET": str(path)}
    log = (tmp / "run.log").open("w")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [PYTHON, "-m", "alertd", "run", "-c", str(config), "--state-dir", str(tmp / "state")],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )
    try:
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                raise SystemExit(f"no READY=1 within {READY_TIMEOUT:g} s; see {log.name}") from None
            if b"READY=1" in data.split(b"\n"):
                return time.perf_counter() - start
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        sock.close()
        log.close()


def spread(values: list[float]) -> str:
    return (
        f"{median(values) * 1000:.0f} ms (min {min(values) * 1000:.0f}, "
        f"max {max(values) * 1000:.0f}, n={len(values)})"
    )


def run(quick: bool) -> list[Result]:
    repeats = 3 if quick else 7
    text = EXAMPLE.read_text()
    with tempfile.TemporaryDirectory(prefix="alertd-startup-") as name:
        tmp = Path(name)
        cred = tmp / "credentials"
        cred.mkdir()
        env = secret_environment(text, cred)
        config = tmp / "alertd.toml"
        config.write_text(local_config(text, tmp / "state"))
        baseline = [time_command([PYTHON, "-c", "pass"], env) for _ in range(repeats)]
        check = [
            time_command([PYTHON, "-m", "alertd", "check", "-c", str(EXAMPLE)], env)
            for _ in range(repeats)
        ]
        ready = [time_ready(config, env, tmp) for _ in range(repeats)]
    print(f"startup: python -c pass        {spread(baseline)}")
    print(f"startup: alertd check example  {spread(check)}")
    print(f"startup: alertd run to READY=1 {spread(ready)}")
    return [
        Result(name="start-up: alertd check (example)", measured=f"{median(check) * 1000:.0f} ms"),
        Result(name="start-up: alertd run to READY=1", measured=f"{median(ready) * 1000:.0f} ms"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs each instead of 7")
    args = parser.parse_args()
    print(machine_line())
    run(args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
