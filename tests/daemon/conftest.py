"""Fixtures shared by the daemon tests: a real sd_notify receiver socket."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator

import attrs
import pytest


@attrs.define
class NotifyReceiver:
    """The systemd side of sd_notify: an AF_UNIX datagram socket the test reads from."""

    sock: socket.socket
    env_value: str  # what $NOTIFY_SOCKET should say to reach it

    def messages(self) -> list[dict[str, str]]:
        """Every datagram received so far, parsed into fields (does not wait)."""
        found: list[dict[str, str]] = []
        while True:
            try:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return found
            found.append(dict(line.split("=", 1) for line in data.decode("utf-8").split("\n")))


@pytest.fixture
def notify_socket() -> Iterator[NotifyReceiver]:
    """A path socket; the directory is short because AF_UNIX paths are limited to 108 bytes."""
    with tempfile.TemporaryDirectory(prefix="alertd-", dir="/tmp") as tmp:
        path = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        try:
            yield NotifyReceiver(sock=sock, env_value=path)
        finally:
            sock.close()


@pytest.fixture
def abstract_notify_socket() -> Iterator[NotifyReceiver]:
    """An abstract-namespace socket, as systemd itself uses (written ``@name`` in the env)."""
    name = f"alertd-test-{os.getpid()}-{os.urandom(4).hex()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        yield NotifyReceiver(sock=sock, env_value="@" + name)
    finally:
        sock.close()
