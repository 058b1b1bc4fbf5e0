"""TOML values -> the attrs classes of ``model``, strictly, with every error kept.

cattrs does the structuring with detailed validation, so one pass reports every bad value;
this module adds strict hooks for the scalar types (cattrs' defaults call ``str()``/``bool()``
and would turn ``enabled = "no"`` into ``True``) and turns cattrs' exception tree into
``(path, message)`` pairs.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, override

from alertd.config import model
from alertd.config.durations import DurationError, parse_duration
from alertd.config.errors import TomlPath, did_you_mean
from alertd.config.model import Duration, Secret

Hook = Callable[[Any, Any], Any]


class ValueProblem(ValueError):
    """A value of the wrong kind; the message is ready to show a person."""


def describe(value: object) -> str:
    """A value as the TOML file spells it, short, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:40] + "..."
        return f'"{text}"'
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return repr(value)


def toml_key(attribute: str) -> str:
    """A Python field name as written in TOML (``for_`` -> ``for``)."""
    return attribute.rstrip("_")


def _str(value: object, _: object) -> str:
    if not isinstance(value, str):
        raise ValueProblem(f"expected a string, got {describe(value)}")
    return value


def _int(value: object, _: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueProblem(f"expected a whole number, got {describe(value)}")
    return value


def _float(value: object, _: object) -> float:
    # the loader reads TOML floats as Decimal (exact); a float setting takes them as float
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueProblem(f"expected a number, got {describe(value)}")
    return float(value)


def _bool(value: object, _: object) -> bool:
    if not isinstance(value, bool):
        raise ValueProblem(f"expected true or false, got {describe(value)}")
    return value


def _decimal(value: object, _: object) -> Decimal:
    """Exact: the loader reads TOML floats as Decimal, digit for digit; a float (from other
    callers) goes through its shortest repr, so 0.1 is Decimal("0.1")."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueProblem(f"expected a number, got {describe(value)}")
    if isinstance(value, Decimal):
        out = value
    else:
        try:
            out = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
        except InvalidOperation:
            raise ValueProblem(f"{describe(value)} is not a number") from None
    if not out.is_finite():
        raise ValueProblem(f"{describe(value)} is not a finite number")
    return out


def _duration(value: object, _: object) -> Duration:
    return parse_duration(value)


def _secret(value: object, _: object) -> Secret:
    # The loader resolves references into Secret values before structuring; anything else
    # here is the wrong type. The value itself is never echoed: it may be a secret.
    if isinstance(value, Secret):
        return value
    raise ValueProblem("expected a string")


def _str_or_list(value: object, _: object) -> str | list[str]:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueProblem(f"expected a string or an array of strings, got {describe(value)}")


def _is_str_or_list(t: object) -> bool:
    args = set(get_args(t)) - {type(None)}
    return get_origin(t) in (Union, types.UnionType) and args == {str, list[str]}


def _optional_str_or_list(value: object, t: object) -> str | list[str] | None:
    return None if value is None else _str_or_list(value, t)


def _literal_hook(t: Any) -> Hook:
    allowed = get_args(t)

    def hook(value: object, _: object) -> object:
        if value in allowed and type(value) is type(allowed[0]):
            return value
        choices = ", ".join(describe(a) for a in allowed)
        hint = did_you_mean(value, map(str, allowed)) if isinstance(value, str) else ""
        raise ValueProblem(f"{describe(value)} is not one of {choices}{hint}")

    return hook


def _is_literal(t: object) -> bool:
    return get_origin(t) is Literal


def _is_list(t: object) -> bool:
    return get_origin(t) is list


def _is_dict(t: object) -> bool:
    return get_origin(t) is dict


class _Hooks:
    def __init__(self, converter: cattrs.Converter) -> None:
        self.c = converter

    def _items(self, items: Iterable[tuple[Any, object]], elem: Any, t: Any) -> list[Any]:
        """``(key, structured)`` for each item; every failure kept, with its index or key."""
        out, errors = [], []
        for key, item in items:
            try:
                out.append((key, self.c.structure(item, elem)))
            except Exception as exc:
                exc.add_note(IterableValidationNote(f"@ {key!r}", key, elem))
                errors.append(exc)
        if errors:
            raise IterableValidationError(f"While structuring {t!r}", errors, t)
        return out

    def list_hook(self, t: Any) -> Hook:
        (elem,) = get_args(t)

        def hook(value: object, _: object) -> list[Any]:
            if not isinstance(value, list):
                raise ValueProblem(f"expected an array, got {describe(value)}")
            return [v for _, v in self._items(enumerate(value), elem, t)]

        return hook

    def dict_hook(self, t: Any) -> Hook:
        _, elem = get_args(t)

        def hook(value: object, _: object) -> dict[str, Any]:
            if not isinstance(value, dict):
                raise ValueProblem(f"expected a table, got {describe(value)}")
            return dict(self._items(value.items(), elem, t))

        return hook

    def attrs_hook(self, cl: Any) -> Hook:
        renames = {
            a.name: override(rename=toml_key(a.name))
            for a in attrs.fields(cl)
            if toml_key(a.name) != a.name
        }
        inner = make_dict_structure_fn(
            cl,
            self.c,
            _cattrs_forbid_extra_keys=True,
            _cattrs_detailed_validation=True,
            **renames,  # type: ignore[arg-type]
        )

        def hook(value: object, t: object) -> Any:
            if not isinstance(value, dict):
                raise ValueProblem(f"expected a table, got {describe(value)}")
            return inner(value, t)

        return hook


@cache
def converter() -> cattrs.Converter:
    """The one converter for the config schema (built once: hooks are compiled)."""
    for cl in vars(model).values():
        if isinstance(cl, type) and attrs.has(cl):
            attrs.resolve_types(cl)
    c = cattrs.Converter(detailed_validation=True, forbid_extra_keys=True)
    hooks = _Hooks(c)
    c.register_structure_hook_factory(attrs.has, hooks.attrs_hook)
    c.register_structure_hook_factory(_is_list, hooks.list_hook)
    c.register_structure_hook_factory(_is_dict, hooks.dict_hook)
    c.register_structure_hook_factory(_is_literal, _literal_hook)
    c.register_structure_hook_func(
        lambda t: _is_str_or_list(t) and type(None) not in get_args(t), _str_or_list
    )
    c.register_structure_hook_func(
        lambda t: _is_str_or_list(t) and type(None) in get_args(t), _optional_str_or_list
    )
    for t, fn in (
        (str, _str),
        (int, _int),
        (float, _float),
        (bool, _bool),
        (Decimal, _decimal),
        (Duration, _duration),
        (Secret, _secret),
    ):
        c.register_structure_hook(t, fn)
    return c


def structure(value: object, t: Any) -> Any:
    """``value`` as type ``t``; cattrs' exceptions propagate (see ``problems``)."""
    return converter().structure(value, t)


def problems(exc: BaseException, path: TomlPath) -> list[tuple[TomlPath, str]]:
    """Every ``(path, message)`` in a cattrs exception tree, paths in TOML spelling."""
    out: list[tuple[TomlPath, str]] = []
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            out += problems(sub, (*path, toml_key(note.name)))
        for sub in without:
            out += problems(sub, path)
    elif isinstance(exc, IterableValidationError):
        with_notes_i, without = exc.group_exceptions()
        for sub, inote in with_notes_i:
            out += problems(sub, (*path, inote.index))
        for sub in without:
            out += problems(sub, path)
    elif isinstance(exc, ForbiddenExtraKeysError):
        known = [toml_key(a.name) for a in attrs.fields(exc.cl)]
        for key in sorted(exc.extra_fields):
            out.append(((*path, key), f'unknown key "{key}"{did_you_mean(key, known)}'))
    elif isinstance(exc, KeyError):
        out.append((path, "required key is missing"))
    elif isinstance(exc, ValueProblem | DurationError):
        out.append((path, str(exc)))
    else:
        # cattrs or attrs said something this module did not foresee; still say where
        out.append((path, f"invalid value ({type(exc).__name__}: {exc})"))
    return out
