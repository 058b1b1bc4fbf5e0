"""Secret references: resolved from the environment and systemd credentials, refused when
written literally, and never shown in any error or repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertd.check import load_config, parse_config
from alertd.check.channel_urls import literal_secrets
from alertd.config.errors import ConfigError
from alertd.config.secrets import SecretEnvironment

from .conftest import (
    ACCOUNT_WITH_AUTH,
    EXAMPLE,
    EXAMPLE_CREDENTIALS,
    EXAMPLE_ENV,
    ProblemsOf,
    lines,
)

SECRET_VALUES = [v.strip() for v in (*EXAMPLE_ENV.values(), *EXAMPLE_CREDENTIALS.values())]


def test_env_and_credential_references_resolve(secrets: SecretEnvironment) -> None:
    """{env:NAME} reads the environment, {cred:NAME} the credential file without its
    trailing newline; both become Secrets that say where they came from."""
    config, problems = parse_config(ACCOUNT_WITH_AUTH, secrets=secrets)
    assert problems == []
    assert config is not None
    auth = config.accounts[0].auth
    assert auth.api_key is not None and auth.api_secret is not None
    assert auth.api_key.reveal() == "pk-LEAKCHECK-1111"
    assert auth.api_key.source == "env:PIEXGO_API_KEY"
    assert auth.api_secret.reveal() == "ps-LEAKCHECK-6666"
    assert auth.api_secret.source == "cred:alertd_piexgo_api_secret"
    url = config.channels["me"].urls[0]
    assert url.reveal() == "tgram://123456:LEAKCHECK-4444/98765"
    assert url.source == "channels.me"


def test_missing_variable_and_credential_name_path_and_variable(problems_of: ProblemsOf) -> None:
    """A reference that cannot be resolved names the key and the variable or credential."""
    problems = problems_of(
        ACCOUNT_WITH_AUTH.replace("PIEXGO_API_KEY", "PIEXGO_KEY_TYPO").replace(
            "piexgo_api_secret", "piexgo_secret"
        )
    )
    text = lines(problems)
    assert text[0] == (
        "config.toml:6 accounts[0].auth.api_key: environment variable PIEXGO_KEY_TYPO is not "
        "set (referenced as {env:PIEXGO_KEY_TYPO})"
    )
    assert text[1].startswith(
        "config.toml:7 accounts[0].auth.api_secret: credential alertd_piexgo_secret not found "
        "in $CREDENTIALS_DIRECTORY ("
    )
    assert text[1].endswith(
        "; put it in the file /etc/alertd/credentials/alertd/piexgo_secret (the shipped unit "
        "names it alertd_piexgo_secret), or add "
        "LoadCredential=alertd_piexgo_secret:/path/to/file to the unit"
    )
    assert len(text) == 2


def test_credential_named_like_the_file_points_to_the_unit_prefix(
    problems_of: ProblemsOf,
) -> None:
    """{cred:smtp_password} under the shipped unit (which loads the file as
    alertd_smtp_password) is told the name to write, not to add a LoadCredential= line."""
    problems = problems_of(
        '[channels]\nme = "mailtos://alertd:{cred:smtp_password}@mail.example.com'
        '?to=desk@example.com"\n[[rules]]\nname = "r"\non = "trade"\nnotify = ["me"]\n'
    )
    assert len(problems) == 1
    assert problems[0].message.endswith(
        "; did you mean {cred:alertd_smtp_password}? (the shipped unit adds the alertd_ prefix)"
    )


def test_missing_credential_without_prefix_explains_the_unit_convention(
    problems_of: ProblemsOf,
) -> None:
    """A credential that is nowhere is told where the shipped unit looks and how it names it."""
    problems = problems_of(ACCOUNT_WITH_AUTH.replace("alertd_piexgo_api_secret", "px_secret"))
    assert len(problems) == 1
    assert problems[0].message.endswith(
        "; with the shipped unit, put the file in /etc/alertd/credentials/alertd/ and write "
        "{cred:alertd_<file name>} (it names each file alertd_<file name>), or add "
        "LoadCredential=px_secret:/path/to/file to the unit"
    )


def test_credential_without_credentials_directory(tmp_path: Path) -> None:
    """{cred:...} outside systemd (no $CREDENTIALS_DIRECTORY) says how to provide it."""
    _, problems = parse_config(
        '[channels]\nme = "json://{cred:hook}/"\n', secrets=SecretEnvironment(environ={})
    )
    assert [str(p) for p in problems] == [
        "config.toml:2 channels.me: {cred:hook} needs $CREDENTIALS_DIRECTORY, which is not set "
        "(systemd sets it for the service; with the shipped unit, put the file in "
        "/etc/alertd/credentials/alertd/ and write {cred:alertd_<file name>} (it names each file "
        "alertd_<file name>), or add LoadCredential=hook:/path/to/file to the unit)"
    ]


def test_literal_secret_is_refused_without_echoing_it(problems_of: ProblemsOf) -> None:
    """An API secret written into the TOML is an error, and the error does not repeat it."""
    problems = problems_of(
        ACCOUNT_WITH_AUTH.replace("{cred:alertd_piexgo_api_secret}", "hunter2-LITERAL")
    )
    assert [(p.line, p.path) for p in problems] == [(7, "accounts[0].auth.api_secret")]
    assert "not the secret itself" in problems[0].message
    assert "hunter2" not in str(problems[0])


def test_references_in_auth_templates_point_to_api_key(problems_of: ProblemsOf) -> None:
    """A reference inside a header template is refused with the way that keeps it secret."""
    problems = problems_of(
        ACCOUNT_WITH_AUTH.replace(
            "[channels]", 'headers = { Authorization = "Bearer {env:TOKEN}" }\n\n[channels]'
        )
    )
    assert lines(problems) == [
        "config.toml:9 accounts[0].auth.headers.Authorization: secret references are "
        'resolved only in api_key and api_secret: set api_key = "{env:TOKEN}" and write '
        "{{ api_key }} here"
    ]


def test_secrets_never_appear_in_repr_or_str(secrets: SecretEnvironment) -> None:
    """A loaded config's repr and str show where secrets came from, never their values."""
    config = load_config(EXAMPLE, secrets=secrets)
    shown = repr(config) + str(config) + str(config.channels) + repr(config.accounts)
    for value in SECRET_VALUES:
        assert value not in shown
    assert "channels.desk" in shown


