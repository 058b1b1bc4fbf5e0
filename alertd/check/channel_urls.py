"""Channel URLs checked before the daemon runs: no secret is written into one literally, and
apprise must be able to use each one.

Invariant 5: secrets come from the environment or systemd credentials, never from the config
file. What counts as a secret in a URL is apprise's own description of each service's URL
(``apprise_privacy``): the tokens and arguments its plugins declare private, and the parts
they mask when they show themselves. A private part is written literally when its value
appears in the text as written, outside every ``{env:}``/``{cred:}`` reference; a part that
holds a reference (``tgram://123456:{env:TOKEN_TAIL}/CHAT``) or comes wholly from one
(``slack://{env:SLACK_TOKENS}/#alerts``, three tokens in one variable) is not. Two checks
ask no plugin: a password in ``USER:PASSWORD@`` of a URL no plugin reads, and a query
argument named like a credential (``?token=``, ``+Authorization=``) that the service does not
know.

A URL apprise cannot read (``telegram://`` for ``tgram://``) would otherwise pass the check and
make every alert of the channel expire as a permanent failure at run time.

Messages name only the scheme and the kind of part, never the URL: its other parts may be
secrets.
"""

from __future__ import annotations

import logging
import re
import warnings
from functools import cache
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from alertd.check.apprise_privacy import (
    PrivatePart,
    Service,
    best_template,
    declares_private,
    service_of,
)
from alertd.config.errors import did_you_mean
from alertd.config.secrets import REFERENCE, shell_reference

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31})://")
# What an unresolved reference stands for when apprise reads the URL: a plain word any token
# position accepts, and that no secret contains.
PLACEHOLDER = "alertdreference"
# What a reference leaves behind in the text searched for literal values: a character no
# URL holds, so no value is found across or beside a reference.
_GAP = "\0"
# Secrets this short could match any word of the URL by chance: they count only as a whole
# part between separators.
_SHORT = 8
_SECRET_ARG = re.compile(r"token|key|secret|pass|pwd|auth|sig", re.IGNORECASE)
_HOW = "secrets come from the environment or systemd credentials, never from the config file"


def literal_secrets(text: str, resolved: str | None = None) -> list[str]:
    """What in ``text`` (a channel URL as written, references unresolved) is a secret written
    literally; each message shows the part masked and the reference to write. ``resolved`` is
    the URL with its references resolved, when they all could be: apprise then reads the URL
    the daemon will use (a reference may stand for several parts)."""
    shell = shell_reference(text)
    if shell is not None:
        return [shell]
    bare = REFERENCE.sub(_GAP, text)
    url = resolved if resolved is not None else REFERENCE.sub(PLACEHOLDER, text)
    m = _SCHEME.match(text)
    scheme = m.group(1) if m else "SCHEME"
    found: list[str] = []
    service = read_service(url)
    if service is not None:
        literal = [p for p in service.private if any(written(v, bare) for v in p.values)]
        if literal:
            found.append(_declared(scheme, service, literal, bare))
        seen = {v for p in service.private for v in p.values}
        for name, value in service.masked:
            if value not in seen and written(value, bare):
                seen.add(value)
                found.append(
                    f"{f'the {name}' if name else 'a part'} of this {scheme}:// URL "
                    f"({service.name}) is written literally "
                    f"(apprise hides it when it shows the URL); write a {{env:NAME}} reference "
                    f"in its place instead, with the value in that variable or in a "
                    f"{{cred:NAME}} credential: {_HOW}"
                )
    found += _generic(bare, scheme, service)
    return found


def _query(query: str) -> list[tuple[str, str]]:
    """``key=value`` pairs as apprise reads them: a ``+`` stays a ``+`` (``+Header=`` sets a
    header), unlike form decoding."""
    pairs = [item.partition("=") for item in query.split("&") if item]
    return [(unquote(k), unquote(v)) for k, _, v in pairs]


def written(value: str, bare: str) -> bool:
    """Whether ``value`` appears in ``bare`` (the URL as written, references cut out), as
    typed or percent-encoded, and not as part of a reference."""
    needle = value.strip().lower()
    if not needle or PLACEHOLDER in needle:
        return False
    for hay in {bare, unquote(bare)}:
        lower = hay.lower()
        at = lower.find(needle)
        while at >= 0:
            before = hay[at - 1] if at else ""
            after = hay[at + len(needle) : at + len(needle) + 1]
            whole = not before.isalnum() and not after.isalnum()
            if _GAP not in (before, after) and (len(needle) >= _SHORT or whole):
                return True
            at = lower.find(needle, at + 1)
    return False


