"""The control socket: how ``alertd status`` asks a running daemon how it is, outside systemd.

A Unix socket, ``control.sock`` in the runtime directory (``$RUNTIME_DIRECTORY``, when systemd
gives one) or else the state directory, mode 0600; a connection from another user is refused
as well (``SO_PEERCRED``; root may ask), since the answer names accounts, channels and
silences. The protocol is one request line (``status``) answered by one JSON document and the
end of the connection. The answer is read from the stages' own ``statistics()`` snapshots and
the state database; nothing here changes a stage.

The socket is a convenience: when it cannot be served (a path too long for a Unix socket, a
directory not writable, another daemon answering on it) the daemon runs without it, saying
why once in the log. A stale file left by a crash is replaced.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket as stdlib_socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import trio

import alertd
from alertd import clock
from alertd.config.model import Config
from alertd.daemon.intake import Intake
from alertd.notify.delivery import Delivery
from alertd.store.outbox import Outbox
from alertd.store.silences import list_silences
from alertd.store.sql import Connection

if TYPE_CHECKING:
    from alertd.daemon.heartbeat import HeartbeatStatistics

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
REQUEST_TIMEOUT = 5.0  # seconds a client has to send its request line
MAX_REQUEST = 256  # bytes of a request line
LAST_SENT = 5  # delivered notifications shown
# sockaddr_un's sun_path holds 108 bytes with the terminating NUL
MAX_SOCKET_PATH = 107


def socket_path(state_dir: Path, environ: Mapping[str, str]) -> Path:
    """Where the daemon with ``state_dir`` listens: ``$RUNTIME_DIRECTORY`` (its first entry)
    when set, else the state directory."""
    runtime = environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return Path(runtime or state_dir) / SOCKET_NAME


class HeartbeatView(Protocol):
    def statistics(self) -> HeartbeatStatistics: ...


class DaemonView(Protocol):
    """What the control socket reads of the daemon (``app.Daemon``)."""

    @property
    def config(self) -> Config: ...

    @property
    def state_dir(self) -> Path: ...

    @property
    def housekeeping(self) -> bool: ...

    @property
    def problem(self) -> str | None: ...

    @property
    def last_alert(self) -> float | None: ...

    async def status_line(self, pending: int | None = None) -> str: ...


@attrs.define(eq=False)
class ControlServer:
    """Serves the control socket for one daemon (``serve``). ``heartbeat`` is set by the
    daemon when it starts one."""

    heartbeat: HeartbeatView | None = None
    environ: Mapping[str, str] = attrs.field(factory=lambda: os.environ)
    path: Path | None = None  # where it listens, once it does
    _started: float = attrs.field(factory=time.time)

    async def serve(
        self,
        daemon: DaemonView,
        sources: Intake,
        outbox: Outbox,
        delivery: Delivery,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Answer status requests until cancelled, then remove the socket file. Without
        housekeeping (replay on a virtual clock) there is no socket."""
        if not daemon.housekeeping:
            task_status.started()
            return
        path = socket_path(daemon.state_dir, self.environ)
        listener = await _listen(path)
        task_status.started()
        if listener is None:
            return
        self.path = path
        log.info("control.listening path=%s", path)

        async def answer(stream: trio.SocketStream) -> None:
            await self._answer(stream, daemon, sources, outbox, delivery)

        try:
            await trio.serve_listeners(answer, [listener])
        finally:
            self.path = None
            with trio.CancelScope(shield=True):
                await listener.aclose()
            _unlink(path)

    async def _answer(
        self,
        stream: trio.SocketStream,
        daemon: DaemonView,
        sources: Intake,
        outbox: Outbox,
        delivery: Delivery,
    ) -> None:
        async with stream:
            with trio.move_on_after(REQUEST_TIMEOUT):
                # read first: closing on unread bytes would reset the connection, answer unread
                request = await _read_line(stream)
                if not _same_user(stream.socket):
                    answer = {"error": "permission denied: ask as the daemon's user, or root"}
                elif request == "status":
                    try:
                        answer = await self.snapshot(daemon, sources, outbox, delivery)
                    except Exception as exc:  # say so to the client; the daemon runs on
                        log.warning("control.failed request=status error=%s", type(exc).__name__)
                        answer = {"error": f"status failed in the daemon: {type(exc).__name__}"}
                else:
                    answer = {"error": f"unknown request {request[:40]!r} (known: status)"}
                await _send(stream, answer)

    async def snapshot(
        self, daemon: DaemonView, sources: Intake, outbox: Outbox, delivery: Delivery
    ) -> dict[str, Any]:
        """The daemon's state as JSON-ready values; times are Unix seconds."""
        now, wall = trio.current_time(), clock.wall()

        def unix(moment: float | None) -> float | None:  # trio seconds -> Unix seconds
            return None if moment is None else wall - (now - moment)

        config = daemon.config
        box = await outbox.statistics()
        stats = sources.statistics().accounts
        accounts = []
        for account in config.accounts:
            s = stats.get(account.name)
            accounts.append(
                {
                    "name": account.name,
                    "exchange": account.exchange,
                    "enabled": account.enabled,
                    "connected": bool(s and s.connected),
                    "connected_since": unix(s.connected_since) if s else None,
                    "last_frame": unix(s.last_frame) if s else None,
                    "reconnects": s.reconnects if s else 0,
                    "frames": s.frames if s else 0,
                    "decode_errors": s.decode_errors if s else 0,
                }
            )
        silences = await outbox.db.run(lambda conn: list_silences(conn, now=wall))
        sent = await outbox.db.run(_last_sent)
        sending = delivery.statistics()
        beat = self.heartbeat.statistics() if self.heartbeat is not None else None
        return {
            "version": alertd.__version__,
            "pid": os.getpid(),
            "started": self._started,
            "now": wall,
            "timezone": config.daemon.timezone,
            "status": await daemon.status_line(box.pending),
            "problem": daemon.problem,
            "last_alert": unix(daemon.last_alert),
            "accounts": accounts,
            "outbox": {
                "pending": box.pending,
                "by_channel": dict(sorted(box.pending_by_channel.items())),
                "oldest_pending": box.oldest_pending,
            },
            "delivery": {
                "delivered": sending.delivered,
                "failed": sending.failed,
                "retries": sending.retries,
                "expired": sending.expired,
                "in_flight": sending.in_flight,
            },
            "silences": [
                {
                    "id": s.id,
                    "rule": s.rule,
                    "matchers": dict(s.matchers),
                    "ends": s.ends,
                    "comment": s.comment,
                    "created_by": s.created_by,
                }
                for s in silences
                if s.active(wall)
            ],
            "last_sent": sent,
            "heartbeat": None
            if beat is None
            else {
                "healthy": beat.healthy,
                "reason": beat.reason,
                "sent": beat.sent,
                "failed": beat.failed,
                "unreachable": beat.unreachable,
            },
        }


