"""Getting alertd into the container the way the README's "Running as a service" says.

The container has no network (``--private-network``), so the host fetches what pip would:
wheels of alertd's dependencies for the container's Python, plus the build backend, into a
directory the container sees read-only. Inside, the README's own commands run from a copy of
this checkout, with ``PIP_NO_INDEX``/``PIP_FIND_LINKS`` pointing pip at that directory, so
``/opt/alertd/bin/pip install .`` builds and installs alertd from source as a user's would.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WHEELS_INSIDE = "/wheels"
SOURCE_INSIDE = "/src/alertd"
DOWNLOAD_TIMEOUT = 240.0
# Not copied into the container: the host's environment and caches.
NOT_SOURCE = (".git", ".venv", "*.egg-info", "build", "dist", "__pycache__", ".*_cache")


def rootfs_python(rootfs: Path) -> str:
    """The container's python3 version, e.g. "3.11"."""
    target = (rootfs / "usr/bin/python3").readlink().name
    match = re.fullmatch(r"python(\d+\.\d+)", target)
    assert match, f"unexpected /usr/bin/python3 -> {target} in {rootfs}"
    return match.group(1)


def rootfs_glibc(rootfs: Path) -> tuple[int, int]:
    """The container's glibc version, from its dpkg database."""
    status = (rootfs / "var/lib/dpkg/status").read_text()
    match = re.search(r"^Package: libc6\n(?:[^\n]+\n)*?Version: (\d+)\.(\d+)", status, re.M)
    assert match, f"no libc6 in {rootfs}/var/lib/dpkg/status"
    return int(match.group(1)), int(match.group(2))


def requirements() -> list[str]:
    """alertd's runtime dependencies and its build backend, from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [*project["project"]["dependencies"], *project["build-system"]["requires"]]


def download_wheels(rootfs: Path, dest: Path) -> None:
    """Binary wheels of every requirement for the container's Python and glibc (whatever
    Python runs this test), via the host's pip and the package index it is set up with."""
    version = rootfs_python(rootfs)
    major, minor = rootfs_glibc(rootfs)
    platforms = ["manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64"]
    platforms += [f"manylinux_{major}_{m}_x86_64" for m in range(5, minor + 1)]
    args = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    args += ["--dest", str(dest), "--only-binary=:all:", "--python-version", version]
    args += ["--implementation", "cp", "--abi", f"cp{version.replace('.', '')}"]
    for platform in platforms:
        args += ["--platform", platform]
    result = subprocess.run(
        [*args, *requirements()],
        capture_output=True,
        text=True,
        timeout=DOWNLOAD_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"pip download failed:\n{result.stdout}{result.stderr}"


def copy_source(dest: Path) -> None:
    """This checkout's files as a user would have them (no venv, no caches, no .git)."""
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(*NOT_SOURCE), symlinks=True)


def readme_install_commands() -> list[str]:
    """The shell lines of the first indented block of the README's "Running as a service"
    section, comments dropped: the steps a user follows to install and start alertd."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Running as a service\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"(?:^    \S.*\n)+", section, re.M)
    assert block, "no indented command block in the README's Running as a service section"
    return [line[4:].split("  #", 1)[0].rstrip() for line in block.group(0).splitlines()]
