"""The stream marks behind alertd's own downtime: what stream health says was its last
healthy moment, and the ``stream_marks`` table in a real SQLite file across connections."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from alertd.store import stream_marks
from alertd.store.database import Database
from alertd.store.stream_marks import StreamMark

from .helpers import balance_frame
from .test_health import at, piexgo, wall


def test_the_last_healthy_moment_is_now_the_stop_or_the_start_of_the_outage() -> None:
    """Never connected: none; connected: now, with the balances; stopped while up: the
    stop's moment; lost: the last frame (or connect) before the loss, where its gap will start."""
    h = piexgo(streams=["pinfo"])
    assert h.last_healthy(wall(0)) is None
    h.came_up(**at(0))
    h.frame(balance_frame("BTC", "1.5"), **at(1))
    assert h.last_healthy(wall(2)) == (wall(2), {"BTC": Decimal("1.5")})
    h.stopped(**at(3))
    assert h.last_healthy(wall(9)) == (wall(3), {"BTC": Decimal("1.5")})
    h.session_started(wall=wall(10))
    h.came_up(**at(11))
    h.tick(**at(11.5))  # the gap of the stop goes out (no snapshot came)
    h.ended("closed with 1006 ABNORMAL_CLOSURE", **at(12))
    assert h.last_healthy(wall(20)) == (wall(11), {"BTC": Decimal("1.5")})


def test_marks_survive_in_the_file_and_removed_accounts_are_forgotten(tmp_path: Path) -> None:
    """Saved marks read back exactly from a new connection to the same file; keep_only drops
    the others; mark_stopped flips every row; a damaged row is no mark."""
    path = tmp_path / "alertd.db"
    db = Database(path)
    a = StreamMark(account="a", healthy=wall(0.25), balances={"BTC": Decimal("1.50")})
    b = StreamMark(account="b", healthy=wall(5), stopped=True)
    db.write_sync(stream_marks.create)
    db.write_sync(lambda c: stream_marks.save(c, [a, b]))
    db.write_sync(lambda c: stream_marks.save(c, [b]))  # a second write replaces, not adds
    db.close()
    again = Database(path)
    assert again.run_sync(stream_marks.load) == [a, b]
    again.write_sync(lambda c: stream_marks.keep_only(c, {"a"}))
    again.write_sync(lambda c: stream_marks.mark_stopped(c, True))
    assert again.run_sync(stream_marks.load) == [
        StreamMark(account="a", healthy=wall(0.25), stopped=True, balances=a.balances)
    ]
    again.write_sync(lambda c: c.execute("UPDATE stream_marks SET balances = 'not json'"))
    assert again.run_sync(stream_marks.load) == []
    again.close()
