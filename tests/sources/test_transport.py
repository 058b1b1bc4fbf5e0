"""The websocket transport against real local peers that misbehave during the connect: every
failure is one attempt that ends at once, with a cause a person can act on."""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio_websocket

from alertd.config.model import Duration
from alertd.events import Event
from alertd.sources.session import Session
from alertd.sources.transport import Connection, describe_connect_error, run_connection

from .helpers import EventLog, account

Handler = Callable[[trio.SocketStream], Awaitable[None]]


async def tcp_peer(nursery: trio.Nursery, handler: Handler) -> tuple[int, list[int]]:
    """A TCP listener on 127.0.0.1 running ``handler`` for each connection; its port and a
    list that grows by one per accepted connection."""
    accepted: list[int] = []

    async def serve(stream: trio.SocketStream) -> None:
        accepted.append(1)
        await handler(stream)

    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    nursery.start_soon(trio.serve_listeners, serve, [listener])
    return port, accepted


async def close_after_request(stream: trio.SocketStream) -> None:
    """Read the HTTP upgrade request, then close without answering."""
    await stream.receive_some()
    await stream.aclose()


async def reset_after_request(stream: trio.SocketStream) -> None:
    """Read the HTTP upgrade request, then reset the connection (RST, not FIN)."""
    await stream.receive_some()
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def never_served(conn: Connection) -> str:
    raise AssertionError("the handshake should have failed")


async def connect(url: str, connect_timeout: float = 5.0) -> str:
    return await run_connection(
        url,
        never_served,
        extra_headers=[],
        message_queue_size=4,
        max_message_size=65_536,
        connect_timeout=connect_timeout,
        close_timeout=0.5,
    )


async def test_close_during_the_handshake_fails_at_once(nursery: trio.Nursery) -> None:
    """A peer that accepts TCP and closes before answering the upgrade is a failed attempt at
    once, not a wait for connect_timeout, and the reason says what happened."""
    port, _ = await tcp_peer(nursery, close_after_request)
    with trio.fail_after(2):
        started = trio.current_time()
        reason = await connect(f"ws://127.0.0.1:{port}/ws", connect_timeout=10)
    assert trio.current_time() - started < 1
    assert reason == (
        f"connect to 127.0.0.1:{port} failed: connection closed by the server during the"
        " websocket handshake"
    )


async def test_reset_during_the_handshake_fails_at_once(nursery: trio.Nursery) -> None:
    """A peer that resets the connection during the upgrade is a failed attempt at once."""
    port, _ = await tcp_peer(nursery, reset_after_request)
    with trio.fail_after(2):
        reason = await connect(f"ws://127.0.0.1:{port}/ws", connect_timeout=10)
    assert reason == (
        f"connect to 127.0.0.1:{port} failed: connection reset during the websocket handshake"
    )


async def test_refused_connection_names_the_cause() -> None:
    """A closed port reads "connection refused", never an exception-group summary."""
    port = closed_port()
    with trio.fail_after(2):
        reason = await connect(f"ws://127.0.0.1:{port}/ws")
    assert reason == f"connect to 127.0.0.1:{port} failed: connection refused"


async def test_http_status_of_a_rejected_handshake_is_named(nursery: trio.Nursery) -> None:
    """A server that answers the upgrade with an HTTP error is named by its status."""

    async def reject(request: trio_websocket.WebSocketRequest) -> None:
        await request.reject(403)

    server = await nursery.start(trio_websocket.serve_websocket, reject, "127.0.0.1", 0, None)
    with trio.fail_after(2):
        reason = await connect(f"ws://127.0.0.1:{server.port}/ws")
    assert reason == "handshake rejected with HTTP 403"


async def test_tls_to_a_server_without_tls_is_a_tls_failure(nursery: trio.Nursery) -> None:
    """wss:// to a peer that answers in plain text fails as a TLS handshake, at once."""

    async def plain_http(stream: trio.SocketStream) -> None:
        await stream.receive_some()
        await stream.send_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await stream.aclose()

    port, _ = await tcp_peer(nursery, plain_http)
    with trio.fail_after(2):
        reason = await connect(f"wss://127.0.0.1:{port}/ws", connect_timeout=10)
    assert reason.startswith(f"connect to 127.0.0.1:{port} failed: TLS handshake failed (")


async def test_silent_peer_is_bounded_by_connect_timeout(nursery: trio.Nursery) -> None:
    """A peer that accepts TCP and says nothing is what connect_timeout is for."""

    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    port, _ = await tcp_peer(nursery, silent)
    with trio.fail_after(2):
        started = trio.current_time()
        reason = await connect(f"ws://127.0.0.1:{port}/ws", connect_timeout=0.3)
    assert reason == "connect timed out after 0.3s"
    assert 0.3 <= trio.current_time() - started < 1


async def test_session_retries_a_closing_peer_at_the_backoff_pace(nursery: trio.Nursery) -> None:
    """Against a peer that closes every handshake, a session makes an attempt per backoff
    delay (cap 0.1 s), not one per connect_timeout (10 s), and says the stream is down once."""
    port, accepted = await tcp_peer(nursery, close_after_request)
    send, receive = trio.open_memory_channel[Event](100)
    log = EventLog()
    nursery.start_soon(log.consume, receive)
    settings = account(
        f"ws://127.0.0.1:{port}/ws",
        connect_timeout=Duration(10.0),
        backoff_initial=Duration(0.05),
        backoff_max=Duration(0.1),
    )
    session = Session(settings=settings, send=send)
    with trio.fail_after(5):
        await nursery.start(session.run)
        await trio.sleep(1.0)
    assert len(accepted) >= 8
    assert session.statistics().reconnects >= 7
    [down] = log.of("stream.disconnected")
    assert "closed by the server during the websocket handshake" in down.reason


def test_connect_errors_read_as_their_cause() -> None:
    """Errors that need no peer to show (DNS, certificates, several addresses) are named."""
    dns = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert describe_connect_error(dns) == "DNS lookup failed (Name or service not known)"
    cert = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cert.verify_message = "self-signed certificate"
    wrapped = trio.BrokenResourceError()
    wrapped.__cause__ = cert
    assert (
        describe_connect_error(wrapped) == "TLS certificate not trusted (self-signed certificate)"
    )
    # trio's open_tcp_stream: one OSError caused by a group of the errors per address tried
    group = ExceptionGroup("all", [ConnectionRefusedError(111, "refused"), TimeoutError()])
    every = OSError("all attempts to connect to localhost:1 failed")
    every.__cause__ = group
    assert describe_connect_error(every) == "connection refused; timed out"


@pytest.mark.parametrize("url", ["http://x/", "ws://", "ws://host:port/"])
def test_bad_url_is_refused_when_the_session_is_built(url: str) -> None:
    """A URL that is not a websocket URL is a config error, before any connection."""
    from alertd.sources.session import SessionConfigError

    send, _ = trio.open_memory_channel[Event](1)
    with pytest.raises(SessionConfigError, match="url"):
        Session(settings=account(url), send=send)
