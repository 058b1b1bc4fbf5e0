"""A recorded Piexgo flood, and a sender that replays it byte for byte at almost no CPU cost.

    .venv/bin/python bench/flood_sender.py record [--count N]   # prints the recording's path
    .venv/bin/python bench/flood_sender.py serve RECORDING      # one connection, driven on stdin

``record``: the project's simulator (``common.open_simulator``: its own process, seed and epoch
pinned) floods N frames to one subscribed trio-websocket client, which writes down every frame
it receives: the subscription acks, the balance snapshot that follows the ``pinfo`` subscribe,
then the N flood frames. The recording is kept in the temporary directory under a name made
of the count, seed, epoch and the simulator's source, so a second run reuses it.

``serve``: a plain blocking-socket server (no event loop) for exactly one websocket client.
wsproto does the HTTP upgrade, reads the client's frames (subscribes, pings, the close) and
writes the few control frames; the flood itself is encoded into websocket frames once, before
anything is timed, and written with ``sendall`` in chunks of about 64 KiB, so a frame costs the
sender a fraction of a microsecond. The client's pings are answered between chunks (a frame
is never split by a pong). Lines on stdout: ``port P``; ``subscribed`` once every recorded
topic is subscribed (each subscribe answered with its recorded ack, ``pinfo`` followed by the
snapshot); then, after ``go`` on stdin, ``flooding T`` (``time.monotonic()``, comparable across
processes), the flood, a close frame (1000, ``common.MARKER``: the end marker, which no full
queue can drop), and ``done N SECONDS CPU`` (wall and CPU seconds of this process from
``flooding`` to the close frame written).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import select
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import attrs
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import FrameProtocol

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import EPOCH, MARKER, PIEXGO_TOPICS, ROOT, SEED

FORMAT = 1  # bump when the file layout changes, so old recordings are not read
CHUNK_BYTES = 64 * 1024  # frames are written in groups of about this size
RECEIVE_BYTES = 65536
# The kernel's send buffer, fixed (Linux doubles it): left to autotuning it grows to ~4 MB on
# loopback, ~18,000 frames, so a slow client's pings waited seconds behind the flood for
# their pong and its heartbeat gave up (alertd's ping_timeout is 10 s).
SEND_BUFFER = 128 * 1024
HANDSHAKE_TIMEOUT = 30.0  # seconds for the client to connect, upgrade and subscribe
# Seconds to wait for the client's answer to the close. Long: a slow client still has
# seconds of flood in the kernel's buffers, and closing before it has read them could reset
# the connection and lose them (the benchmark ends this process once the client is done).
LINGER = 600.0


@attrs.frozen(kw_only=True)
class Recording:
    """What the simulator sent one subscribed client: acks by topic, snapshot, flood."""

    acks: dict[str, str]
    snapshot: tuple[str, ...]
    flood: tuple[str, ...]

    def write(self, path: Path) -> None:
        meta = {"format": FORMAT, "acks": self.acks, "snapshot": len(self.snapshot)}
        lines = [json.dumps(meta), *self.snapshot, *self.flood]
        for line in lines:
            assert "\n" not in line, "frames are compact JSON, one to a line"
        partial = path.with_suffix(".partial")
        partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
        partial.replace(path)

    @classmethod
    def read(cls, path: Path) -> Recording:
        first, *frames = path.read_text(encoding="utf-8").splitlines()
        meta = json.loads(first)
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: recording format {meta.get('format')}, want {FORMAT}")
        k = int(meta["snapshot"])
        return cls(acks=dict(meta["acks"]), snapshot=tuple(frames[:k]), flood=tuple(frames[k:]))

    def encoded_flood(self) -> list[bytes]:
        """The flood as server-to-client websocket text frames, grouped into chunks."""
        protocol = FrameProtocol(client=False, extensions=[])
        chunks: list[bytes] = []
        chunk = bytearray()
        for text in self.flood:
            chunk += protocol.send_data(text, fin=True)
            if len(chunk) >= CHUNK_BYTES:
                chunks.append(bytes(chunk))
                chunk = bytearray()
        if chunk:
            chunks.append(bytes(chunk))
        return chunks


# -- recording ------------------------------------------------------------------------------


def recording_path(count: int, seed: int = SEED, epoch: float = EPOCH) -> Path:
    """Where the recording of ``count`` frames lives: named after everything that shapes it."""
    digest = hashlib.sha256(f"{FORMAT} {count} {seed} {epoch} {PIEXGO_TOPICS}".encode())
    for source in sorted((ROOT / "alertd" / "simulator").glob("*.py")):
        digest.update(source.read_bytes())
    return Path(tempfile.gettempdir()) / f"alertd-bench-flood-{digest.hexdigest()[:16]}.txt"


async def record(count: int) -> Path:
    """The recording of a ``count``-frame flood: made once, then read from its file."""
    path = recording_path(count)
    if path.exists():
        return path
    import trio
    import trio_websocket

    from alertd.protocols import decoder_for
    from common import open_simulator

    received: list[str] = []
    async with open_simulator() as sim:
        with trio.fail_after(600):
            async with trio_websocket.open_websocket_url(sim.url()) as ws:
                for frame in decoder_for("piexgo", "bench").subscribe_frames(list(PIEXGO_TOPICS)):
                    await ws.send_message(frame)
                await sim.flood(count, 1e9)
                try:
                    while True:
                        message = await ws.get_message()
                        assert isinstance(message, str)
                        received.append(message)
                except trio_websocket.ConnectionClosed:
                    pass
            made, _ = await sim.done()
    if made != count or len(received) < made:
        raise RuntimeError(f"recording: asked for {count} frames, made {made}, got {len(received)}")
    head = received[: len(received) - made]
    acks = {}
    snapshot = []
    for text in head:
        parsed = json.loads(text)
        if "op" in parsed:
            acks[parsed["topic"]] = text
        else:
            snapshot.append(text)
    if set(acks) != set(PIEXGO_TOPICS):
        raise RuntimeError(f"recording: acks for {sorted(acks)}, want {sorted(PIEXGO_TOPICS)}")
    Recording(acks=acks, snapshot=tuple(snapshot), flood=tuple(received[-made:])).write(path)
    return path


# -- serving --------------------------------------------------------------------------------


def say(*words: object) -> None:
    sys.stdout.write(" ".join(map(str, words)) + "\n")
    sys.stdout.flush()


class ClientGone(Exception):
    """The client closed the connection before the replay was over."""


@attrs.define(eq=False)
class Replay:
    """One client connection: the upgrade, the subscriptions, the flood, the close."""

    sock: socket.socket
    recording: Recording
    ws: WSConnection = attrs.field(factory=lambda: WSConnection(ConnectionType.SERVER))
    subscribed: set[str] = attrs.field(factory=set)
    control: bytearray = attrs.field(factory=bytearray)  # frames to write at the next boundary
    closed: bool = False  # the client's close (or EOF) has been seen

    def receive(self) -> None:
        """Read what the client sent (one recv) and queue the answers."""
        data = self.sock.recv(RECEIVE_BYTES)
        if not data:
            self.closed = True
            self.ws.receive_data(None)
            return
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, Request):
                self.control += self.ws.send(AcceptConnection())
            elif isinstance(event, Ping):
                if self.ws.state is ConnectionState.OPEN:  # once closing, wsproto sends none
                    self.control += self.ws.send(event.response())
            elif isinstance(event, TextMessage):
                self._subscribe(event.data)
            elif isinstance(event, CloseConnection):
                self.closed = True
                if self.ws.state is ConnectionState.REMOTE_CLOSING:
                    self.control += self.ws.send(event.response())

    def _subscribe(self, text: str) -> None:
        try:
            message = json.loads(text)
            op, topic = message["op"], message["topic"]
        except (ValueError, KeyError, TypeError):
            return
        if op == "subscribe" and topic in self.recording.acks:
            self.control += self._frame(self.recording.acks[topic])
            if topic == "pinfo":
                for frame in self.recording.snapshot:
                    self.control += self._frame(frame)
            self.subscribed.add(topic)

    def _frame(self, text: str) -> bytes:
        return self.ws.send(TextMessage(data=text))

    def flush(self) -> None:
        if self.control:
            self.sock.sendall(self.control)
            self.control.clear()

    def _readable(self, deadline: float, *extra: int) -> list[int]:
        """Flush the queued answers, then wait until the client (or ``extra``) has something
        to read, or ``deadline`` (monotonic) passes: the readable file descriptors."""
        self.flush()
        left = max(0.0, deadline - time.monotonic())
        return select.select([self.sock.fileno(), *extra], [], [], left)[0]

    def until_subscribed(self, deadline: float) -> None:
        while self.subscribed < set(self.recording.acks):
            if time.monotonic() >= deadline or self.closed:
                raise ClientGone(f"subscribed to {sorted(self.subscribed)} only")
            if self._readable(deadline):
                self.receive()
        self.flush()

    def until_readable(self, fd: int) -> None:
        """Answer the client (pings) until ``fd`` (stdin) is readable."""
        while True:
            readable = self._readable(time.monotonic() + 3600, fd)
            if fd in readable:
                return
            if readable:
                self.receive()
                if self.closed:
                    raise ClientGone("the client closed before the flood")

    def flood(self, chunks: Sequence[bytes]) -> None:
        for chunk in chunks:
            self.sock.sendall(chunk)
            if select.select([self.sock], [], [], 0)[0]:
                self.receive()
                if self.closed:
                    raise ClientGone("the client closed during the flood")
            self.flush()

    def close(self) -> None:
        self.control += self.ws.send(CloseConnection(code=1000, reason=MARKER))
        self.flush()

    def linger(self) -> None:
        """Until the client answers the close (or hangs up), at most ``LINGER`` seconds."""
        deadline = time.monotonic() + LINGER
        try:
            while not self.closed and time.monotonic() < deadline:
                if self._readable(deadline):
                    self.receive()
            self.flush()
        except OSError:
            pass  # the client reset the connection: it is gone either way


def serve(path: Path, port: int = 0) -> int:
    recording = Recording.read(path)
    chunks = recording.encoded_flood()
    with socket.create_server(("127.0.0.1", port)) as listener:
        say("port", listener.getsockname()[1])
        listener.settimeout(HANDSHAKE_TIMEOUT)
        sock, _ = listener.accept()
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    replay = Replay(sock=sock, recording=recording)
    with sock:
        replay.until_subscribed(time.monotonic() + HANDSHAKE_TIMEOUT)
        say("subscribed")
        stdin = sys.stdin.fileno()
        replay.until_readable(stdin)
        command = os.read(stdin, 4096).decode().strip()
        if command != "go":
            raise SystemExit(f"flood_sender: expected 'go' on stdin, got {command!r}")
        t0, c0 = time.monotonic(), time.process_time()
        say("flooding", f"{t0:.6f}")
        replay.flood(chunks)
        replay.close()
        t1, c1 = time.monotonic(), time.process_time()
        say("done", len(recording.flood), f"{t1 - t0:.6f}", f"{c1 - c0:.6f}")
        replay.linger()
    return 0


def serve_or_say(path: Path, port: int = 0) -> int:
    try:
        return serve(path, port)
    except ClientGone as e:
        say("gone", e)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("record", help="record a flood (or find it recorded); print its path")
    r.add_argument("--count", type=int, default=100_000)
    s = sub.add_parser("serve", help="replay a recording to one client")
    s.add_argument("recording", type=Path)
    s.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "record":
        import trio

        print(trio.run(record, args.count))
        return 0
    return serve_or_say(args.recording, args.port)


if __name__ == "__main__":
    sys.exit(main())