# The outbox's last deliveries. Taken by due time, which the table's (status, due_since) index
# orders, so a few rows are read however long the week of history kept (reading them all, as
# Outbox.rows would, holds the database's one worker thread for a second at 20 000 rows);
# those few are then put in delivery order. TODO: a function of store/notifications.
_LAST_SENT_SQL = (
    "SELECT channel, title, severity, updated FROM outbox WHERE status='delivered' "
    "ORDER BY due_since DESC LIMIT ?"
)


def _last_sent(conn: Connection) -> list[dict[str, Any]]:
    """The ``LAST_SENT`` notifications delivered last, newest first (``at``: Unix seconds)."""
    rows = conn.execute(_LAST_SENT_SQL, (4 * LAST_SENT,)).fetchall()
    rows.sort(key=lambda r: float(r[3]), reverse=True)
    return [
        {"channel": str(c), "title": str(t), "severity": str(s), "at": float(at)}
        for c, t, s, at in rows[:LAST_SENT]
    ]


async def _listen(path: Path) -> trio.SocketListener | None:
    """A listener on ``path`` (mode 0600), or None with the reason logged once."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        _unavailable(path, f"the path is longer than a Unix socket's {MAX_SOCKET_PATH} bytes")
        return None
    there = _occupant(path)
    if there == "other":
        _unavailable(path, "something other than a socket is there")
        return None
    if there == "socket":
        if await _answers(path):
            _unavailable(path, "another alertd answers on it (two daemons on one state dir?)")
            return None
        _unlink(path)  # left by a daemon that did not stop cleanly
    sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        await sock.bind(os.fspath(path))
        os.chmod(path, 0o600)  # the directory is the service's own (0700) under systemd
        sock.listen()
    except OSError as exc:
        sock.close()
        _unavailable(path, exc.strerror or type(exc).__name__)
        return None
    return trio.SocketListener(sock)


def _occupant(path: Path) -> str:
    """What is at ``path``: ``none``, a ``socket``, or some ``other`` file (a symlink too)."""
    if path.is_symlink():
        return "other"
    if not path.exists():
        return "none"
    return "socket" if path.is_socket() else "other"


async def _answers(path: Path) -> bool:
    """Whether something accepts connections on the socket file ``path``."""
    try:
        stream = await trio.open_unix_socket(os.fspath(path))
    except OSError:
        return False
    await stream.aclose()
    return True


def _unavailable(path: Path, why: str) -> None:
    log.warning(
        "control.unavailable path=%s (%s): alertd status cannot reach this daemon", path, why
    )


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            log.warning("control.cleanup_failed path=%s (%s)", path, exc.strerror)


def _same_user(sock: trio.socket.SocketType) -> bool:
    """Whether the peer is this process's user, or root (Linux ``SO_PEERCRED``; elsewhere
    the socket file's mode alone keeps others out)."""
    option = getattr(stdlib_socket, "SO_PEERCRED", None)
    if option is None:
        return True
    size = struct.calcsize("3i")
    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(stdlib_socket.SOL_SOCKET, option, size))
    return uid in (0, os.getuid())


async def _read_line(stream: trio.SocketStream) -> str:
    data = b""
    while b"\n" not in data and len(data) < MAX_REQUEST:
        chunk = await stream.receive_some(MAX_REQUEST)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()


async def _send(stream: trio.SocketStream, answer: Mapping[str, Any]) -> None:
    with contextlib.suppress(trio.BrokenResourceError):  # the client left: nothing to tell
        await stream.send_all(json.dumps(answer).encode() + b"\n")


# What ``alertd status`` calls to ask: kept here, beside the server, so the protocol is
# written once. Blocking (the client is a plain command).
def request_status(path: Path, *, timeout: float = REQUEST_TIMEOUT) -> dict[str, Any]:
    """The running daemon's answer on ``path``; ``OSError`` when nothing answers there,
    ``ValueError`` when the answer is not alertd's."""
    with stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(os.fspath(path))
        sock.sendall(b"status\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = json.loads(b"".join(chunks) or b"null")
    if not isinstance(answer, dict):
        raise ValueError("not an answer alertd gives")
    return answer
