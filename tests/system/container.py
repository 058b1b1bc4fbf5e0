"""A throwaway machine with a real systemd as PID 1: ``systemd-nspawn --boot`` of the Debian
rootfs ``scripts/system-rootfs`` builds, and ``nsenter`` to run commands in it.

This host's PID 1 is not systemd, so nspawn runs with ``--register=no --keep-unit`` (no
machined, no scope unit to ask for) from a cgroup of its own, and with
``SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1`` so the container gets a cgroup2 tree of its own even
where the host mounts the hybrid v1/v2 layout. ``--private-network`` gives it a loopback of its
own (and no other network); ``--volatile=overlay`` keeps every write in a tmpfs, so the cached
rootfs stays clean and each boot starts from the same tree.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from integration.conftest import wait_until

BOOT_TIMEOUT = 60.0  # seconds from exec to "running"; a boot takes one or two
STOP_TIMEOUT = 30.0  # seconds for the container's systemd to power off
COMMAND_TIMEOUT = 60.0  # default for one command inside
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CGROUP_NAME = "alertd-system-test"


def why_not_bootable() -> str | None:
    """Why this machine cannot boot a container (a reason to skip), or None if it can."""
    if os.geteuid() != 0:
        return "needs root (systemd-nspawn, debootstrap and apt-get need it)"
    probe = subprocess.run(
        ["unshare", "--mount", "--uts", "--ipc", "--net", "--pid", "--fork", "true"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    if probe.returncode != 0:
        return f"the kernel refuses namespaces: unshare: {probe.stderr.strip()}"
    if cgroup2_mount() is None:
        return "no cgroup2 file system mounted (systemd in a container needs one)"
    return None


def cgroup2_mount() -> Path | None:
    """Where the cgroup2 hierarchy is mounted (/sys/fs/cgroup, or .../unified when hybrid)."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, where, fstype, *_ = line.split()
        if fstype == "cgroup2":
            return Path(where)
    return None


def own_cgroups() -> list[Path]:
    """A fresh cgroup in the cgroup2 tree (and in the v1 name=systemd tree, if mounted) for
    nspawn to be started from: with --keep-unit it builds the container's tree below it.
    What an earlier run left (a test process killed before its teardown) is ended first."""
    root = cgroup2_mount()
    assert root is not None
    trees = [root]
    legacy = Path("/sys/fs/cgroup/systemd")
    if (legacy / "cgroup.procs").exists() and legacy != root:
        trees.append(legacy)
    for tree in trees:
        for stale in tree.glob(f"{CGROUP_NAME}.*"):
            if not Path(f"/proc/{stale.suffix[1:]}").exists():
                kill_cgroup(stale)
                remove_cgroup(stale)
    made = [tree / f"{CGROUP_NAME}.{os.getpid()}" for tree in trees]
    for path in made:
        remove_cgroup(path)
        path.mkdir()
    return made


def kill_cgroup(path: Path) -> None:
    """SIGKILL every process in a cgroup2 subtree (cgroup.kill, Linux 5.14+): all of a
    container's processes, and nothing else."""
    if (path / "cgroup.kill").exists():
        (path / "cgroup.kill").write_text("1")
        wait_until(lambda: _empty(path), 10, f"the processes of {path} to end")


def remove_cgroup(path: Path) -> None:
    """Remove a cgroup and whatever the container left below it, deepest first."""
    if not path.exists():
        return
    for sub in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if sub.is_dir():
            sub.rmdir()
    path.rmdir()


def _empty(cgroup: Path) -> bool:
    return all(not p.read_text().strip() for p in cgroup.rglob("cgroup.procs"))


