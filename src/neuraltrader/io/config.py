"""Configuration as nested dataclasses: defaults → TOML file → ``--set`` overrides.

A config class is a dataclass whose fields are scalars (``int``, ``float``, ``bool``,
``str``, a ``Literal`` of strings), ``list[str]``, or other config dataclasses (TOML
sections). Unknown keys and values of the wrong type are rejected with a
:class:`~neuraltrader.errors.ConfigError` naming the key; a key a release retired
(:data:`RETIRED_KEYS`) is ignored with a ``FutureWarning``. One recursive validator,
:func:`validate`, checks every field against its ``Literal`` choices and the bounds or
choices given with :func:`setting`, then calls a section's ``check()`` for the rules
that tie two keys together (``data.length > data.lag``).

Two range rules hold for every key: an integer must fit in 64 bits
(``[-2**63, 2**63 - 1]``, what TOML can hold; a seed in it, plus one per replica, is
within ``torch.manual_seed``'s ``[-2**63, 2**64 - 1]``), and a float must be finite in
float32 (``|x| <= 3.4028235e+38``), the precision of every tensor a value reaches.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import tomli_w

from .._checks import check_choice, check_float, check_int
from ..errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ConfigT = TypeVar("ConfigT")

# keys a release retired: read (a run directory's config.toml holds them) and ignored,
# with a FutureWarning saying why
RETIRED_KEYS = {
    "train.exact_replicas": "since 0.2.0 every replica draws its solo run's dropout masks, "
                            "all replicas' at once",
}

INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # TOML integers; torch.manual_seed takes them all
FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"section.key=value"`` into its key path and value.

    The value is read as a TOML value (``5``, ``0.5``, ``true``, ``["a", "b"]``,
    ``"text"``); anything that is not one valid TOML value is taken as a bare string,
    so ``model.models=mlp,dropout`` works from a shell.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects section.key=value, got {_show(text)}")
    try:
        document = tomllib.loads(f"value = {raw.strip()}")
    except tomllib.TOMLDecodeError:
        document = {}
    except (ValueError, RecursionError) as error:  # an integer of > 4300 digits, deep nesting
        raise ConfigError(f"config key {key.strip()!r}: {_reason(error)}") from None
    # "1\nother = 2" parses, but as two keys: it is no single value, so it stays a string
    value = document["value"] if list(document) == ["value"] else raw.strip()
    return key.strip().split("."), value


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file; a missing, unreadable, non-UTF-8 or malformed file (or
    a directory) is a ``ConfigError``."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {name!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {name!r} is a directory, expected a TOML file") from None
    except (OSError, ValueError) as error:  # ValueError: a NUL byte in the name
        raise ConfigError(f"config file {name!r} cannot be read: {_reason(error)}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"config file {name!r} is not UTF-8 text, as TOML must be: byte "
            f"{data[error.start]:#04x} at offset {error.start}"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {name!r} is not valid TOML: {error}") from None
    except (ValueError, RecursionError) as error:
        raise ConfigError(f"config file {name!r}: {_reason(error)}") from None


def _reason(error: BaseException) -> str:
    """A one-line reason for ``error``, without Python's advice to the programmer."""
    if isinstance(error, RecursionError):
        return "values are nested too deeply"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error).split(";")[0].replace("\n", " ")


def _show(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for a message: an integer too long to print as its size, and a
    long text cut to ``limit`` characters."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 100:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_config(
    config_class: type[ConfigT],
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
) -> ConfigT:
    """Build a validated ``config_class`` from defaults, an optional TOML file and
    ``--set``-style overrides, applied in that order."""
    values: dict[str, Any] = read_toml(path) if path is not None else {}
    return _validated(build(config_class, apply_overrides(values, overrides)))


def with_overrides(config: ConfigT, overrides: Iterable[str]) -> ConfigT:
    """A validated copy of ``config`` with ``--set``-style overrides applied."""
    return _validated(build(type(config), apply_overrides(to_dict(config), overrides)))


