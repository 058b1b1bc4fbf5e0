"""Channel URLs checked before the daemon runs: apprise must be able to use each one.

A URL apprise cannot read (``telegram://`` for ``tgram://``) would otherwise pass the check and
make every alert of the channel expire as a permanent failure at run time.

Messages name only the scheme, never the URL: its other parts may be secrets.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, cast

from alertd.config.errors import did_you_mean

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31})://")


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
