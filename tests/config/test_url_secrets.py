"""Secrets in channel URLs, judged by apprise's own description of each service's URL: written
literally they are refused (naming the scheme and the kind of part, with the reference to
write), written by reference they pass, for real URL shapes and for every URL template of
every plugin apprise ships."""

from __future__ import annotations

import re
from typing import Any, cast

import pytest
from apprise.manager_plugins import NotificationManager
from apprise.plugins import url_to_dict

from alertd.check import parse_config
from alertd.check.channel_urls import literal_secrets
from alertd.config.secrets import SecretEnvironment

from .conftest import socket_events
from .regex_sample import sample

RULE = '[[rules]]\nname = "r"\non = "trade"\nnotify = ["me"]\n'

# (URL as a service hands it out, the secrets in it, the kind of part the message names)
SHAPES: list[tuple[str, list[str], str]] = [
    (
        "https://hooks.slack.com/services/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",
        ["T1A2B3C4D", "B5E6F7G8H", "a1B2c3D4e5F6g7H8i9J0k1L2"],
        "Token C",
    ),
    (
        "slack://T1A2B3C4D/B5E6F7G8H/a1B2c3D4e5F6g7H8i9J0k1L2/#trading",
        ["T1A2B3C4D", "B5E6F7G8H", "a1B2c3D4e5F6g7H8i9J0k1L2"],
        "Token C",
    ),
    (
        "slack://xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx/#trading",
        ["xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx"],
        "OAuth Access Token",
    ),
    (
        "discord://112233445566778899/Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe-Dc_Ba",
        ["112233445566778899", "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe-Dc_Ba"],
        "Webhook Token",
    ),
    (
        "https://discord.com/api/webhooks/112233445566778899/Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe-Dc_Ba",
        ["112233445566778899", "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe-Dc_Ba"],
        "Webhook Token",
    ),
    (
        "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi",
        ["uQiRzpo4DXghDmr9QzzfQu27cmVRsG", "azGDORePK8gMaC0QOYAMyEEuzJnyUi"],
        "User Key",
    ),
    # a private ntfy topic: an access token, or a user's password
    (
        "ntfys://tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2@ntfy.sh/desk-alerts",
        ["tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2"],
        "Token",
    ),
    (
        "ntfys://alertd:Sup3rS3cretPw@ntfy.example.com/private-topic",
        ["Sup3rS3cretPw"],
        "Password",
    ),
    (
        "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/987654321",
        ["123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"],
        "Bot Token",
    ),
    (
        "mailtos://alertd:Hunter2Hunter2@smtp.example.com?to=desk@example.com",
        ["Hunter2Hunter2"],
        "Password",
    ),
    ("gotifys://gotify.example.com/AbCdEfGhIjKlMnO", ["AbCdEfGhIjKlMnO"], "Token"),
    (
        "matrixs://alertd:M4trixPassw0rd@matrix.example.org/#alerts:example.org",
        ["M4trixPassw0rd"],
        "Password",
    ),
    (
        "pbul://o.AbCdEfGhIjKlMnOpQrStUvWxYz012345",
        ["o.AbCdEfGhIjKlMnOpQrStUvWxYz012345"],
        "Access Token",
    ),
    (
        "mmosts://mattermost.example.com/abcdefghijkmnopqrstuvwxyz1",
        ["abcdefghijkmnopqrstuvwxyz1"],
        "Token",
    ),
    (
        "opsgenie://0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
        ["0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"],
        "API Key",
    ),
    (
        "pagerduty://Int3grationKey0123456789abcdef@ApiKey0123456789ab",
        ["Int3grationKey0123456789abcdef", "ApiKey0123456789ab"],
        "Integration Key",
    ),
    (
        "twilio://AC0123456789abcdef0123456789abcdef:0123456789abcdef0123456789abcdef"
        "@+15551234567/+15557654321",
        ["AC0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"],
        "Auth Token",
    ),
    (
        "sns://AKIAIOSFODNN7EXAMPLE/wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY/us-east-1/+15551234567",
        ["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"],
        "Secret Access Key",
    ),
    ("json://alertd:J50nPassw0rd@hooks.example.com/alertd", ["J50nPassw0rd"], "Password"),
    # Mastodon declares no token private, but hides it when it shows the URL
    (
        "mastodons://AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg@mastodon.social",
        ["AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg"],
        "Access Token",
    ),
    (
        "prowl://AbCdEfGhIjKlMnOpQrStUvWxYz0123456789ABCD",
        ["AbCdEfGhIjKlMnOpQrStUvWxYz0123456789ABCD"],
        "API Key",
    ),
    (
        "zulip://alertd-bot@example.zulipchat.com/AbCdEfGhIjKlMnOpQrStUvWxYz012345",
        ["AbCdEfGhIjKlMnOpQrStUvWxYz012345"],
        "Token",
    ),
    (
        "hassios://ha.example.com/eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9abcdef",
        ["eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9abcdef"],
        "Access Token",
    ),
    ("rockets://alertd:R0cketPassw0rd@chat.example.com/#alerts", ["R0cketPassw0rd"], "Password"),
    ("ifttt://WebHookID0123456789abc@alertd_event", ["WebHookID0123456789abc"], "Webhook ID"),
    (
        "line://AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd/U0123456789abcdef0123456789abcdef",
        ["AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd"],
        "Access Token",
    ),
    (
        "workflows://prod-12.westus.logic.azure.com:443/AbCdEf0123456789/S1gnatur3_AbCdEf"
        "?api-version=2016-06-01",
        ["AbCdEf0123456789", "S1gnatur3_AbCdEf"],
        "Signature",
    ),
]


