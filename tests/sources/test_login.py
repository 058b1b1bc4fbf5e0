"""Login replies: which frames accept or reject a login, by default and as configured."""

from __future__ import annotations

from alertd.config.model import AuthSettings
from alertd.sources.login import LoginReplies


def test_piexgo_login_replies_default_to_the_agreed_frames() -> None:
    """Without accept_when/reject_when, Piexgo's login replies are recognised."""
    replies = LoginReplies.for_account("piexgo", AuthSettings(login_frame="{}"))
    assert replies is not None
    assert replies.classify('{"op":"login","status":"ok"}') == "accepted"
    assert replies.classify('{"op":"login","status":"error","msg":"bad key"}') == "rejected"
    assert replies.classify('{"op":"subscribe","status":"ok","topic":"pinfo"}') is None
    assert replies.classify("not json") is None


def test_configured_replies_compare_json_values_as_text() -> None:
    """reject_when/accept_when values match numbers and booleans by their JSON text."""
    auth = AuthSettings(login_frame="x", accept_when={"code": "0"}, reject_when={"ok": "false"})
    replies = LoginReplies.for_account("cryptology", auth)
    assert replies is not None
    assert replies.classify('{"code": 0}') == "accepted"
    assert replies.classify('{"ok": false, "code": 0}') == "rejected"
    assert replies.classify('{"code": "1"}') is None


def test_no_login_frame_means_nothing_answers_a_login() -> None:
    """An account that sends no login frame has no login replies, whatever the rules say."""
    assert LoginReplies.for_account("piexgo", AuthSettings(reject_when={"a": "b"})) is None
