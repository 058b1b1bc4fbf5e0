"""``alertd run`` refusing a bad config the way ``alertd check`` does, and ``alertd run --record``
writing a capture that ``alertd replay`` turns back into the alerts delivered live."""

from __future__ import annotations

import json
import re
import signal
import socket
from pathlib import Path

import pytest

from .conftest import (
    START_TIMEOUT,
    Procs,
    Receiver,
    Sim,
    config_text,
    wait_until,
)

FIRST_ALERT_TIMEOUT = 20.0

BAD_RULES = """
[[rules]]
name = "filled"
on = "order.filled"
notify = ["pager"]
message = "{{ side "

[[rules]]
name = "typo"
on = "order.filed"
mesage = "x"
"""


def problem_lines(text: str, path: Path) -> list[str]:
    """The ``FILE:LINE key: what`` lines of an error report, in order (not its summary)."""
    where = re.compile(rf"^{re.escape(str(path))}:\d+")
    return [line for line in text.splitlines() if where.match(line)]


def test_run_refuses_a_bad_config_with_every_problem_as_check_does(
    procs: Procs, receiver: Receiver, tmp_path: Path
) -> None:
    """``alertd run`` on a config with several problems exits non-zero without starting and
    lists each with file and line on stderr, exactly as ``alertd check`` does."""
    config = tmp_path / "alertd.toml"
    text = config_text(sim_port=1, hook=receiver.url(), rules=BAD_RULES, drain_timeout="10 min")
    config.write_text(text)
    lines = text.splitlines()

    def line_of(fragment: str) -> int:
        return next(i for i, line in enumerate(lines, 1) if fragment in line)

    run = procs.run("run", "-c", str(config), "--state-dir", str(tmp_path / "state"))
    check = procs.run("check", "-c", str(config))

    assert run.returncode != 0
    assert check.returncode != 0
    found = problem_lines(run.stderr, config)
    expected = [
        (line_of("drain_timeout"), "daemon.drain_timeout"),
        (line_of('notify = ["pager"]'), "rules[0].notify"),
        (line_of('message = "{{ side "'), "rules[0].message"),
        (line_of('on = "order.filed"'), "rules[1].on"),
        (line_of('mesage = "x"'), "rules[1].mesage"),
    ]
    for line, key in expected:
        assert any(p.startswith(f"{config}:{line} {key}: ") for p in found), (line, key, found)
    assert len(found) == len(expected), found
    assert problem_lines(check.stderr + check.stdout, config) == found
    assert "daemon.ready" not in run.stderr
    assert not (tmp_path / "state").exists()
    assert receiver.snapshot() == []


def test_run_refuses_a_toml_syntax_error_with_its_line(procs: Procs, tmp_path: Path) -> None:
    """A config that is not valid TOML stops ``alertd run`` with the file, line and column."""
    config = tmp_path / "alertd.toml"
    config.write_text('[daemon]\nlog_level = "info"\n[[accounts]\nname = "px"\n')
    run = procs.run("run", "-c", str(config), "--state-dir", str(tmp_path / "state"))
    check = procs.run("check", "-c", str(config))
    assert run.returncode != 0 and check.returncode != 0
    assert re.search(rf"^{re.escape(str(config))}:3:\d+: ", run.stderr, re.M), run.stderr
    assert problem_lines(run.stderr, config) == problem_lines(check.stderr + check.stdout, config)


def test_run_with_its_metrics_port_taken_exits_1_with_a_message(
    procs: Procs, receiver: Receiver, tmp_path: Path
) -> None:
    """A metrics port already in use stops ``alertd run`` with exit 1 and one line saying what
    to change, not a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "alertd.toml"
        config.write_text(
            config_text(
                sim_port=1, hook=receiver.url(), daemon=f'metrics_listen = "127.0.0.1:{port}"'
            )
        )
        run = procs.run("run", "-c", str(config), "--state-dir", str(tmp_path / "state"))
    assert run.returncode == 1, run.stderr
    assert f"alertd: metrics: cannot listen on '127.0.0.1:{port}'" in run.stderr
    assert "metrics_listen" in run.stderr
    assert "Traceback" not in run.stderr, run.stderr


@pytest.mark.slow
def test_record_then_replay_reproduces_the_delivered_fills(
    procs: Procs, sim: Sim, receiver: Receiver, tmp_path: Path
) -> None:
    """``alertd run --record DIR`` writes a JSON Lines capture in the documented format, and
    ``alertd replay`` on it prints the same order.filled alerts that were delivered live."""
    config = tmp_path / "alertd.toml"
    config.write_text(config_text(sim_port=sim.port, hook=receiver.url()))
    captures = tmp_path / "captures"
    daemon = procs.daemon(config, state_dir=tmp_path / "state", record=captures)
    daemon.wait_for_line(r"daemon\.ready ", START_TIMEOUT)
    wait_until(
        lambda: len(receiver.delivered()) >= 3,
        FIRST_ALERT_TIMEOUT * 2,
        "three deliveries",
        dump=daemon.tail,
    )
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(15) == 0, daemon.tail()
    live = sorted(p.title for p in receiver.delivered())

    [capture] = captures.iterdir()
    records = [json.loads(line) for line in capture.read_text().splitlines()]
    for record in records:
        assert isinstance(record["ts"], float) and record["account"] in {"px", "cr"}, record
        assert set(record) in ({"ts", "account", "frame"}, {"ts", "account", "stream_event"})
        if "frame" in record:
            assert isinstance(record["frame"], str)
        else:
            assert record["stream_event"] in {"connected", "disconnected"}
    firsts = {a: next(r for r in records if r["account"] == a) for a in ("px", "cr")}
    assert all(r.get("stream_event") == "connected" for r in firsts.values()), firsts
    assert [r["ts"] for r in records] == sorted(r["ts"] for r in records)

    replay = procs.run("replay", "-c", str(config), str(capture))
    assert replay.returncode == 0, replay.stderr
    replayed = sorted(re.findall(r"^\s*title: (.*)$", replay.stdout, re.M))
    assert replayed == live
