"""The copied examples in ``frames.py`` are exactly the examples of the exchange documents."""

import json
from pathlib import Path

import pytest

from . import frames

DOCS = Path(__file__).resolve().parents[3] / "shared" / "protocols"


def json_examples(text: str, marker: str) -> list[object]:
    """Each JSON value that follows ``marker`` in a document, in order."""
    decoder = json.JSONDecoder()
    found = []
    start = text.find(marker)
    while start != -1:
        brace = text.index("{", start)
        value, _ = decoder.raw_decode(text, brace)
        found.append(value)
        start = text.find(marker, brace)
    return found


def read_doc(name: str) -> str:
    path = DOCS / name
    if not path.exists():
        pytest.skip(f"{path} is not in this checkout")
    return path.read_text(encoding="utf-8")


def test_piexgo_copies_match_the_document() -> None:
    """Every JSON block of the Piexgo document is one of our copies, in document order."""
    documented = json_examples(read_doc("piexgo-websocket-streams.md"), "```json")
    ours = [
        frames.PIEXGO_SUBSCRIBE_DEALINFO,
        frames.PIEXGO_UNSUBSCRIBE_DEALINFO,
        frames.PIEXGO_DEALINFO,
        frames.PIEXGO_SUBSCRIBE_DEPTH,
        frames.PIEXGO_UNSUBSCRIBE_DEPTH,
        frames.PIEXGO_DEPTH,
        frames.PIEXGO_SUBSCRIBE_PINFO,
        frames.PIEXGO_UNSUBSCRIBE_PINFO,
        frames.PIEXGO_ORDER,
        frames.PIEXGO_BALANCE,
    ]
    assert documented == [json.loads(f) for f in ours]


def test_cryptology_copies_match_the_document() -> None:
    """Every JSON block of the Cryptology document (the commented-out trade too) is copied."""
    documented = json_examples(read_doc("cryptology-server-messages.rst"), "code-block:: json")
    assert documented == [json.loads(f) for f in frames.CRYPTOLOGY_RECEIVED]
