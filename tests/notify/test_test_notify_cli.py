"""`alertd test-notify -c CONFIG CHANNEL` sends one message and says per URL what happened."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alertd.cli import main

from .receivers import http_receiver


def _config(tmp_path: Path, urls: list[str]) -> Path:
    path = tmp_path / "alertd.toml"
    quoted = ", ".join(json.dumps(u) for u in urls)
    path.write_text(f'[channels.hook]\nurls = [{quoted}]\ntimeout = "5s"\n')
    return path


def test_reports_each_url_and_masks_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One URL that works and one answering 500: exit 1, both reported, the token masked."""
    monkeypatch.setenv("HOOK_TOKEN", "s3cr3t-t0ken")
    with http_receiver() as good, http_receiver([500]) as bad:
        config = _config(
            tmp_path,
            [f"json://{good.url}/in/{{env:HOOK_TOKEN}}", f"json://{bad.url}/in/{{env:HOOK_TOKEN}}"],
        )
        code = main(["test-notify", "-c", str(config), "hook"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"ok      json://{good.url}/in/***" in out
    assert f"FAILED  json://{bad.url}/in/***" in out
    assert "error=500" in out
    assert "1 of 2 URL(s)" in out
    assert "s3cr3t-t0ken" not in out
    [request] = good.requests
    assert request.path == "/in/s3cr3t-t0ken"
    assert json.loads(request.body)["title"] == "alertd test: channel hook"


def test_success_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """When every URL takes the message the command exits 0."""
    with http_receiver() as good:
        code = main(["test-notify", "-c", str(_config(tmp_path, [f"json://{good.url}/"])), "hook"])
    assert code == 0
    assert "1 of 1 URL(s)" in capsys.readouterr().out


def test_unknown_channel_lists_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A channel name not in [channels] exits 2 naming the channels that exist."""
    code = main(["test-notify", "-c", str(_config(tmp_path, ["console://"])), "hoook"])
    assert code == 2
    assert "known: hook" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a = " + "{b = " * 450 + "1" + "}" * 450, "nested too deeply"),
        ("[channels\n", "alertd.toml:1"),
        (
            '[channels]\nhook = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/1"\n',
            "Bot Token",
        ),
    ],
)
def test_bad_config_is_refused_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, says: str
) -> None:
    """A config test-notify cannot use (nested 450 levels deep, bad TOML, a literal token)
    exits 2 with its problems, one a line, and sends nothing."""
    path = tmp_path / "alertd.toml"
    path.write_text(text)
    code = main(["test-notify", "-c", str(path), "hook"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert says in err
    assert "Traceback" not in err
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in err


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config file that is not there is named, exit 2."""
    code = main(["test-notify", "-c", str(tmp_path / "nope.toml"), "hook"])
    assert code == 2
    assert "nope.toml: no such file" in capsys.readouterr().err
