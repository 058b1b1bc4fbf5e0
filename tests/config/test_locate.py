"""The locator maps a TOML path to the line it is written on (tomli gives none)."""

from __future__ import annotations

from alertd.config.locate import Locator

DOC = '''\
# comment with [[rules]] and key = "x"
[daemon]
timezone = "UTC"

[[accounts]]
name = "a"
[accounts.auth]
api_key = "{env:K}"

[[accounts]]
name = "b"
streams = [
  "pinfo",   # first
  "depth.btc_usdt",
]
auth.login_frame = """
[[rules]]
name = "not a rule"
"""

[channels]
me = "json://x/"
"odd key" = { urls = ["json://y/"], timeout = "5s" }

[[rules]]
name = "r0"

[[rules]]
name = 'r1'
quiet = [{ start = "22:00" }, { start = "23:00",
  end = "07:00" }]
'''


def test_keys_headers_and_array_elements_have_lines() -> None:
    """Keys, [[array]] headers by number, sub-tables and array elements map to their lines."""
    loc = Locator(DOC)
    assert loc.line(("daemon", "timezone")) == 3
    assert loc.line(("accounts", 0)) == 5
    assert loc.line(("accounts", 0, "auth", "api_key")) == 8
    assert loc.line(("accounts", 1, "name")) == 11
    assert loc.line(("accounts", 1, "streams", 1)) == 14
    assert loc.line(("accounts", 1, "auth", "login_frame")) == 16
    assert loc.line(("channels", "odd key", "timeout")) == 23
    assert loc.line(("rules", 0)) == 25
    assert loc.line(("rules", 1, "name")) == 29
    assert loc.line(("rules", 1, "quiet", 1, "end")) == 31


def test_missing_keys_fall_back_to_the_nearest_ancestor() -> None:
    """A key that is not written (a missing required key) gets its table's line."""
    loc = Locator(DOC)
    assert loc.line(("rules", 1, "notify")) == 28
    assert loc.line(("accounts", 0, "auth", "api_secret")) == 7
    assert loc.line(("nowhere",)) is None


def test_multiline_string_content_is_not_read_as_keys() -> None:
    """Text inside a multi-line string that looks like a header does not count as one."""
    loc = Locator(DOC)
    assert loc.line(("rules", 0, "name")) == 26
    assert loc.line(("rules", 2, "name")) == 25  # no rules[2]: the [[rules]] array's line


def test_every_line_of_a_long_file_is_right() -> None:
    """Each key of a 5,000-account file on its own line number: the line of a position is
    found by search, and must agree with counting the newlines before it."""
    text = "".join(f'[[accounts]]\nname = "a{i}"\n\nstreams = ["pinfo"]\n' for i in range(5000))
    located = Locator(text)
    for i in (0, 1, 2500, 4999):
        header = text.index(f'name = "a{i}"') - len("[[accounts]]\n")
        assert located.line(("accounts", i)) == text.count("\n", 0, header) + 1 == 4 * i + 1
        assert located.line(("accounts", i, "name")) == 4 * i + 2
        assert located.line(("accounts", i, "streams")) == 4 * i + 4
