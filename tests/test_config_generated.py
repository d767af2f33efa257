"""Generated config input never escapes as anything but a ``NeuralTraderError``.

``--set key=value`` strings and TOML documents, made by Hypothesis from the real keys,
the real choices and edge values (64-bit and float32 limits, huge integers, NaN, deep
nesting, dates, bytes that are not UTF-8), go through ``load_config`` for the study and
the backtest. Each ends as a validated config (every integer in 64 bits, every float
finite in float32), which reads back from its own TOML unchanged, or as a
``NeuralTraderError`` whose message is one line (the CLI prints it as
``neuraltrader: error: ...``); any other exception fails.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import pytest
import tomli_w
from hypothesis import event, given, settings
from hypothesis import strategies as st

from neuraltrader.errors import NeuralTraderError
from neuraltrader.io.config import (
    FLOAT32_MAX,
    INT_MAX,
    INT_MIN,
    load_config,
    to_dict,
    to_toml,
    validate,
)
from neuraltrader.pipelines.backtest import BacktestConfig
from neuraltrader.pipelines.study import StudyConfig

settings.register_profile("config-ci", max_examples=500, derandomize=True, deadline=None)
# applied to each test here rather than with load_profile, which would change the
# Hypothesis settings of every other test module in the session
CONFIG_CI = settings.get_profile("config-ci")

CONFIGS = (StudyConfig, BacktestConfig)


def key_paths(config_class: type, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every section and key of ``config_class``, as paths (``("train", "lr")``)."""
    return [path for path, _, _ in fields_of(config_class, prefix)]


def fields_of(config_class: type, prefix: tuple[str, ...] = ()) -> list[tuple]:
    """``(path, type, rules)`` of every section and key of ``config_class``."""
    hints = typing.get_type_hints(config_class)
    found = []
    for field in dataclasses.fields(config_class):
        path, kind = (*prefix, field.name), hints[field.name]
        found.append((path, kind, dict(field.metadata)))
        if dataclasses.is_dataclass(kind):
            found.extend(fields_of(kind, path))
    return found


KEYS = sorted({path for config_class in CONFIGS for path in key_paths(config_class)})
WORDS = sorted({"mlp", "dropout", "linear", "lstm", "random", "momentum", "long",
                "long_short", "cpu", "cuda", "cuda:7", "auto", "mps", "rmsprop", "adam",
                "sgd", "mean", "sharpe", "utility", "expanding", "rolling", "sp500", "crude",
                "prices", "returns", "ffill", "", " ", "mlp,dropout", "random,momentum"})
EDGE_INTEGERS = [0, 1, 2, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1,
                 2**64 - 1, 2**64, 10**30]
EDGE_FLOATS = [0.0, -0.0, 0.5, 1.0, 1e-45, 3.4028234663852886e38, 3.5e38, 1e39, 1.8e308,
               float("inf"), float("-inf"), float("nan")]
# value texts that TOML reads in surprising ways, or not at all
EDGE_TEXTS = ["1e39", "inf", "-inf", "nan", "+nan", "0x7fffffffffffffff", "0b101", "1_000",
              "18446744073709551616", "1" + "0" * 4400, "[1, 2]", "[]", "[[]]", "{a = 1}",
              "{}", '"x"', "'lit'", '"""multi\nline"""', "1979-05-27", "07:32:00",
              "1979-05-27T07:32:00Z", "true", "TRUE", "1\nother = 2", "[" * 2000 + "]" * 2000,
              "1 # comment", "=", "a=b", "\x00", "\ufeff1"]

scalars = st.one_of(
    st.sampled_from(EDGE_INTEGERS), st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(EDGE_FLOATS), st.floats(), st.booleans(),
    st.sampled_from(WORDS), st.text(max_size=12), st.dates(), st.datetimes(), st.times(),
)
toml_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)


def typed_values(kind: typing.Any, rules: dict) -> st.SearchStrategy:
    """Values of about the right type for a key, near its bounds and choices, so that
    many generated configs get past the type checks to the range rules and ``check()``."""
    options = [option for option in typing.get_args(kind) or (kind,) if option is not type(None)]
    if typing.get_origin(kind) is typing.Literal:
        return st.sampled_from(typing.get_args(kind))
    choices = rules.get("choices")
    words = st.sampled_from(sorted(choices() if callable(choices) else choices or WORDS))
    strategies = {
        bool: st.booleans(),
        int: st.one_of(st.integers(-2, 40), st.sampled_from(EDGE_INTEGERS)),
        float: st.one_of(st.floats(-2, 2), st.sampled_from(EDGE_FLOATS), st.floats()),
        str: words,
    }
    drawn = [strategies.get(option, st.lists(words, max_size=3)) for option in options]
    return st.one_of(*drawn)


