"""A peer that echoes a secret (plainly or JSON-escaped) gets it into no event, no capture and
no log: the session masks known secrets where frames and connection errors enter."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import trio
import trio_websocket
from hypothesis import given, settings
from hypothesis import strategies as st

from alertd.config.model import AuthSettings, ChannelSettings, Secret
from alertd.daemon.logs import SecretMasker, iter_secrets
from alertd.events import Event
from alertd.sources import redact
from alertd.sources.capture import Recorder, read_capture
from alertd.sources.redact import MASK, Redactor
from alertd.sources.session import Session
from protocols.frames import escaped, piexgo_order

from .helpers import account, balance_frame

KEY = "pk-ECHO/key-7f3a9c"  # a "/" that JSON may write as "\/"
SECRET = "sk-ECHO-secret-e\u00e9-42"  # a non-ASCII character that JSON may write as \u00e9
LOGIN = '{"op":"login","key":"{{ api_key }}","sign":"{{ hmac_sha256(api_secret, timestamp) }}"}'


def echo_everywhere(key: str, secret: str) -> list[str | bytes]:
    """After an accepted login: each place a frame can carry text, holding the secrets."""
    return [
        json.dumps({"op": "subscribe", "topic": "pinfo", "status": "error", "msg": f"{key}?"}),
        '{"op":"subscribe","topic":"pinfo","status":"error","msg":"' + escaped(key) + '"}',
        json.dumps({"op": "subscribe", "status": "error", "msg": secret}, ensure_ascii=True),
        piexgo_order(f"id-{key}"),
        piexgo_order(key.replace("/", "\\/")).replace("\\\\/", "\\/"),
        f"not json {secret}".encode(),
        balance_frame("BTC", "1.5"),  # the last: every frame before it was handled
    ]


async def scripted_peer(request: trio_websocket.WebSocketRequest) -> None:
    """First connection: rejects the login quoting the key. Second: accepts it, echoes the
    secrets everywhere, closes with the secret in the reason. Later ones: accept and wait."""
    ws = await request.accept()
    scripted_peer.connections += 1  # type: ignore[attr-defined]
    try:
        await ws.get_message()  # the login
        if scripted_peer.connections == 1:  # type: ignore[attr-defined]
            reply = {"op": "login", "status": "error", "msg": f"invalid api key {KEY}"}
            await ws.send_message(json.dumps(reply))
            await ws.aclose(1008, f"bad key {KEY}")
            return
        await ws.send_message('{"op":"login","status":"ok"}')
        await ws.get_message()  # the subscribe
        if scripted_peer.connections == 2:  # type: ignore[attr-defined]
            for frame in echo_everywhere(KEY, SECRET):
                await ws.send_message(frame)
            await ws.aclose(1011, f"restarting, {SECRET} revoked")
            return
        await ws.get_message()  # never comes: the client closes when the test is done
    except trio_websocket.ConnectionClosed:
        pass


def texts(events: list[Event]) -> str:
    return "\n".join(repr(e) for e in events)


async def test_secrets_a_peer_echoes_reach_no_event_and_no_capture(
    nursery: trio.Nursery, event_channel: tuple, tmp_path: Path
) -> None:
    """A login rejection, a close reason, error frames, an order's id and a binary frame that
    quote the API key or secret (plainly or JSON-escaped) become events and capture lines with
    the secret masked, and the alerts still come."""
    scripted_peer.connections = 0  # type: ignore[attr-defined]
    send, log = event_channel
    server = await nursery.start(
        trio_websocket.serve_websocket, scripted_peer, "127.0.0.1", 0, None
    )
    auth = AuthSettings(api_key=Secret(KEY), api_secret=Secret(SECRET), login_frame=LOGIN)
    settings = account(f"ws://127.0.0.1:{server.port}/ws", streams=["pinfo"], auth=auth)
    recorder = Recorder(tmp_path / "capture", flush_interval=0.05)
    with trio.fail_after(10):
        async with trio.open_nursery() as inner:
            path = await inner.start(recorder.run)
            await inner.start(Session(settings=settings, send=send, recorder=recorder).run)
            # the refused login, then the close quoting the secret
            await log.wait_for("stream.disconnected", 2)
            inner.cancel_scope.cancel()
    events: list[Event] = log.events
    assert KEY not in texts(events) and SECRET not in texts(events)
    rejected = [e for e in log.of("stream.error") if e.reason == "login rejected by the server"]
    assert len(rejected) == 1 and f"invalid api key {MASK}" in rejected[0].excerpt
    [_, down] = log.of("stream.disconnected")
    assert down.reason == f"closed with 1011 INTERNAL_ERROR: restarting, {MASK} revoked"
    assert log.of("balance.changed")  # the frames after the bad ones were handled
    assert sorted(e.order_id for e in log.of("order.filled")) == [MASK, f"id-{MASK}"]
    # the JSON-escaped key too: the decoder's reason quotes the decoded msg
    assert sum(MASK in e.reason for e in log.of("stream.error")) >= 3
    capture = path.read_text(encoding="utf-8")
    assert KEY not in capture and SECRET not in capture and MASK in capture
    frames = [r.frame or "" for r in read_capture(path)]
    assert KEY not in "".join(frames) and SECRET not in "".join(frames)
    assert not any(escaped(KEY) in f or KEY.replace("/", "\\/") in f for f in frames)


async def test_a_secret_registered_after_the_start_is_masked_in_later_frames(
    nursery: trio.Nursery, event_channel: tuple
) -> None:
    """A secret the process learns while a session runs (a reload's new channel token) is
    masked in the frames that session receives from then on."""
    send, log = event_channel
    peer_frames: trio.MemorySendChannel[str]
    peer_frames, to_send = trio.open_memory_channel[str](10)

    async def peer(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        async for frame in to_send:
            await ws.send_message(frame)

    server = await nursery.start(trio_websocket.serve_websocket, peer, "127.0.0.1", 0, None)
    process = Redactor()
    settings = account(f"ws://127.0.0.1:{server.port}/ws", streams=["pinfo"])
    session = Session(
        settings=settings, send=send, redactor=redact.for_account(settings, parent=process)
    )
    with trio.fail_after(5):
        await nursery.start(session.run)
        await peer_frames.send(piexgo_order("token-learnt-later"))
        await log.wait_for("order.filled")
        process.add("token-learnt-later")
        await peer_frames.send(piexgo_order("again-token-learnt-later"))
        await log.wait_for("order.filled", 2)
    assert [e.order_id for e in log.of("order.filled")] == [
        "token-learnt-later",
        f"again-{MASK}",
    ]


def json_string(text: str, escape: list[bool]) -> str:
    """``text`` as a JSON string, each character escaped as \\uXXXX where ``escape`` says."""
    out = []
    for i, char in enumerate(text):
        flag = escape[i] if i < len(escape) else False
        out.append(escaped(char) if flag else json.dumps(char, ensure_ascii=False)[1:-1])
    return '"' + "".join(out) + '"'


# Text around the secret that JSON writes as it is: escapes come from the secret alone. (A peer
# that hides the secret's characters in the digits of other escapes gets it masked anyway, in
# a frame the decoder then refuses.)
AROUND = st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters='"\\'))


@settings(max_examples=300, deadline=None)
@given(
    secret=st.text(min_size=redact.MIN_SECRET_LENGTH, max_size=20).filter(lambda s: "*" not in s),
    before=AROUND,
    after=AROUND,
    escape=st.lists(st.booleans(), max_size=20),
    ascii_only=st.booleans(),
)
def test_a_secret_however_json_writes_it_is_masked_and_the_frame_stays_json(
    secret: str, before: str, after: str, escape: list[bool], ascii_only: bool
) -> None:
    """Whichever characters of a secret a peer escapes (\\uXXXX, surrogate pairs, \\/, \\"),
    the masked frame is still JSON and its decoded text no longer holds the secret (nor does
    the text masked unencoded)."""
    redactor = Redactor()
    redactor.add(secret)
    value = before + secret + after
    if ascii_only:
        frame = json.dumps({"msg": value})
    else:
        frame = '{"msg":' + json_string(value, escape) + "}"
    masked = redactor.frame(frame)
    assert isinstance(masked, str) and secret not in masked
    decoded = json.loads(masked)["msg"]
    assert secret not in decoded and MASK in decoded
    assert secret not in redactor.text(value)  # the same text unencoded (a log line)


def test_the_log_masker_masks_a_json_escaped_secret() -> None:
    """A log line quoting a frame in which the secret is JSON-escaped shows the mask instead."""
    masker = SecretMasker()
    masker.add(Secret(KEY, source="env:KEY"))
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "bad frame %s", ('{"m":"' + escaped(KEY) + '"}',), None
    )
    assert masker.filter(record)
    assert record.getMessage() == 'bad frame {"m":"***"}'


def test_each_private_part_of_a_channel_url_is_a_secret_of_its_own() -> None:
    """The tokens apprise calls private in a channel URL (Slack's three, Discord's webhook
    token, a URL's password) are masked when quoted alone, not only as the whole URL."""
    urls = [
        "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#alerts",
        "discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js",
        "json://alertd:pa55word-7c1e@127.0.0.1:9/alerts",
    ]
    redactor = Redactor()
    redactor.add(
        *iter_secrets(ChannelSettings(urls=[Secret(u, source="channels.x") for u in urls]))
    )
    quoted = "rejected TIiajkdnlazkcOXrIdevi7FQ, JHMHI8qBe7bk2ZwO5U711o3dV_js, pa55word-7c1e"
    assert redactor.text(quoted) == "rejected ***, ***, ***"
    assert redactor.text("#alerts on 127.0.0.1:9") == "#alerts on 127.0.0.1:9"
