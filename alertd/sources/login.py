"""Which frames answer a login: the account's accept/reject rules, and nothing else.

Kept apart from ``auth`` (which renders the login templates with jinja) so that stream
health, and replay through it, can recognise login replies without compiling templates or
needing the secrets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from alertd.config.model import AuthSettings

LoginReply = Literal["accepted", "rejected"]

# Login replies recognised when the config names none (accept_when/reject_when unset). Neither
# exchange document covers login; these are what the simulator answers on both exchanges.
_LOGIN_OK = {"op": "login", "status": "ok"}
_LOGIN_ERROR = {"op": "login", "status": "error"}
DEFAULT_REPLIES: Mapping[str, tuple[dict[str, str], dict[str, str]]] = {
    "piexgo": (_LOGIN_OK, _LOGIN_ERROR),
    "cryptology": (_LOGIN_OK, _LOGIN_ERROR),
}


@attrs.frozen(kw_only=True)
class LoginReplies:
    """What a server's answer to the login frame looks like. With ``accept_when`` set the
    session waits for it before subscribing; with only ``reject_when``, it does not wait."""

    accept_when: Mapping[str, str] = attrs.field(factory=dict)
    reject_when: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def for_account(cls, exchange: str, auth: AuthSettings) -> LoginReplies | None:
        """The account's reply rules; None when it sends no login frame (nothing to answer).
        Without rules in the config, the exchange's default replies are recognised."""
        if not auth.login_frame:
            return None
        accept, reject = dict(auth.accept_when), dict(auth.reject_when)
        if not accept and not reject:
            accept, reject = (dict(d) for d in DEFAULT_REPLIES.get(exchange, ({}, {})))
        return cls(accept_when=accept, reject_when=reject)

    def classify(self, frame: str | bytes) -> LoginReply | None:
        """Whether ``frame`` is the server accepting or rejecting the login (else None)."""
        if not (self.accept_when or self.reject_when):
            return None
        try:
            obj = json.loads(frame)
        except ValueError:
            return None
        if not isinstance(obj, dict):
            return None
        if self.reject_when and _matches(obj, self.reject_when):
            return "rejected"
        if self.accept_when and _matches(obj, self.accept_when):
            return "accepted"
        return None


def _matches(obj: Mapping[str, Any], want: Mapping[str, str]) -> bool:
    """Every key of ``want`` is in ``obj`` with that value; non-string JSON values compare by
    their JSON text, so ``{code = "0"}`` matches ``"code": 0`` and ``{ok = "true"}`` ``true``."""
    for key, value in want.items():
        if key not in obj:
            return False
        got = obj[key]
        if (got if isinstance(got, str) else json.dumps(got)) != value:
            return False
    return True
