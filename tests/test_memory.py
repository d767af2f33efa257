"""Sizes that cannot fit are refused before anything is allocated, with the estimate
and the limit named; ``train.memory_limit_gb`` fakes a small machine or overrides."""

from __future__ import annotations

import pytest

from neuraltrader.cli import main
from neuraltrader.core.memory import GIB, check_memory, training_bytes
from neuraltrader.errors import ConfigError

QUICK = ["--no-progress", "--no-report"]


@pytest.mark.parametrize("settings", [
    ["data.n_train=1000000000"], ["data.length=1000000000"],
    ["model.hidden=4096", "train.seeds=4096"],  # each at its cap, together too much
])
def test_huge_sizes_are_refused_in_one_line(tmp_path, capsys, settings):
    out = tmp_path / "run"
    # 24 GiB would do on any machine: the estimate, not this machine, decides
    sets = [argument for setting in settings for argument in ("--set", setting)]
    assert main(["run", *sets, "--set", "train.memory_limit_gb=24",
                 "--out", str(out), *QUICK]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "GiB, more than the 24 GiB train.memory_limit_gb" in error
    assert not out.exists()


def test_a_small_faked_limit_refuses_the_default_study_and_a_backtest(tmp_path, capsys):
    limit = ["--set", "train.memory_limit_gb=0.0001"]  # about 100 KiB
    assert main(["run", *limit, "--out", str(tmp_path / "a"), *QUICK]) == 2
    assert main(["backtest", "--data", "sp500", *limit, "--out", str(tmp_path / "b"),
                 *QUICK]) == 2
    assert main(["sweep", "--grid", "model.hidden=2,5", *limit, "--out", str(tmp_path / "c"),
                 *QUICK]) == 2
    assert capsys.readouterr().err.count("GiB train.memory_limit_gb;") == 3
    assert list(tmp_path.iterdir()) == []


def test_the_estimate_grows_with_every_size_and_the_check_names_both_figures():
    base = dict(replicas=4, parameters=31, train_rows=16000, valid_rows=1600, lag=4,
                batch=1000, width=5, epochs=250)
    small = training_bytes(**base)
    assert small < 50 * 2**20  # the tutorial's study: well under 50 MiB
    for key in base:
        assert training_bytes(**base | {key: base[key] * 10}) > small
    with pytest.raises(ConfigError, match=r"about 2 GiB, more than the 1 GiB train"):
        check_memory(2 * GIB, None, 1.0, "this run")  # type: ignore[arg-type]
    check_memory(2 * GIB, None, 3.0, "this run")  # type: ignore[arg-type]
