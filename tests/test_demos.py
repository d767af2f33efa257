import json

import matplotlib.image
import pandas as pd
import pytest
import torch

from neuraltrader.cli import main
from neuraltrader.pipelines.demos import (
    ClassifierConfig,
    LinearConfig,
    classifier_study,
    linear_study,
)
from neuraltrader.pipelines.demos.classifier import (
    ClassifierDataConfig,
    classification_rates,
    simulate_hyperplane,
)
from neuraltrader.pipelines.demos.linear import LinearDataConfig, gaussian_fit, ols, simulate_linear


@pytest.fixture(scope="module")
def linear():
    return linear_study(LinearConfig(seed=0), progress=False)


@pytest.fixture(scope="module")
def classifier():
    return classifier_study(ClassifierConfig(seed=0), progress=False)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_descent_reaches_ols(seed):
    # measured, seeds 0-2: |GD - OLS| < 2e-6 for both betas, sigma 0.498-0.506
    metrics = linear_study(LinearConfig(seed=seed), progress=False).metrics
    closed_form = metrics["ols"]
    assert metrics["beta0"] == pytest.approx(closed_form["beta0"], abs=0.02)
    assert metrics["beta1"] == pytest.approx(closed_form["beta1"], abs=0.02)
    assert metrics["sigma"] == pytest.approx(0.5, abs=0.02)
    assert metrics["log_likelihood"] == pytest.approx(closed_form["log_likelihood"], rel=1e-3)
    assert closed_form["log_likelihood"] >= metrics["log_likelihood"]  # OLS is the maximum


def test_ols_and_log_likelihood_formulas():
    x = torch.tensor([0.0, 1.0, 2.0, 3.0])
    y = 1.0 + 2.0 * x + torch.tensor([0.1, -0.1, -0.1, 0.1])
    beta0, beta1 = ols(x, y)
    assert (beta0, beta1) == (pytest.approx(1.0), pytest.approx(2.0))
    fit = gaussian_fit(x, y, beta0, beta1)
    assert fit["sigma"] == pytest.approx(0.1)
    # -N/2 log(2 pi) - N log(sigma) - N/2 at sigma = sqrt(MSE)
    assert fit["log_likelihood"] == pytest.approx(-2 * 1.8378771 - 4 * -2.3025851 - 2, rel=1e-6)


def test_linear_data_has_the_asked_parameters():
    x, y = simulate_linear(LinearDataConfig(n=200_000, beta0=-1, beta1=0.5, sigma=2), seed=3)
    beta0, beta1 = ols(x, y)
    assert (beta0, beta1) == (pytest.approx(-1, abs=0.02), pytest.approx(0.5, abs=0.02))


def test_linear_history(linear):
    history = linear.history
    assert list(history.columns) == ["step", "beta0", "beta1", "loss"] and len(history) == 500
    assert history["loss"].iloc[0] > 4 and history["loss"].iloc[-1] < 0.26  # from 0 to sigma²
    assert "OLS" in linear.table and "truth" in linear.table and "GD - OLS" in linear.table


@pytest.mark.parametrize("seed", [0, 1])
def test_classifier_nears_the_bayes_accuracy(seed, classifier):
    # measured, seeds 0-2: 0.02 to 0.39 points below the Bayes accuracy (about 94%)
    result = classifier if seed == 0 else classifier_study(ClassifierConfig(seed=seed),
                                                           progress=False)
    metrics = result.metrics
    assert metrics["valid_accuracy"] >= metrics["bayes_accuracy"] - 0.03
    assert 0.9 < metrics["bayes_accuracy"] < 0.97
    for split in ("train", "valid"):
        total = metrics[f"{split}_false_pos"] + metrics[f"{split}_false_neg"]
        assert total == pytest.approx(1 - metrics[f"{split}_accuracy"], abs=1e-6)


def test_classifier_history_and_rates(classifier):
    history = classifier.history
    assert len(history) == 10 and history["epoch"].tolist() == list(range(1, 11))
    assert history["valid_accuracy"].iloc[-1] > history["train_accuracy"].iloc[0]
    predicted = torch.tensor([True, True, False, False, True])
    labels = torch.tensor([1, 0, 1, 0, 1])
    assert classification_rates(predicted, labels).tolist() == pytest.approx([0.6, 0.2, 0.2])


def test_hyperplane_labels_follow_the_logistic_model():
    data = ClassifierDataConfig(dim=3, intercept=0.0, slope=1.0)
    dataset, score = simulate_hyperplane(data, 200_000, seed=4)
    labels = dataset.tensors[1]
    near = score.abs() < 0.05  # on the hyperplane the noise decides: P(y = 1) = 1/2
    assert float(labels[near].float().mean()) == pytest.approx(0.5, abs=0.03)
    at_two = (score - 2).abs() < 0.05  # P(y = 1 | score = 2) = sigmoid(2) = 0.881
    assert float(labels[at_two].float().mean()) == pytest.approx(0.881, abs=0.03)


@pytest.mark.parametrize(("demo", "keys"), [
    ("linear", {"beta0", "beta1", "sigma", "log_likelihood", "ols", "truth"}),
    ("classifier", {"valid_accuracy", "valid_false_pos", "valid_false_neg", "bayes_accuracy"}),
])
def test_demo_command_writes_a_run_directory(tmp_path, capsys, demo, keys):
    out = tmp_path / demo
    assert main(["demo", demo, "--out", str(out), "--no-progress", "--set", "seed=1"]) == 0
    assert {p.name for p in out.iterdir()} == {
        "config.toml", "metrics.json", "history.csv", "history.png", "report.html"
    }
    metrics = json.loads((out / "metrics.json").read_text())
    assert keys <= set(metrics) and metrics["config"]["seed"] == 1
    assert len(pd.read_csv(out / "history.csv")) == (500 if demo == "linear" else 10)
    assert matplotlib.image.imread(out / "history.png").shape[1] > 300
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize(("demo", "override", "message"), [
    ("linear", "data.sigma=-0.5", "data.sigma must lie in (0, inf], got -0.5"),
    ("linear", "train.lr=0", "train.lr must lie in (0, inf], got 0.0"),
    ("linear", "train.steps=0", "train.steps must be an integer >= 1, got 0"),
    ("classifier", "train.epochs=0", "train.epochs must be an integer >= 1, got 0"),
    ("classifier", "data.dims=3", "unknown config key 'data.dims'"),
])
def test_demo_bad_input(tmp_path, capsys, demo, override, message):
    out = tmp_path / "out"
    assert main(["demo", demo, "--set", override, "--out", str(out)]) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and stderr.count("\n") == 1 and not out.exists()
