"""Account authentication: handshake headers and a login frame, both jinja templates.

(Which frames answer the login is ``login``'s business.)

Neither exchange document fixes how to log in, so the config says it (``[accounts.auth]``).
Templates run in jinja's ``SandboxedEnvironment`` with ``StrictUndefined`` and see:

- ``api_key``, ``api_secret``: the revealed secrets (only inside the template),
- ``timestamp``: wall-clock milliseconds since the epoch (an int), ``nonce``: a random hex
  string, both fresh for every connection,
- ``hmac_sha256(secret, message)``: the hex HMAC-SHA256 digest.

Errors (``AuthError``) name the account and the template but never show a rendered value:
secrets must not reach logs (DESIGN.md invariant 5).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from typing import Any

import attrs
import jinja2
import jinja2.meta
from jinja2.sandbox import SandboxedEnvironment

from alertd.config.model import AuthSettings


class AuthError(Exception):
    """The auth templates of an account cannot be compiled or rendered."""


def hmac_sha256(secret: str, message: str) -> str:
    """Hex HMAC-SHA256 of ``message`` keyed by ``secret`` (both UTF-8)."""
    return hmac.new(secret.encode(), str(message).encode(), hashlib.sha256).hexdigest()


_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
_ENV.globals["hmac_sha256"] = hmac_sha256


@attrs.frozen
class Authenticator:
    """One account's compiled auth templates."""

    account: str
    auth: AuthSettings
    _headers: tuple[tuple[str, jinja2.Template], ...]
    _login: jinja2.Template | None

    @classmethod
    def build(cls, account: str, auth: AuthSettings) -> Authenticator:
        """Compile the templates; ``AuthError`` says which one is wrong and where."""
        headers = tuple(
            (name, _compile(account, f"auth.headers.{name}", text, auth))
            for name, text in auth.headers.items()
        )
        login = None
        if auth.login_frame:
            login = _compile(account, "auth.login_frame", auth.login_frame, auth)
        return cls(account, auth, headers, login)

    @property
    def has_login(self) -> bool:
        return self._login is not None

    def context(self) -> dict[str, Any]:
        """Fresh template variables for one connection attempt."""
        ctx: dict[str, Any] = {
            "timestamp": int(time.time() * 1000),
            "nonce": secrets.token_hex(16),
        }
        if self.auth.api_key is not None:
            ctx["api_key"] = self.auth.api_key.reveal()
        if self.auth.api_secret is not None:
            ctx["api_secret"] = self.auth.api_secret.reveal()
        return ctx

    def headers(self, ctx: Mapping[str, Any]) -> list[tuple[bytes, bytes]]:
        """Extra handshake headers, as trio-websocket wants them."""
        return [
            (name.encode(), _render(self.account, f"auth.headers.{name}", tpl, ctx).encode())
            for name, tpl in self._headers
        ]

    def login_frame(self, ctx: Mapping[str, Any]) -> str | None:
        if self._login is None:
            return None
        return _render(self.account, "auth.login_frame", self._login, ctx)


def _compile(account: str, where: str, text: str, auth: AuthSettings) -> jinja2.Template:
    """Compile one template; a missing secret it uses is an error now, not at connect time."""
    try:
        used = jinja2.meta.find_undeclared_variables(_ENV.parse(text))
        template = _ENV.from_string(text)
    except jinja2.TemplateSyntaxError as e:
        raise AuthError(
            f"account {account!r} {where}: template error at line {e.lineno}: {e.message}"
        ) from None
    for name, secret in (("api_key", auth.api_key), ("api_secret", auth.api_secret)):
        if name in used and secret is None:
            raise AuthError(
                f"account {account!r} {where}: uses {name} but [accounts.auth] sets none "
                f'(e.g. {name} = "{{env:NAME}}")'
            )
    unknown = used - {"api_key", "api_secret", "timestamp", "nonce", "hmac_sha256"}
    if unknown:
        raise AuthError(
            f"account {account!r} {where}: unknown variable(s) {', '.join(sorted(unknown))} "
            "(templates see api_key, api_secret, timestamp, nonce, hmac_sha256)"
        )
    return template


def _render(account: str, where: str, tpl: jinja2.Template, ctx: Mapping[str, Any]) -> str:
    try:
        return tpl.render(ctx)
    except Exception as e:
        # Only the exception's type is shown: its text could quote a secret.
        raise AuthError(
            f"account {account!r} {where}: cannot render ({type(e).__name__})"
        ) from None


def check_auth(account: str, exchange: str, auth: AuthSettings) -> list[str]:
    """Problems with an account's auth templates, for ``alertd check`` (empty when fine):
    compiles them and renders them once with the configured secrets. The templates do not
    depend on ``exchange``; it is taken so that the check's callers need not know that."""
    try:
        authenticator = Authenticator.build(account, auth)
        ctx = authenticator.context()
        authenticator.headers(ctx)
        authenticator.login_frame(ctx)
    except AuthError as e:
        return [str(e)]
    return []
