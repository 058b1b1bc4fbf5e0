"""The checks of a config that need other stages, run while it loads (``StageChecks``): a
secret written literally into a channel URL (apprise knows each service's URL), login
templates that sources cannot render, rule expressions and templates the engine cannot
compile or that name fields the matched kinds lack. Every loader of a config that will run
(``alertd run``, reload, ``check``, ``replay``, ``demo``, ``test-notify``) goes through
here, so a bad template fails at load, never at 3 a.m."""

from __future__ import annotations

import os
import zoneinfo

from alertd.check.channel_urls import apprise_problem, literal_secrets
from alertd.config.errors import Problem, TomlPath
from alertd.config.load import Found, StageChecks, follows_refused
from alertd.config.load import check_config as _check_config
from alertd.config.load import load_config as _load_config
from alertd.config.load import parse_config as _parse_config
from alertd.config.load import read_config as _read_config
from alertd.config.model import AccountSettings, Config, RuleSettings
from alertd.config.secrets import SecretEnvironment
from alertd.config.structure import toml_key


def _auth_checks(accounts: list[tuple[int, AccountSettings]], found: Found) -> None:
    """The sources stage compiles and test-renders each account's login templates; what the
    sandbox would refuse in them is found first, in every branch (a test render runs one)."""
    from alertd.sources.auth import check_auth  # lazily: jinja2 only when there are accounts

    for i, account in accounts:
        refused = _auth_sandbox(i, account, found)
        for message in check_auth(account.name, account.exchange, account.auth):
            if not (refused and message.endswith("(SecurityError)")):  # said above, in full
                found.append((("accounts", i, "auth"), message))


def _auth_sandbox(i: int, account: AccountSettings, found: Found) -> bool:
    """Whether a login template of ``account`` reaches for what the sandbox refuses (each
    one added to ``found`` on its own key)."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    from alertd.engine.expressions import sandbox_refusal

    env = SandboxedEnvironment()
    base: TomlPath = ("accounts", i, "auth")
    texts = [((*base, "headers", name), text) for name, text in account.auth.headers.items()]
    if account.auth.login_frame is not None:
        texts.append(((*base, "login_frame"), account.auth.login_frame))
    refused = False
    for path, text in texts:
        try:
            refusal = sandbox_refusal(env.parse(text))
        except jinja2.TemplateSyntaxError:
            continue  # check_auth says what is wrong with it
        if refusal is not None:
            found.append((path, f"template {refusal}"))
            refused = True
    return refused


def _engine_checks(
    rules: list[tuple[int, RuleSettings]], timezone: str, found: Found, refused: set[TomlPath]
) -> None:
    """The engine compiles every expression and template and checks the names they use."""
    if not rules:
        return
    from alertd.engine.compile import check_rules  # lazily: the engine only when there are rules

    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        timezone = "UTC"  # already reported; check the templates anyway
    indices = [i for i, _ in rules]
    already = {path for path, _ in found}
    # a rule whose kinds are wrong sees the wrong fields: its template problems would mislead
    skip = {("rules", i) for i, _ in rules if ("rules", i, "on") in already}
    for engine_path, message in check_rules([r for _, r in rules], timezone=timezone):
        path = tuple(toml_key(p) if isinstance(p, str) else p for p in engine_path)
        if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
            path = ("rules", indices[path[1]], *path[2:])
        # one problem per key is enough to fix it; the engine repeats some checks made here
        if (
            path not in already
            and path[:2] not in skip
            and not follows_refused(path, message, refused)
        ):
            found.append((path, message))
            already.add(path)


STAGE_CHECKS = StageChecks(
    literal_secrets=literal_secrets,
    url_problem=apprise_problem,
    accounts=_auth_checks,
    rules=_engine_checks,
)


def load_config(
    path: str | os.PathLike[str], *, secrets: SecretEnvironment | None = None
) -> Config:
    """The configuration in ``path``, every stage's checks passed; ``ConfigError`` otherwise."""
    return _load_config(path, secrets=secrets, checks=STAGE_CHECKS)


def read_config(
    path: str | os.PathLike[str], secrets: SecretEnvironment | None = None
) -> tuple[Config | None, list[Problem]]:
    """The config in ``path`` and its problems; the config is None unless there are none."""
    return _read_config(path, secrets, checks=STAGE_CHECKS)


def parse_config(
    text: str, *, file: str = "config.toml", secrets: SecretEnvironment | None = None
) -> tuple[Config | None, list[Problem]]:
    """``text`` as a ``Config`` and its problems; the config is None unless there are none."""
    return _parse_config(text, file=file, secrets=secrets, checks=STAGE_CHECKS)


def check_config(
    path: str | os.PathLike[str], *, secrets: SecretEnvironment | None = None
) -> list[Problem]:
    """Every problem in the file at ``path``, in file order; empty when it is valid."""
    return _check_config(path, secrets=secrets, checks=STAGE_CHECKS)
