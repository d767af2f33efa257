"""Every key of a config class: its default, the values it accepts and its meaning.

Read from the config dataclasses themselves (defaults from an instance; choices, bounds
and the one-line ``help`` from :func:`~neuraltrader.io.config.setting`), so that
``neuraltrader config COMMAND`` and the README's key tables (``docs/config_tables.py``)
say what the validator enforces and cannot drift from it.

Examples
--------
>>> from dataclasses import dataclass
>>> from neuraltrader.io.config import setting
>>> @dataclass
... class Train:
...     lr: float = setting(0.01, gt=0, help="learning rate")
>>> config_keys(Train)
[KeyInfo(key='lr', default='0.01', allowed='number > 0', meaning='learning rate')]
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import tomli_w

from .config import _options

COLUMNS = ("key", "default", "allowed", "meaning")


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    """One config key as the user writes it (``train.lr``), with its default in TOML
    syntax (``unset`` for none), the values it accepts and its meaning."""

    key: str
    default: str
    allowed: str
    meaning: str


def config_keys(config_class: type) -> list[KeyInfo]:
    """Every key of ``config_class`` and its sections, in declaration order."""
    return list(_keys(config_class(), ""))


def _keys(config: Any, prefix: str) -> Iterator[KeyInfo]:
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            yield from _keys(value, f"{prefix}{field.name}.")
        else:
            yield KeyInfo(prefix + field.name, _default(value),
                          _allowed(hints[field.name], field.metadata),
                          meaning(type(config), field.name))


def meaning(config_class: type, name: str) -> str:
    """The ``help`` of field ``name``: the class's own, else that of the nearest base
    that declares one (a subclass that only changes a default keeps its meaning); ``""``
    if none does."""
    for base in config_class.__mro__:
        field = getattr(base, "__dataclass_fields__", {}).get(name)
        if field is not None and field.metadata.get("help"):
            return field.metadata["help"]
    return ""


def _default(value: Any) -> str:
    """``value`` as TOML writes it (``0.01``, ``"long"``, ``["a", "b"]``), or ``unset``."""
    if value is None:
        return "unset"
    if isinstance(value, list):  # on one line: tomli_w puts each item on its own
        return "[" + ", ".join(map(_default, value)) + "]"
    return tomli_w.dumps({"v": value}).partition("=")[2].strip()


def _allowed(kind: Any, rules: Mapping[str, Any]) -> str:
    """The values the validator accepts for a field of annotation ``kind``."""
    choices = rules.get("choices")
    names = ", ".join(choices() if callable(choices) else choices) if choices else None
    parts = []
    for option in _options(kind):
        if option is type(None):
            continue
        if typing.get_origin(option) is Literal:
            parts.append(", ".join(map(str, typing.get_args(option))))
        elif typing.get_origin(option) is list:
            parts.append(f"list of {names}" if names else "list of text")
        elif option is bool:
            parts.append("true, false")
        elif option in (int, float):
            parts.append(_bounds(option, rules))
        else:
            parts.append(names or "text")
    return " or ".join(parts)


def _bounds(kind: type, rules: Mapping[str, Any]) -> str:
    """``integer ≥ 1``, ``number in (-1, 1)``, ``number in [0, 1)``."""
    noun = "integer" if kind is int else "number"
    low = next(((key, rules[key]) for key in ("ge", "gt") if key in rules), None)
    high = next(((key, rules[key]) for key in ("le", "lt") if key in rules), None)
    if low and high:
        return (f"{noun} in {'[' if low[0] == 'ge' else '('}{_number(low[1])}, "
                f"{_number(high[1])}{']' if high[0] == 'le' else ')'}")
    signs = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    bound = low or high
    return f"{noun} {signs[bound[0]]} {_number(bound[1])}" if bound else noun


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def keys_table(keys: list[KeyInfo]) -> str:
    """The keys as an aligned plain-text table, one key a line."""
    rows = [COLUMNS, *(dataclasses.astuple(key) for key in keys)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + ("  " + row[-1]).rstrip()
        for row in rows
    )


def keys_markdown(keys: list[KeyInfo]) -> str:
    """The keys as a Markdown table (key and default as code)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|---|---|---|"]
    for key in keys:
        default = key.default if key.default == "unset" else f"`{key.default}`"
        lines.append(f"| `{key.key}` | {cell(default)} | {cell(key.allowed)} | "
                     f"{cell(key.meaning)} |")
    return "\n".join(lines)


__all__ = ["KeyInfo", "config_keys", "keys_markdown", "keys_table", "meaning"]