def _by_reference(url: str, secrets: list[str]) -> tuple[str, dict[str, str]]:
    """``url`` with each secret replaced by an {env:} reference, and the environment for it."""
    env = {}
    for i, secret in enumerate(secrets):
        url = url.replace(secret, f"{{env:SECRET_{i}}}")
        env[f"SECRET_{i}"] = secret
    return url, env


def test_the_table_covers_enough_services() -> None:
    """The table of real URL shapes spans at least 15 different apprise services."""
    assert len({url.split("://")[0] for url, _, _ in SHAPES}) >= 15


@pytest.mark.parametrize(("url", "secrets", "kind"), SHAPES, ids=[s[0][:24] for s in SHAPES])
def test_literal_secret_is_refused_naming_scheme_and_part(
    url: str, secrets: list[str], kind: str
) -> None:
    """A URL with its credentials written in is refused with one problem on the channel that
    names the scheme and the kind of part, gives the {env:} form to write, and shows no
    secret."""
    text = f'[channels]\nme = "{url}"\n{RULE}'
    config, problems = parse_config(text, secrets=SecretEnvironment(environ={}))
    assert config is None
    assert [(p.line, p.path) for p in problems] == [(2, "channels.me")]
    message = problems[0].message
    scheme = url.split("://", maxsplit=1)[0]
    assert f"of this {scheme}:// URL" in message
    assert kind in message.split(" written literally")[0]
    assert "written literally" in message and "{env:" in message
    for secret in secrets:
        assert secret not in str(problems[0])


@pytest.mark.parametrize(("url", "secrets", "kind"), SHAPES, ids=[s[0][:24] for s in SHAPES])
def test_same_url_by_reference_passes(url: str, secrets: list[str], kind: str) -> None:
    """The same URL with its credentials written as {env:} references passes the whole check
    (apprise can use it), and resolves to the URL the service handed out."""
    written, env = _by_reference(url, secrets)
    config, problems = parse_config(
        f'[channels]\nme = "{written}"\n{RULE}', secrets=SecretEnvironment(environ=env)
    )
    assert problems == []
    assert config is not None
    assert config.channels["me"].urls[0].reveal() == url


def test_checking_every_shape_opens_no_connection() -> None:
    """Reading all these URLs with apprise (parsing, building, masking) touches no socket."""
    with socket_events() as calls:
        for url, secrets, _ in SHAPES:
            literal_secrets(url, url)
            literal_secrets(*_by_reference(url, secrets)[:1], url)
    assert calls == []


