"""Fifty SIGKILLs of a real ``alertd run`` under a stream of fills, delivering to a webhook that
fails every third request: no alert is lost, and every copy of a notification beyond its
first says it may be a repeat."""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from subprocess import PIPE
from typing import Any

import attrs
import pytest
import trio

from alertd.store.database import Database, db_path
from alertd.store.notifications import OutboxRow
from alertd.store.outbox import Outbox

from .conftest import START_TIMEOUT, Procs, child_env, config_text, http_server, wait_until

CYCLES = 50
REPEAT = "[possible repeat] "  # documented: the start of a title that may be a second copy
DIGEST = "alertd digest: "  # a backlog goes out as digests, each listing its notifications
ORDERS = """
[[rules]]
name = "orders"
on = ["order.placed", "order.filled", "order.cancelled"]
key = "{{ kind }} {{ account }} {{ order_id }}"
title = "{{ kind }} {{ account }} {{ order_id }}"
message = "{{ side }} {{ amount }} {{ symbol }}"
"""


@attrs.define(eq=False)
class FlakyWebhook:
    """A webhook on 127.0.0.1 that answers every third request with a 500 or by closing the
    connection unanswered (in turn), the others with a 200 after ``delay`` (so a kill often
    finds a request in its hands). ``requests`` holds (title, message, status), 0 for
    closed."""

    delay: float = 0.02
    port: int = 0
    requests: list[tuple[str, str, int]] = attrs.field(factory=list)
    lock: threading.Lock = attrs.field(factory=threading.Lock)

    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/alerts"

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def delivered(self) -> list[str]:
        """The titles of the notifications answered 200, what a person received: a digest
        (a backlog in one message) counts as each notification it lists."""
        with self.lock:
            accepted = [(t, message) for t, message, status in self.requests if status == 200]
        titles: list[str] = []
        for title, message in accepted:
            if title.removeprefix(REPEAT).startswith(DIGEST):
                titles += [line[2:] for line in message.splitlines() if line.startswith("\u2022 ")]
            else:
                titles.append(title)
        return titles

    def answer(self, title: str, message: str) -> int:
        with self.lock:
            n = len(self.requests) + 1
            status = 200 if n % 3 else (500 if n % 6 else 0)
            if status != 200:  # recorded before answering, so a 200 counted is a 200 sent
                self.requests.append((title, message, status))
        if status == 200:
            time.sleep(self.delay)
            with self.lock:
                self.requests.append((title, message, status))
        return status


@pytest.fixture
def webhook() -> Iterator[FlakyWebhook]:
    state = FlakyWebhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = json.loads(raw)
            status = state.answer(str(body.get("title", "")), str(body.get("message", "")))
            if status == 0:
                self.close_connection = True
                return
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http_server(Handler) as port:
        state.port = port
        yield state


# Each start of `alertd run` repeats ~1.5 s of imports (far more on a busy machine), which 50
# starts cannot afford. So the killed runs are forked, each a fresh process running the CLI's
# `alertd run` from the start, by a parent that has made the imports once; the last run, and
# every other test, starts `python -m alertd run` as usual.
FORKER = """
import json, os, sys, traceback
import alertd.cli, alertd.commands.run  # what every start would import again
for line in sys.stdin:
    command, argv = json.loads(line)
    if command == "wait":
        print(os.waitstatus_to_exitcode(os.waitpid(argv, 0)[1]), flush=True)
        continue
    log, *args = argv
    pid = os.fork()
    if pid == 0:
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        code = 1
        try:
            code = alertd.cli.main(args)
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(pid, flush=True)
"""


