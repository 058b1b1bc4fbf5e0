"""An exchange that echoes the API key and secret everywhere a frame can carry text: a real
``alertd run`` (with a capture) still alerts, and the secrets reach no channel, no file under
the state directory, no capture line and no output."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import trio
import trio_websocket

from protocols.frames import escaped, piexgo_order

from .conftest import START_TIMEOUT, Procs, Receiver, wait_until

KEY = "pk-ECHO/key-7f3a9c2b"  # a "/" that JSON may write as "\/"
SECRET = "sk-ECHO-secret-\u00e9-42"  # a non-ASCII character that JSON may write as \u00e9
HOOK_PASSWORD = "hook-pa55word-91d2"  # the channel URL's password, which apprise calls private
MASK = "***"
DONE = "order-after-the-echoes"


CONFIG = """\
[daemon]
log_level = "debug"

[[accounts]]
name = "px"
exchange = "piexgo"
url = "ws://127.0.0.1:{port}/piexgo/ws"
streams = ["pinfo"]
backoff_initial = "100ms"
backoff_max = "200ms"
[accounts.auth]
api_key = "{{env:PX_KEY}}"
api_secret = "{{env:PX_SECRET}}"
login_frame = '{{"op":"login","key":"{{{{ api_key }}}}","secret":"{{{{ api_secret }}}}"}}'

[channels]
hook = "{hook}"

[dispatch]
default_channel = "hook"

[[rules]]
name = "filled"
on = "order.filled"
key = "{{{{ order_id }}}}"
title = "filled {{{{ order_id }}}}"
message = "{{{{ side }}}} {{{{ amount }}}} {{{{ symbol }}}}"

[[rules]]
name = "errors"
on = "stream.error"
key = "{{{{ reason }}}} {{{{ excerpt }}}}"
title = "error: {{{{ reason }}}}"
message = "{{{{ excerpt }}}}"

[[rules]]
name = "down"
on = "stream.disconnected"
key = "{{{{ reason }}}}"
title = "down: {{{{ reason }}}}"
message = "{{{{ reason }}}}"
"""


ECHOES = [
    json.dumps({"op": "subscribe", "topic": "pinfo", "status": "error", "msg": f"key {KEY}"}),
    '{"op":"subscribe","topic":"pinfo","status":"error","msg":"' + escaped(KEY) + '"}',
    json.dumps({"op": "subscribe", "topic": "pinfo", "status": "error", "msg": SECRET}),
    piexgo_order(f"id-{KEY}"),
    piexgo_order(escaped(SECRET)).replace("\\\\", "\\"),  # the id written with \u escapes
    piexgo_order(f"hook-{HOOK_PASSWORD}"),  # a secret alertd knows only from a channel URL
]


async def peer(request: trio_websocket.WebSocketRequest, connections: list[int]) -> None:
    """1st connection: refuses the login quoting the key. 2nd: accepts it, echoes the secrets
    in error frames and order ids, closes quoting the secret. Later: accepts, sends one fill."""
    ws = await request.accept()
    connections.append(1)
    number = len(connections)
    try:
        await ws.get_message()  # the login
        if number == 1:
            reply = {"op": "login", "status": "error", "msg": f"invalid api key {KEY}"}
            await ws.send_message(json.dumps(reply))
            await ws.get_message()  # until the daemon closes
        await ws.send_message('{"op":"login","status":"ok"}')
        await ws.get_message()  # the subscribe
        if number == 2:
            for frame in ECHOES:
                await ws.send_message(frame)
            await ws.aclose(1011, f"restarting: {SECRET} revoked")
            return
        await ws.send_message(piexgo_order(DONE))
        await ws.get_message()  # until the daemon closes
    except trio_websocket.ConnectionClosed:
        pass


def files_holding(directory: Path, needles: list[bytes]) -> list[str]:
    """Every file under ``directory`` whose bytes hold one of ``needles``."""
    return [
        str(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and any(n in path.read_bytes() for n in needles)
    ]


@pytest.mark.slow
async def test_secrets_the_exchange_echoes_appear_nowhere(
    nursery: trio.Nursery, procs: Procs, receiver: Receiver, tmp_path: Path
) -> None:
    """The key and secret echoed in a login reply, error frames, order ids (plainly and
    JSON-escaped) and a close reason, and the channel URL's password echoed in an order id,
    are in no channel body, no state file (SQLite, WAL
    included), no capture and no output of ``alertd run``, and the alerts still arrive."""
    connections: list[int] = []

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        await peer(request, connections)

    server = await nursery.start(trio_websocket.serve_websocket, handler, "127.0.0.1", 0, None)
    config = tmp_path / "alertd.toml"
    hook = receiver.url().replace("json://", "json://alertd:{env:HOOK_PASSWORD}@")
    config.write_text(CONFIG.format(port=server.port, hook=hook))
    state, capture = tmp_path / "state", tmp_path / "capture"
    daemon = procs.daemon(
        config,
        state_dir=state,
        record=capture,
        env={"PX_KEY": KEY, "PX_SECRET": SECRET, "HOOK_PASSWORD": HOOK_PASSWORD},
    )

    def arrived() -> bool:
        return any(DONE in p.title for p in receiver.delivered())

    needles = [KEY, SECRET, HOOK_PASSWORD, escaped(KEY), escaped(SECRET), KEY.replace("/", "\\/")]
    with trio.fail_after(START_TIMEOUT + 20):
        await trio.to_thread.run_sync(
            lambda: wait_until(arrived, START_TIMEOUT + 15, "the last fill", dump=daemon.tail)
        )
        running = files_holding(state, [n.encode() for n in needles])  # the WAL in use too
        daemon.send_signal(signal.SIGTERM)
        assert await trio.to_thread.run_sync(daemon.wait, 15) == 0, daemon.tail()

    assert running == []
    bodies = [json.dumps(p.body, ensure_ascii=False) for p in receiver.snapshot()]
    assert not [b for b in bodies if any(n in b for n in needles)]
    assert files_holding(state, [n.encode() for n in needles]) == []
    assert files_holding(capture, [n.encode() for n in needles]) == []
    assert len(list(capture.glob("*.jsonl"))) == 1
    output = "\n".join(daemon.lines("stderr") + daemon.lines("stdout"))
    assert not [n for n in needles if n in output]
    assert "stream.connected" in output  # the log was written (at debug level)

    titles = {p.title for p in receiver.delivered()}
    assert {
        f"filled id-{MASK}",
        f"filled {MASK}",
        f"filled hook-{MASK}",
        f"filled {DONE}",
    } <= titles
    assert f"down: closed with 1011 INTERNAL_ERROR: restarting: {MASK} revoked" in titles
    rejected = [p for p in receiver.delivered() if "login rejected" in p.title]
    assert rejected and f"invalid api key {MASK}" in rejected[0].message
    quoted = [p for p in receiver.delivered() if p.title.startswith("error: piexgo rejected")]
    assert len(quoted) == 3 and all(MASK in p.title for p in quoted)
