"""One websocket client connection, from TCP connect to closed socket, and nothing leaks out.

``run_connection`` connects (bounded by ``connect_timeout``, handshake included), hands a
``Connection`` to a ``serve`` callback, closes it (close handshake bounded by
``close_timeout``) and returns why it ended, as text a person can act on ("connection
refused", "DNS lookup failed", "TLS certificate not trusted", "handshake rejected with HTTP
403", "closed with 1011 INTERNAL_ERROR: restarting"). This is the only module that imports
trio-websocket: its exceptions end here, as ``ConnectionLost``.

Why not ``trio_websocket.open_websocket_url``: in trio-websocket 0.12.2 it hangs forever when
the server accepts TCP but never answers the HTTP upgrade (the connect timeout fires, but the
context manager then waits for its reader task, which still waits for bytes), and it leaves
the client socket open until garbage collection when the server closed first, after a 1009
and after a rejected handshake. So this module opens the TCP (or TLS) stream itself, lets
``wrap_client_stream`` run the protocol in a nursery it owns, and always closes the stream.

And why the stream is watched during the handshake: when the peer closes or resets the
connection before answering the upgrade, trio-websocket's reader task ends but
``wrap_client_stream`` goes on waiting for the handshake, so each such attempt would take the
whole ``connect_timeout``. Watching the stream makes it a failed attempt at once;
``connect_timeout`` only bounds a peer that says nothing.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import attrs
import trio
import trio_websocket
from trio_websocket import CloseReason, WebSocketConnection

DEFAULT_PORTS = {"ws": 80, "wss": 443}
MESSAGE_TOO_BIG = 1009  # the close code trio-websocket sends on a frame over max_message_size

# Bytes a read asks the socket for: trio-websocket's default is 4 KiB, about 18 frames of a
# flood; 64 KiB reads a flood in a sixteenth of the reads and wake-ups.
RECEIVE_BYTES = 64 * 1024

TcpOrTls = trio.SocketStream | trio.SSLStream[trio.SocketStream]


@attrs.frozen
class ServerAddress:
    """Where a ``ws://`` or ``wss://`` URL points."""

    host: str
    port: int
    resource: str  # path and query, as sent in the request line
    tls: bool

    @property
    def host_header(self) -> str:
        default = DEFAULT_PORTS["wss" if self.tls else "ws"]
        return self.host if self.port == default else f"{self.host}:{self.port}"


def parse_url(url: str) -> ServerAddress:
    """``ValueError`` (saying what to write instead) unless ``url`` is a websocket URL."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"url {url!r} is not a websocket URL (ws://HOST/PATH or wss://...)")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ValueError(f"url {url!r} has a bad port") from None
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return ServerAddress(parts.hostname, port, resource, parts.scheme == "wss")


class ConnectionLost(Exception):
    """The connection is closed. ``reason`` is what people read; ``too_big`` says it was
    closed because a received frame was over ``max_message_size`` (close code 1009)."""

    def __init__(self, reason: str, *, too_big: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_big = too_big


def describe_close(reason: CloseReason | None) -> str:
    """A close reason as people read it: ``closed with 1011 INTERNAL_ERROR: restarting``."""
    if reason is None:
        return "connection closed"
    if reason.code == MESSAGE_TOO_BIG:
        return "frame too big (1009)"
    text = f"closed with {reason.code} {reason.name}"
    return f"{text}: {reason.reason}" if reason.reason else text


def _lost(error: trio_websocket.ConnectionClosed) -> ConnectionLost:
    code = None if error.reason is None else error.reason.code
    return ConnectionLost(describe_close(error.reason), too_big=code == MESSAGE_TOO_BIG)


@attrs.define(eq=False)
class Connection:
    """An open websocket connection, for the ``serve`` callback of ``run_connection``. Every
    method raises ``ConnectionLost`` once the connection is closed."""

    _ws: WebSocketConnection

    async def send(self, message: str) -> None:
        try:
            await self._ws.send_message(message)
        except trio_websocket.ConnectionClosed as e:
            raise _lost(e) from None

    async def receive(self) -> str | bytes:
        """The next message, waiting for it."""
        try:
            return await self._ws.get_message()
        except trio_websocket.ConnectionClosed as e:
            raise _lost(e) from None

    async def ping(self) -> None:
        """A ping, returning when its pong is back."""
        try:
            await self._ws.ping()
        except trio_websocket.ConnectionClosed as e:
            raise _lost(e) from None


def describe_connect_error(error: BaseException) -> str:
    """What made a connect fail, in words a person can act on, from the exception trio raised
    (an ``OSError`` whose cause groups one error per address tried, a ``gaierror``, a TLS
    error wrapped in ``BrokenResourceError``)."""
    words: list[str] = []
    for cause in _causes(error):
        text = _describe_one(cause)
        if text not in words:
            words.append(text)
    return "; ".join(words)


def _causes(error: BaseException) -> list[BaseException]:
    """The errors underneath ``error``: members of exception groups and explicit causes."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for member in error.exceptions for leaf in _causes(member)]
    if error.__cause__ is not None:
        return _causes(error.__cause__)
    return [error]


