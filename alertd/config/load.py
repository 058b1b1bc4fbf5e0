"""Read the TOML file into a ``Config``, or say everything that is wrong with it at once.

Steps: tomli parses (a syntax error stops here, with its line and column); secret references
are resolved into ``Secret`` values; each section is structured with cattrs (every bad value
kept, see ``structure``); cross references are checked (``validate``), then whatever the
``StageChecks`` add (``alertd.check`` passes the checks that need other stages: channel URLs
against apprise, login templates, rule expressions and templates against the engine). Every
problem gets the line its key is written on (``locate``).

This package is the schema and its parsing only: it imports no stage.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable
from typing import Any, get_args, get_origin

import attrs

from alertd.config import validate
from alertd.config.database import resolve_database
from alertd.config.errors import ConfigError, Problem, TomlPath, did_you_mean, format_path
from alertd.config.heartbeat import resolve_heartbeat
from alertd.config.locate import Locator
from alertd.config.model import (
    AccountSettings,
    ChannelSettings,
    Config,
    DaemonSettings,
    DispatchSettings,
    RuleSettings,
    Secret,
)
from alertd.config.reading import parse_toml, read_text
from alertd.config.secrets import (
    SecretEnvironment,
    has_reference,
    reference_names,
    resolve,
    shell_name,
    shell_reference,
)
from alertd.config.structure import problems as cattrs_problems
from alertd.config.structure import structure
from alertd.config.symbols import check_symbols

Found = list[tuple[TomlPath, str]]


def _no_literal_secrets(text: str, resolved: str | None) -> list[str]:
    return []


def _no_url_problem(url: str) -> str | None:
    return None


def _no_account_checks(accounts: list[tuple[int, AccountSettings]], found: Found) -> None:
    return None


def _no_rule_checks(
    rules: list[tuple[int, RuleSettings]], timezone: str, found: Found, refused: set[TomlPath]
) -> None:
    return None


@attrs.frozen(kw_only=True)
class StageChecks:
    """Checks that belong to other stages, run while a file loads so that every problem is
    reported at once with its line: ``literal_secrets(url, resolved)`` names the secrets
    written into a channel URL (``resolved``: the URL with its references resolved, None when
    one cannot be); ``url_problem(url)`` says why the notifier cannot use one; ``accounts`` and
    ``rules`` add ``(toml path, message)`` problems to ``found`` (``refused`` holds the paths
    whose values were already refused)."""

    literal_secrets: Callable[[str, str | None], list[str]] = _no_literal_secrets
    url_problem: Callable[[str], str | None] = _no_url_problem
    accounts: Callable[[list[tuple[int, AccountSettings]], Found], None] = _no_account_checks
    rules: Callable[[list[tuple[int, RuleSettings]], str, Found, set[TomlPath]], None] = (
        _no_rule_checks
    )


SCHEMA_ONLY = StageChecks()


def load_config(
    path: str | os.PathLike[str],
    *,
    secrets: SecretEnvironment | None = None,
    checks: StageChecks = SCHEMA_ONLY,
) -> Config:
    """The configuration in ``path``; ``ConfigError`` listing every problem otherwise."""
    config, problems = read_config(path, secrets, checks=checks)
    if config is None or problems:
        raise ConfigError(problems)
    return config


def check_config(
    path: str | os.PathLike[str],
    *,
    secrets: SecretEnvironment | None = None,
    checks: StageChecks = SCHEMA_ONLY,
) -> list[Problem]:
    """Every problem in the file at ``path``, in file order; empty when it is valid."""
    return read_config(path, secrets, checks=checks)[1]


def parse_config(
    text: str,
    *,
    file: str = "config.toml",
    secrets: SecretEnvironment | None = None,
    checks: StageChecks = SCHEMA_ONLY,
) -> tuple[Config | None, list[Problem]]:
    """``text`` as a ``Config`` and its problems; the config is None unless there are none.

    Never raises: whatever the text holds, and whatever goes wrong while checking it, the
    answer is a list of problems (an unforeseen error is one problem naming its type only,
    as its text could quote a secret)."""
    try:
        where = secrets if secrets is not None else SecretEnvironment.from_process()
        raw = parse_toml(text, file)
        if isinstance(raw, Problem):
            return None, [raw]
        found: Found = []
        config = _build(raw, where, found, checks)
        locator = Locator(text)
        problems = [
            Problem(file=file, path=format_path(p), line=locator.line(p), message=m)
            for p, m in found
        ]
    except RecursionError:
        return None, [Problem(file=file, path="", line=None, message=_too_deep())]
    except Exception as exc:
        message = (
            f"cannot be checked: alertd failed with {type(exc).__name__} while reading it "
            "(a bug: please report it with the file, secrets removed)"
        )
        return None, [Problem(file=file, path="", line=None, message=message)]
    problems.sort(key=lambda p: (p.line is None, p.line or 0))
    return (config if not problems else None), problems


def _too_deep() -> str:
    return "is nested too deeply to check (tables, arrays or values many levels down)"


def read_config(
    path: str | os.PathLike[str],
    secrets: SecretEnvironment | None = None,
    *,
    checks: StageChecks = SCHEMA_ONLY,
) -> tuple[Config | None, list[Problem]]:
    """The config in ``path`` and its problems; the config is None unless there are none.
    Never raises (see ``parse_config``; reading is ``reading.read_text``)."""
    file = os.fspath(path)
    text = read_text(file)
    if isinstance(text, Problem):
        return None, [text]
    return parse_config(text, file=file, secrets=secrets, checks=checks)


# -- secrets ----------------------------------------------------------------------------------

# Keys whose values are secrets in their own right: they must be references, so a key pasted
# into the TOML file is refused (invariant 5) rather than quietly used.
SECRET_ONLY_KEYS = ("api_key", "api_secret")


def _resolve_secrets(
    raw: dict[str, Any],
    where: SecretEnvironment,
    found: Found,
    literal_secrets: Callable[[str, str | None], list[str]],
) -> None:
    """Replace secret-bearing strings in ``raw`` by ``Secret`` values, in place.

    Shapes that are wrong are left alone for structuring to report.
    """

    def secret(text: str, path: TomlPath, source: str) -> Secret:
        value, problems = resolve(text, where, source=source)
        if path[0] == "channels":
            literal = literal_secrets(text, value.reveal() if value is not None else None)
            if literal:
                found.extend((path, p) for p in literal)
                return Secret("", source=source)  # never used
        found.extend((path, p) for p in problems)
        # a placeholder keeps structuring from reporting the same key twice
        return value if value is not None else Secret("", source=source)

    channels = raw.get("channels")
    if isinstance(channels, dict):
        for name, value in channels.items():
            source = f"channels.{name}"
            if isinstance(value, str):
                channels[name] = {"urls": [secret(value, ("channels", name), source)]}
            elif isinstance(value, dict) and isinstance(value.get("urls"), list):
                value["urls"] = [
                    secret(u, ("channels", name, "urls", i), source) if isinstance(u, str) else u
                    for i, u in enumerate(value["urls"])
                ]

    accounts = raw.get("accounts")
    for i, account in enumerate(accounts if isinstance(accounts, list) else []):
        auth = account.get("auth") if isinstance(account, dict) else None
        if not isinstance(auth, dict):
            continue
        base: TomlPath = ("accounts", i, "auth")
        for key in SECRET_ONLY_KEYS:
            text = auth.get(key)
            if not isinstance(text, str):
                continue
            if not has_reference(text):
                found.append(
                    (
                        (*base, key),
                        shell_reference(text)
                        or 'write a reference such as "{env:NAME}" or "{cred:NAME}" here, '
                        "not the secret itself: secrets come from the environment or systemd "
                        "credentials, never from the config file",
                    )
                )
                auth[key] = Secret("", source="literal")
                continue
            auth[key] = secret(text, (*base, key), ",".join(reference_names(text)))
        # Header values and the login frame are templates that sources renders on every
        # connection with the revealed api_key/api_secret. A reference resolved here would
        # put the secret into plain template text (and any repr of the config), so they are
        # refused, pointing at the way that keeps the secret wrapped.
        texts: list[tuple[TomlPath, object]] = [((*base, "login_frame"), auth.get("login_frame"))]
        headers = auth.get("headers")
        if isinstance(headers, dict):
            texts += [((*base, "headers", k), v) for k, v in headers.items()]
        for path, text in texts:
            if not isinstance(text, str):
                continue
            shell = shell_reference(text, braced_only=True)
            if has_reference(text) or shell is not None:
                ref = reference_names(text)[0] if shell is None else shell_name(text)
                found.append(
                    (
                        path,
                        ("" if shell is None else f"{shell.split(':')[0]}; ")
                        + "secret references are resolved only in api_key and api_secret: set "
                        f'api_key = "{{{ref}}}" and write {{{{ api_key }}}} here',
                    )
                )


# -- structuring, section by section ----------------------------------------------------------


def _piece(value: object, t: Any, path: TomlPath, found: Found) -> Any:
    """``value`` structured as ``t``, or its problems added to ``found``.

    On problems, the keys at fault are dropped and the rest structured again, quietly: the
    result is used only for the cross-reference checks, so that a rule with a bad duration
    is still told about its misspelt channel. None when even that fails.
    """
    try:
        return structure(value, t)
    except Exception as exc:  # cattrs raises ExceptionGroups of anything a hook raised
        problems = cattrs_problems(exc, path)
    found.extend(problems)
    bad = {p[len(path)] for p, _ in problems if len(p) > len(path)}
    if not isinstance(value, dict) or not bad:
        return None
    try:
        return structure({k: v for k, v in value.items() if k not in bad}, t)
    except Exception:
        return None


_SECTIONS: dict[str, type] = {"daemon": DaemonSettings, "dispatch": DispatchSettings}


def _build(
    raw: dict[str, Any], where: SecretEnvironment, found: Found, checks: StageChecks
) -> Config | None:
    channels_raw = raw.get("channels")
    # channels written as NAME = "url": their URL problems go on that key
    short = (
        {k for k, v in channels_raw.items() if isinstance(v, str)}
        if isinstance(channels_raw, dict)
        else set()
    )
    raw = copy.deepcopy(raw)
    _resolve_secrets(raw, where, found, checks.literal_secrets)
    resolve_database(raw, where, found)  # [daemon] database: its password by reference
    resolve_heartbeat(raw, where, found)  # [daemon.heartbeat] url
    fields = {a.name: a for a in attrs.fields(attrs.resolve_types(Config))}
    for key, value in raw.items():
        if key in fields:
            continue
        home = [n for n in ("daemon", "dispatch") if key in attrs.fields_dict(_SECTIONS[n])]
        if home and not isinstance(value, dict | list):
            # a key written above the first [table] header lands at the top level
            found.append(((key,), f'"{key}" belongs in [{home[0]}]: move it below that header'))
        else:
            found.append(((key,), f'unknown section "{key}"{did_you_mean(key, fields)}'))

    sections: dict[str, Any] = {}
    # Lists and tables of settings are structured one element at a time, so that the
    # cross-reference checks below still see every element that is fine.
    elements: dict[str, list[tuple[Any, Any]]] = {}
    for name, field in fields.items():
        if name not in raw:
            continue
        value, t = raw[name], field.type
        origin, args = get_origin(t), get_args(t)
        if origin is list and isinstance(value, list):
            elements[name] = [
                (i, _piece(v, args[0], (name, i), found)) for i, v in enumerate(value)
            ]
            sections[name] = [v for _, v in elements[name]]
        elif origin is dict and isinstance(value, dict):
            elements[name] = [(k, _piece(v, args[1], (name, k), found)) for k, v in value.items()]
            sections[name] = {k: v for k, v in elements[name]}
        else:
            if origin is list and isinstance(value, dict):
                found.append(((name,), f"write each entry as [[{name}]], not [{name}]"))
                continue
            sections[name] = _piece(value, t, (name,), found)

    accounts = [(i, a) for i, a in elements.get("accounts", []) if isinstance(a, AccountSettings)]
    channels = {k: c for k, c in elements.get("channels", []) if isinstance(c, ChannelSettings)}
    rules = [(i, r) for i, r in elements.get("rules", []) if isinstance(r, RuleSettings)]
    daemon = sections.get("daemon", DaemonSettings())
    dispatch = sections.get("dispatch", DispatchSettings())

    # Names others refer to come from the raw file, so an account with a bad field elsewhere
    # does not also produce "no account named ..." in every rule.
    account_names = _raw_names(raw.get("accounts"))
    rule_names = _raw_names(raw.get("rules"))
    channel_names = list(raw["channels"]) if isinstance(raw.get("channels"), dict) else []

    # Checks below see pieces with their bad keys dropped (and unresolved secrets as empty
    # placeholders); what they would say about those keys ("needs below", "not a URL")
    # repeats a problem already reported, so it is left out.
    structural = {path for path, _ in found}
    checked: Found = []
    if isinstance(daemon, DaemonSettings):
        validate.check_daemon(daemon, checked)
    validate.check_names("accounts", raw.get("accounts"), checked)
    validate.check_names("rules", raw.get("rules"), checked)
    validate.check_accounts(accounts, checked)
    check_symbols(accounts, rules, checked)
    checks.accounts(accounts, checked)
    validate.check_channels(channels, checked, short=short, url_problem=checks.url_problem)
    if isinstance(dispatch, DispatchSettings):
        validate.check_dispatch(dispatch, channel_names, rule_names, checked)
    validate.check_rules(
        rules,
        accounts=account_names,
        channels=channel_names,
        default_channel=dispatch.default_channel if isinstance(dispatch, DispatchSettings) else "",
        out=checked,
    )
    found.extend(
        (p, m)
        for p, m in checked
        if not _under(p, structural) and not follows_refused(p, m, structural)
    )
    timezone = daemon.timezone if isinstance(daemon, DaemonSettings) else "UTC"
    checks.rules(rules, timezone, found, structural)

    if found:
        return None
    return Config(**sections)


def _under(path: TomlPath, paths: set[TomlPath]) -> bool:
    return any(path[:n] in paths for n in range(1, len(path) + 1))


# "needs below", "must be at least below (5)", "is less than retry_initial": the key a
# problem depends on
_DEPENDS_ON = re.compile(r'\b(?:needs|than|at least|at most)\s+"?([A-Za-z_]+)')


def follows_refused(path: TomlPath, message: str, refused: set[TomlPath]) -> bool:
    """Whether the problem at ``path`` is about a sibling key whose value was refused: with
    that value dropped the check saw the default ("resolve_above needs below" after
    below = "1,000"), so it would only mislead."""
    parent = path[:-1]
    return any((*parent, key) in refused for key in _DEPENDS_ON.findall(message))


def _raw_names(items: object) -> list[str]:
    if not isinstance(items, list):
        return []
    return [i["name"] for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)]