def test_secrets_never_appear_in_errors(tmp_path: Path, secrets: SecretEnvironment) -> None:
    """Errors about keys that hold secrets (wrong type, bad neighbours) never show a secret."""
    text = EXAMPLE.read_text()
    text = text.replace('timeout = "30s"', 'timeout = "30 secs"').replace(
        'api_key = "{env:CRYPTOLOGY_API_KEY}"', "api_key = 42"
    )
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path, secrets=secrets)
    shown = exc.value.format() + repr(exc.value.problems)
    assert "accounts[1].auth.api_key: expected a string" in shown
    assert "channels.desk.timeout" in shown
    for value in SECRET_VALUES:
        assert value not in shown


@pytest.mark.parametrize(
    ("url", "part", "shown"),
    [
        (
            "tgram://123456:ABCDEFliteralSECRET/987654",
            "the Bot Token of this tgram:// URL (Telegram) is",
            "(tgram://***/TARGETS)",
        ),
        (
            "mailtos://user:hunter2pw@mail.example.com?to=desk@example.com",
            "the Password of this mailtos:// URL (E-Mail) is",
            "(mailtos://USER:***@HOST)",
        ),
        (
            "slack://T000/B000/XXXXXXXX",
            "the Token A, Token B and Token C of this slack:// URL (Slack) are",
            "(slack://***/***/***)",
        ),
        (
            "slack://xoxb-1234-5678-abcdefgh/#trading",
            "the OAuth Access Token of this slack:// URL (Slack) is",
            "(slack://***/TARGETS)",
        ),
        ("json://localhost/hook?token=abc123secret", "the value of ?token= is", "(token=***)"),
        ("json://localhost/hook?apikey=abc123secret", "the value of ?apikey= is", "(apikey=***)"),
        (
            "json://localhost/hook?+Authorization=Bearer%20abc123secret",
            "the value of ?+Authorization= is",
            "(+Authorization=***)",
        ),
    ],
)
def test_literal_credentials_in_channel_urls_are_refused(
    problems_of: ProblemsOf, url: str, part: str, shown: str
) -> None:
    """A channel URL with a credential written into it is refused, naming the part (masked)
    and the reference to write, and never repeating the credential."""
    problems = problems_of(
        f'[channels]\nme = "{url}"\n[[rules]]\nname = "r"\non = "trade"\nnotify = ["me"]\n'
    )
    assert len(problems) == 1
    text = str(problems[0])
    assert text.startswith(f"config.toml:2 channels.me: {part} written literally {shown}; ")
    assert "{env:" in text
    for secret in ("ABCDEFliteral", "123456", "hunter2", "XXXXXXXX", "abcdefgh", "abc123"):
        assert secret not in text


