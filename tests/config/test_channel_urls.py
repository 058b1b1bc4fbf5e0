"""Channel URLs apprise cannot use are refused by `alertd check` (naming only the scheme), and
checking them opens no network connection."""

from __future__ import annotations

from alertd.check import check_config, parse_config
from alertd.commands.demo import demo_config_text
from alertd.config.secrets import SecretEnvironment

from .conftest import EXAMPLE, ProblemsOf, lines, socket_events

RULE = '\n[[rules]]\nname = "r"\non = "trade"\nnotify = ["me"]\n'


def test_unknown_scheme_gets_did_you_mean(problems_of: ProblemsOf) -> None:
    """telegram:// (apprise says tgram://) fails the check with the right scheme suggested."""
    problems = problems_of(
        '[channels]\nme = "telegram://{env:TELEGRAM_BOT_TOKEN}/{env:TELEGRAM_CHAT_ID}"\n' + RULE
    )
    assert lines(problems) == [
        "config.toml:2 channels.me: not a URL apprise understands "
        "(scheme 'telegram'; did you mean 'tgram'?)"
    ]


def test_bad_url_in_long_form_is_named_by_index(problems_of: ProblemsOf) -> None:
    """In `urls = [...]` the problem names the element, on its own line."""
    problems = problems_of(
        '[channels.me]\nurls = [\n  "json://localhost:8080/",\n  "slak://{env:SLACK_TOKENS}",\n]\n'
        + RULE
    )
    assert lines(problems) == [
        "config.toml:4 channels.me.urls[1]: not a URL apprise understands "
        "(scheme 'slak'; did you mean 'slack'?)"
    ]


def test_known_scheme_with_unusable_rest(problems_of: ProblemsOf) -> None:
    """A known scheme whose URL apprise still cannot build says the scheme is fine and the rest
    is not, without showing the rest (it holds the token)."""
    problems = problems_of('[channels]\nme = "tgram://{env:TELEGRAM_CHAT_ID}/"\n' + RULE)
    assert len(problems) == 1
    assert problems[0].path == "channels.me"
    assert "scheme 'tgram' is known" in problems[0].message
    assert "98765" not in str(problems[0])


def test_resolved_secret_is_not_shown(problems_of: ProblemsOf) -> None:
    """The message about a bad URL never contains the secret its reference resolved to."""
    problems = problems_of('[channels]\nme = "telegrm://{env:TELEGRAM_BOT_TOKEN}/1"\n' + RULE)
    assert len(problems) == 1
    assert "LEAKCHECK" not in str(problems[0])
    assert "123456" not in str(problems[0])


def test_console_json_and_mailto_without_password_pass(problems_of: ProblemsOf) -> None:
    """alertd's own console://, a plain json:// webhook and a password-less mailto:// pass."""
    problems = problems_of(
        '[channels.me]\nurls = ["console://", "json://localhost:8080/hook", '
        '"mailto://mail.example.com?to=desk@example.com&from=alertd@example.com"]\n' + RULE
    )
    assert problems == []


def test_demo_config_passes() -> None:
    """The demo's shipped config, port filled in, passes the URL check (console://)."""
    text = demo_config_text().replace("{port}", "9")
    assert parse_config(text, secrets=SecretEnvironment(environ={}))[1] == []


def test_checking_urls_opens_no_connection(secrets: SecretEnvironment) -> None:
    """Checking the example's Telegram, Slack and SMTP URLs (and a bad one) creates, connects
    or resolves no socket: `alertd check` never talks to a service."""
    bad = EXAMPLE.read_text().replace("tgram://", "telegram://")
    with socket_events() as calls:
        problems = parse_config(bad, secrets=secrets)[1]
        assert check_config(EXAMPLE, secrets=secrets) == []
    assert calls == []
    assert [p.path for p in problems] == ["channels.phone"]


def test_socket_watch_sees_a_connection() -> None:
    """The audit hook used above does see a socket being used (so its silence means something)."""
    import socket

    with socket_events() as calls, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
    assert "socket.bind" in calls


def test_empty_url_is_refused(problems_of: ProblemsOf) -> None:
    """An empty URL is named as such, not passed to apprise."""
    problems = problems_of('[channels]\nme = ""\n' + RULE)
    assert lines(problems) == ["config.toml:2 channels.me: the URL is empty"]
