"""Small value syntaxes of the file, each parsed in one place for every stage that reads it:
a channel's rate limit (``"20/1m"``) and the metrics address (``"127.0.0.1:9108"``)."""

from __future__ import annotations

import re

DEFAULT_HOST = "127.0.0.1"  # loopback unless the operator writes another address
_LISTEN = re.compile(r"(?:(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]*)):)?(?P<port>\d+)")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([smhd])\s*$")


def parse_rate(text: str) -> tuple[int, float]:
    """``"20/1m"`` -> ``(20, 60.0)``; ``"5/30s"``, ``"100/h"`` work too."""
    m = _RATE.match(text)
    if m is None or int(m.group(1)) < 1:
        raise ValueError(
            f'rate_limit {text!r} is not a rate: write COUNT/PERIOD, e.g. "20/1m" or "5/30s"'
        )
    period = float(m.group(2) or 1) * _UNITS[m.group(3)]
    if period <= 0:
        raise ValueError(f"rate_limit {text!r}: the period must be longer than zero")
    return int(m.group(1)), period


def parse_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9108"``, ``"[::1]:9108"``, ``":9108"`` or ``"9108"`` -> (host, port);
    an omitted host is loopback."""
    match = _LISTEN.fullmatch(listen.strip())
    port = int(match["port"]) if match else -1
    if match is None or not 0 <= port <= 65535:
        raise ValueError(
            f"metrics: [daemon] metrics_listen = {listen!r} is not host:port "
            '(e.g. "127.0.0.1:9108")'
        )
    return (match["v6"] or match["host"] or DEFAULT_HOST, port)
