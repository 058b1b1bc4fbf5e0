"""The stream marks of many idle accounts cost one small write a second: an account's row is
written when it changes (connected, balances, lost), the rest of the time only the process's
alive moment, which a killed daemon's next start still reads as each live account's mark."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import trio

from alertd.sources.downtime import DowntimeMarks
from alertd.sources.health import StreamHealth
from alertd.sources.session import now_utc
from alertd.store import stream_marks
from alertd.store.database import Database

from .helpers import balance_frame
from .test_health import at, piexgo

INTERVAL = 0.05


@attrs.define
class _Account:
    name: str
    enabled: bool = True


@attrs.define
class _Sources:
    """The two things DowntimeMarks reads of ``Sources``: its accounts and their healths."""

    healths_by_name: dict[str, StreamHealth]
    on_new_account: Any = None

    @property
    def accounts(self) -> list[_Account]:
        return [_Account(n) for n in self.healths_by_name]

    def healths(self) -> dict[str, StreamHealth]:
        return dict(self.healths_by_name)


async def _writes_at_least(marks: DowntimeMarks, n: int) -> None:
    while marks.statistics().writes < n:  # noqa: ASYNC110 (a counter, no event to wait on)
        await trio.sleep(INTERVAL / 2)


async def test_idle_connected_accounts_write_their_rows_once_then_only_the_alive_moment(
    tmp_path: Path,
) -> None:
    """Three connected idle accounts: after many intervals three rows were written, one more
    when a balance changed, one more when an account was lost; the file read as after a
    kill gives the live accounts the last alive moment and the lost one its loss."""
    healths = {name: piexgo(streams=["pinfo"]) for name in ("a", "b", "c")}
    for h in healths.values():
        h.came_up(**at(0))
    db = Database(tmp_path / "alertd.db")
    marks = DowntimeMarks(db, _Sources(healths), lambda: False, interval=INTERVAL)  # type: ignore[arg-type]
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(marks.run)
            await _writes_at_least(marks, 6)
            assert marks.statistics().rows == 3
            healths["a"].frame(balance_frame("BTC", "2.5"), **at(1))
            done = marks.statistics().writes
            await _writes_at_least(marks, done + 3)
            assert marks.statistics().rows == 4
            healths["c"].ended("closed with 1006 ABNORMAL_CLOSURE", **at(2))
            done = marks.statistics().writes
            await _writes_at_least(marks, done + 3)
            assert marks.statistics().rows == 5
            killed_at = now_utc()
            saved = db.run_sync(stream_marks.load)
            nursery.cancel_scope.cancel()
    db.close()
    by = {m.account: m for m in saved}
    assert set(by) == {"a", "b", "c"}
    assert by["a"].balances == {"BTC": Decimal("2.5")}
    for live in ("a", "b"):
        assert killed_at - by[live].healthy < timedelta(seconds=1), "the alive moment is fresh"
    assert by["c"].healthy == at(0)["wall"], "a lost account's mark is its last healthy moment"


def test_a_new_run_settles_the_last_runs_live_rows_at_its_alive_moment(tmp_path: Path) -> None:
    """Live rows read as of the alive moment; once settled (a new run took them over) a later
    alive moment no longer moves them; a live row with no alive moment is no mark."""
    db = Database(tmp_path / "alertd.db")
    first, later = at(5)["wall"], at(60)["wall"]
    live = stream_marks.StreamMark(account="a", healthy=first, live=True)
    db.write_sync(stream_marks.create)
    db.write_sync(lambda c: stream_marks.save(c, [live]))
    assert db.run_sync(stream_marks.load) == [], "no alive moment yet: no mark"
    db.write_sync(lambda c: stream_marks.alive(c, first))
    assert db.run_sync(stream_marks.load) == [live]
    db.write_sync(stream_marks.settle)
    db.write_sync(lambda c: stream_marks.alive(c, later))
    assert db.run_sync(stream_marks.load) == [attrs.evolve(live, live=False)]
    db.close()
