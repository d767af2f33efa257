"""Figures pinned before the one-spine redesign (commit 68ddb94, CPU, torch 2.13.0).

A refactor must keep every command's figures: these tests run the commands through
the CLI and compare metrics.json with the values main printed before the code moved.
The study is pinned to 1e-5 relative (same arithmetic, same order of draws); the
backtest, whose seeds now train as one ensemble (batched matrix products instead of one
``nn.Linear`` per seed, so float rounding differs), to 2e-3 absolute on the Sharpe ratio.
"""

from __future__ import annotations

import json

import pytest

from neuraltrader.cli import main

# neuraltrader run (defaults): (dataset, model) -> figures
STUDY = {
    ("random", "mlp"): {"train_return": 0.013149584643542767, "valid_return": -0.004762193653732538,
                        "valid_recom": 0.31948578357696533, "best_epoch": 386,
                        "p_value": 0.6674692116858161, "oracle_capture": None,
                        "buy_and_hold_valid_return": -0.011833595111966133},
    ("random", "dropout"): {"train_return": 0.006252339109778404,
                            "valid_return": -0.009505076333880424,
                            "valid_recom": 0.19570010900497437, "best_epoch": 9,
                            "p_value": 0.8501143198783754, "oracle_capture": None},
    ("momentum", "mlp"): {"train_return": 0.0830293744802475, "valid_return": 0.058396197855472565,
                          "valid_recom": 0.5074798464775085, "best_epoch": 226,
                          "oracle_valid_return": 0.06097673252224922,
                          "oracle_capture": 0.9576800107182675, "p_value": 0.00157942892904277},
    ("momentum", "dropout"): {"train_return": 0.07333637028932571,
                              "valid_return": 0.05891602113842964,
                              "valid_recom": 0.5074429512023926, "best_epoch": 211,
                              "oracle_capture": 0.9662049555858431,
                              "p_value": 0.0015677505592836375},
}


def _close(actual, expected, rel):
    if expected is None or isinstance(expected, int):
        return actual == expected
    return actual == pytest.approx(expected, rel=rel, abs=1e-9)


@pytest.mark.slow
def test_default_study_figures_are_pinned(tmp_path):
    out = tmp_path / "study"
    assert main(["run", "--out", str(out), "--no-progress", "--no-report"]) == 0
    results = json.loads((out / "metrics.json").read_text())["results"]
    assert [(r["dataset"], r["model"]) for r in results] == list(STUDY)
    for result in results:
        for key, expected in STUDY[(result["dataset"], result["model"])].items():
            assert _close(result[key], expected, 1e-5), (result["dataset"], result["model"], key)


def test_backtest_figures_are_pinned(tmp_path):
    """``backtest --data sp500 --epochs 30 --seeds 3``, positions unscaled and buy-and-hold
    the only benchmark (as before volatility targeting and baselines): Sharpe 0.654 vs
    0.371, SPA p 0.26."""
    out = tmp_path / "backtest"
    assert main(["backtest", "--data", "sp500", "--epochs", "30", "--seeds", "3",
                 "--vol-target", "none", "--baselines", "none",
                 "--out", str(out), "--no-progress", "--no-report"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["strategy"]["sharpe"] == pytest.approx(0.6536803893078021, abs=2e-3)
    assert metrics["strategy"]["annual_volatility"] == pytest.approx(0.04484613782304587, rel=1e-2)
    assert metrics["buy_and_hold"]["sharpe"] == pytest.approx(0.371152764774717, rel=1e-9)
    assert metrics["seed_sharpes"] == pytest.approx(
        [0.5812974085385918, 0.5867830465591847, 0.6216952291116934], abs=2e-3)
    assert metrics["spa_pvalue"] == pytest.approx(0.26, abs=0.02)


def test_sweep_figures_are_pinned(tmp_path):
    out = tmp_path / "sweep"
    assert main(["sweep", "--grid", "model.hidden=2,5", "--grid", "data.rho=0,0.3",
                 "--seeds", "2", "--set", "data.n_train=200", "--set", "train.epochs=10",
                 "--out", str(out), "--no-progress", "--no-report"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    expected = [(-0.01277267187833786, -0.025234042254888657, 0.8301330799149194),
                (0.02322326973080635, 0.03924888555775137, 0.14377884014568915),
                (-0.015489120967686176, -0.024195216430739044, 0.8215692271582145),
                (0.05773944407701492, 0.09344127808671567, 0.00405942175259287)]
    for result, (valid_return, sharpe, p_value) in zip(metrics["results"], expected, strict=True):
        assert result["valid_return"] == pytest.approx(valid_return, rel=1e-5)
        assert result["sharpe"] == pytest.approx(sharpe, rel=1e-5)
        assert result["p_value"] == pytest.approx(p_value, rel=1e-5)
    verdicts = metrics["verdicts"]
    assert verdicts["deflated_sharpe"]["deflated_sharpe_ratio"] == pytest.approx(
        0.9136109910622054, rel=1e-5)
    assert verdicts["spa"]["p_value"] == 0.0 and verdicts["pbo"]["pbo"] == 0.0
