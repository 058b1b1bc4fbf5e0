"""Known secrets masked in text: what a peer sends, and what alertd logs.

An exchange may echo what it was sent (a rejected login quoting the API key, an error frame,
an order's client id, a close reason). Whatever held that text would carry the secret on: the
capture, the ``stream.error`` alert, the outbox and every channel. So the session masks every
known secret in each frame as it enters, before the capture, stream health and the decoder
see it, and in every reason a connection ends with (``Session``); the daemon's log masker
(``daemon.logs``) masks its lines with the same ``Redactor``.

A JSON peer may write a secret escaped (``\\u0061``, ``\\/``), which the decoder would turn
back into the secret. So text with a backslash is looked at with its escapes undone too, and
where a secret is found it is masked by a pattern that matches each of its characters as
itself or as any JSON escape of it: the frame stays valid JSON (the mask replaces characters
inside a string) and needs no re-encoding.

The cost is on every frame, so the common case is kept to substring searches in C: nearly no
frame has a backslash or a secret, and ``secret in text`` for each known secret (only those
that contain no other: that one is found in any text holding them) is about 0.2 us a secret
on a 270-character frame, where one regex alternation of the same secrets takes ~4 us (sre
has no multi-string search). The regexes run only on a frame that holds a secret.

``PROCESS`` holds the secrets this process knows: ``configure_logging`` gives it to the log
masker, to which the daemon adds every secret of the config (at start and on reload) and the
heartbeat URL's parts. A session's redactor adds its account's own secrets to those, so it
masks them even where nothing registered them (tests, tools that run a session alone).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

import attrs

from alertd.config.model import AccountSettings

MASK = "***"
# Shorter strings are not masked: replacing every "1" or "abc" would make text unreadable (and
# corrupt frames) while hiding nothing a guesser could not find anyway.
MIN_SECRET_LENGTH = 4

# The two-character JSON escapes (RFC 8259 section 7) besides \uXXXX.
_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


class Revealable(Protocol):
    """What ``config.model.Secret`` offers; accepted so callers need not unwrap secrets."""

    def reveal(self) -> str: ...


def _hex4(code: int) -> str:
    """``\\uXXXX`` for one UTF-16 unit, hex digits in either case."""
    digits = "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{code:04x}")
    return r"\\u" + digits


def _escaped_char(char: str) -> str:
    """A pattern for ``char`` as written in JSON text: itself or any escape of it."""
    code = ord(char)
    if code > 0xFFFF:  # a surrogate pair in \u escapes
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        unit = _hex4(high) + _hex4(low)
    else:
        unit = _hex4(code)
    # A backslash or a quote stands for itself only escaped: a bare one in JSON text is the
    # start of another escape, or the end of the string (text that is not JSON is masked by
    # the plain pattern after this one, see Redactor.text).
    options = [unit] if char in '"\\' else [re.escape(char), unit]
    if char in _SHORT_ESCAPES:
        options.append(re.escape(_SHORT_ESCAPES[char]))
    return "(?:" + "|".join(options) + ")"


def _compile(parts: Iterable[str], *, escapes: bool = False) -> re.Pattern[str] | None:
    """One pattern finding any of ``parts``; with ``escapes``, one that also consumes every
    other JSON escape whole, so that no match starts inside one (the second backslash of
    ``\\\\`` or the digits of ``\\u0041``)."""
    ordered = list(parts)
    if not ordered:
        return None
    if not escapes:
        return re.compile("|".join(ordered))
    return re.compile(f"(?P<secret>{'|'.join(ordered)})" + r"|\\(?:u[0-9a-fA-F]{4}|.)", re.DOTALL)


def _mask_secret(m: re.Match[str]) -> str:
    return MASK if m.group("secret") is not None else m.group(0)


_UNESCAPE = re.compile(
    r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"  # a surrogate pair
    r"|\\u([0-9a-fA-F]{4})|\\(.)",
    re.DOTALL,
)
_UNSHORT = {escape[1]: char for char, escape in _SHORT_ESCAPES.items()}


def _unescape_one(m: re.Match[str]) -> str:
    high, low, unit, short = m.groups()
    if high is not None:
        return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00))
    if unit is not None:
        return chr(int(unit, 16))
    return _UNSHORT.get(short, short)


def unescape(text: str) -> str:
    """``text`` with its JSON escapes undone (and any other backslash dropped)."""
    return _UNESCAPE.sub(_unescape_one, text)


def _needles(secrets: list[str]) -> tuple[str, ...]:
    """The secrets to look for: one that contains another is found by that one."""
    kept: list[str] = []
    for secret in sorted(secrets, key=len):
        if not any(shorter in secret for shorter in kept):
            kept.append(secret)
    return tuple(kept)


@attrs.define(eq=False)
class Redactor:
    """A set of secrets and the patterns that find them; ``parent``'s secrets count too (and
    ones added to it later: the patterns are rebuilt on the next use)."""

    parent: Redactor | None = None
    _secrets: set[str] = attrs.field(factory=set)
    _version: int = 0
    _built: int = -1  # the generation the patterns below were built for
    _needles: tuple[str, ...] = ()
    _plain: re.Pattern[str] | None = None
    _escaped: re.Pattern[str] | None = None
    _bare: re.Pattern[str] | None = None  # the plain secrets, JSON escapes stepped over

    def add(self, *secrets: str | Revealable | None) -> None:
        """Mask these from now on (values or ``Secret`` objects; None and short ones ignored)."""
        before = len(self._secrets)
        for secret in secrets:
            if secret is None:
                continue
            value = secret if isinstance(secret, str) else secret.reveal()
            for candidate in {value, value.strip()}:
                if len(candidate) >= MIN_SECRET_LENGTH:
                    self._secrets.add(candidate)
        if len(self._secrets) != before:
            self._version += 1

    def known(self) -> set[str]:
        """Every secret masked, the parent's included."""
        return self._secrets | (self.parent.known() if self.parent is not None else set())

    def _generation(self) -> int:
        # Versions only grow, so the sum changes whenever any redactor in the chain changed.
        return self._version + (self.parent._generation() if self.parent is not None else 0)

    def _rebuild(self, generation: int) -> None:
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(self.known(), key=len, reverse=True)
        self._needles = _needles(ordered)
        self._plain = _compile(map(re.escape, ordered))
        self._escaped = _compile(("".join(map(_escaped_char, s)) for s in ordered), escapes=True)
        self._bare = _compile(map(re.escape, ordered), escapes=True)
        self._built = generation

    def text(self, text: str) -> str:
        """``text`` with every known secret (written plainly or JSON-escaped) masked; the same
        object when there was none."""
        generation = self._generation()
        if generation != self._built:
            self._rebuild(generation)
        if "\\" not in text:  # nearly every frame: substring searches only
            for needle in self._needles:
                if needle in text:
                    assert self._plain is not None
                    return self._plain.sub(MASK, text)
            return text
        if not (self._holds(unescape(text)) or self._holds(text)):
            return text
        assert self._escaped is not None and self._bare is not None and self._plain is not None
        masked = self._escaped.sub(_mask_secret, text)
        if self._holds(masked):
            # a secret with a bare backslash or quote in text that is not JSON (a log line)
            masked = self._bare.sub(_mask_secret, masked)
        if self._holds(masked):
            # Still there, overlapping what reads as an escape (text that is not JSON, or a
            # peer hiding a secret in escape digits): no copy may survive, even at the cost of
            # a frame the decoder then refuses.
            masked = self._plain.sub(MASK, masked)
        return masked

    def _holds(self, text: str) -> bool:
        return any(needle in text for needle in self._needles)

    def frame(self, frame: str | bytes) -> str | bytes:
        """A received frame with every known secret masked (a binary frame as UTF-8 text,
        bytes that are not UTF-8 kept as they were)."""
        if isinstance(frame, str):
            return self.text(frame)
        decoded = frame.decode("utf-8", "surrogateescape")
        masked = self.text(decoded)
        return frame if masked is decoded else masked.encode("utf-8", "surrogateescape")


PROCESS = Redactor()


def for_account(settings: AccountSettings, parent: Redactor | None = PROCESS) -> Redactor:
    """What a session of ``settings`` masks: its own API key and secret, and ``parent``'s."""
    redactor = Redactor(parent=parent)
    redactor.add(settings.auth.api_key, settings.auth.api_secret)
    return redactor
