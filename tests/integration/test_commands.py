"""``alertd run`` refusing a bad config the way ``alertd check`` does, and ``alertd run --record``
writing a capture that ``alertd replay`` turns back into the alerts delivered live."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from pathlib import Path

import pytest

from .conftest import (
    START_TIMEOUT,
    CaptureServer,
    NotifySocket,
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
        if "frame" in record:
            assert set(record) == {"ts", "account", "frame"}, record
            assert isinstance(record["frame"], str)
        else:
            # a disconnect may say why, or that alertd stopped watching (capture.py)
            assert {"ts", "account", "stream_event"} <= set(record), record
            assert set(record) <= {"ts", "account", "stream_event", "reason", "stopped"}, record
            assert record["stream_event"] in {"connected", "disconnected"}
    firsts = {a: next(r for r in records if r["account"] == a) for a in ("px", "cr")}
    assert all(r.get("stream_event") == "connected" for r in firsts.values()), firsts
    assert [r["ts"] for r in records] == sorted(r["ts"] for r in records)

    replay = procs.run("replay", "-c", str(config), str(capture))
    assert replay.returncode == 0, replay.stderr
    replayed = sorted(re.findall(r"^\s*title: (.*)$", replay.stdout, re.M))
    assert replayed == live


DEEP = "[daemon]\nlog_level = 'info'\nx = " + "[" * 450 + "]" * 450 + "\n"


@pytest.mark.slow
def test_reload_that_cannot_read_the_file_keeps_running_and_says_why_in_one_line(
    procs: Procs, receiver: Receiver, notify: NotifySocket, tmp_path: Path
) -> None:
    """SIGHUP with a config nested 450 levels deep gives RELOADING=1, then READY=1 with a
    status saying the reload failed and why, one error line on stderr and no traceback; the
    daemon goes on, and a good file reloads afterwards."""
    config = tmp_path / "alertd.toml"
    good = config_text(sim_port=1, hook=receiver.url())
    config.write_text(good)
    daemon = procs.daemon(config, state_dir=tmp_path / "state", notify=notify)
    notify.wait_for("READY", "1", timeout=START_TIMEOUT, dump=daemon.tail)

    config.write_text(DEEP)
    before = len(daemon.lines())
    hup = time.monotonic()
    daemon.send_signal(signal.SIGHUP)
    reloading = notify.wait_for("RELOADING", "1", timeout=10, after=hup, dump=daemon.tail)
    failed = notify.wait_for(
        "READY", "1", timeout=10, after=reloading.at, status="reload failed", dump=daemon.tail
    )
    assert "nested too deeply" in failed.fields["STATUS"], failed.fields
    assert "previous config kept" in failed.fields["STATUS"], failed.fields
    daemon.wait_for_line(r"reload\.failed ", 5)
    new = daemon.lines()[before:]
    errors = [line for line in new if "reload.failed" in line]
    assert len(errors) == 1 and "nested too deeply" in errors[0], new
    assert not any("Traceback" in line for line in new), new
    assert len(new) < 10, new  # a few lines, not a thousand frames
    assert daemon.returncode is None

    config.write_text(good.replace('name = "filled"', 'name = "filled-again"'))
    hup = time.monotonic()
    daemon.send_signal(signal.SIGHUP)
    fixed = notify.wait_for("READY", "1", timeout=10, after=hup, dump=daemon.tail)
    assert "reload failed" not in fixed.fields["STATUS"], fixed.fields
    daemon.wait_for_line(r"reload\.done ", 5)
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(15) == 0, daemon.tail()


def test_run_on_a_file_nested_too_deeply_is_one_line_and_exit_2(
    procs: Procs, tmp_path: Path
) -> None:
    """``alertd run`` on a config the TOML parser cannot take says so in one line, exits 2
    and starts nothing."""
    config = tmp_path / "alertd.toml"
    config.write_text(DEEP)
    run = procs.run("run", "-c", str(config), "--state-dir", str(tmp_path / "state"))
    assert run.returncode == 2, run.stderr
    assert "nested too deeply" in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.splitlines()) <= 3, run.stderr
    assert not (tmp_path / "state").exists()


# -- the same frames through a live daemon and through replay ---------------------------------

GOLDEN = Path(__file__).parent.parent / "replay" / "data"


def document_frames(name: str) -> list[str]:
    """The frames of a golden capture (built from the protocol documents), in order."""
    lines = (GOLDEN / f"{name}.jsonl").read_text().splitlines()
    return [r["frame"] for r in map(json.loads, lines) if "frame" in r]


PIEXGO = document_frames("piexgo")
CRYPTOLOGY = document_frames("cryptology")
# (seconds after the connection, frame): frames of the protocol documents (tests/replay/data),
# spaced so that no two alerts of different accounts, or two of one group, come together.
TIMELINE = {
    "px": [
        (0.5, PIEXGO[0]),  # BTC balance
        (1.0, PIEXGO[2]),  # a book: book-quiet starts watching
        (1.5, PIEXGO[1]),  # two deals in one frame: one group, the second 1s later
        (3.0, PIEXGO[3]),  # an order filled
        # 4.0: book-quiet fires
        (5.0, PIEXGO[4]),  # a malformed frame: stream.error
        (6.0, PIEXGO[-1]),  # a book: book-quiet resolves
        # 9.0: book-quiet fires again
        (10.5, PIEXGO[-1]),  # and resolves; the capture ends
    ],
    "cr": [  # a Cryptology account without streams: every message counts
        (2.5, CRYPTOLOGY[0]),  # order 1 placed: order-open starts timing it
        (3.5, CRYPTOLOGY[3]),  # USD balance 1: usd-low fires
        # 4.5: order-open fires
        (5.5, CRYPTOLOGY[4]),  # three refused orders: refused fires on the third
        (6.0, CRYPTOLOGY[5]),
        (6.5, CRYPTOLOGY[6]),
        (7.0, CRYPTOLOGY[7]),  # a trade
        (8.0, CRYPTOLOGY[12]),  # order 1 filled: filled, and order-open resolves
        (8.5, CRYPTOLOGY[8]),  # a book (no rule takes Cryptology books)
    ],
}
EVERY_TYPE = """
[[rules]]
name = "up"
on = "stream.connected"
notify = ["b"]
title = "{{ account }} connected"
message = "{{ account }} is up"

