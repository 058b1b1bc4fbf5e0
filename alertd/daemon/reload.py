"""Reload (SIGHUP): read, check and compile the new config off to the side, then switch the
running stages to it (``RunningStages``). Whatever goes wrong on the way (a problem in the
file, a TOML nested too deeply for the parser, a bug in a stage's update), the caller gets one
line saying why, and the stages are put back on the config they had.

``failure_reason`` is also how the commands (``run``, ``replay``, ``demo``) say why a config
could not be read at all, so a file that crashes the parser is one line everywhere.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol

import attrs
import trio

from alertd.check import read_config
from alertd.config.errors import ConfigError
from alertd.config.model import AccountSettings, Config
from alertd.engine import CompiledRule, Engine, RuleCompileError, compile_rules

log = logging.getLogger(__name__)

TRACEBACK_FRAMES = 8  # innermost frames of an unexpected error kept (at debug level only)


class ReloadError(Exception):
    """The new config was not applied; ``str()`` is the one-line reason."""


@attrs.frozen(kw_only=True)
class NewConfig:
    """A config that passed every check, with its rules compiled."""

    config: Config
    rules: Sequence[CompiledRule]


def failure_reason(exc: BaseException, path: str | os.PathLike[str] | None = None) -> str:
    """One line a person can act on, for anything raised while reading, checking or applying
    a config: the problems of a ``ConfigError`` joined by ``; ``, else the error's own words
    (``RecursionError`` included: tomli says how deep is too deep), prefixed with the file.
    The traceback of an error alertd did not expect is logged at debug level, cut to its
    innermost frames (a RecursionError's would be a thousand)."""
    if isinstance(exc, ConfigError):
        return "; ".join(str(p) for p in exc.problems) or "the config is not valid"
    if isinstance(exc, RuleCompileError | ReloadError):
        text = str(exc)
    else:
        detail = " ".join(str(exc).split()) or "no details"
        text = f"{type(exc).__name__}: {detail}"
        if not isinstance(exc, RecursionError | OSError | UnicodeError):
            log.debug(
                "config.unexpected_error (innermost frames)\n%s",
                "".join(traceback.format_exception(exc, limit=-TRACEBACK_FRAMES)),
            )
    return f"{os.fspath(path)}: {text}" if path is not None else text


def read_new_config(path: str | os.PathLike[str]) -> NewConfig:
    """The config at ``path`` checked and compiled. Raises ``ConfigError`` or
    ``RuleCompileError`` for a file with problems, and anything else the parser raises on a
    file it cannot take (blocking: call it in a worker thread)."""
    config, problems = read_config(path)
    if config is None or problems:
        raise ConfigError(problems)
    rules = compile_rules(config.rules, timezone=config.daemon.timezone)
    return NewConfig(config=config, rules=rules)


async def read_new_config_in_thread(path: str | os.PathLike[str]) -> NewConfig:
    return await trio.to_thread.run_sync(read_new_config, path)


class Updatable(Protocol):
    def update_config(self, config: Config) -> None: ...


class UpdatableIntake(Protocol):
    async def update(self, accounts: Sequence[AccountSettings]) -> None: ...


@attrs.define(eq=False)
class RunningStages:
    """The running stages a reload switches to a new config (None: not built yet)."""

    engine: Engine | None = None
    dispatcher: Updatable | None = None
    delivery: Updatable | None = None
    intake: UpdatableIntake | None = None

    def _updates(
        self, config: Config, rules: Sequence[CompiledRule]
    ) -> list[tuple[str, Callable[[], None]]]:
        """Each stage's switch to ``config``, by name, in the order they are applied."""
        accounts = [a.name for a in config.accounts if a.enabled]
        updates: list[tuple[str, Callable[[], None]]] = []
        if self.engine is not None:
            updates.append(("engine", partial(self.engine.reload, rules, accounts=accounts)))
        if self.dispatcher is not None:
            updates.append(("dispatch", partial(self.dispatcher.update_config, config)))
        if self.delivery is not None:
            updates.append(("delivery", partial(self.delivery.update_config, config)))
        return updates

    async def switch(self, new: NewConfig) -> None:
        """Every stage onto ``new``, the intake (reconnecting changed accounts) last; the
        first failure is raised as it is, the stages before it already switched."""
        for _, update in self._updates(new.config, new.rules):
            update()
        if self.intake is not None:
            await self.intake.update(new.config.accounts)

    async def restore(self, old: NewConfig) -> None:
        """Every stage back onto ``old`` after a failed ``switch``, each on its own (one that
        fails again must not leave the others on the half-applied config); failures are
        logged, one line each."""
        for name, update in self._updates(old.config, old.rules):
            try:
                update()
            except Exception as exc:
                log.error("reload.restore_failed stage=%s: %s", name, failure_reason(exc))
        if self.intake is not None:
            try:
                await self.intake.update(old.config.accounts)
            except Exception as exc:
                log.error("reload.restore_failed stage=sources: %s", failure_reason(exc))
