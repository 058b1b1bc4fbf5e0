"""`alertd simulate` as a real process: the listening line, serving, exit 0 on Ctrl-C."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys

import pytest
import trio

from .helpers import client, subscribe

LINE = re.compile(
    r"^simulator listening on ws://127\.0\.0\.1:(\d+) "
    r"\(piexgo: /piexgo/ws, cryptology: /cryptology/ws\) scenario=drop seed=4$"
)


async def test_simulate_prints_its_address_serves_and_exits_0_on_sigint() -> None:
    """The command prints one listening line, serves a client on that port, and exits 0 when
    interrupted."""
    with trio.fail_after(30):
        proc = await trio.lowlevel.open_process(
            [
                sys.executable,
                "-m",
                "alertd",
                "simulate",
                "--port",
                "0",
                "--scenario",
                "drop",
                "--seed",
                "4",
            ],
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
            port = int(match.group(1))
            async with client(f"ws://127.0.0.1:{port}/piexgo/ws") as ws:
                assert (await subscribe(ws, "pinfo"))[0]["status"] == "ok"
            proc.send_signal(signal.SIGINT)
            assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
            with trio.CancelScope(shield=True):
                await proc.wait()
            assert proc.stdout is not None
            await proc.stdout.aclose()


def test_list_scenarios_names_every_scenario_with_a_description() -> None:
    """--list-scenarios prints each scenario name followed by a description, and exits 0."""
    result = subprocess.run(
        [sys.executable, "-m", "alertd", "simulate", "--list-scenarios"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == [
        "normal",
        "drop",
        "half-open",
        "garbage",
        "reject-login",
        "restart",
        "flood",
        "quiet",
    ]
    assert all(len(line.split()) > 4 for line in result.stdout.splitlines())


def test_unknown_scenario_is_a_usage_error() -> None:
    """A mistyped scenario exits 2 naming the known ones."""
    result = subprocess.run(
        [sys.executable, "-m", "alertd", "simulate", "--scenario", "nromal"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "nromal" in result.stderr and "normal" in result.stderr


def test_port_in_use_is_one_line() -> None:
    """`alertd simulate` on a port something already listens on says so in one line and
    exits 1 (it printed a 35-line exception group)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "alertd", "simulate", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr == (
        f"alertd simulate: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(pick another --port, or 0 for a free one)\n"
    )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--port", "70000"], "70000 is not a port (0 to 65535"),
        (["--port", "x"], "'x' is not a port number"),
        (["--rate", "nan"], "'nan' must be a number above zero"),
        (["--rate", "-5"], "'-5' must be a number above zero"),
        (["--seed", "1.5"], "invalid int value"),
    ],
)
def test_bad_values_are_one_line_usage_errors(argv: list[str], says: str) -> None:
    """A port out of range, a rate that is not a positive number or a seed that is not whole
    is refused by the parser in one line, exit 2, before anything listens."""
    result = subprocess.run(
        [sys.executable, "-m", "alertd", "simulate", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert says in result.stderr
    assert len(result.stderr.splitlines()) == 1