[[rules]]
name = "trades"
on = "trade"
where = "amount > 0.01"
key = "{{ account }}"
title = "{{ account }} trade"
message = "{{ symbol }} {{ dec(amount) }} @ {{ dec(price) }}"

[[rules]]
name = "filled"
on = "order.filled"
notify = ["a", "b"]
title = "{{ account }} filled {{ order_id }}"
message = "{{ side }} {{ dec(amount) }} {{ symbol }}"

[[rules]]
name = "errors"
on = "stream.error"
title = "{{ account }} stream error"
message = "{{ reason }}"

[[rules]]
name = "book-quiet"
type = "absence"
on = "book"
account = "px"
key = "{{ account }}"
after = "3s"
title = "{{ account }} book {{ status }}"
message = "no book"
resolved_message = "book back"

[[rules]]
name = "order-open"
type = "order_timeout"
on = "order.*"
open_for = "2s"
title = "order {{ order_id }} {{ status }}"
message = "{{ reason }}"

[[rules]]
name = "usd-low"
type = "threshold"
on = "balance.changed"
currency = "USD"
value = "balance"
below = 5
title = "{{ account }} USD low"
message = "{{ dec(value) }}"

[[rules]]
name = "refused"
type = "rate"
on = "funds.insufficient"
count = 3
within = "10s"
title = "{{ account }} refused"
message = "{{ count }} orders refused"
"""

Sent = tuple[str, str, str]  # (channel, title, body)


def replayed(stdout: str) -> list[Sent]:
    """The notifications in ``alertd replay``'s transcript, in order."""
    found: list[Sent] = []
    for block in re.split(r"^(?=\S+ -> )", stdout, flags=re.M):
        if not block.strip():
            continue
        head, title, *body = block.rstrip("\n").split("\n")
        channel = re.match(r"\S+ -> (\S+) ", head)
        assert channel is not None and title.startswith("  title: "), block
        text = "\n".join(line.removeprefix("  | ") for line in body)
        found.append((channel.group(1), title.removeprefix("  title: "), text))
    return found


