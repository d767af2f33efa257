"""The tutorial's second side study: a small neural classifier of hyperplane data.

Labels are 1[intercept + slope·sum(x) + logistic noise > 0] for x ~ N(0, I_dim); a
Linear(dim, hidden) → sigmoid → Linear(hidden, 2) network is trained with cross-entropy
in batches, and its accuracy is compared with the Bayes classifier (the true hyperplane).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from ..._random import Seed, as_generator, derive_seed, seeded
from ...core.device import resolve_device
from ...core.optimizers import make_optimizer
from ...io.config import Config, setting
from ...io.sections import OptimizerSection
from ...report import plot_panels
from ._result import DemoResult

RATES = ["accuracy", "false_pos", "false_neg"]


@dataclass
class ClassifierDataConfig:
    """Hyperplane data: ``[data]``."""

    n_train: int = setting(10_000, ge=1, help="training points")
    n_valid: int = setting(10_000, ge=1, help="fresh validation points")
    dim: int = setting(100, ge=1, help="features")
    intercept: float = setting(0.0, help="the hyperplane's intercept")
    slope: float = setting(1.0, help="every feature's coefficient")


@dataclass
class ClassifierTrainConfig(OptimizerSection):
    """Model and training: ``[train]``."""

    hidden: int = setting(2, ge=1, help="hidden units")
    epochs: int = setting(10, ge=1, help="passes over the training data")
    batch_size: int = setting(1000, ge=1, help="points per step")
    shuffle: bool = setting(False, help="a fresh batch order every epoch (the tutorial's "
                            "loader keeps the order)")


@dataclass
class ClassifierConfig(Config):
    """The classifier demo; ``seed`` fixes data, initial weights and batch order."""

    seed: int = setting(0, ge=0, help="fixes data, initial weights and batch order")
    data: ClassifierDataConfig = setting(factory=ClassifierDataConfig)
    train: ClassifierTrainConfig = setting(factory=ClassifierTrainConfig)


class HyperplaneClassifier(nn.Module):
    """Linear(dim, hidden) → sigmoid → Linear(hidden, 2): logits ``(B, 2)`` for ``(B, dim)``."""

    def __init__(self, dim: int = 100, hidden: int = 2) -> None:
        super().__init__()
        self.linear0 = nn.Linear(dim, hidden)
        self.linear1 = nn.Linear(hidden, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear1(torch.sigmoid(self.linear0(features)))


def simulate_hyperplane(
    data: ClassifierDataConfig, n: int, seed: Seed = None
) -> tuple[TensorDataset, torch.Tensor]:
    """``n`` points: a TensorDataset of features ``(n, dim)`` and labels ``(n,)`` (int64),
    and the true hyperplane's score ``(n,)`` (without the noise)."""
    generator = as_generator(seed)
    features = torch.randn(n, data.dim, generator=generator)
    score = data.intercept + data.slope * features.sum(1)
    uniform = torch.rand(n, generator=generator).clamp(1e-7, 1 - 1e-7)
    labels = (score + torch.logit(uniform) > 0).long()  # logit(U) is standard logistic
    return TensorDataset(features, labels), score


def classification_rates(predicted: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Accuracy, false-positive and false-negative rates, each a share of all points,
    so that false_pos + false_neg = 1 - accuracy. Returns ``(3,)``."""
    target = labels == 1
    return torch.stack((
        (predicted == target).float().mean(),
        (predicted & ~target).float().mean(),
        (~predicted & target).float().mean(),
    ))


def predict(logits: torch.Tensor) -> torch.Tensor:
    """Class 1 where its logit is at least class 0's: ``(B, 2)`` → bool ``(B,)``."""
    return logits[:, 1] >= logits[:, 0]


def fit_classifier(
    model: nn.Module,
    train: TensorDataset,
    valid: TensorDataset,
    config: ClassifierTrainConfig,
    *,
    generator: Seed = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Cross-entropy training in batches sliced from the tensors; per epoch, the rates
    averaged over training batches (before each step, as the tutorial) and on ``valid``."""
    features, labels = train.tensors
    valid_features, valid_labels = valid.tensors
    optim = make_optimizer(config.optimizer, model.parameters(), config.lr)
    loss_function = nn.CrossEntropyLoss()
    device = features.device
    generator = as_generator(generator, device)
    starts = range(0, len(features), config.batch_size)
    history = torch.empty(config.epochs, 2 * len(RATES), device=device)
    for epoch in tqdm(range(config.epochs), desc="classifier", disable=not progress, leave=False):
        model.train()
        if config.shuffle:
            order = torch.randperm(len(features), generator=generator)
            features, labels = features[order], labels[order]
        batch_rates = torch.empty(len(starts), len(RATES), device=device)
        for i, start in enumerate(starts):
            batch_labels = labels[start : start + config.batch_size]
            logits = model(features[start : start + config.batch_size])
            loss = loss_function(logits, batch_labels)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            batch_rates[i] = classification_rates(predict(logits.detach()), batch_labels)
        model.eval()
        with torch.no_grad():
            valid_rates = classification_rates(predict(model(valid_features)), valid_labels)
        history[epoch] = torch.cat((batch_rates.mean(0), valid_rates))
    columns = [f"{split}_{rate}" for split in ("train", "valid") for rate in RATES]
    frame = pd.DataFrame(history.cpu().numpy(), columns=columns)
    frame.insert(0, "epoch", range(1, config.epochs + 1))
    return frame


def classifier_study(config: ClassifierConfig, *, progress: bool = True) -> DemoResult:
    """Train the classifier and compare it with the Bayes classifier on fresh data."""
    config.validate()
    data = config.data
    train, _ = simulate_hyperplane(data, data.n_train, seed=derive_seed(config.seed, 1))
    valid, valid_score = simulate_hyperplane(data, data.n_valid, seed=derive_seed(config.seed, 2))
    device = resolve_device(config.train.device)
    with seeded(config.seed):
        model = HyperplaneClassifier(data.dim, config.train.hidden).to(device)
        history = fit_classifier(
            model, *(TensorDataset(*(t.to(device) for t in d.tensors)) for d in (train, valid)),
            config.train, generator=config.seed, progress=progress,
        )
    bayes = classification_rates(valid_score > 0, valid.tensors[1])
    final = history.iloc[-1]
    metrics = {f"valid_{rate}": float(final[f"valid_{rate}"]) for rate in RATES} | {
        f"train_{rate}": float(final[f"train_{rate}"]) for rate in RATES
    } | {"bayes_accuracy": float(bayes[0])}
    table = pd.DataFrame(
        {
            "train": [metrics[f"train_{rate}"] for rate in RATES],
            "valid": [metrics[f"valid_{rate}"] for rate in RATES],
            "bayes (valid)": bayes.tolist(),
        },
        index=RATES,
    )
    figure = plot_panels(
        history,
        [(rate, [f"train_{rate}", f"valid_{rate}"], "share of points") for rate in RATES],
        x="epoch", layout=(1, 3),
        references={"valid_accuracy": {"bayes": metrics["bayes_accuracy"]}},
        title="neural classifier of hyperplane data",
    )
    return DemoResult(
        config=config, metrics=metrics, history=history, figures={"history": figure},
        table=table.to_string(float_format=lambda value: f"{value:.4f}"),
    )
