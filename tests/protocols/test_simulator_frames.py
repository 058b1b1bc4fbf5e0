"""The simulator's frames (the stand-in for both exchanges) decode cleanly and consistently."""

from collections import Counter
from datetime import UTC, datetime

import pytest

from alertd.protocols import decoder_for
from alertd.simulator import frames as sim_frames
from alertd.simulator.activity import Activity

RECEIVED = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize("exchange", ["piexgo", "cryptology"])
def test_simulated_activity_decodes_without_errors(exchange: str) -> None:
    """Thousands of simulated frames decode with no ProtocolError, every event kind the
    exchange has appears, and every placed order is filled, cancelled or still open."""
    world = Activity.for_exchange(exchange, seed=7, start_us=1_700_000_000_000_000)
    decoder = decoder_for(exchange, "sim")
    kinds: Counter[str] = Counter()
    for step in range(4000):
        facts = world.flood_step() if step % 50 == 0 else world.step()
        world.advance(100_000)
        for fact in facts:
            if exchange == "piexgo":
                texts = [text for _, text in sim_frames.piexgo_frames(fact, step)]
            else:
                texts = sim_frames.cryptology_frames(fact)
            for text in texts:
                kinds.update(event.kind for event in decoder.decode(text, RECEIVED))
    expected = {
        "order.placed",
        "order.partially_filled",
        "order.filled",
        "order.cancelled",
        "balance.changed",
        "trade",
        "book",
    }
    if exchange == "cryptology":
        expected.add("funds.insufficient")
    assert set(kinds) == expected
    ended = kinds["order.filled"] + kinds["order.cancelled"]
    assert kinds["order.placed"] == ended + decoder.orders.open_count  # type: ignore[attr-defined]
