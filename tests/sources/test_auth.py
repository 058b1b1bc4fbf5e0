"""Auth templates: login frame and headers, HMAC signing, no secret leaks."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from alertd.config.model import AuthSettings, Secret
from alertd.sources.auth import Authenticator, AuthError, check_auth, hmac_sha256

LOGIN = (
    '{"op":"login","key":{{ api_key | tojson }},"ts":{{ timestamp }},'
    '"sign":"{{ hmac_sha256(api_secret, timestamp) }}"}'
)


def auth(**kw: object) -> AuthSettings:
    base: dict[str, object] = {
        "api_key": Secret("KEY-1", "env:K"),
        "api_secret": Secret("s3cret-value", "env:S"),
    }
    return AuthSettings(**(base | kw))  # type: ignore[arg-type]


def test_hmac_sha256_is_the_hex_digest() -> None:
    """The helper gives the standard hex HMAC-SHA256 of the message under the secret."""
    want = hmac.new(b"k", b"msg", hashlib.sha256).hexdigest()
    assert hmac_sha256("k", "msg") == want


def test_login_frame_is_signed_with_the_timestamp() -> None:
    """The simulator's login frame renders with the key, the ms timestamp and its signature."""
    a = Authenticator.build("main", auth(login_frame=LOGIN))
    ctx = a.context()
    frame = json.loads(a.login_frame(ctx) or "")
    assert frame["key"] == "KEY-1"
    assert frame["ts"] == ctx["timestamp"] and frame["ts"] > 1_600_000_000_000
    assert frame["sign"] == hmac_sha256("s3cret-value", str(frame["ts"]))


def test_headers_are_rendered_as_bytes_pairs() -> None:
    """Header templates become (name, value) byte pairs for the handshake."""
    a = Authenticator.build(
        "main", auth(headers={"X-Key": "{{ api_key }}", "X-Nonce": "{{ nonce }}"})
    )
    headers = dict(a.headers(a.context()))
    assert headers[b"X-Key"] == b"KEY-1"
    assert len(headers[b"X-Nonce"]) == 32
    assert a.login_frame(a.context()) is None


def test_fresh_nonce_and_timestamp_per_connection() -> None:
    """Every connection attempt gets a new nonce."""
    a = Authenticator.build("main", auth())
    assert a.context()["nonce"] != a.context()["nonce"]


def test_syntax_error_names_account_and_template() -> None:
    """A broken template is an AuthError naming the account, the template and the line."""
    with pytest.raises(
        AuthError, match=r"account 'main' auth.login_frame: template error at line 1"
    ):
        Authenticator.build("main", auth(login_frame="{{ api_key "))


def test_missing_secret_is_a_clear_error() -> None:
    """A template using api_secret when none is configured says so instead of rendering ''."""
    problems = check_auth("main", "piexgo", AuthSettings(login_frame=LOGIN))
    assert len(problems) == 1
    assert "auth.login_frame: uses api_key but [accounts.auth] sets none" in problems[0]


def test_unknown_variable_is_a_clear_error() -> None:
    """A misspelt variable is reported with the names templates may use."""
    with pytest.raises(AuthError, match=r"unknown variable\(s\) api_sekret"):
        Authenticator.build("main", auth(headers={"X": "{{ api_sekret }}"}))


def test_errors_never_show_the_secret() -> None:
    """A render failure does not quote any revealed secret."""
    bad = auth(login_frame="{{ (api_secret ~ 'x') | int(base=1) }}{{ 1 / 0 }}")
    problems = check_auth("main", "piexgo", bad)
    assert problems and "s3cret-value" not in problems[0]
    assert check_auth("main", "piexgo", auth(login_frame=LOGIN)) == []
