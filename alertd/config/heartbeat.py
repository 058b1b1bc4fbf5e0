"""``[daemon.heartbeat] url``: the ping URL, with its secret by reference (whoever knows a ping
URL can report alertd healthy), resolved by the loader into a ``Secret`` like channel URLs and
logins, so ``alertd check`` refuses a reference that is not set and the daemon never starts
with one. ``daemon/heartbeat`` checks the resolved value is an http(s) URL when it starts (a
whole-URL reference cannot be checked before it is resolved).
"""

from __future__ import annotations

from typing import Any

from alertd.config.errors import TomlPath
from alertd.config.model import Secret
from alertd.config.secrets import (
    SecretEnvironment,
    has_reference,
    reference_names,
    resolve,
    shell_reference,
)

Found = list[tuple[TomlPath, str]]

PATH: TomlPath = ("daemon", "heartbeat", "url")
_BY_REFERENCE = (
    'write the ping URL with its secret as a reference, e.g. "https://hc-ping.com/'
    '{env:ALERTD_HEARTBEAT_UUID}" or "{cred:alertd_heartbeat_url}": whoever knows '
    "the URL can report alertd healthy, and secrets never come from the config file"
)


def resolve_heartbeat(raw: dict[str, Any], where: SecretEnvironment, found: Found) -> None:
    """Replace ``[daemon.heartbeat] url`` in ``raw`` by a ``Secret``, in place (the loader's
    secrets step). A URL with no reference (the text itself is the secret: never echoed), one
    that is written but is not http(s), or a reference that cannot be resolved is a problem.
    Shapes that are wrong are left alone for structuring to report."""
    daemon = raw.get("daemon")
    beat = daemon.get("heartbeat") if isinstance(daemon, dict) else None
    if not isinstance(beat, dict) or not isinstance(beat.get("url"), str):
        return
    text: str = beat["url"]
    if not has_reference(text):
        found.append((PATH, shell_reference(text) or _BY_REFERENCE))
        beat["url"] = Secret("", source="literal")
        return
    if not text.startswith("{") and not text.lower().startswith(("http://", "https://")):
        found.append((PATH, "a ping URL starts with http:// or https://"))
    value, problems = resolve(text, where, source=",".join(reference_names(text)))
    found.extend((PATH, p) for p in problems)
    # a placeholder keeps structuring from reporting the same key twice
    beat["url"] = value if value is not None else Secret("", source=",".join(reference_names(text)))