def by_channel(sent: list[Sent]) -> dict[str, list[Sent]]:
    """Each channel's notifications in order; the two accounts' "connected" first, sorted (they
    connect at the same moment, so their order is not the capture's)."""
    channels: dict[str, list[Sent]] = {}
    for item in sent:
        channels.setdefault(item[0], []).append(item)
    for channel, items in channels.items():
        ups = sorted(s for s in items if s[1].endswith(" connected"))
        channels[channel] = ups + [s for s in items if not s[1].endswith(" connected")]
    return channels


@pytest.mark.slow
def test_a_capture_gives_the_same_notifications_live_and_in_replay(
    procs: Procs, receiver: Receiver, tmp_path: Path
) -> None:
    """The frames of a capture, served by a real websocket server to a real ``alertd run``,
    reach the channels as exactly the notifications ``alertd replay`` prints for that capture
    (rules of every type; a Piexgo account and a Cryptology one without ``streams``); and the
    capture the daemon recorded replays to them too."""
    server = CaptureServer(frames={"/piexgo/ws": TIMELINE["px"], "/cryptology/ws": TIMELINE["cr"]})
    server.start()
    try:
        config = tmp_path / "alertd.toml"
        config.write_text(
            f"""\
[daemon]
log_level = "info"

[[accounts]]
name = "px"
exchange = "piexgo"
url = "{server.url("/piexgo/ws")}"
streams = ["pinfo", "dealinfo.btc_usdt", "depth.btc_usdt"]

[[accounts]]
name = "cr"
exchange = "cryptology"
url = "{server.url("/cryptology/ws")}"

[channels]
a = "{receiver.url("a")}"
b = "{receiver.url("b")}"

[dispatch]
default_channel = "a"
group_interval = "1s"
{EVERY_TYPE}"""
        )
        t0 = 1_700_000_000.0
        capture = tmp_path / "capture.jsonl"
        records = [
            {"ts": t0, "account": account, "stream_event": "connected"} for account in TIMELINE
        ] + [
            {"ts": t0 + delay, "account": account, "frame": frame}
            for account, frames in TIMELINE.items()
            for delay, frame in frames
        ]
        records.sort(key=lambda r: float(r["ts"]))  # type: ignore[arg-type]
        capture.write_text("".join(json.dumps(r) + "\n" for r in records))

        replay = procs.run("replay", "-c", str(config), str(capture))
        assert replay.returncode == 0, replay.stderr
        expected = replayed(replay.stdout)
        rules_seen = {title.split()[0] for _, title, _ in expected}
        assert len(expected) >= 16 and {"px", "cr", "order"} <= rules_seen, replay.stdout

        captures = tmp_path / "recorded"
        daemon = procs.daemon(config, state_dir=tmp_path / "state", record=captures)
        daemon.wait_for_line(r"daemon\.ready ", START_TIMEOUT)
        wait_until(
            lambda: len(receiver.delivered()) >= len(expected),
            START_TIMEOUT + 15,
            f"{len(expected)} deliveries",
            dump=daemon.tail,
        )
        time.sleep(1.5)  # anything more would show now (nothing is due before 13.5s)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(15) == 0, daemon.tail()
        assert server.connections == {"/piexgo/ws": 1, "/cryptology/ws": 1}
    finally:
        server.stop()

    live = [(p.path.strip("/"), p.title, p.message) for p in receiver.delivered()]
    assert by_channel(live) == by_channel(expected)

    [recorded] = captures.iterdir()
    again = procs.run("replay", "-c", str(config), str(recorded))
    assert again.returncode == 0, again.stderr
    assert by_channel(replayed(again.stdout)) == by_channel(expected)