@pytest.mark.parametrize(
    "url",
    [
        "console://",
        "json://localhost:8080/hooks/alertd",
        "mailto://mail.example.com?to=desk@example.com",
        "mailto://alertd@mail.example.com?to=desk@example.com",
        "mailtos://alertd:{cred:alertd_smtp_password}@mail.example.com?to=desk@example.com",
        "tgram://{env:TELEGRAM_BOT_TOKEN}/{env:TELEGRAM_CHAT_ID}",
        "tgram://123456:{env:TELEGRAM_TOKEN_TAIL}/987654",
        "slack://{env:SLACK_TOKENS}/#trading",
        "slack://{env:SLACK_TOKEN_A}/{env:SLACK_TOKEN_B}/{env:SLACK_TOKEN_C}/#trading",
        "json://localhost/hook?token={env:HOOK_TOKEN}",
        "json://127.0.0.1:8080/path",
    ],
)
def test_channel_urls_without_literal_credentials_pass(url: str) -> None:
    """URLs that carry no credential, or carry it only through references, are not refused."""
    assert literal_secrets(url) == []


def test_slack_webhook_half_by_reference_is_refused(problems_of: ProblemsOf) -> None:
    """Slack's Token A and Token B are private in apprise's own description of the URL, so
    writing only Token C by reference still refuses the other two (it passed before)."""
    problems = problems_of(
        '[channels]\nme = "slack://T000/B000/{env:SLACK_TOKENS}/#trading"\n'
        '[[rules]]\nname = "r"\non = "trade"\nnotify = ["me"]\n'
    )
    assert [p.message.split(" written literally")[0] for p in problems] == [
        "the Token A and Token B of this slack:// URL (Slack) are"
    ]


def test_shell_style_reference_in_api_key_says_what_to_write(problems_of: ProblemsOf) -> None:
    """api_key = "${PIEXGO_API_KEY}" is told the reference to write, not "not the secret"."""
    problems = problems_of(ACCOUNT_WITH_AUTH.replace("{env:PIEXGO_API_KEY}", "${PIEXGO_API_KEY}"))
    assert lines(problems) == [
        'config.toml:6 accounts[0].auth.api_key: shell-style "${PIEXGO_API_KEY}" is not '
        "expanded: write {env:PIEXGO_API_KEY} in its place (or {cred:NAME} for a systemd "
        "credential)"
    ]


def test_shell_style_reference_in_channel_url_says_what_to_write(problems_of: ProblemsOf) -> None:
    """A ${VAR} (or $VAR) in a channel URL is refused with the {env:VAR} to write instead."""
    problems = problems_of(
        '[channels]\nme = "tgram://${TELEGRAM_BOT_TOKEN}/98765"\n'
        'you = "tgram://$TELEGRAM_BOT_TOKEN/98765"\n'
        '[[rules]]\nname = "r"\non = "trade"\nnotify = ["me", "you"]\n'
    )
    assert [(p.path, p.message.split(": write ")[1]) for p in problems] == [
        (
            "channels.me",
            "{env:TELEGRAM_BOT_TOKEN} in its place (or {cred:NAME} for a systemd credential)",
        ),
        (
            "channels.you",
            "{env:TELEGRAM_BOT_TOKEN} in its place (or {cred:NAME} for a systemd credential)",
        ),
    ]


def test_referenced_credentials_pass_end_to_end(problems_of: ProblemsOf) -> None:
    """A channel whose only credential is a reference passes the whole check."""
    text = '[channels.me]\nurls = ["json://localhost:8080/", "console://", '
    text += '"mailtos://alertd:{cred:alertd_smtp_password}@mail.example.com?to=desk@example.com"]\n'
    assert problems_of(text + '[[rules]]\nname = "r"\non = "trade"\nnotify = ["me"]\n') == []


def test_shell_style_reference_in_a_login_template_points_to_api_key(
    problems_of: ProblemsOf,
) -> None:
    """A ${VAR} in a login frame (sent as typed, never expanded) is told the api_key reference
    and the template variable to write; a lone "$WORD" of the frame's own is left alone."""
    problems = problems_of(
        ACCOUNT_WITH_AUTH.replace(
            "[channels]", 'login_frame = \'{"op": "$LOGIN", "key": "${PIEXGO_KEY}"}\'\n\n[channels]'
        )
    )
    assert lines(problems) == [
        'config.toml:9 accounts[0].auth.login_frame: shell-style "${PIEXGO_KEY}" is not '
        "expanded; secret references are resolved only in api_key and api_secret: set "
        'api_key = "{env:PIEXGO_KEY}" and write {{ api_key }} here'
    ]
