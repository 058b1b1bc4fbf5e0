"""Channel URLs checked before the daemon runs: no secret is written into one literally, and
apprise must be able to use each one.

Invariant 5: secrets come from the environment or systemd credentials, never from the config
file. A URL carries its credentials inline (``user:password@``, a bot token), so the parts of
a URL that have a credential's shape must come from ``{env:}``/``{cred:}`` references. The
shapes are those of the services alertd documents; a token in some other service's own URL
position (``discord://ID/TOKEN``) is not recognised.

A URL apprise cannot read (``telegram://`` for ``tgram://``) would otherwise pass the check and
make every alert of the channel expire as a permanent failure at run time.

Messages name only the scheme and the kind of part, never the URL: its other parts may be
secrets.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from alertd.config.errors import did_you_mean
from alertd.config.secrets import REFERENCE

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31})://")
# What a reference leaves behind when looking for literal secrets: none of the shapes below
# matches it, so a part written as a reference is never taken for a literal secret.
_GAP = "{}"
_TELEGRAM_TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]{16,}")  # bot id ":" 35 characters, usually
_SLACK_OAUTH = re.compile(r"xox[a-z]-[A-Za-z0-9-]{8,}")
# slack://[botname@]TokenA/TokenB/TokenC: the webhook's three tokens (C is the secret one)
_SLACK_TRIPLE = re.compile(
    r"slack://(?:[^@/?#]*@)?[A-Za-z0-9]+/[A-Za-z0-9]+/[A-Za-z0-9]+(?:[/?#]|$)"
)
_SECRET_ARG = re.compile(r"token|key|secret|pass|pwd|auth", re.IGNORECASE)
_HOW = "secrets come from the environment or systemd credentials, never from the config file"


def literal_secrets(text: str) -> list[str]:
    """What in ``text`` (a channel URL as written, references unresolved) looks like a secret
    written literally; each message shows the part masked and the reference to write."""
    bare = REFERENCE.sub(_GAP, text)
    m = _SCHEME.match(bare)
    scheme = m.group(1) if m else "SCHEME"
    found: list[str] = []

    def literal(what: str, masked: str, instead: str) -> None:
        found.append(
            f"{what} is written literally ({masked}); write {instead} instead, with the value "
            f"in that variable or in a {{cred:NAME}} credential: {_HOW}"
        )

    try:
        parts = urlsplit(bare)
    except ValueError:  # e.g. an unbalanced "[": apprise's check reports the URL
        return found
    userinfo = parts.netloc.rpartition("@")[0]
    if ":" in userinfo and userinfo.split(":", 1)[1].replace(_GAP, ""):
        literal(
            "the password in USER:PASSWORD@",
            f"{scheme}://***:***@...",
            f"{scheme}://USER:{{env:NAME}}@HOST",
        )
    if _TELEGRAM_TOKEN.search(bare):
        literal("a Telegram bot token", "***:***", "tgram://{env:TELEGRAM_BOT_TOKEN}/CHAT_ID")
    if _SLACK_TRIPLE.match(bare):
        literal(
            "Slack's TokenA/TokenB/TokenC",
            "slack://***/***/***",
            "slack://{env:SLACK_TOKENS}/#CHANNEL (the three tokens in one variable)",
        )
    elif _SLACK_OAUTH.search(bare):
        literal("a Slack OAuth token", "xox*-***", "slack://{env:SLACK_TOKEN}/#CHANNEL")
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if _SECRET_ARG.search(key) and value.replace(_GAP, "").strip():
            literal(f"the value of ?{key}=", f"{key}=***", f"{key}={{env:NAME}}")
    return found


@cache
def _schemes() -> frozenset[str]:
    """Every scheme apprise knows, alertd's console:// included."""
    from apprise.manager_plugins import NotificationManager

    manager: Any = cast(Any, NotificationManager)()  # apprise is untyped
    return frozenset(str(s) for s in manager.schemas())


def apprise_problem(url: str) -> str | None:
    """What keeps apprise from using ``url``, or None when it can.

    ``Apprise.instantiate`` only parses the URL and builds the plugin object; it opens no
    socket and resolves no name (tests/config/test_channel_urls.py pins this down with an
    audit hook), so checking a config never reaches out to a service.
    """
    import apprise

    from alertd.notify import console  # registers console://, the demo's channel

    _ = console
    if apprise.Apprise.instantiate(url) is not None:
        return None
    m = _SCHEME.match(url)
    if m is None:
        return "not a URL apprise understands (write SCHEME://..., e.g. tgram://, json://)"
    scheme = m.group(1)
    if scheme.lower() not in _schemes():
        close = did_you_mean(scheme.lower(), sorted(_schemes()))
        hint = f"; did you mean '{close.split(chr(34))[1]}'?" if close else ""
        return f"not a URL apprise understands (scheme '{scheme}'{hint})"
    return (
        f"not a URL apprise understands (scheme '{scheme}' is known, but the rest of the URL "
        f"is not in its form: see https://github.com/caronc/apprise/wiki)"
    )
