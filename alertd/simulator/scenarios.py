"""Scenarios: what the simulator does besides speaking the protocols. A scenario is a frozen
set of knobs; the server reads them. Tests may build their own ``Scenario`` with other
timings (``attrs.evolve(SCENARIOS["drop"], drop_every=1.0)``)."""

from __future__ import annotations

import attrs

DEFAULT_FLOOD_RATE = 10_000.0  # frames per second, as agreed for benchmarks


@attrs.frozen(kw_only=True)
class Scenario:
    name: str
    description: str
    # ordinary activity: one action every step_min..step_max seconds per exchange
    activity: bool = True
    step_min: float = 0.3
    step_max: float = 0.9
    # drop every connection every drop_every seconds (alternately clean close and TCP cut)
    drop_every: float | None = None
    # each connection goes half-open this long after it is accepted; the server forgets it
    # (closes the socket silently) after half_open_reap more seconds, like TCP keepalive would
    half_open_after: float | None = None
    half_open_reap: float = 120.0
    # one garbage frame after every garbage_every activity steps
    garbage_every: int | None = None
    # every login is answered with an error, and without a login nothing is served
    reject_login: bool = False
    # every restart_every seconds close everything and refuse connections restart_down seconds
    restart_every: float | None = None
    restart_down: float = 3.0
    # stream at this many frames per second instead of ordinary activity
    flood_rate: float | None = None


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="normal",
            description="realistic deterministic activity on both exchanges: orders, "
            "balances, insufficient funds, trades and books",
        ),
        Scenario(
            name="drop",
            description="normal activity, and every connection is dropped mid-stream every "
            "8 s (alternately a close frame 1011 and a bare TCP close)",
            drop_every=8.0,
        ),
        Scenario(
            name="half-open",
            description="normal activity, but 5 s after it connects each connection stops "
            "sending and stops answering pings without closing",
            half_open_after=5.0,
        ),
        Scenario(
            name="garbage",
            description="normal activity interleaved with malformed JSON, unknown topics and "
            "@types, and frames bigger than 1 MiB",
            garbage_every=3,
        ),
        Scenario(
            name="reject-login",
            description="answers every login with an error and closes (1008); serves "
            "nothing without a login",
            reject_login=True,
        ),
        Scenario(
            name="restart",
            description="normal activity; every 10 s closes everything (1012) and refuses "
            "connections for 3 s, then accepts again",
            restart_every=10.0,
        ),
        Scenario(
            name="flood",
            description="order, balance and trade frames at --rate frames/s (default "
            "10000) to every connection, for benchmarks",
            activity=False,
            flood_rate=DEFAULT_FLOOD_RATE,
        ),
        Scenario(
            name="quiet",
            description="answers logins and subscriptions but streams nothing, for staleness tests",
            activity=False,
        ),
    )
}


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``; ``KeyError`` naming the known ones otherwise."""
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise KeyError(f"unknown scenario {name!r} (known: {known})") from None
