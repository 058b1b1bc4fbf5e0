"""The cluster's decisions, as plain functions over what the database holds (no I/O here):
which replicas watch which account, and what the cluster as a whole saw of each stream.

Assignment is rendezvous hashing (highest random weight) over the live replicas: every
replica that reads the same live set computes the same watchers for every account, with no
coordinator; when a replica joins or leaves, only the accounts it ranks among the first
``watchers`` of move. The first of an account's watchers is its *reporter*: it decides the
cluster's view of the account's stream and hands on the cluster's stream alerts.

An account is blind only while none of its watchers (a live replica whose watch row says
connected) has the stream. The cluster's ``stream.disconnected`` is timed at the last moment
any watcher had the stream healthy; its ``stream.connected`` and the ``stream.gap`` (why
``offline``) at the first reconnect after that. Every field of those events comes from the
``cluster_streams`` row, which the database keeps under a row lock, so whichever replica
makes them makes the very same events, hence (``engine.alerts.alert_id``: rule, key, status
and the event's fields but ``received``) the very same alert ids: the same window is the
same alert. The replica whose round changed the row hands them on, then acknowledges them
in the row at its next round; a reporter finding them unacknowledged two rounds after the
change (the one that decided died in between) hands them on again, the same events, and the
shared outbox's unique alert id keeps one notification (``Event.not_identity``: only
``received`` and ``raw`` differ). Those two rounds are also why a race between two reporters
while the live set changes is no second notification even on outboxes of their own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime

from alertd.events import Event, StreamConnected, StreamDisconnected, StreamGap
from alertd.sources.streams import stream_fact
from alertd.store.cluster import StreamRow, WatchRow

BLIND_REASON = "no replica watching the account has the stream"


def _weight(replica: str, account: str) -> int:
    digest = hashlib.sha256(f"{replica}\x00{account}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def watchers_of(account: str, live: Iterable[str], watchers: int) -> list[str]:
    """The replicas that watch ``account``, its reporter first: the ``watchers`` live replicas
    with the highest rendezvous weight for it (all of them when there are fewer)."""
    ranked = sorted(live, key=lambda r: (_weight(r, account), r), reverse=True)
    return ranked[:watchers]


def assignment(
    accounts: Iterable[str], live: Collection[str], watchers: int
) -> dict[str, list[str]]:
    """Every account's watchers, reporter first (``watchers_of``)."""
    return {a: watchers_of(a, live, watchers) for a in accounts}


def decide(
    account: str,
    row: StreamRow | None,
    watches: Sequence[WatchRow],
    live: Collection[str],
    now: datetime,
    *,
    grace: float,
    handover: float,
) -> StreamRow:
    """The account's stream row after one look at every replica's watch of it at ``now``
    (the database's clock). ``new`` (the cluster has just started) turns ``blind`` only after
    ``grace`` seconds with no watcher connected, from its start; ``seen`` once no watcher has
    had the stream for ``handover`` seconds: an account handed from a replica that stops to
    one that starts watching it is blind for a moment (the one connection closed, the other
    not yet open), which is no outage. The window reported still starts when the last
    watcher had the stream."""
    seeing = [w for w in watches if w.connected and w.replica in live]
    if row is None:
        row = StreamRow(account=account, state="new", changed=now)
    if row.state in ("new", "seen") and seeing:
        if row.state == "new":
            return StreamRow(account=row.account, state="seen", changed=now)
        return row
    heard = [w.healthy_at for w in watches if w.healthy_at is not None]
    if row.state == "seen" and heard and (now - max(heard)).total_seconds() < handover:
        return row
    if row.state == "seen" or (row.state == "new" and (now - row.changed).total_seconds() >= grace):
        since = max(heard) if heard and row.state == "seen" else row.changed
        if row.back_at is not None:
            since = max(since, row.back_at)  # a window never reaches into the previous one
        return StreamRow(
            account=row.account,
            state="blind",
            changed=now,
            blind_since=since,
            reason=_reason(watches),
            down_sent=False,
            back_sent=True,
        )
    if row.state == "blind" and seeing:
        assert row.blind_since is not None
        starts = [w.connected_since for w in seeing if w.connected_since is not None]
        back = max(row.blind_since, min(starts, default=now))
        return StreamRow(
            account=row.account,
            state="seen",
            changed=now,
            blind_since=row.blind_since,
            back_at=back,
            reason=row.reason,
            down_sent=row.down_sent,
            back_sent=False,
        )
    return row


def _reason(watches: Sequence[WatchRow]) -> str:
    """Why, from each watcher's last loss; deterministic (sorted by replica)."""
    lost = [f"{w.replica}: {w.reason}" for w in sorted(watches, key=lambda w: w.replica)]
    return f"{BLIND_REASON} ({'; '.join(lost)})" if lost else BLIND_REASON


def pending_events(row: StreamRow, exchange: str) -> tuple[list[Event], list[Event]]:
    """The cluster's stream events ``row`` holds that were not acknowledged yet: the down
    alert's, then the back alerts' (``stream.connected``, ``stream.gap``)."""
    if row.blind_since is None:
        return [], []
    account, since = row.account, row.blind_since
    down: list[Event] = []
    back: list[Event] = []
    if not row.down_sent:
        down.append(
            stream_fact(
                StreamDisconnected,
                exchange=exchange,
                account=account,
                at=since,
                reason=row.reason or BLIND_REASON,
            )
        )
    if row.state == "seen" and row.back_at is not None and not row.back_sent:
        until = row.back_at
        downtime = (until - since).total_seconds()
        back.append(
            stream_fact(
                StreamConnected, exchange=exchange, account=account, at=until, downtime=downtime
            )
        )
        back.append(
            stream_fact(
                StreamGap,
                exchange=exchange,
                account=account,
                at=until,
                since=since,
                until=until,
                why="offline",
            )
        )
    return down, back


def blind_accounts(rows: Mapping[str, StreamRow]) -> list[str]:
    return sorted(a for a, r in rows.items() if r.state == "blind")
