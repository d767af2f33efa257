"""Figures pinned before the one-spine redesign (commit 68ddb94, CPU, torch 2.13.0).

The dropout policy's figures (and the sweep's, whose cells are dropout policies) were
pinned again when its masks moved from torch's global generator to a counter-based
stream of the policy's own (:mod:`neuraltrader.core.masks`), so that an ensemble draws
every replica's masks at once and each replica still draws its solo run's: the same
distribution from another stream, so other numbers, as a new seed would give.

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
    ("random", "dropout"): {"train_return": 0.004863028880208731,
                            "valid_return": -0.013009938411414623,
                            "valid_recom": 0.18275733292102814, "best_epoch": 14,
                            "p_value": 0.9236393662518714, "oracle_capture": None},
    ("momentum", "mlp"): {"train_return": 0.0830293744802475, "valid_return": 0.058396197855472565,
                          "valid_recom": 0.5074798464775085, "best_epoch": 226,
                          "oracle_valid_return": 0.06097673252224922,
                          "oracle_capture": 0.9576800107182675, "p_value": 0.00157942892904277},
    ("momentum", "dropout"): {"train_return": 0.06712053716182709,
                              "valid_return": 0.05810452625155449,
                              "valid_recom": 0.5116479396820068, "best_epoch": 186,
                              "oracle_capture": 0.9528966844911423,
                              "p_value": 0.0018225328028770738},
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
    expected = [(-0.013592824339866638, -0.02435100127863174, 0.820548214077078),
                (0.016000136733055115, 0.030314639157265674, 0.18229433714505047),
                (-0.015253441408276558, -0.02424823966609248, 0.8210716172289452),
                (0.055710967630147934, 0.0946194442810138, 0.0056331355825213975)]
    for result, (valid_return, sharpe, p_value) in zip(metrics["results"], expected, strict=True):
        assert result["valid_return"] == pytest.approx(valid_return, rel=1e-5)
        assert result["sharpe"] == pytest.approx(sharpe, rel=1e-5)
        assert result["p_value"] == pytest.approx(p_value, rel=1e-5)
    verdicts = metrics["verdicts"]
    assert verdicts["deflated_sharpe"]["deflated_sharpe_ratio"] == pytest.approx(
        0.9241366101986762, rel=1e-5)
    assert verdicts["spa"]["p_value"] == 0.0 and verdicts["pbo"]["pbo"] == 0.0
