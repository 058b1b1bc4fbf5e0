"""Logging: journald priority prefixes when journald reads stderr, timestamps otherwise, levels,
and secrets masked wherever they would appear."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from alertd.config.model import Secret
from alertd.daemon.logs import SecretMasker, configure_logging, set_level

SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from alertd.daemon.logs import configure_logging
    masker = configure_logging(sys.argv[1])
    masker.add("hunter2-secret")
    log = logging.getLogger("alertd.sources.session")
    log.debug("stream.frame account=%s", "main")
    log.info("stream.connected account=%s", "main")
    log.warning("stream.stale account=%s", "main")
    log.error("stream.error account=%s key=%s", "main", "hunter2-secret")
    try:
        raise ValueError("rejected key hunter2-secret")
    except ValueError:
        log.exception("stream.crash account=%s", "main")
    """
)


def run_logging_child(tmp_path: Path, level: str, *, journal: str | None) -> list[str]:
    """Runs SCRIPT with stderr in a file; ``journal`` is $JOURNAL_STREAM ("match" = that file)."""
    err_path = tmp_path / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with err_path.open("w") as err:
        st = os.fstat(err.fileno())
        if journal == "match":
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        elif journal is not None:
            env["JOURNAL_STREAM"] = journal
        subprocess.run(
            [sys.executable, "-c", SCRIPT, level],
            stderr=err,
            env=env,
            check=True,
            timeout=60,
        )
    return err_path.read_text().splitlines()


def test_journald_reading_stderr_gets_priority_prefixes_and_no_timestamps(
    tmp_path: Path,
) -> None:
    """With $JOURNAL_STREAM naming stderr, every line (tracebacks too) starts <priority>."""
    lines = run_logging_child(tmp_path, "debug", journal="match")
    assert lines[:4] == [
        "<7>alertd.sources.session: stream.frame account=main",
        "<6>alertd.sources.session: stream.connected account=main",
        "<4>alertd.sources.session: stream.stale account=main",
        "<3>alertd.sources.session: stream.error account=main key=***",
    ]
    traceback = lines[4:]
    assert traceback[0] == "<3>alertd.sources.session: stream.crash account=main"
    assert len(traceback) > 3
    assert all(line.startswith("<3>") for line in traceback)
    assert traceback[-1] == "<3>ValueError: rejected key ***"


def test_stderr_not_read_by_journald_gets_timestamps(tmp_path: Path) -> None:
    """An inherited $JOURNAL_STREAM that names another file does not switch the format."""
    lines = run_logging_child(tmp_path, "info", journal="1:2")
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO    alertd.sources.session: "
        r"stream.connected account=main",
        lines[0],
    )
    assert not any(line.startswith("<") for line in lines)
    assert "hunter2-secret" not in "\n".join(lines)


def test_level_hides_what_is_below_it(tmp_path: Path) -> None:
    """At level warning, debug and info lines are not written."""
    lines = run_logging_child(tmp_path, "warning", journal="match")
    assert lines[0] == "<4>alertd.sources.session: stream.stale account=main"
    assert not any(line.startswith(("<6>", "<7>")) for line in lines)


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """alertd's handler on the root logger writing to a buffer; removed afterwards."""
    root = logging.getLogger()
    level = root.level
    buffer = io.StringIO()
    yield buffer
    for handler in [h for h in root.handlers if h.get_name() == "alertd"]:
        root.removeHandler(handler)
    root.setLevel(level)


def test_registered_secrets_are_masked_in_message_and_args(log_output: io.StringIO) -> None:
    """A resolved Secret and a plain secret never reach the output, wherever they appear."""
    masker = configure_logging("info", stream=log_output, environ={})
    masker.add(Secret("xoxb-slack-token-123", source="env:SLACK"), "piexgo-api-secret", None)
    log = logging.getLogger("alertd.test")
    log.info("notify.fail url=slack://%s/chan", "xoxb-slack-token-123")
    log.info("login with piexgo-api-secret failed")
    log.info("repr %r", {"key": "piexgo-api-secret"})
    out = log_output.getvalue()
    assert "xoxb-slack-token-123" not in out
    assert "piexgo-api-secret" not in out
    assert "notify.fail url=slack://***/chan" in out
    assert "login with *** failed" in out
    assert "repr {'key': '***'}" in out


def test_masked_record_is_what_other_handlers_see(log_output: io.StringIO) -> None:
    """The masked text replaces the record's msg and args, so no later handler sees the secret."""
    masker = configure_logging("info", stream=log_output, environ={})
    masker.add("sekrit-value")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "k=%s", ("sekrit-value",), None)
    assert masker.filter(record)
    assert (record.msg, record.args) == ("k=***", None)


def test_a_secret_containing_another_is_masked_whole() -> None:
    """Overlapping secrets leave no tail of the longer one visible."""
    masker = SecretMasker()
    masker.add("abcd", "abcdefgh")
    assert masker.mask("x abcdefgh y abcd") == "x *** y ***"


def test_short_strings_are_not_treated_as_secrets() -> None:
    """A 1-3 character 'secret' would blank out ordinary words, so it is not masked."""
    masker = SecretMasker()
    masker.add("ab")
    assert masker.mask("about abc") == "about abc"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "tgram://123456:ABC-token_x/98765",
            "tgram://***/98765",
        ),
        (
            "https://api.telegram.org/bot1234567890:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/send",
            "https://api.telegram.org/bot***/send",
        ),
        (
            "mailto://alerts:app-password@gmail.com?to=me@example.com",
            "mailto://alerts:***@gmail.com?to=me@example.com",
        ),
        (
            "json://user:p%40ss@hooks.example.com/alert",
            "json://user:***@hooks.example.com/alert",
        ),
        (
            "https://example.com/hook?token=abc123&chat=5&api_key=zzz",
            "https://example.com/hook?token=***&chat=5&api_key=***",
        ),
        ("Authorization: Bearer eyJhbGciOiJI.x.y", "Authorization: Bearer ***"),
        ("wss://api.piexgo.com:443/ws", "wss://api.piexgo.com:443/ws"),
        ("ws://127.0.0.1:8765/ws", "ws://127.0.0.1:8765/ws"),
    ],
)
def test_credential_shaped_url_parts_are_masked_without_registration(
    text: str, masked: str
) -> None:
    """URL passwords, Telegram bot tokens and token-like query values are masked by shape."""
    assert SecretMasker().mask(text) == masked


def test_configuring_twice_does_not_duplicate_lines(log_output: io.StringIO) -> None:
    """A reload that reconfigures logging replaces alertd's handler instead of adding one."""
    configure_logging("info", stream=log_output, environ={})
    configure_logging("info", stream=log_output, environ={})
    logging.getLogger("alertd.test").info("once")
    assert log_output.getvalue().count("once") == 1


def test_set_level_changes_what_is_written(log_output: io.StringIO) -> None:
    """Raising the level at runtime hides info lines from then on."""
    configure_logging("info", stream=log_output, environ={})
    log = logging.getLogger("alertd.test")
    log.info("before")
    set_level("error")
    log.info("after")
    assert "before" in log_output.getvalue()
    assert "after" not in log_output.getvalue()


def test_unknown_level_names_the_setting_to_fix() -> None:
    """A typo in log_level is an error that says where to fix it."""
    with pytest.raises(ValueError, match=r"log_level"):
        configure_logging("verbose", stream=io.StringIO(), environ={})
