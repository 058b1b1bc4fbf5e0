"""Messages longer than a service accepts are split or cut, never dropped."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from alertd.messages.split import MAX_PARTS, TITLE_OVERHEAD, split_message


def test_message_that_fits_is_unchanged() -> None:
    """A message within the limit is sent as one part with no marker."""
    parts = split_message("Title", "short body", 4096, title_in_body=True)
    assert [(p.title, p.body) for p in parts] == [("Title", "short body")]


def test_long_message_splits_on_lines_with_markers() -> None:
    """A 10 000-character body for Telegram becomes numbered parts that each fit and that
    break between lines."""
    lines = [f"line {i:04d} " + "x" * 80 for i in range(110)]
    body = "\n".join(lines)
    parts = split_message("Fills", body, 4096, title_in_body=True)
    assert len(parts) == 3
    assert [p.title for p in parts] == ["Fills (1/3)", "Fills (2/3)", "Fills (3/3)"]
    for part in parts:
        assert len(part.body) + len(part.title) + TITLE_OVERHEAD <= 4096
        assert all(line in lines for line in part.body.split("\n"))
    assert "\n".join(p.body for p in parts) == body


def test_one_huge_line_is_cut_into_pieces() -> None:
    """A single line longer than the limit is cut, and every character still arrives."""
    body = "y" * 5000
    parts = split_message("T", body, 2000)
    assert [len(p.body) for p in parts] == [2000, 2000, 1000]
    assert "".join(p.body for p in parts) == body


def test_enormous_message_is_cut_with_a_marker() -> None:
    """Past MAX_PARTS parts the rest is cut, and the last part says how much was left out."""
    body = "\n".join("z" * 99 for _ in range(2000))  # 200 000 characters
    parts = split_message("T", body, 1000)
    assert len(parts) == MAX_PARTS
    assert parts[-1].body.endswith("more characters not shown]")
    shown = sum(len(p.body) for p in parts)
    left = int(parts[-1].body.rsplit("[cut: ", 1)[1].split()[0])
    assert 0 < left <= len(body) - shown + len(parts) + 100
    assert all(len(p.body) <= 1000 for p in parts)


@given(st.text(alphabet="ab \n", max_size=3000), st.integers(min_value=64, max_value=800))
def test_split_keeps_every_character(body: str, limit: int) -> None:
    """Whenever a split needs at most MAX_PARTS parts, joining them gives back the body."""
    parts = split_message("T", body, limit)
    if parts[-1].body.endswith("more characters not shown]"):
        return
    assert all(len(p.body) <= limit for p in parts)
    assert "".join(p.body for p in parts).replace("\n", "") == body.replace("\n", "")


def test_html_services_count_escaped_characters() -> None:
    """For HTML services a body full of '&' is split by its escaped length, not its raw one."""
    body = "\n".join("&" * 50 for _ in range(40))  # 2 000 raw characters, 10 000 escaped
    parts = split_message("T", body, 4096, title_in_body=True, html=True)
    assert len(parts) == 3
    for part in parts:
        assert len(part.body.replace("&", "&amp;")) + len(part.title) + TITLE_OVERHEAD <= 4096
