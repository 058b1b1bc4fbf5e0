"""The example frames of the two protocol documents (../shared/protocols), as decoded JSON,
so that tests can compare the simulator's frames with what the documents show. The text is
tests/protocols/frames.py's, which test_documents.py checks against the documents."""

import json

from protocols import frames

PIEXGO_DEALINFO = json.loads(frames.PIEXGO_DEALINFO)
PIEXGO_DEPTH = json.loads(frames.PIEXGO_DEPTH)
PIEXGO_ORDER = json.loads(frames.PIEXGO_ORDER)
PIEXGO_BALANCE = json.loads(frames.PIEXGO_BALANCE)

CRYPTOLOGY = {
    "OrderPlaced": json.loads(frames.CRYPTOLOGY_PLACED),
    "OrderAmountChanged": json.loads(frames.CRYPTOLOGY_AMOUNT_CHANGED),
    "OrderCancelled": json.loads(frames.CRYPTOLOGY_CANCELLED),
    "OrderClosed": json.loads(frames.CRYPTOLOGY_CLOSED),
    "SetBalance": json.loads(frames.CRYPTOLOGY_SET_BALANCE),
    "InsufficientFunds": json.loads(frames.CRYPTOLOGY_INSUFFICIENT_FUNDS),
    "AnonymousTrade": json.loads(frames.CRYPTOLOGY_ANONYMOUS_TRADE),
    "OrderBookAgg": json.loads(frames.CRYPTOLOGY_BOOK),
}


def shape(value: object) -> object:
    """The JSON shape of a value: dict keys with their shapes, list item shape, scalar type."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__
