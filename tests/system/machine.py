"""The container set up as a user's server: alertd installed by the README's commands, the
shipped units unmodified, and the two peers alertd talks to, each a unit of its own: the
exchange simulator (``alertd simulate``) and a webhook receiver (``receiver.py``).

``Machine`` is what the tests talk to: ``systemctl show`` properties, the journal, a process's
/proc status, and the POSTs the receiver got.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from integration.conftest import wait_until

from .container import Container
from .install import (
    SOURCE_INSIDE,
    WHEELS_INSIDE,
    copy_source,
    download_wheels,
    readme_install_commands,
)

SIM_PORT = 8765
RECEIVER_PORT = 8080
OUT_INSIDE = "/srv/out"  # the receiver's records; a host directory, read by the test
TEST_INSIDE = "/srv/test"  # this package, read-only: receiver.py
INSTALL_TIMEOUT = 300.0
# The units to install instead of systemd/*.service (a directory): to see what other unit
# files (an older release's, say) get wrong.
OTHER_UNITS = "ALERTD_SYSTEM_TEST_UNITS"
OFFLINE_PIP = {
    "PIP_NO_INDEX": "1",
    "PIP_FIND_LINKS": WHEELS_INSIDE,
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}


def config_text(name: str, tag: str, *, daemon: str = "", rules: str = "") -> str:
    """A config for the simulator's two exchanges and one webhook channel whose password is
    the credential ``alertd_hook_token``; POSTs go to ``/<name>`` and titles start with
    ``tag``."""
    return f"""\
[daemon]
log_level = "info"
drain_timeout = "10s"
{daemon}
[[accounts]]
name = "px"
exchange = "piexgo"
url = "ws://127.0.0.1:{SIM_PORT}/piexgo/ws"
streams = ["pinfo"]
backoff_initial = "200ms"
backoff_max = "1s"

[[accounts]]
name = "cr"
exchange = "cryptology"
url = "ws://127.0.0.1:{SIM_PORT}/cryptology/ws"
streams = ["account"]
backoff_initial = "200ms"
backoff_max = "1s"

[channels]
hook = "json://alertd:{{cred:alertd_hook_token}}@127.0.0.1:{RECEIVER_PORT}/{name}"

[dispatch]
default_channel = "hook"
retry_initial = "200ms"
retry_max = "1s"

[[rules]]
name = "filled"
on = "order.filled"
key = "{{{{ account }}}}/{{{{ order_id }}}}"
title = "{tag} filled {{{{ account }}}} {{{{ order_id }}}}"
message = "{{{{ side }}}} {{{{ amount }}}} {{{{ symbol }}}} filled at {{{{ price }}}}"
{rules}"""


@attrs.frozen(kw_only=True)
class Post:
    """One POST the receiver answered."""

    arrived: float  # wall clock (time.time())
    answered: float
    path: str
    title: str
    password: str  # from the Basic Authorization header: the credential alertd resolved

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Post:
        auth = record["authorization"]
        password = ""
        if auth.startswith("Basic "):
            password = base64.b64decode(auth[6:]).decode().partition(":")[2]
        return cls(
            arrived=record["arrived"],
            answered=record["answered"],
            path=record["path"],
            title=str(record["body"].get("title", "")),
            password=password,
        )


@attrs.define(eq=False)
class Machine:
    box: Container
    out: Path  # the host side of OUT_INSIDE

    def systemctl(self, *args: str) -> None:
        """``systemctl ARGS``; if it fails, the error shows the journal's last lines (why a
        unit did not start is there, not in systemctl's answer)."""
        result = self.box.run("systemctl", *args, check=False)
        if result.returncode != 0:
            journal = self.box.run("journalctl", "--no-pager", "-n", "60", check=False).stdout
            raise AssertionError(
                f"systemctl {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}--- the journal's last lines:\n{journal}"
            )

    def show(self, unit: str, *props: str) -> dict[str, str]:
        result = self.box.run("systemctl", "show", unit, *(f"--property={p}" for p in props))
        return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)

    def prop(self, unit: str, name: str) -> str:
        return self.show(unit, name)[name]

    def main_pid(self, unit: str) -> int:
        return int(self.prop(unit, "MainPID"))

    def kill(self, pid: int | str, signal: str) -> None:
        """Send ``signal`` (e.g. "KILL") to a process inside, from outside its unit (the
        minimal system has no /bin/kill: the shell's builtin does it)."""
        # MainPID is 0 when the unit is not running, and kill(0) means a whole process group.
        assert int(pid) > 1, f"no process to send SIG{signal} to (pid {pid})"
        self.box.run("sh", "-c", 'kill -s "$1" "$2"', "sh", signal, str(pid))

    def proc_status(self, pid: int) -> dict[str, str]:
        text = self.box.run("cat", f"/proc/{pid}/status").stdout
        return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}

    def journal(self, unit: str) -> str:
        return self.box.run("journalctl", "--no-pager", "-o", "cat", "-u", unit).stdout

    def status(self, unit: str) -> str:
        """``systemctl status`` as a person reads it (exit 3 when not running is fine)."""
        return self.box.run(
            "systemctl", "status", "--no-pager", "-n", "20", unit, check=False
        ).stdout

    def wait_prop(self, unit: str, name: str, pattern: str, timeout: float) -> str:
        """Wait until property ``name`` of ``unit`` matches ``pattern`` (re.search)."""
        last = [""]

        def matches() -> str | None:
            last[0] = self.prop(unit, name)
            return last[0] if re.search(pattern, last[0]) else None

        try:
            return wait_until(matches, timeout, f"{unit} {name}~{pattern!r}")
        except AssertionError as e:
            raise AssertionError(f"{e}; last {name}={last[0]!r}\n{self.status(unit)}") from None

    def posts(self, path: str | None = None, *, since: float = 0.0) -> list[Post]:
        """POSTs answered so far (to ``/path``, arrived at or after ``since``)."""
        file = self.out / "posts.jsonl"
        if not file.exists():
            return []
        posts = [Post.from_record(json.loads(line)) for line in file.read_text().splitlines()]
        return [p for p in posts if (path is None or p.path == f"/{path}") and p.arrived >= since]

    def arrivals(self) -> int:
        """POSTs that reached the receiver so far, answered or still in flight."""
        file = self.out / "posts.arrivals"
        return len(file.read_text().splitlines()) if file.exists() else 0

    def wait_post(self, path: str, *, since: float, title: str = "", timeout: float) -> Post:
        """The first POST to ``/path`` since ``since`` whose title starts with ``title``."""

        def first() -> Post | None:
            hits = [p for p in self.posts(path, since=since) if p.title.startswith(title)]
            return hits[0] if hits else None

        return wait_until(first, timeout, f"a POST to /{path} titled {title!r}...")

    @contextmanager
    def slow_receiver(self, seconds: float) -> Iterator[None]:
        """The receiver answers each POST ``seconds`` late while inside."""
        (self.out / "delay").write_text(str(seconds))
        try:
            yield
        finally:
            (self.out / "delay").unlink()

    def put_config(self, name: str, text: str) -> None:
        self.box.write(f"/etc/alertd/{name}.toml", text)

    def put_secret(self, unit_dir: str, file: str, value: str) -> None:
        """A credential file in /etc/alertd/credentials/<unit_dir>/ (the directory the unit
        reads), mode 0600 as the README says."""
        self.box.run("install", "-d", "-m", "0700", f"/etc/alertd/credentials/{unit_dir}")
        self.box.write(f"/etc/alertd/credentials/{unit_dir}/{file}", value, mode=0o600)