def _describe_one(error: BaseException) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({error.verify_message})"
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake failed ({error.reason or error})"
    if isinstance(error, socket.gaierror):
        return f"DNS lookup failed ({error.strerror})"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


@attrs.define(eq=False)
class _WatchedStream(trio.abc.Stream):
    """The TCP or TLS stream, passed through, noting when the peer closed or broke it."""

    inner: TcpOrTls
    ended: trio.Event = attrs.field(factory=trio.Event)
    failure: str = ""

    def _end(self, failure: str) -> None:
        if not self.ended.is_set():
            self.failure = failure
            self.ended.set()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            data = await self.inner.receive_some(max_bytes)
        except trio.BrokenResourceError as e:
            self._end(describe_connect_error(e))
            raise
        except trio.ClosedResourceError:
            # trio-websocket closes the stream itself on a reply it cannot parse
            self._end("the server's reply is not a websocket handshake")
            raise
        if not data:
            self._end("connection closed by the server")
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self.inner.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
            self._end(describe_connect_error(e))
            raise

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def run_connection(
    url: str,
    serve: Callable[[Connection], Awaitable[str]],
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
    address = parse_url(url)
    where = f"{address.host}:{address.port}"
    stream: TcpOrTls | None = None
    outcome = "connection ended"
    try:
        async with trio.open_nursery() as nursery:  # trio-websocket's reader task runs here
            try:
                with trio.fail_after(connect_timeout):
                    stream = await _open_stream(address)
                    shaken = await _handshake(
                        nursery,
                        _WatchedStream(stream),
                        address,
                        extra_headers=extra_headers,
                        message_queue_size=message_queue_size,
                        max_message_size=max_message_size,
                    )
            except trio.TooSlowError:
                nursery.cancel_scope.cancel()
                return f"connect timed out after {connect_timeout:g}s"
            if isinstance(shaken, str):
                nursery.cancel_scope.cancel()
                return f"connect to {where} failed: {shaken}"
            ws = shaken
            try:
                outcome = await serve(Connection(ws))
            except ConnectionLost as e:
                outcome = e.reason
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
        outcome = f"connect to {where} failed: {describe_connect_error(group)}"
    finally:
        if stream is not None:
            await trio.aclose_forcefully(stream)
    return outcome


async def _open_stream(address: ServerAddress) -> TcpOrTls:
    if not address.tls:
        return await trio.open_tcp_stream(address.host, address.port)
    stream = await trio.open_ssl_over_tcp_stream(
        address.host,
        address.port,
        ssl_context=ssl.create_default_context(),
        https_compatible=True,
    )
    # The TLS handshake now, not lazily inside trio-websocket, so that its failure is told
    # as one (certificate, protocol) rather than as a connection that closed.
    try:
        await stream.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream


async def _handshake(
    nursery: trio.Nursery,
    stream: _WatchedStream,
    address: ServerAddress,
    *,
    extra_headers: list[tuple[bytes, bytes]],
    message_queue_size: int,
    max_message_size: int,
) -> WebSocketConnection | str:
    """The websocket handshake over ``stream``; why it failed when the peer closed or broke
    the stream first (see the module docstring)."""
    done: list[WebSocketConnection] = []
    async with trio.open_nursery() as race:

        async def shake() -> None:
            ws = await trio_websocket.wrap_client_stream(
                nursery,
                # Its annotation says socket or TLS stream; it takes any trio Stream (its
                # documentation says so, and it only calls the Stream methods).
                stream,  # type: ignore[arg-type]
                address.host_header,
                address.resource,
                extra_headers=extra_headers,
                message_queue_size=message_queue_size,
                max_message_size=max_message_size,
                receive_buffer_size=RECEIVE_BYTES,
            )
            done.append(ws)
            race.cancel_scope.cancel()

        race.start_soon(shake)
        await stream.ended.wait()
        race.cancel_scope.cancel()
    if done:
        return done[0]
    return f"{stream.failure} during the websocket handshake"