def test_several_secrets_in_one_variable_pass() -> None:
    """Slack's three webhook tokens in one variable ("T/B/C") pass, whatever follows them."""
    env = {"SLACK_TOKENS": "T1A2B3C4D/B5E6F7G8H/a1B2c3D4e5F6g7H8i9J0k1L2"}
    for target in ("#trading", "general", "@someone"):
        written = f"slack://{{env:SLACK_TOKENS}}/{target}"
        _, problems = parse_config(
            f'[channels]\nme = "{written}"\n{RULE}', secrets=SecretEnvironment(environ=env)
        )
        assert problems == [], target


# -- every template of every plugin -----------------------------------------------------------


def _plugins() -> dict[Any, str]:
    manager: Any = cast(Any, NotificationManager)()
    out: dict[Any, str] = {}
    for schema in manager.schemas():
        plugin = manager[schema]
        protocol = getattr(plugin, "secure_protocol", None) or getattr(plugin, "protocol", None)
        if isinstance(protocol, tuple | list):
            protocol = protocol[0]
        out.setdefault(plugin, str(protocol or schema))
    return out


def _value(token: str, spec: dict[str, Any], salt: int) -> str:
    """A value apprise accepts for ``token``, different for every ``salt``."""
    regex = spec.get("regex")
    if regex:
        return sample(regex if isinstance(regex, str) else regex[0], salt * 7 + 3)
    if str(spec.get("type", "string")).startswith("int"):
        return str(min(max(int(spec.get("min", 1)), 100 + salt), int(spec.get("max", 65535))))
    if token == "host":
        return "host.example.com"
    if token == "path":
        return f"/p{salt}/"
    if "email" in token or token in ("from_addr", "from"):
        return f"u{salt}@example.com"
    return f"Val{salt}x{token[:3]}Q9z"


def _read(parsed: dict[str, Any], argument: str, value: str) -> bool:
    """Whether apprise's parse put ``value`` into constructor ``argument``."""
    got = parsed.get(argument)
    return value in {str(g) for g in (got if isinstance(got, list | tuple | set) else [got])}


def _template_cases() -> tuple[list[tuple[str, str, list[str]]], list[str]]:
    """(literal URL, by-reference URL, its private values) for every plugin URL template with
    a private token, and the templates left out, with why."""
    cases: list[tuple[str, str, list[str]]] = []
    left_out: list[str] = []
    for plugin, schema in _plugins().items():
        tokens: dict[str, Any] = getattr(plugin, "template_tokens", {})
        private = {s.get("map_to", t) for t, s in tokens.items() if s.get("private")}
        for template in getattr(plugin, "templates", ()):
            names = [n for n in re.findall(r"\{(\w+)\}", template) if n != "schema"]
            secret = [n for n in names if tokens.get(n, {}).get("map_to", n) in private]
            if not secret:
                continue
            try:
                values = {n: _value(n, tokens.get(n, {}), i) for i, n in enumerate(names)}
            except ValueError:
                left_out.append(f"{template} ({schema}): no sample for a token's pattern")
                continue
            url = template.format(schema=schema, **values)
            parsed = cast(Any, url_to_dict)(url) or {}
            if not all(_read(parsed, tokens[n].get("map_to", n), values[n]) for n in secret):
                left_out.append(f"{template} ({schema}): apprise does not read it as named")
                continue
            written = template.format(
                schema=schema,
                **{n: f"{{env:S_{n.upper()}}}" if n in secret else values[n] for n in names},
            )
            cases.append((url, written, [values[n] for n in secret]))
    return cases, left_out


def test_every_plugin_template_is_covered() -> None:
    """Every URL template of every apprise plugin that holds a private token is refused when
    written literally (without showing the token) and passes when the tokens are references:
    hundreds of templates, with only those left out that apprise itself does not read as
    its template names them."""
    cases, left_out = _template_cases()
    assert len(cases) > 350, left_out
    assert len(left_out) < len(cases) / 10, left_out
    wrong: list[str] = []
    for url, written, secrets in cases:
        refused = literal_secrets(url, url)
        if not refused or any(s in m for s in secrets for m in refused):
            wrong.append(f"literal not refused cleanly: {url}")
        if literal_secrets(written, url):
            wrong.append(f"by reference refused: {written}")
    assert wrong == []
