"""The booted container the tests in this package share (one boot, one install: about
25 s, plus about 80 s the first time, to build the rootfs), and the ``system`` marker."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .container import why_not_bootable
from .install import ROOT
from .machine import Machine, build_machine

ROOTFS_TIMEOUT = 300.0  # a fresh debootstrap takes 60-100 s


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "system: boots a real systemd in a container (root; deselect: -m 'not system')"
    )


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    """A container running systemd, with alertd installed as the README says; skipped, with
    the reason, where this machine cannot boot one (not root, namespaces refused)."""
    reason = why_not_bootable()
    if reason is not None:
        pytest.skip(f"cannot boot a systemd container here: {reason}")
    built = subprocess.run(
        [str(ROOT / "scripts" / "system-rootfs")],
        capture_output=True,
        text=True,
        timeout=ROOTFS_TIMEOUT,
        check=False,
    )
    assert built.returncode == 0, f"scripts/system-rootfs failed:\n{built.stderr}"
    rootfs = Path(built.stdout.strip().splitlines()[-1])
    work = tmp_path_factory.mktemp("system")
    box = build_machine(rootfs=rootfs, work=work, log_dir=work)
    try:
        yield box
    finally:
        box.box.close()
