"""Logging for the daemon: to stderr, in journald's format when journald reads stderr, with
every known secret and anything shaped like a credential masked.

Under systemd, ``$JOURNAL_STREAM`` holds ``device:inode`` of the stream journald reads; when
it matches our stderr, each line starts with its syslog priority (``<3>`` error .. ``<7>``
debug) and carries no timestamp, because journald records both itself. Elsewhere (a terminal,
a file, a child whose stderr was redirected) lines are timestamped.

Masking is a ``logging.Filter`` on the handler, so it sees records from every logger,
including libraries: it formats the message, masks it, and replaces ``msg``/``args`` with
the masked text (tracebacks too). The daemon registers each resolved secret with
``SecretMasker.add``; the URL patterns are defence in depth for secrets it was never told of.
The secrets are held by a ``sources.redact.Redactor`` (written plainly or JSON-escaped, they
are masked alike); ``configure_logging`` uses the process's (``redact.PROCESS``), so what the
daemon registers for its logs is masked in what exchanges send too.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TextIO

import attrs

from alertd.config.model import ChannelSettings, Secret
from alertd.sources import redact
from alertd.sources.redact import MASK, Redactor, Revealable

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"

# Credential shapes in apprise and web URLs, for secrets nobody registered. Each keeps what
# helps a reader (scheme, user name, parameter name) and masks the rest.
_URL_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host -> scheme://user:***@host
    (re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^/\s:@]*:)[^/\s@]+(?=@)"), rf"\g<head>{MASK}"),
    # tgram://123456:ABC-token/chat -> tgram://***/chat (Telegram bot tokens are id:secret)
    (re.compile(r"(?P<head>://)\d+:[\w-]+"), rf"\g<head>{MASK}"),
    # a bare Telegram bot token anywhere (e.g. in an api.telegram.org URL or an error text)
    (re.compile(r"(?<!\d)\d{6,}:[\w-]{30,}"), MASK),
    # ?token=...&apikey=... -> ?token=***&apikey=***
    (
        re.compile(
            r"(?P<head>[?&;](?:access_?token|api_?key|apikey|auth|key|pass|password|secret|"
            r"sig|signature|token|webhook)=)[^&;#\s]+",
            re.IGNORECASE,
        ),
        rf"\g<head>{MASK}",
    ),
    # Authorization: Bearer xyz
    (re.compile(r"(?P<head>\b(?:Bearer|Basic)\s+)[\w.~+/=-]{8,}"), rf"\g<head>{MASK}"),
)


class SecretMasker(logging.Filter):
    """Masks registered secrets and credential-shaped URL parts in every record it filters.
    The secrets are ``known``'s (a redactor of its own unless one is given)."""

    def __init__(self, known: Redactor | None = None) -> None:
        super().__init__()
        self.known = Redactor() if known is None else known

    def add(self, *secrets: str | Revealable | None) -> None:
        """Register secrets to mask from now on (values or ``Secret`` objects; None ignored)."""
        self.known.add(*secrets)

    def mask(self, text: str) -> str:
        text = self.known.text(text)
        for pattern, replacement in _URL_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: still log it, still masked
            message = f"unformattable log message {record.msg!r} args={record.args!r}"
        record.msg = self.mask(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


def journal_priority(levelno: int) -> int:
    """The syslog priority journald should store for a logging level."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(logging.Formatter):
    """``<priority>`` on every line (journald makes each line an entry), no timestamp."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{journal_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def journal_attached(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True when ``$JOURNAL_STREAM`` (``dev:ino``) names ``stream``'s file, i.e. journald
    reads it. Checked rather than trusted because children inherit the variable."""
    env = os.environ if environ is None else environ
    device, _, inode = env.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (ValueError, OSError):  # unset, malformed, or a stream without a file descriptor
        return False


def parse_level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    try:
        return LEVELS[level.lower()]
    except KeyError:
        raise ValueError(
            f"log level {level!r} is not one of {', '.join(LEVELS)} (set [daemon] log_level "
            "or --log-level)"
        ) from None


_HANDLER_NAME = "alertd"


def configure_logging(
    level: str | int = "info",
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    masker: SecretMasker | None = None,
    secrets: Iterable[str | Revealable | None] = (),
) -> SecretMasker:
    """Send all logging to ``stream`` (stderr) at ``level`` through one masked handler.

    Calling it again replaces alertd's handler (other handlers, e.g. pytest's, are left
    alone). Returns the masker, to which the daemon adds every secret it resolves; unless
    one is given it holds the process's secrets (``redact.PROCESS``), which sessions mask in
    what the exchanges send.
    """
    levelno = parse_level(level)  # first, so a bad level changes nothing
    stream = sys.stderr if stream is None else stream
    masker = SecretMasker(redact.PROCESS) if masker is None else masker
    masker.add(*secrets)
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    if journal_attached(stream, environ):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    handler.addFilter(masker)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(levelno)
    return masker


def set_level(level: str | int) -> None:
    """Change the level in place, e.g. when a reload changes ``[daemon] log_level``."""
    logging.getLogger().setLevel(parse_level(level))


def iter_secrets(value: Any) -> Iterator[Secret]:
    """Every ``Secret`` in a config (so logging can mask them all), and each private part of a
    channel URL on its own (a token quoted alone, by a service's error or by an exchange)."""
    if isinstance(value, ChannelSettings):
        for url in value.urls:
            yield from url_parts(url)
    if isinstance(value, Secret):
        yield value
    elif attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            yield from iter_secrets(getattr(value, field.name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_secrets(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from iter_secrets(item)


def url_parts(url: Secret) -> Iterator[Secret]:
    """The parts of a channel URL that apprise's description of its service calls private
    (tokens, passwords, keys), or masks when it prints the URL; none for a URL it cannot read."""
    from alertd.check.channel_urls import read_service  # asks apprise: only when there are URLs

    try:
        with warnings.catch_warnings():
            # apprise's first import warns of imghdr (deprecated since Python 3.11): not ours
            warnings.simplefilter("ignore", DeprecationWarning)
            service = read_service(url.reveal())
    except Exception as exc:  # no part is worth a daemon that cannot start: the URL is masked
        logging.getLogger(__name__).debug(
            "secrets.url_unread source=%s error=%s", url.source, type(exc).__name__
        )
        return
    if service is None:
        return
    for part in service.private:
        for value in part.values:
            yield Secret(value, source=f"{url.source} {part.token}")
    for name, value in service.masked:
        yield Secret(value, source=f"{url.source} {name}")
