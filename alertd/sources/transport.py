"""One websocket client connection, from TCP connect to closed socket, and nothing leaks out.

``run_connection`` connects (bounded by ``connect_timeout``, handshake included), hands the
connection to a ``serve`` callback, closes it (close handshake bounded by ``close_timeout``)
and returns why it ended, as text. trio-websocket's exceptions end here.

Why not ``trio_websocket.open_websocket_url``: in trio-websocket 0.12.2 it hangs forever when
the server accepts TCP but never answers the HTTP upgrade (the connect timeout fires, but the
context manager then waits for its reader task, which still waits for bytes), and it leaves
the client socket open until garbage collection when the server closed first, after a 1009
and after a rejected handshake. So this module opens the TCP (or TLS) stream itself, lets
``wrap_client_stream`` run the protocol in a nursery it owns, and always closes the stream.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import attrs
import trio
import trio_websocket
from trio_websocket import CloseReason, WebSocketConnection

DEFAULT_PORTS = {"ws": 80, "wss": 443}


@attrs.frozen
class Target:
    """Where a ``ws://`` or ``wss://`` URL points."""

    host: str
    port: int
    resource: str  # path and query, as sent in the request line
    tls: bool

    @property
    def host_header(self) -> str:
        default = DEFAULT_PORTS["wss" if self.tls else "ws"]
        return self.host if self.port == default else f"{self.host}:{self.port}"


def parse_url(url: str) -> Target:
    """``ValueError`` (saying what to write instead) unless ``url`` is a websocket URL."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"url {url!r} is not a websocket URL (ws://HOST/PATH or wss://...)")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ValueError(f"url {url!r} has a bad port") from None
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.hostname, port, resource, parts.scheme == "wss")


def describe_close(reason: CloseReason | None) -> str:
    """A close reason as people read it: ``closed with 1011 INTERNAL_ERROR: restarting``."""
    if reason is None:
        return "connection closed"
    text = f"closed with {reason.code} {reason.name}"
    return f"{text}: {reason.reason}" if reason.reason else text


async def run_connection(
    url: str,
    serve: Callable[[WebSocketConnection], Awaitable[str]],
    *,
    extra_headers: list[tuple[bytes, bytes]],
    message_queue_size: int,
    max_message_size: int,
    connect_timeout: float,
    close_timeout: float,
) -> str:
    """Connect to ``url``, run ``serve(connection)``, close; return why the connection ended
    (``serve``'s answer when it got that far). On cancellation the socket is closed at once.
    Errors that are not about the connection (bugs in ``serve``) propagate, in an
    ``ExceptionGroup``."""
    target = parse_url(url)
    stream: trio.SocketStream | trio.SSLStream[trio.SocketStream] | None = None
    outcome = "connection ended"
    try:
        async with trio.open_nursery() as nursery:  # trio-websocket's reader task runs here
            try:
                with trio.fail_after(connect_timeout):
                    stream = await _open_stream(target)
                    ws = await trio_websocket.wrap_client_stream(
                        nursery,
                        stream,
                        target.host_header,
                        target.resource,
                        extra_headers=extra_headers,
                        message_queue_size=message_queue_size,
                        max_message_size=max_message_size,
                    )
            except trio.TooSlowError:
                outcome = f"connect timed out after {connect_timeout:g}s"
                nursery.cancel_scope.cancel()
                return outcome
            try:
                outcome = await serve(ws)
            except trio_websocket.ConnectionClosed as e:
                outcome = describe_close(e.reason)
            finally:
                with trio.move_on_after(close_timeout):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    except* trio_websocket.ConnectionRejected as group:
        rejected = group.exceptions[0]
        assert isinstance(rejected, trio_websocket.ConnectionRejected)
        outcome = f"handshake rejected with HTTP {rejected.status_code}"
    except* (OSError, trio.BrokenResourceError, trio_websocket.HandshakeError) as group:
        error = group.exceptions[0]
        cause = error.__cause__ or error
        outcome = f"connect failed: {type(cause).__name__}: {cause}"
    finally:
        if stream is not None:
            await trio.aclose_forcefully(stream)
    return outcome


async def _open_stream(target: Target) -> trio.SocketStream | trio.SSLStream[trio.SocketStream]:
    if target.tls:
        return await trio.open_ssl_over_tcp_stream(
            target.host,
            target.port,
            ssl_context=ssl.create_default_context(),
            https_compatible=True,
        )
    return await trio.open_tcp_stream(target.host, target.port)
