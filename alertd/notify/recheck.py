"""Muting, asked again just before a send: a silence added, or an inhibition begun, after an
alert was queued (held for quiet hours, waiting behind a rate limit, retrying on a failing
channel) still keeps it from the person. Dispatch asked when it queued the row; this is the
second time (``alertd.dispatch.muting``).

A row whose every alert is muted now is finished unsent (``silenced`` or ``inhibited``); a
partly muted row goes out re-written without the muted alerts, exactly as dispatch would
have written it had the muting been there then. A row whose alerts are not stored (a
fallback report) or that is half sent (``parts_done``) is sent as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from alertd.config.model import Config
from alertd.dispatch.muting import Muted, Muting
from alertd.messages.formats import zone
from alertd.messages.summary import summarize
from alertd.notify.outcomes import MutedRow, Outcomes
from alertd.store.handoff import Target
from alertd.store.notifications import Finished, OutboxRow
from alertd.store.outbox import Outbox


@attrs.define
class Recheck:
    muting: Muting | None
    outbox: Outbox
    outcomes: Outcomes

    async def unmuted(
        self,
        config: Config,
        target: Target,
        rows: Sequence[OutboxRow],
        *,
        wall: float,
        now: float,
    ) -> list[OutboxRow]:
        """``rows`` less those muted now (recorded as such); partly muted rows re-written.
        ``wall``: Unix seconds; ``now``: the trio clock."""
        muting = self.muting
        if muting is None:
            return list(rows)
        await muting.refresh(wall)
        if not muting.may_mute(wall, now):
            return list(rows)
        alerts = await self.outbox.alerts(i for r in rows for i in r.alert_ids)
        keep: list[OutboxRow] = []
        finished: list[MutedRow] = []
        for row in rows:
            stored = [alerts.get(i) for i in row.alert_ids]
            found = [a for a in stored if a is not None]
            if not row.alert_ids or len(found) < len(stored):
                keep.append(row)
                continue
            why = {a.id: muting.muted(a, wall=wall, now=now) for a in found}
            loud = [a for a in found if why[a.id] is None]
            if not loud:
                finished.append(_muted_row(row, why))
            elif len(loud) < len(found) and row.parts_done == 0:
                title, body = summarize(
                    loud[0].rule,
                    loud[0].key,
                    loud,
                    zone(config.daemon.timezone),
                    config.dispatch.group_max_items,
                )
                keep.append(attrs.evolve(row, title=title, body=body))
            else:
                keep.append(row)
        await self.outcomes.muted(target, finished)
        return keep


def _muted_row(row: OutboxRow, why: dict[str, Muted | None]) -> MutedRow:
    """A row all of whose alerts are muted: ``silenced`` when a silence covers any of them
    (a person asked for it), else ``inhibited``."""
    reasons = {i: m for i, m in why.items() if m is not None}
    how: Finished = (
        "silenced" if any(m.how == "silenced" for m in reasons.values()) else "inhibited"
    )
    return MutedRow(
        row=row,
        how=how,
        reason=f"{how} by " + ", ".join(sorted({m.by for m in reasons.values()})),
        sources=",".join(sorted({m.source or m.by for m in reasons.values()})),
        alert_states=tuple((i, m.how) for i, m in reasons.items()),
    )