def build_machine(*, rootfs: Path, work: Path, log_dir: Path) -> Machine:
    """Boot a container and install alertd the README's way, the units as shipped, and the
    simulator and the receiver as running units. Returns with alertd not started."""
    download_wheels(rootfs, work / "wheels")
    copy_source(work / "src")
    if other_units := os.environ.get(OTHER_UNITS):
        for unit in Path(other_units).glob("*.service"):
            shutil.copy(unit, work / "src" / "systemd" / unit.name)
    out = work / "out"
    out.mkdir()
    box = Container.boot(
        rootfs=rootfs,
        name=f"alertd-system-{os.getpid()}",  # test runs side by side do not collide
        log_dir=log_dir,
        binds=[(work / "src", SOURCE_INSIDE), (out, OUT_INSIDE)],
        binds_ro=[(work / "wheels", WHEELS_INSIDE), (Path(__file__).parent, TEST_INSIDE)],
    )
    try:
        install(box, work / "src")
    except BaseException:
        box.close()
        raise
    return Machine(box=box, out=out)


def install(box: Container, source: Path) -> None:
    """The README's commands, run in the copy of the checkout; the template too."""
    commands = readme_install_commands()
    # The README's last step starts the service: the first test does that, and times it.
    assert commands[-1] == "systemctl daemon-reload && systemctl enable --now alertd", commands
    for command in commands[:-1]:
        box.run(
            "sh",
            "-ec",
            f"cd {SOURCE_INSIDE} && {command}",
            env=OFFLINE_PIP,
            timeout=INSTALL_TIMEOUT,
        )
    box.run(
        "install", "-m", "0644", f"{SOURCE_INSIDE}/systemd/alertd@.service", "/etc/systemd/system/"
    )
    for shipped in source.glob("systemd/*.service"):
        installed = box.run("cat", f"/etc/systemd/system/{shipped.name}").stdout
        assert installed == shipped.read_text(), f"{shipped.name} changed on the way in"
    peers = {
        "receiver": [
            "/usr/bin/python3",
            f"{TEST_INSIDE}/receiver.py",
            str(RECEIVER_PORT),
            f"{OUT_INSIDE}/posts.jsonl",
            f"{OUT_INSIDE}/delay",
        ],
        "simulator": ["/usr/local/bin/alertd", "simulate", "--port", str(SIM_PORT), "--rate", "4"],
    }
    for unit, command in peers.items():
        box.run("systemd-run", f"--unit={unit}", "--property=Type=exec", *command)
    wait_until(lambda: _listening(box) == 2, 30, "the simulator and the receiver listening")


def _listening(box: Container) -> int:
    """How many of the two peer ports accept connections."""
    script = (
        "import socket, sys\n"
        "n = 0\n"
        f"for port in ({SIM_PORT}, {RECEIVER_PORT}):\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', port), 1).close(); n += 1\n"
        "    except OSError:\n"
        "        pass\n"
        "print(n)\n"
    )
    return int(box.run("python3", "-c", script).stdout)
