"""Which rule-state rows a save writes: none for a key made and dropped between two saves,
a delete for every key whose row is in the store (saved before, restored, or whose delete
failed), with a real SQLite file."""

from __future__ import annotations

from pathlib import Path

from alertd.config.model import RuleSettings

from .factories import engine, filled, placed, rule, store_at


def timeout() -> RuleSettings:
    return rule("slow", type="order_timeout", open_for=3600)


def test_key_made_and_dropped_between_saves_writes_no_row(tmp_path: Path) -> None:
    """An order placed and filled between two saves leaves no row to write (not a delete)."""
    e = engine(timeout(), state=store_at(tmp_path))
    e.process(placed("1"), 1.0)
    e.process(filled("1"), 2.0)
    assert e.take_state_changes().rows == ()


def test_saved_key_dropped_later_is_deleted_from_the_store(tmp_path: Path) -> None:
    """An order saved while open and filled after the save is deleted by the next save."""
    store = store_at(tmp_path)
    e = engine(timeout(), state=store)
    e.process(placed("1"), 1.0)
    e.flush_state()
    assert [r.key for r in store.load_sync()] == ["main/1"]
    e.process(filled("1"), 2.0)
    [row] = e.take_state_changes().rows
    assert row.key == "main/1" and row.data is None


def test_restored_key_dropped_is_deleted_and_not_timed_after_the_next_restart(
    tmp_path: Path,
) -> None:
    """An open order restored after a restart and filled then is deleted from the store: a
    third process does not time it again."""
    a = engine(timeout(), state=store_at(tmp_path))
    a.process(placed("1"), 1.0)
    a.flush_state()
    b = engine(timeout(), state=store_at(tmp_path))
    b.process(filled("1"), 5.0)
    b.flush_state()
    c = engine(timeout(), state=store_at(tmp_path))
    c.start(0.0)
    assert c.next_deadline() is None
    assert store_at(tmp_path).load_sync() == []


def test_delete_whose_save_failed_is_written_again(tmp_path: Path) -> None:
    """A delete whose save failed leaves the row in the store, so the key's next delete is
    written, even for a key made again and dropped between two saves."""
    store = store_at(tmp_path)
    e = engine(timeout(), state=store)
    e.process(placed("1"), 1.0)
    e.flush_state()
    e.process(filled("1"), 2.0)
    failed = e.take_state_changes()
    e.record_save(rows=len(failed.rows), ok=False)  # what run_engine does when a save fails
    assert [r.key for r in store.load_sync()] == ["main/1"]
    e.process(placed("1"), 3.0)
    e.process(filled("1"), 4.0)
    e.flush_state()
    assert store.load_sync() == []
