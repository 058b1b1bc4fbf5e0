"""Delivery's log lines name each row's rule and account: from memory for the alerts this
process recorded, from the state database for the others (after a restart)."""

from __future__ import annotations

from pathlib import Path

from alertd.store.database import Database, db_path
from alertd.store.outbox import Outbox

from .helpers import make_alert


async def test_origins_come_from_memory_and_after_a_restart_from_the_table(
    tmp_path: Path,
) -> None:
    """An alert recorded here is known at once; a new process on the same state database
    still finds it; an id never stored is left out."""
    db = Database(db_path(tmp_path))
    try:
        alert = make_alert(1)
        outbox = Outbox(db)
        await outbox.record_alert(alert, 1.0)
        here = await outbox.origins([alert.id, "never-stored"])
    finally:
        db.close()
    db = Database(db_path(tmp_path))
    try:
        after_restart = await Outbox(db).origins([alert.id])
    finally:
        db.close()
    expected = {alert.id: (alert.rule, alert.account or "-")}
    assert after_restart == expected
    assert here == expected
