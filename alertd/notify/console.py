"""``console://``: an apprise plugin that prints notifications to the terminal (stdout).

Used by ``alertd demo`` and for trying rules. Importing this module registers the scheme with
apprise (its ``@notify`` decorator), and alertd's structured webhook (``alertd.notify.webhook``)
with it; ``alertd.notify.apprise_notifier`` and the URL checks import it, so any alertd
process that sends through apprise or checks URLs knows ``console://`` and ``alertd://``.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any, cast

from apprise.decorators import notify

from alertd.notify import webhook as _webhook  # registers alertd:// and alertds://

_Handler = Callable[..., bool]
_register = cast(Callable[..., Callable[[_Handler], _Handler]], notify)  # apprise is untyped

_ = _webhook
SCHEME = "console"
_print_lock = threading.Lock()  # apprise calls from worker threads; keep messages whole


def format_console(title: str, body: str) -> str:
    rule = "-" * 8
    head = f"{rule} {title} {rule}" if title else rule * 2
    return f"{head}\n{body}\n" if body else f"{head}\n"


def _print_notification(body: str, title: str, *args: Any, **kwargs: Any) -> bool:
    text = format_console(title, body)
    with _print_lock:
        sys.stdout.write(text)
        sys.stdout.flush()
    return True


with warnings.catch_warnings():
    # Registering makes apprise load all its plugins once; its email plugin imports the stdlib
    # imghdr module, deprecated since Python 3.11. Not ours to fix, and harmless here.
    warnings.filterwarnings("ignore", message=".*imghdr", category=DeprecationWarning)
    _register(on=SCHEME, name="alertd console")(_print_notification)
