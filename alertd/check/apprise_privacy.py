"""Which parts of an apprise URL are private, in apprise's own words.

Every apprise plugin describes its URL: ``templates`` (``"{schema}://{token_a}/{token_b}"``)
and, for each token and query argument, a spec in ``template_tokens``/``template_args`` with
``"private": True`` for credentials (and ``map_to``, the constructor argument the parsed
value lands in, and often a ``regex`` the value must match). ``parse_url`` turns a URL into
those constructor arguments without checking them. A few plugins declare no credential
private, but still mask one when they show themselves (``url(privacy=True)``); for those,
that masking is asked instead. So the parts found here are the ones apprise itself treats
as secrets, for every service it ships, with no list of URL shapes kept in alertd.

This module reads plugin classes and what apprise made of a URL; ``channel_urls`` (the one
check module that imports apprise) asks apprise and passes the answers in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote

import attrs

# apprise is typed loosely; everything taken from it goes through Any.
_Plugin = Any


@attrs.frozen(kw_only=True)
class PrivatePart:
    """One credential apprise declares in a URL: its token (``"token_a"``), its name as
    apprise shows it (``"Token A"``), whether it is a query argument, and the values the URL
    gave it."""

    token: str
    name: str
    argument: bool
    values: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Service:
    """A URL as apprise reads it: the plugin's schema (``slack`` also for a pasted
    ``https://hooks.slack.com/...``), its service name, its private parts with their values,
    and the values it masks when it prints itself."""

    schema: str
    name: str
    templates: tuple[str, ...]
    private: tuple[PrivatePart, ...]
    masked: tuple[tuple[str, str], ...]  # (what apprise calls it or "", value)
    private_tokens: frozenset[str]  # every token it declares private, given or not
    private_arguments: frozenset[str]  # the constructor arguments those tokens fill
    known_arguments: frozenset[str]  # the query arguments it knows


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        if value.strip():
            yield value.strip()
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _strings(item)


def _matches(spec: dict[str, Any], value: str) -> bool:
    """Whether ``value`` has the shape apprise requires of the token (True without one)."""
    regex = spec.get("regex")
    if not regex:
        return True
    pattern, flags = (regex, "") if isinstance(regex, str) else (regex[0], regex[1])
    try:
        return re.search(pattern, value, re.IGNORECASE if "i" in flags else 0) is not None
    except (re.error, TypeError):
        return True


def _specs(plugin: _Plugin) -> Iterator[tuple[str, dict[str, Any], bool]]:
    for table, argument in (("template_tokens", False), ("template_args", True)):
        specs = getattr(plugin, table, None)
        if isinstance(specs, dict):
            for token, spec in specs.items():
                if isinstance(spec, dict):
                    yield str(token), spec, argument


def private_tokens(plugin: _Plugin) -> dict[str, tuple[str, dict[str, Any], bool]]:
    """Constructor argument -> (token, spec, is a query argument), for every token or
    argument the plugin declares private. Two tokens may fill one argument (Rocket.Chat's
    password and token): the one its URL templates name comes first."""
    named = " ".join(str(t) for t in getattr(plugin, "templates", ()))
    out: dict[str, tuple[str, dict[str, Any], bool]] = {}
    for token, spec, argument in _specs(plugin):
        if not spec.get("private"):
            continue
        kwarg = str(spec.get("map_to", token))
        if kwarg not in out or (f"{{{token}}}" in named and f"{{{out[kwarg][0]}}}" not in named):
            out[kwarg] = (token, spec, argument)
    return out


def _name(spec: dict[str, Any], token: str) -> str:
    name = spec.get("name")
    return str(name) if name else token.replace("_", " ")


def _masked(
    shown: str, hidden: str, results: dict[str, Any], plugin: _Plugin
) -> tuple[tuple[str, str], ...]:
    """The values apprise hides when it shows the URL (``hidden`` is ``url(privacy=True)``,
    ``shown`` the same without privacy), each with the name of the token it came from where
    one is known."""
    split = re.compile(r"([/@:?&=#,])")
    full, masked = split.split(shown), split.split(hidden)
    if len(full) != len(masked):
        return ()
    names: dict[str, str] = {}
    for token, spec, _ in _specs(plugin):
        if spec.get("name"):  # not an alias (``?token=`` for the token)
            names.setdefault(str(spec.get("map_to", token)), _name(spec, token))
    out: list[tuple[str, str]] = []
    for quoted, mask in zip(full, masked, strict=True):
        if quoted == mask or not quoted:
            continue
        value = unquote(quoted)
        holders = [k for k, v in results.items() if value in set(_strings(v))]
        name = next((names[k] for k in holders if k in names), "")
        out.append((name, value))
    return tuple(out)


def declares_private(plugin: _Plugin) -> bool:
    """Whether the plugin declares any token or argument private."""
    return bool(private_tokens(plugin))


def service_of(
    results: dict[str, Any], plugin: _Plugin, shown: str | None = None, hidden: str | None = None
) -> Service:
    """What apprise's description of ``plugin`` says about a URL it parsed into ``results``;
    ``shown``/``hidden``: the plugin object's ``url(privacy=False/True)``, asked only of a
    plugin that declares nothing private (None: not asked, or it could not be built)."""
    schema = str(results.get("schema", ""))
    parts: list[PrivatePart] = []
    declared = private_tokens(plugin)
    for kwarg, (token, spec, argument) in declared.items():
        values = tuple(v for v in _strings(results.get(kwarg)) if _matches(spec, v))
        if values:
            parts.append(
                PrivatePart(token=token, name=_name(spec, token), argument=argument, values=values)
            )
    known = {t for t, _, argument in _specs(plugin) if argument}
    return Service(
        schema=schema,
        name=str(getattr(plugin, "service_name", schema)),
        templates=tuple(str(t) for t in getattr(plugin, "templates", ())),
        private=tuple(parts),
        # a plugin that declares its credentials also masks other parts (user names, phone
        # numbers, device ids) when it shows itself: only the declaration counts for it
        masked=(
            _masked(shown, hidden, results, plugin)
            if not declared and shown is not None and hidden is not None
            else ()
        ),
        private_tokens=frozenset(t for t, spec, _ in _specs(plugin) if spec.get("private")),
        private_arguments=frozenset(declared),
        known_arguments=frozenset(known),
    )


def _separators(text: str) -> str:
    return "".join(re.findall(r"[/@:]", text.partition("://")[2].partition("?")[0].rstrip("/")))


def best_template(
    templates: Iterable[str], tokens: Iterable[str], like: str | None = None
) -> str | None:
    """The URL template that names every one of ``tokens`` and is closest in shape to the
    URL ``like`` (the same separators), else the shortest; None when none names them all."""
    wanted = ["{" + t + "}" for t in tokens]
    fitting = [t for t in templates if all(w in t for w in wanted)]
    if not fitting:
        return None
    shape = _separators(like) if like is not None else ""

    def distance(template: str) -> tuple[int, int]:
        if like is None:
            return (0, 0)
        own = _separators(template)
        return (own != shape, abs(len(own) - len(shape)))

    return min(fitting, key=lambda t: (*distance(t), t.count("{"), len(t)))