def _env_name(service: Service, token: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", f"{service.schema}_{token}".upper()).strip("_")


def _fill(template: str, schema: str, part: Any) -> str:
    return re.sub(
        r"\{([A-Za-z0-9_]+)\}",
        lambda m: schema if m.group(1) == "schema" else str(part(m.group(1))),
        template,
    )


def _listing(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _declared(scheme: str, service: Service, literal: list[PrivatePart], bare: str) -> str:
    """One message for the private parts of one URL written literally."""
    tokens = {p.token for p in literal if not p.argument}
    arguments = [p.token for p in literal if p.argument]
    # a URL pasted from the service (https://hooks.slack.com/...) has another shape
    like = bare if scheme.lower() == service.schema.lower() else None
    template = best_template(service.templates, sorted(tokens), like) if tokens else None
    if template is not None:
        shown = _fill(template, service.schema, lambda t: "***" if t in tokens else t.upper())
        instead = _fill(
            template,
            service.schema,
            lambda t: (
                f"{{env:{_env_name(service, t)}}}" if t in service.private_tokens else t.upper()
            ),
        )
    elif tokens:
        shown = f"{scheme}://..."
        instead = "a {env:NAME} reference in place of each"
    else:
        shown, instead = f"{scheme}://...", f"{service.schema}://..."
    if arguments:
        shown += "?" + "&".join(f"{a}=***" for a in arguments)
        instead += "?" + "&".join(f"{a}={{env:{_env_name(service, a)}}}" for a in arguments)
    many = len(literal) > 1
    return (
        f"the {_listing([p.name for p in literal])} of this {scheme}:// URL ({service.name}) "
        f"{'are' if many else 'is'} written literally ({shown}); write {instead} instead, "
        + (
            "with the values in those variables or in {cred:NAME} credentials"
            if many
            else "with the value in that variable or in a {cred:NAME} credential"
        )
        + f": {_HOW}"
    )


def _generic(bare: str, scheme: str, service: Service | None) -> list[str]:
    """The literal password and credential-named arguments apprise has not spoken for."""
    found: list[str] = []

    def literal(what: str, masked: str, instead: str) -> None:
        found.append(
            f"{what} is written literally ({masked}); write {instead} instead, with the value "
            f"in that variable or in a {{cred:NAME}} credential: {_HOW}"
        )

    try:
        parts = urlsplit(bare)
    except ValueError:  # e.g. an unbalanced "[": apprise's check reports the URL
        return found
    userinfo = parts.netloc.rpartition("@")[0]
    password = userinfo.split(":", 1)[1] if ":" in userinfo else ""
    # a plugin that reads the URL says itself whether that position is a secret (SendGrid's
    # APIKEY:FROM@DOMAIN puts half an address there)
    if password and _GAP not in password and service is None:
        literal(
            "the password in USER:PASSWORD@",
            f"{scheme}://***:***@...",
            f"{scheme}://USER:{{env:NAME}}@HOST",
        )
    known = service.known_arguments if service is not None else frozenset()
    for key, value in _query(parts.query):
        name = key.lstrip("+-:")
        if name.lower() in known or not _SECRET_ARG.search(name):
            continue
        if value.strip() and _GAP not in value:
            literal(f"the value of ?{key}=", f"{key}=***", f"{key}={{env:NAME}}")
    return found


def _quiet() -> None:
    # apprise logs parsed URLs at TRACE and DEBUG (tokens included): keep it at WARNING or
    # above whatever the caller's level, as the notifier does.
    chatty = logging.getLogger("apprise")
    chatty.setLevel(max(logging.WARNING, chatty.getEffectiveLevel()))


@cache
def _manager() -> Any:
    from apprise.manager_plugins import NotificationManager

    from alertd.notify import console  # registers console://, the demo's channel

    _ = console
    return cast(Any, NotificationManager)()


def read_service(url: str) -> Service | None:
    """``url`` as apprise reads it (``apprise_privacy.Service``), or None when no plugin
    takes it (``apprise_problem`` then says why). Parsing and building a plugin object reach
    no network (tests/config/test_channel_urls.py pins this down with an audit hook)."""
    import apprise
    from apprise.plugins import url_to_dict

    _quiet()
    try:
        with warnings.catch_warnings():
            # apprise's first plugin load warns of imghdr (deprecated since Python 3.11); a
            # warning made an error (pytest's filterwarnings) must not hide the URL's secrets
            warnings.simplefilter("ignore", DeprecationWarning)
            results = cast(Any, url_to_dict)(url)
            if not isinstance(results, dict):
                return None
            plugin = _manager()[str(results.get("schema", ""))]
    except Exception:  # apprise could not read it: not ours to explain here
        return None
    if declares_private(plugin):
        return service_of(results, plugin)
    try:
        asset = apprise.AppriseAsset(storage_mode="memory")
        instance: Any = apprise.Apprise.instantiate(url, asset=asset)
        if instance is None:
            return service_of(results, plugin)
        shown, hidden = str(instance.url(privacy=False)), str(instance.url(privacy=True))
    except Exception:  # a plugin that cannot build or print itself says nothing more
        return service_of(results, plugin)
    return service_of(results, plugin, shown, hidden)


@cache
def _schemes() -> frozenset[str]:
    """Every scheme apprise knows, alertd's console:// included."""
    return frozenset(str(s) for s in _manager().schemas())


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
