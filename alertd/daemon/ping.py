"""The ping protocols the heartbeat speaks (daemon/heartbeat): healthchecks.io's (``<url>``,
``<url>/start``, ``<url>/fail`` with the reason as the body) and Uptime Kuma's push URLs
(``?status=up|down&msg=<text>``); and one ping, a blocking HTTP request (urllib) made in a
worker thread, whose errors are told by a short cause that never quotes the URL (it holds the
secret)."""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.error
import urllib.request
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

import alertd

MAX_BODY = 2000  # characters of a ping's body (the reason): a phone shows the first line anyway
MAX_KUMA_MESSAGE = 250  # characters of msg= in an Uptime Kuma push (it goes in the URL)
MAX_RESPONSE = 4096  # bytes of an answer read (healthchecks says "OK"); the rest is dropped
USER_AGENT = f"alertd/{alertd.__version__} (heartbeat)"

Kind = Literal["healthchecks", "uptime-kuma"]
Signal = Literal["start", "ok", "fail"]


# -- the ping protocol (no I/O) ---------------------------------------------------------------


def detect_kind(url: str, kind: Kind | Literal["auto"] = "auto") -> Kind:
    """``kind`` unless it is "auto": then Uptime Kuma when the URL has a ``status=`` query or
    an ``/api/push/`` path (how Kuma writes its push URLs), else healthchecks.io."""
    if kind != "auto":
        return kind
    parts = urlsplit(url)
    keys = {k for k, _ in parse_qsl(parts.query, keep_blank_values=True)}
    return "uptime-kuma" if "status" in keys or "/api/push/" in parts.path else "healthchecks"


@attrs.frozen
class PingRequest:
    """One HTTP request of the protocol; ``url`` holds the secret, so it is kept out of repr."""

    method: Literal["GET", "POST"]
    url: str = attrs.field(repr=False)
    body: bytes | None = None


def ping_request(kind: Kind, url: str, signal: Signal, message: str) -> PingRequest:
    """The request that says ``signal`` (with ``message``) to the service at ``url``."""
    parts = urlsplit(url)
    if kind == "uptime-kuma":
        query = [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if k not in ("status", "msg")
        ]
        status = "down" if signal == "fail" else "up"
        query += [("status", status), ("msg", message[:MAX_KUMA_MESSAGE])]
        return PingRequest("GET", urlunsplit(parts._replace(query=urlencode(query))))
    path = parts.path.rstrip("/")
    if signal != "ok":
        path += f"/{signal}"
    body = message[:MAX_BODY].encode("utf-8")  # cut by characters: the body stays UTF-8
    return PingRequest("POST", urlunsplit(parts._replace(path=path)), body)


def masked_url(url: str) -> str:
    """What logs may say about a ping URL: its scheme and host, never its path or query (the
    check's UUID or push token is the secret)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<heartbeat url>"
    return f"{parts.scheme}://{host}{port}/***"


# -- one ping (blocking, in a worker thread) --------------------------------------------------


@attrs.frozen
class PingOutcome:
    ok: bool
    cause: str = ""  # why not: "connection refused", "timed out", "HTTP 404", ...


def _cause(error: BaseException | str) -> str:
    """A short cause for a log line. Never the exception's text as a whole: some quote the
    URL, which holds the secret."""
    if isinstance(error, str):
        return "connection failed"
    if isinstance(error, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return "connection reset"
    if isinstance(error, socket.gaierror):
        return "host name not resolved"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed ({error.reason or type(error).__name__})"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return type(error).__name__


def send_ping(request: PingRequest, timeout: float) -> PingOutcome:
    """Make ``request`` (blocking): ok when the service answered 2xx."""
    headers = {"User-Agent": USER_AGENT}
    if request.body is not None:
        headers["Content-Type"] = "text/plain; charset=utf-8"
    # check_url admits http:// and https:// only
    req = urllib.request.Request(  # noqa: S310
        request.url, data=request.body, headers=headers, method=request.method
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310
            response.read(MAX_RESPONSE)
            status = int(response.status)
    except urllib.error.HTTPError as e:
        e.close()
        return PingOutcome(False, f"HTTP {e.code}")
    except urllib.error.URLError as e:
        return PingOutcome(False, _cause(e.reason))
    except http.client.HTTPException as e:
        return PingOutcome(False, f"bad HTTP answer ({type(e).__name__})")
    except ValueError:  # urllib's text for a URL it cannot use quotes the URL
        return PingOutcome(False, "not a usable URL")
    except OSError as e:
        return PingOutcome(False, _cause(e))
    if not 200 <= status < 300:
        return PingOutcome(False, f"HTTP {status}")
    return PingOutcome(True)