FIELDS = [(path, kind, rules) for config_class in CONFIGS
          for path, kind, rules in fields_of(config_class)
          if not dataclasses.is_dataclass(kind)]
typed_pairs = st.sampled_from(FIELDS).flatmap(
    lambda field: st.tuples(st.just(field[0]), typed_values(field[1], field[2]))
)


def toml_text(value: typing.Any) -> str:
    """``value`` as the TOML text of a ``--set`` value."""
    return tomli_w.dumps({"v": value}).partition("= ")[2].rstrip("\n")


def as_document(pairs: list[tuple[tuple[str, ...], typing.Any]]) -> dict:
    """Nested sections holding each ``(path, value)`` (a clash keeps the first)."""
    document: dict = {}
    for path, value in pairs:
        section = document
        for key in path[:-1]:
            section = section.setdefault(key, {})
            if not isinstance(section, dict):
                break
        else:
            section.setdefault(path[-1], value)
    return document


key_names = st.one_of(st.sampled_from(KEYS).map(".".join), st.text(max_size=15))
value_texts = st.one_of(
    scalars.map(toml_text),
    st.lists(st.sampled_from(WORDS), max_size=3).map(",".join),
    st.sampled_from(EDGE_TEXTS),
    st.text(max_size=20),
)
overrides = st.one_of(
    typed_pairs.map(lambda pair: f"{'.'.join(pair[0])}={toml_text(pair[1])}"),
    st.builds(lambda key, value: f"{key}={value}", key_names, value_texts),
    st.text(max_size=30),
)


def nested_section(keys: list[tuple[str, ...]]) -> st.SearchStrategy[dict]:
    """TOML documents of real keys with typed values, or of any keys and values."""
    names = st.one_of(st.sampled_from(sorted({path[-1] for path in keys})), st.text(max_size=8))
    anything = st.recursive(
        st.dictionaries(names, toml_values, max_size=4),
        lambda children: st.dictionaries(names, children | toml_values, max_size=4),
        max_leaves=10,
    )
    return st.one_of(st.lists(typed_pairs, max_size=6).map(as_document), anything)


documents = nested_section(KEYS)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("generated")


def leaves(values: dict) -> typing.Iterator[typing.Any]:
    for value in values.values():
        if isinstance(value, dict):
            yield from leaves(value)
        else:
            yield value


def check_outcome(config_class: type, folder: Path, path: Path | None,
                  sets: list[str]) -> None:
    """``load_config`` returns a valid config that reads back unchanged from its own
    TOML, or raises a one-line ``NeuralTraderError``; anything else propagates."""
    try:
        config = load_config(config_class, path, sets)
    except NeuralTraderError as error:
        assert "\n" not in str(error) and "\r" not in str(error), str(error)
        event(f"refused: {type(error).__name__}")
        return
    event("accepted")
    assert isinstance(config, config_class)
    validate(config)
    for value in leaves(to_dict(config)):  # the range rules every key obeys
        if isinstance(value, int) and not isinstance(value, bool):
            assert INT_MIN <= value <= INT_MAX
        if isinstance(value, float):
            assert math.isfinite(value) and abs(value) <= FLOAT32_MAX
    resolved = folder / "resolved.toml"
    resolved.write_text(to_toml(config), encoding="utf-8")
    assert load_config(config_class, resolved) == config


@pytest.mark.parametrize("config_class", CONFIGS, ids=lambda c: c.__name__)
@settings(CONFIG_CI)
@given(sets=st.lists(overrides, max_size=4))
def test_generated_overrides(folder, config_class, sets):
    check_outcome(config_class, folder, None, sets)


@pytest.mark.parametrize("config_class", CONFIGS, ids=lambda c: c.__name__)
@settings(CONFIG_CI)
@given(document=documents, sets=st.lists(overrides, max_size=2))
def test_generated_toml_documents(folder, config_class, document, sets):
    path = folder / "config.toml"
    path.write_text(tomli_w.dumps(document), encoding="utf-8")
    check_outcome(config_class, folder, path, sets)


@settings(CONFIG_CI)
@given(data=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_generated_file_bytes(folder, data):
    path = folder / "raw.toml"
    path.write_bytes(data)
    check_outcome(StudyConfig, folder, path, [])