@attrs.define(eq=False)
class Container:
    """A booted container. ``run`` executes a command inside (as root, in every namespace of
    the container, with a clean environment); every command and its output is appended to
    ``transcript`` for whoever reads a failed run."""

    name: str
    rootfs: Path
    transcript: Path
    nspawn: subprocess.Popen[bytes]
    cgroups: list[Path]
    leader: int = 0

    @classmethod
    def boot(
        cls,
        *,
        rootfs: Path,
        name: str,
        log_dir: Path,
        binds: Sequence[tuple[Path, str]] = (),
        binds_ro: Sequence[tuple[Path, str]] = (),
    ) -> Container:
        """Boot ``rootfs`` and return once systemd reports the system running."""
        cgroups = own_cgroups()
        args = [
            "systemd-nspawn",
            "--register=no",
            "--keep-unit",
            "--private-network",
            "--volatile=overlay",
            "--console=read-only",
            f"--directory={rootfs}",
            f"--machine={name}",
            *(f"--bind={host}:{inside}" for host, inside in binds),
            *(f"--bind-ro={host}:{inside}" for host, inside in binds_ro),
            "--boot",
        ]
        # The shell joins the fresh cgroups before it becomes nspawn, so nothing else (this
        # test process included) is ever moved.
        join = 'for cg in $CGROUPS; do echo $$ > "$cg/cgroup.procs"; done; exec "$@"'
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        env["CGROUPS"] = " ".join(str(p) for p in cgroups)
        console = (log_dir / f"{name}-console.log").open("wb")
        nspawn = subprocess.Popen(
            ["sh", "-c", join, "sh", *args],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            env=env,
        )
        console.close()
        box = cls(
            name=name,
            rootfs=rootfs,
            transcript=log_dir / f"{name}-commands.log",
            nspawn=nspawn,
            cgroups=cgroups,
        )
        try:
            box.leader = wait_until(box._find_leader, BOOT_TIMEOUT, "the container's PID 1")
            box._wait_running()
        except BaseException:
            box.close()
            raise
        return box

    def _find_leader(self) -> int | None:
        if self.nspawn.poll() is not None:
            raise AssertionError(
                f"systemd-nspawn exited ({self.nspawn.returncode}) during boot; see "
                f"{self.transcript.parent / (self.name + '-console.log')}"
            )
        own_ns = os.readlink("/proc/self/ns/pid")
        for task in Path(f"/proc/{self.nspawn.pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                try:
                    if os.readlink(f"/proc/{child}/ns/pid") != own_ns:
                        return int(child)
                except OSError:
                    continue
        return None

    def _wait_running(self) -> None:
        def settled() -> str | None:
            result = self.run(
                "systemctl", "is-system-running", "--wait", check=False, timeout=BOOT_TIMEOUT
            )
            state = result.stdout.strip()
            # "degraded": some unit of the minimal system failed; the manager itself is up.
            return state if state in ("running", "degraded") else None

        wait_until(settled, BOOT_TIMEOUT, "systemctl is-system-running")

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside as root, with ``env`` added to a clean environment; with
        ``check``, a non-zero exit is an AssertionError that shows the command's output."""
        command = [
            "nsenter",
            f"--target={self.leader}",
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--pid",
            "--cgroup",
            "--root",
            "--wd",
            "--",
            "env",
            "-i",
            f"PATH={PATH}",
            "LANG=C.UTF-8",
            "SYSTEMD_COLORS=0",
            "SYSTEMD_PAGER=",
            "SYSTEMD_URLIFY=0",
            *(f"{key}={value}" for key, value in (env or {}).items()),
            *args,
        ]
        started = time.monotonic()
        # A session of its own: a kill(0) or a terminal signal inside never reaches the tests.
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
            start_new_session=True,
        )
        took = time.monotonic() - started
        with self.transcript.open("a", encoding="utf-8") as log:
            log.write(f"$ {shlex.join(args)}   # exit {result.returncode}, {took:.2f}s\n")
            log.write(result.stdout + result.stderr)
        if check and result.returncode != 0:
            raise AssertionError(
                f"in the container, {shlex.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def sh(self, script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        """A shell script inside (``set -e``)."""
        return self.run("sh", "-ec", script, **kwargs)  # type: ignore[arg-type]

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write a file inside, owned by root."""
        self.run(
            "sh",
            "-ec",
            'umask 077; cat > "$1.tmp"; chmod "$2" "$1.tmp"; mv "$1.tmp" "$1"',
            "sh",
            path,
            f"{mode:o}",
            input=text,
        )

    def close(self) -> None:
        """End the container at once: nothing in it is worth a clean shutdown (its writes
        are in a tmpfs), and stopping a dozen units would take seconds. SIGKILL to its PID 1
        ends every process in its PID namespace; nspawn then exits by itself."""
        if self.nspawn.poll() is None:
            if self.leader:
                os.kill(self.leader, signal.SIGKILL)
            else:
                self.nspawn.terminate()
            try:
                self.nspawn.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.nspawn.kill()
                self.nspawn.wait(10)
        for path in self.cgroups:
            kill_cgroup(path)
            remove_cgroup(path)
