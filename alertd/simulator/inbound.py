"""What a client sends the simulator: login, subscribe and unsubscribe frames, checked the way
a server would. Pure functions over text; the server decides what to do with the verdicts."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

PIEXGO_SYMBOLS = ("btc_usdt", "eth_usdt")
PIEXGO_TOPICS = frozenset(
    ["pinfo"] + [f"{s}.{sym}" for s in ("dealinfo", "depth") for sym in PIEXGO_SYMBOLS]
)
_STREAM = re.compile(r"^(dealinfo|depth)\.(.+)$")


@attrs.frozen(kw_only=True)
class Login:
    """A login frame; ``problem`` is set when it is malformed."""

    key: str = ""
    ts: int = 0
    sign: str = ""
    problem: str | None = None


@attrs.frozen(kw_only=True)
class Subscription:
    """A valid subscribe or unsubscribe of a known topic."""

    op: str
    topic: str


@attrs.frozen(kw_only=True)
class Rejected:
    """A frame the server answers with an error (and otherwise ignores)."""

    op: str
    topic: str | None
    msg: str


@attrs.frozen(kw_only=True)
class Ignored:
    """A frame the server does not answer (Cryptology has no client frames but login)."""

    why: str


Inbound = Login | Subscription | Rejected | Ignored


def _load(text: str | bytes) -> dict[str, Any] | str:
    """The frame as a JSON object, or the reason it is not one."""
    if isinstance(text, bytes):
        return "binary frames are not accepted, send JSON text"
    try:
        obj = json.loads(text)
    except ValueError:
        return "not JSON"
    if not isinstance(obj, dict):
        return "frame must be a JSON object"
    return obj


def _login(obj: dict[str, Any]) -> Login:
    key, ts, sign = obj.get("key"), obj.get("ts"), obj.get("sign")
    if not isinstance(key, str) or not isinstance(sign, str):
        return Login(problem="login needs string key and sign")
    if not isinstance(ts, int) or isinstance(ts, bool):
        return Login(problem="login needs ts, an integer of milliseconds")
    return Login(key=key, ts=ts, sign=sign)


def parse_piexgo(text: str | bytes) -> Inbound:
    obj = _load(text)
    if isinstance(obj, str):
        return Rejected(op="subscribe", topic=None, msg=obj)
    op = obj.get("op")
    if op == "login":
        return _login(obj)
    raw_topic = obj.get("topic")
    topic = raw_topic if isinstance(raw_topic, str) else None
    if op not in ("subscribe", "unsubscribe"):
        return Rejected(op="subscribe", topic=topic, msg=f"unknown op {op!r}")
    if topic is None:
        return Rejected(op=op, topic=None, msg="missing topic")
    if topic in PIEXGO_TOPICS:
        return Subscription(op=op, topic=topic)
    m = _STREAM.match(topic)
    if m is None:
        return Rejected(op=op, topic=topic, msg=f"unknown topic {topic!r}")
    symbol = m.group(2)
    if symbol != symbol.lower() and symbol.lower() in PIEXGO_SYMBOLS:
        return Rejected(op=op, topic=topic, msg=f"symbols are lowercase: use {symbol.lower()}")
    return Rejected(
        op=op,
        topic=topic,
        msg=f"unknown symbol {symbol!r} (known: {', '.join(PIEXGO_SYMBOLS)})",
    )


def parse_cryptology(text: str | bytes) -> Inbound:
    obj = _load(text)
    if isinstance(obj, str):
        return Ignored(why=obj)
    if obj.get("op") == "login":
        return _login(obj)
    return Ignored(why="Cryptology takes no client frames but login")


def sign(secret: str, ts: int) -> str:
    """The agreed login signature: hex HMAC-SHA256 of the decimal timestamp."""
    return hmac.new(secret.encode(), str(ts).encode(), hashlib.sha256).hexdigest()


def check_login(login: Login, credentials: Mapping[str, str] | None) -> str | None:
    """Why ``login`` fails against ``credentials`` (key -> secret), or None when it passes.
    With no credentials configured every well-formed login passes."""
    if login.problem:
        return login.problem
    if credentials is None:
        return None
    secret = credentials.get(login.key)
    # an unknown key gets the same answer as a bad signature, as real servers do
    if secret is None or not hmac.compare_digest(sign(secret, login.ts), login.sign.lower()):
        return "invalid signature"
    return None
