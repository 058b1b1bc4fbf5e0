"""Real peers on 127.0.0.1 for the notify tests: an HTTP webhook receiver and an SMTP server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
from aiosmtpd.controller import Controller


@attrs.frozen
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@attrs.define
class HttpReceiver:
    """Answers each request with the next status in ``statuses`` (then 200); with ``hang``
    set, never answers until the test ends."""

    url: str = ""
    statuses: list[int] = attrs.field(factory=list)
    hang: bool = False
    requests: list[Request] = attrs.field(factory=list)
    release: threading.Event = attrs.field(factory=threading.Event)


@contextmanager
def http_receiver(
    statuses: list[int] | None = None, *, hang: bool = False
) -> Iterator[HttpReceiver]:
    state = HttpReceiver(statuses=list(statuses or []), hang=hang)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with lock:
                state.requests.append(Request("POST", self.path, dict(self.headers.items()), body))
                status = state.statuses.pop(0) if state.statuses else 200
            if state.hang:
                state.release.wait(60)
                return
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@attrs.define
class SmtpReceiver:
    port: int = 0
    messages: list[EmailMessage] = attrs.field(factory=list)
    envelopes: list[tuple[str, list[str]]] = attrs.field(factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_receiver() -> Iterator[SmtpReceiver]:
    state = SmtpReceiver(port=_free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            msg = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(msg, EmailMessage)
            state.messages.append(msg)
            state.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=state.port)
    controller.start()
    try:
        yield state
    finally:
        controller.stop()