def apply_overrides(values: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Set each ``section.key=value`` of ``overrides`` in the nested dict ``values``."""
    for override in overrides:
        keys, value = parse_override(override)
        section = values
        for key in keys[:-1]:
            nested = section.setdefault(key, {})
            if not isinstance(nested, dict):
                raise ConfigError(f"config key {'.'.join(keys)!r}: {key!r} is not a section")
            section = nested
        section[keys[-1]] = value
    return values


def _validated(config: ConfigT) -> ConfigT:
    validate(config)
    return config


def setting(
    default: Any = dataclasses.MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None,
    help: str | None = None,
) -> Any:
    """A config field with its bounds (``ge``/``gt``/``le``/``lt``) or its ``choices``
    (a tuple, or a function returning one for choices known only at run time, such as
    the policy registry), which :func:`validate` enforces, and its meaning in one line,
    ``help``, which ``neuraltrader config`` and the README's key tables print. A subclass
    that redeclares a field only to change its default may leave ``help`` out: the
    nearest base's meaning holds."""
    metadata = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "help": help}
    metadata = {key: value for key, value in metadata.items() if value is not None}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def validate(config: Any, prefix: str = "") -> None:
    """Check every field of the config dataclass ``config`` and its sections, then each
    section's ``check()``; the first violation is a ``ConfigError`` naming the key."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        key, value = prefix + field.name, getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            validate(value, prefix=f"{key}.")
        elif value is not None:
            _check_value(key, value, hints[field.name], field.metadata)
    check = getattr(config, "check", None)
    if check is not None:
        check()


def _options(kind: Any) -> tuple[Any, ...]:
    """The types an annotation admits: each member of a union (``int | None``, or
    ``float | Literal["none"]``, which is a ``typing.Union``), else the annotation."""
    union = isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union
    return typing.get_args(kind) if union else (kind,)


def _check_value(key: str, value: Any, kind: Any, rules: Mapping[str, Any]) -> None:
    for item in value if isinstance(value, list) else [value]:
        _coerce(key, item, str if isinstance(value, list) else kind)
        choices = rules.get("choices")
        if choices is not None:
            check_choice(key + (" entry" if isinstance(value, list) else ""), item,
                         choices() if callable(choices) else choices)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    options = _options(kind)
    if float in options:
        _check_float(key, _as_float(key, value), rules)
    elif set(rules) - {"help"} <= {"ge"}:  # no upper bound: the integer message
        check_int(key, value, minimum=int(rules.get("ge", INT_MIN)))
        _check_int64(key, value, rules)
    else:
        _check_int64(key, value, rules)
        check_float(key, value, **_bounds(rules))


def _bounds(rules: Mapping[str, Any]) -> dict[str, Any]:
    return {"lower": rules.get("ge", rules.get("gt", -math.inf)),
            "upper": rules.get("le", rules.get("lt", math.inf)),
            "lower_open": "gt" in rules, "upper_open": "lt" in rules}


def _check_int64(key: str, value: int, rules: Mapping[str, Any]) -> None:
    """Refuse an integer outside 64 bits: TOML cannot hold it, and as a seed torch
    cannot take it (``--set seed=18446744073709551616``)."""
    if not INT_MIN <= value <= INT_MAX:
        low = rules.get("ge", rules.get("gt", INT_MIN))
        raise ConfigError(
            f"{key} must be an integer in [{low}, 2**63 - 1 = {INT_MAX}] (64 bits: TOML's "
            f"integers, within torch.manual_seed's range), got {_show(value)}"
        )


def _as_float(key: str, value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond float64
        raise ConfigError(
            f"{key} must be finite in float32 (|{key}| <= {FLOAT32_MAX:.8g}), got {_show(value)}"
        ) from None


def _check_float(key: str, value: float, rules: Mapping[str, Any]) -> None:
    """The bounds of ``rules``, then float32's range: every float config value may reach
    a float32 tensor (``train.lr=1e39`` would become ``inf`` there)."""
    check_float(key, value, **_bounds(rules))
    if abs(value) > FLOAT32_MAX:
        raise ConfigError(
            f"{key} must be finite in float32 (|{key}| <= {FLOAT32_MAX:.8g}), got {value!r}"
        )


def build(config_class: type[ConfigT], values: Mapping[str, Any], prefix: str = "") -> ConfigT:
    """Instantiate ``config_class`` from a nested mapping, checking keys and types."""
    hints = typing.get_type_hints(config_class)
    fields = {field.name: field for field in dataclasses.fields(config_class)}  # type: ignore[arg-type]
    retired = [name for name in values if name not in fields and prefix + name in RETIRED_KEYS]
    for name in retired:
        warnings.warn(f"config key {prefix + name!r} is retired and ignored: "
                      f"{RETIRED_KEYS[prefix + name]}", FutureWarning, stacklevel=2)
    values = {name: value for name, value in values.items() if name not in retired}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        known = ", ".join(prefix + name for name in fields)
        what = "section" if isinstance(values[unknown[0]], Mapping) else "key"
        raise ConfigError(f"unknown config {what} {prefix + unknown[0]!r}; known keys: {known}")
    kwargs = {}
    for name, value in values.items():
        key = prefix + name
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key {key!r} is a section; got {_show(value)}")
            kwargs[name] = build(kind, value, prefix=f"{key}.")
        else:
            kwargs[name] = _coerce(key, value, kind)
    return config_class(**kwargs)


def _coerce(key: str, value: Any, kind: Any) -> Any:
    """Check ``value`` against the annotation ``kind``, converting int → float and a
    comma-separated string → ``list[str]``."""
    if typing.get_origin(kind) is Literal:
        return check_choice(key, value, typing.get_args(kind))
    options = _options(kind)
    for option in options:
        if option is type(None):
            continue
        if typing.get_origin(option) is Literal and value in typing.get_args(option):
            return value
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return _as_float(key, value)
        if option is str and isinstance(value, str):
            return value
        if typing.get_origin(option) is list:
            items = [item.strip() for item in value.split(",")] if isinstance(value, str) else value
            if isinstance(items, list) and items and all(isinstance(i, str) for i in items):
                return items
    expected = " or ".join(_type_name(option) for option in options if option is not type(None))
    raise ConfigError(f"config key {key!r} must be {expected}, got {_show(value)}")


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(kind)))
    if typing.get_origin(kind) is list:
        return "a non-empty list of strings"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}[kind]


def to_dict(config: Any) -> dict[str, Any]:
    """The config as a nested dict, ``None`` values left out (TOML has no null)."""
    values = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value is not None:
            values[field.name] = to_dict(value) if dataclasses.is_dataclass(value) else value
    return values


def to_toml(config: Any) -> str:
    """The resolved config as TOML text that :func:`load_config` reads back unchanged."""
    return tomli_w.dumps(to_dict(config))


class Config:
    """Base of a command's whole config: ``validate()`` runs the recursive validator."""

    def validate(self) -> None:
        validate(self)


__all__ = [
    "FLOAT32_MAX", "INT_MAX", "INT_MIN", "Config", "apply_overrides", "build", "load_config",
    "parse_override", "read_toml", "setting", "to_dict", "to_toml", "validate", "with_overrides",
]
