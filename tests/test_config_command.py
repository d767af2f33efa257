"""``neuraltrader config COMMAND`` and the README's key tables, both from the config
classes (:mod:`neuraltrader.io.keys`)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from conftest import docs_script

from neuraltrader.cli import main
from neuraltrader.io.config import load_config, setting
from neuraltrader.io.keys import config_keys, keys_markdown, keys_table, meaning
from neuraltrader.pipelines.backtest import BacktestConfig, FitConfig
from neuraltrader.pipelines.commands import COMMAND_CONFIGS

ROOT = Path(__file__).parent.parent


def _tables_script():
    return docs_script("config_tables")


def _rows(printed: str) -> dict[str, list[str]]:
    """The printed table as key → [default, allowed, meaning] (columns part at 2+ spaces)."""
    lines = printed.strip().splitlines()
    return {cells[0]: cells[1:] for cells in (re.split(r" {2,}", line) for line in lines[1:])}


def test_readme_tables_are_the_generated_ones():
    """``python docs/config_tables.py --readme`` wrote them; a key added, a default or
    a meaning changed without rerunning it fails here."""
    script = _tables_script()
    readme = script.README.read_text(encoding="utf-8")
    for command in script.COMMANDS:
        opening, closing = script.markers(command)
        assert opening in readme and closing in readme, f"README lacks {opening}"
        quoted = readme.split(opening, 1)[1].split(closing, 1)[0].strip()
        assert quoted == script.table(command), (
            f"README's table for `{command}` is stale: run python docs/config_tables.py --readme"
        )
    assert script.with_tables(readme) == readme


@pytest.mark.parametrize("command", list(COMMAND_CONFIGS))
def test_every_key_has_a_meaning_and_a_default_that_loads(command):
    config_class = COMMAND_CONFIGS[command]
    keys = config_keys(config_class)
    assert [key.key for key in keys if not key.meaning] == []
    assert all(key.allowed for key in keys)
    # each printed default, given back as --set, is the default: the table says true
    overrides = [f"{key.key}={key.default}" for key in keys if key.default != "unset"]
    assert load_config(config_class, overrides=overrides) == config_class()


def test_config_run_prints_every_key_with_default_bounds_and_meaning(capsys):
    assert main(["config", "run"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split() == ["key", "default", "allowed", "meaning"]
    rows = _rows(printed)
    assert rows["train.lr"] == ["0.01", "number > 0", "learning rate"]
    assert rows["data.rho"][:2] == ["0.2", "number in (-1, 1)"]
    assert rows["data.datasets"][:2] == ['["random", "momentum"]', "list of random, momentum"]
    assert rows["model.position"][:2] == ['"long"', "long, long_short"]
    assert rows["train.epochs"][0] == "unset" and "500 on random" in rows["train.epochs"][2]
    assert {"seed", "data.n_train", "model.hidden", "train.seeds"} <= set(rows)


def test_each_command_shows_its_own_defaults(capsys):
    assert main(["config", "backtest"]) == 0
    backtest = _rows(capsys.readouterr().out)
    assert backtest["train.epochs"][0] == "100"
    assert backtest["train.seeds"][0] == "4"
    # FitConfig only changes batch_size's default: the meaning is TrainSection's
    assert backtest["train.batch_size"] == ["unset", "integer ≥ 1",
                                            "windows per step; unset: full batch"]
    assert backtest["backtest.vol_target"][1] == "number > 0 or none"
    assert main(["config", "sweep", "backtest"]) == 0
    assert _rows(capsys.readouterr().out) == backtest
    assert main(["config", "demo", "linear"]) == 0
    assert _rows(capsys.readouterr().out)["train.steps"][0] == "500"


@pytest.mark.parametrize("words", [["foo"], ["demo", "nope"], ["sweep", "study", "x"]])
def test_unknown_command_is_one_line_and_exit_2(words, capsys):
    assert main(["config", *words]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert f"unknown command {' '.join(words)!r}" in captured.err
    assert "demo classifier" in captured.err  # the known commands are listed


def test_meaning_comes_from_the_nearest_base_that_gives_one():
    assert meaning(FitConfig, "epochs") == "passes over each block's training data"
    assert meaning(FitConfig, "patience").startswith("early stopping")

    @dataclasses.dataclass
    class Bare:
        n: int = setting(3, ge=1, le=9)
        x: float = setting(0.5, gt=0, lt=1, help="a | b")

    keys = config_keys(Bare)
    assert [(k.allowed, k.meaning) for k in keys] == [("integer in [1, 9]", ""),
                                                       ("number in (0, 1)", "a | b")]
    assert r"a \| b" in keys_markdown(keys)  # a pipe would split the Markdown cell
    assert keys_table(keys).splitlines()[1] == "n    3        integer in [1, 9]"


def test_backtest_key_listing_matches_the_validators_keys():
    def flat(config, prefix=""):
        for field in dataclasses.fields(config):
            value = getattr(config, field.name)
            if dataclasses.is_dataclass(value):
                yield from flat(value, f"{prefix}{field.name}.")
            else:
                yield prefix + field.name

    assert [key.key for key in config_keys(BacktestConfig)] == list(flat(BacktestConfig()))