@attrs.define(eq=False)
class Forker:
    """Starts `alertd run` processes forked from one that has imported alertd already."""

    proc: subprocess.Popen[str]
    running: set[int] = attrs.field(factory=set)  # forked and not yet waited for

    @classmethod
    def start(cls) -> Forker:
        args = [sys.executable, "-c", FORKER]
        return cls(subprocess.Popen(args, env=child_env(), stdin=PIPE, stdout=PIPE, text=True))

    def _ask(self, command: str, argv: object) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps([command, argv]) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def run(self, log: Path, *args: str) -> int:
        """The pid of a new ``alertd ARGS``, its output going to ``log``."""
        pid = self._ask("run", [str(log), *args])
        self.running.add(pid)
        return pid

    def wait(self, pid: int) -> int:
        """The exit code of ``pid`` (negative: killed by that signal), once it has exited."""
        code = self._ask("wait", pid)
        self.running.discard(pid)
        return code

    def close(self) -> None:
        """Kill what still runs (a test that failed midway), then the parent."""
        for pid in self.running:
            os.kill(pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def forker() -> Iterator[Forker]:
    forks = Forker.start()
    try:
        yield forks
    finally:
        forks.close()


def outbox_rows(state: Path) -> list[OutboxRow]:
    async def read() -> list[OutboxRow]:
        db = Database(db_path(state))
        try:
            return await Outbox(db).rows()
        finally:
            db.close()

    return trio.run(read)


# ~40 s on two busy cores (the 50 killed runs ~30 s of it); the timeout leaves room for more.
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_fifty_sigkills_lose_no_alert_and_mark_every_repeat(
    procs: Procs, forker: Forker, webhook: FlakyWebhook, tmp_path: Path
) -> None:
    """Killed 50 times while fills stream in and a third of the webhook's requests fail, the
    daemon delivers every notification it queued at least once, and of each notification's
    copies only the first may lack the "[possible repeat] " mark."""
    rng = random.Random(13)
    sim = procs.simulator("normal", rate=30.0)
    state = tmp_path / "state"
    config = tmp_path / "alertd.toml"
    dispatch = 'retry_initial = "100ms"\nretry_max = "200ms"'
    text = config_text(sim_port=sim.port, hook=webhook.url(), rules=ORDERS)
    config.write_text(text.replace('retry_initial = "200ms"\nretry_max = "1s"', dispatch))
    started = time.monotonic()
    run = ["run", "-c", str(config), "--state-dir", str(state)]
    logs = tmp_path / "killed-runs.log"
    for _ in range(CYCLES):
        pid = forker.run(logs, *run)
        # Killed while delivering: after a first request of this run, at a random moment.
        wait_until(
            partial(lambda n: webhook.count() > n, webhook.count()),
            START_TIMEOUT,
            "a request",
            dump=lambda: logs.read_text()[-3000:],
        )
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(pid, signal.SIGKILL)
        assert forker.wait(pid) == -signal.SIGKILL
    cycles_took = time.monotonic() - started

    # Then against an exchange that says nothing, so only the outbox produces deliveries.
    quiet = procs.simulator("quiet")
    config.write_text(config_text(sim_port=quiet.port, hook=webhook.url(), rules=ORDERS))
    last = procs.daemon(config, state_dir=state, name="alertd-run-last")
    last.wait_for_line(r"stream\.connected account=px", START_TIMEOUT)
    last.wait_for_line(r"stream\.connected account=cr", START_TIMEOUT)

    deadline = time.monotonic() + 30
    while any(row.status == "pending" for row in outbox_rows(state)):
        assert time.monotonic() < deadline, f"the outbox did not drain\n{last.tail()}"
        time.sleep(0.5)
    last.send_signal(signal.SIGTERM)
    assert last.wait(15) == 0, last.tail()

    rows = outbox_rows(state)
    assert len(rows) >= CYCLES  # alerts came in throughout
    assert {row.status for row in rows} == {"delivered"}
    queued = collections.Counter(row.title for row in rows)
    copies = collections.Counter(title.removeprefix(REPEAT) for title in webhook.delivered())
    unmarked = collections.Counter(t for t in webhook.delivered() if not t.startswith(REPEAT))
    lost = {t: n - copies[t] for t, n in queued.items() if copies[t] < n}
    assert lost == {}
    assert set(copies) == set(queued)
    repeated_unmarked = {t: n for t, n in unmarked.items() if n > queued[t]}
    assert repeated_unmarked == {}
    # (How many extra copies a kill may cost is the rows of the one request in the service's
    # hands: one, or a whole digest's; only that they are marked is asserted.)
    extra = sum(copies.values()) - sum(queued.values())
    failed = sum(1 for _, _, status in webhook.requests if status != 200)
    digests = sum(1 for title, _, _ in webhook.requests if DIGEST in title)
    print(
        f"{CYCLES} kills in {cycles_took:.1f}s: {len(rows)} notifications, "
        f"{sum(copies.values())} delivered copies ({extra} extra), {failed} requests failed, "
        f"{digests} digests"
    )
