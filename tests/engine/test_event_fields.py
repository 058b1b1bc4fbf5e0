"""What rules see of an event: every declared field, in order, and nothing else."""

from __future__ import annotations

import attrs
import pytest

from alertd.events import EVENT_TYPES, event_context, event_fields, field_names

from .factories import balance, cancelled, filled, partial, placed, trade


@pytest.mark.parametrize(
    "event",
    [placed("1"), partial("1", filled_="0.5"), filled("1"), cancelled("1"), balance("5"), trade()],
    ids=lambda e: e.kind,
)
def test_event_fields_are_the_declared_fields_in_order(event: object) -> None:
    """An event's mapping for rules and templates holds its kind and each declared field with
    its value, in the order the names are offered to rule authors (field_names)."""
    fields = event_fields(event)  # type: ignore[arg-type]
    assert list(fields) == list(field_names(event.kind))  # type: ignore[attr-defined]
    assert fields == {
        "kind": event.kind,  # type: ignore[attr-defined]
        **{a.name: getattr(event, a.name) for a in attrs.fields(type(event))},
    }


def test_events_stay_frozen() -> None:
    """No stage can change an event it was handed."""
    event = trade()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.price = event.price * 2  # type: ignore[misc]
    assert all(attrs.has(cls) for cls in EVENT_TYPES)


def test_event_context_lays_the_fields_over_the_globals() -> None:
    """A rule's context is its globals with the event's fields over them, as event_fields
    gives them."""
    event = trade()
    ctx = event_context(event, {"localtime": len, "price": "shadowed", "extra": 1})
    assert ctx == {"localtime": len, "extra": 1, **event_fields(event)}
