"""Typed dataclass configs on the command line: one ``--option`` per field, its help the field's docstring.

Every trainer keeps its knobs in dataclasses with a docstring under each field (the house
style); this module turns such a class into argparse options so ``--help`` explains every
knob, applies the options given over a preset, and builds configs from saved dicts
strictly (an unknown key is an error that names the valid ones — never silently ignored).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import json
import math
import textwrap
import types
import typing
from typing import Any, TypeVar

from dmo_ros.help_text import plain_text

T = TypeVar("T")


class ConfigError(ValueError):
    """A config dict or option that does not fit its dataclass (unknown key, wrong type)."""


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of dataclass ``cls`` (and its dataclass bases)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):  # defined interactively: no docs, options still work
            continue
        body = ast.parse(source).body[0].body
        for statement, following in zip(body, body[1:], strict=False):
            if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                    and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):
                docs[statement.target.id] = " ".join(following.value.value.split())
    return docs


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _scalar_parser(kind: Any):
    if kind is bool:
        return _parse_bool
    if kind is float:
        return finite_float
    if kind in (int, str):
        return kind
    return None


def finite_float(text: str) -> float:
    """An argparse ``type`` for a number: nan and inf are refused (they pass every ``< 0`` check, poison training)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def field_value(cls: type, name: str, text: str) -> Any:
    """``text`` read as the value of field ``name`` of dataclass ``cls`` by the field's type (``FIELD=VALUE``
    overrides): int, finite float, bool (true/false), str, ``None`` (none/null) for an optional field, a list or
    tuple as JSON (``[0.9, 0.99]``) or as space/comma-separated numbers. An unknown field or a value of the
    wrong type is a :class:`ConfigError` that names the field and what it takes."""
    hints = _field_types(cls)
    valid = sorted(f.name for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_"))
    if name not in valid:
        raise ConfigError(f"unknown {cls.__name__} field {name!r}; valid fields: {', '.join(valid)}")
    kind = hints[name]
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if text.strip().lower() in ("none", "null"):
            return None
        if len(non_none) == 1:
            kind = non_none[0]
            origin, args = typing.get_origin(kind), typing.get_args(kind)
    try:
        if origin in (list, tuple) and args:
            try:
                items = json.loads(text)
            except json.JSONDecodeError:
                items = text.replace(",", " ").split()
            if not isinstance(items, list):
                items = [items]
            parse = _scalar_parser(args[0])
            if parse is None:
                raise argparse.ArgumentTypeError(f"cannot read {kind} from the command line")
            values = [parse(str(item)) for item in items]
            return tuple(values) if origin is tuple else values
        parse = _scalar_parser(kind)
        if parse is None:
            raise argparse.ArgumentTypeError(f"cannot read {kind} from the command line")
        if kind is str and len(text) >= 2 and text[0] == text[-1] == '"':
            return json.loads(text)  # a JSON string literal, as the values of --set once were read
        return parse(text)
    except (argparse.ArgumentTypeError, ValueError) as error:
        what = getattr(kind, "__name__", str(kind))
        raise ConfigError(f"{cls.__name__} field {name!r} takes {what}, got {text!r} ({error})") from None


def _default_text(field: dataclasses.Field) -> str:
    """A field's own default as help text shows it (%% escaped for argparse)."""
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "required"
    text = " ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    return text.replace("%", "%%")


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type, *, title: str | None = None,
                          skip: tuple[str, ...] = (), presets: bool = True) -> list[str]:
    """Add ``--field-name`` for each scalar or list field of ``cls``; returns the field names added.

    Options default to ``None`` (= keep the preset's value); lists take several values
    (``--channels 32 32 64``); booleans take true/false. ``presets=False`` for a command without presets: the
    help then states each field's own default instead of "from the preset".
    """
    group = parser.add_argument_group(title or cls.__name__)
    docs, hints, added = field_docs(cls), _field_types(cls), []
    for field in dataclasses.fields(cls):
        if field.name in skip or field.name.startswith("_"):
            continue
        kind = hints[field.name]
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        nargs = None
        if origin in (list, tuple) and args:
            nargs, kind = "+", args[0]
        elif origin in (typing.Union, types.UnionType):
            non_none = [a for a in args if a is not type(None)]
            kind = non_none[0] if len(non_none) == 1 else None
        parse = _scalar_parser(kind)
        if parse is None:
            continue
        flag = "--" + field.name.replace("_", "-")
        metavar = {int: "N", float: "X", str: "TEXT", bool: "BOOL"}.get(kind)
        # argparse %-formats help text: a docstring's "1 %" must reach it as "1 %%".
        doc = plain_text(docs.get(field.name, "")).replace("%", "%%")
        default = "from the preset" if presets else _default_text(field)
        group.add_argument(flag, dest=field.name, type=parse, nargs=nargs, default=None, metavar=metavar,
                           help=(doc + f" (default: {default})").strip())
        added.append(field.name)
    return added


def given_options(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """The options of ``names`` that were given on the command line (not left at ``None``)."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def apply_options(config: T, args: argparse.Namespace, names: list[str]) -> T:
    """``config`` with every option of ``names`` that was given on the command line replaced."""
    given = given_options(args, names)
    if not given:
        return config
    try:
        return dataclasses.replace(config, **given)
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error)) from error


def config_from_dict(cls: type[T], values: dict[str, Any], *, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``values``; unknown keys raise :class:`ConfigError` naming the valid ones."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(values).__name__}")
    valid = {field.name for field in dataclasses.fields(cls) if field.init}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} for {cls.__name__}; "
                          f"valid keys: {', '.join(sorted(valid))}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: {error}") from error


def changed_settings(saved: dict[str, Any], asked: dict[str, Any], prefix: str = "",
                     ignore: tuple[str, ...] = ()) -> list[tuple[str, Any, Any]]:
    """(dotted name, saved value, asked value) of every setting that differs between two configs as ``asdict`` or
    config.json hold them (nested dicts compared field by field; tuples and lists alike); names in ``ignore`` (dotted)
    and settings the saved config lacks (it predates them) are left out. What a resume compares the options it is
    given against."""
    changed = []
    for name, asked_value in asked.items():
        dotted = f"{prefix}{name}"
        if dotted in ignore or name not in saved:
            continue
        old, new = json.loads(json.dumps(saved[name])), json.loads(json.dumps(asked_value))  # tuples read as lists
        if isinstance(old, dict) and isinstance(new, dict):
            changed += changed_settings(old, new, f"{dotted}.", ignore)
        elif old != new:
            changed.append((dotted, old, new))
    return changed


def describe_changes(changed: list[tuple[str, Any, Any]]) -> tuple[str, dict[str, dict[str, Any]]]:
    """:func:`changed_settings`' result as a resume says it (``"lr 0.01 -> 0.05, ..."``, by name) and as config.json
    records it (``{name: {"from": old, "to": new}}``)."""
    text = ", ".join(f"{name} {old!r} -> {new!r}" for name, old, new in sorted(changed))
    return text, {name: {"from": old, "to": new} for name, old, new in changed}


__all__ = ["ConfigError", "add_dataclass_options", "apply_options", "changed_settings", "config_from_dict",
           "describe_changes",
           "field_docs", "field_value",
           "finite_float", "given_options"]
