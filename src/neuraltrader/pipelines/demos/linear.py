"""The tutorial's first side study: a 1-D linear model fitted by gradient descent.

y = beta0 + beta1·x + sigma·eps on N points, fitted by minimising the mean squared error
with RMSprop on the full batch, then compared with closed-form OLS and the truth. sigma is
backed out of the fit as sqrt(MSE) and the Gaussian log-likelihood is evaluated there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..._random import Seed, as_generator, derive_seed, seeded
from ...core.device import resolve_device
from ...core.optimizers import make_optimizer
from ...io.config import Config, setting
from ...io.sections import OptimizerSection
from ...report import plot_panels
from ._result import DemoResult


@dataclass
class LinearDataConfig:
    """Simulated data: ``[data]``."""

    n: int = setting(10_000, ge=3, help="points")
    beta0: float = setting(1.0, help="β0: true intercept")
    beta1: float = setting(2.0, help="β1: true slope")
    sigma: float = setting(0.5, gt=0, help="σ: noise standard deviation")


@dataclass
class LinearTrainConfig(OptimizerSection):
    """Optimisation: ``[train]``."""

    steps: int = setting(500, ge=1, help="full-batch gradient steps")


@dataclass
class LinearConfig(Config):
    """The linear-regression demo; ``seed`` fixes the data."""

    seed: int = setting(0, ge=0, help="fixes the data")
    data: LinearDataConfig = setting(factory=LinearDataConfig)
    train: LinearTrainConfig = setting(factory=LinearTrainConfig)


class Linear1D(nn.Module):
    """beta0 + beta1·x with both parameters starting at 0. Shapes: ``(N,)`` → ``(N,)``."""

    def __init__(self) -> None:
        super().__init__()
        self.beta0 = nn.Parameter(torch.tensor(0.0))
        self.beta1 = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.beta0 + self.beta1 * x


def simulate_linear(data: LinearDataConfig, seed: Seed = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``x ~ N(0, 1)`` and ``y = beta0 + beta1·x + sigma·N(0, 1)``, each ``(n,)``."""
    generator = as_generator(seed)
    x = torch.randn(data.n, generator=generator)
    y = data.beta0 + data.beta1 * x + data.sigma * torch.randn(data.n, generator=generator)
    return x, y


def ols(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Closed-form least squares ``(beta0, beta1)`` for ``(N,)`` data, in float64."""
    x_centred, y_centred = x.double() - x.double().mean(), y.double() - y.double().mean()
    slope = float((x_centred * y_centred).sum() / x_centred.square().sum())
    return float(y.double().mean()) - slope * float(x.double().mean()), slope


def gaussian_fit(x: torch.Tensor, y: torch.Tensor, beta0: float, beta1: float) -> dict[str, float]:
    """sigma = sqrt(MSE) at ``(beta0, beta1)`` and the Gaussian log-likelihood there:
    -N/2·log(2π) - N·log(sigma) - sum(((y - beta0 - beta1·x) / sigma)²) / 2."""
    residuals = y.double() - beta0 - beta1 * x.double()
    n = len(residuals)
    sigma = math.sqrt(float(residuals.square().mean()))
    log_likelihood = (
        -n / 2 * math.log(2 * math.pi) - n * math.log(sigma)
        - float((residuals / sigma).square().sum()) / 2
    )
    return {"beta0": beta0, "beta1": beta1, "sigma": sigma, "log_likelihood": log_likelihood}


def fit_linear(
    model: Linear1D,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float = 0.01,
    optimizer: str = "rmsprop",
    progress: bool = True,
) -> pd.DataFrame:
    """Full-batch MSE minimisation; one history row per step: the parameters after the
    step and the loss before it (as the tutorial records them)."""
    optim = make_optimizer(optimizer, model.parameters(), lr)
    loss_function = nn.MSELoss()
    history = torch.empty(steps, 3, device=x.device)
    for step in tqdm(range(steps), desc="linear", disable=not progress, leave=False):
        loss = loss_function(model(x), y)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        history[step] = torch.stack((model.beta0.detach(), model.beta1.detach(), loss.detach()))
    frame = pd.DataFrame(history.cpu().numpy(), columns=["beta0", "beta1", "loss"])
    frame.insert(0, "step", range(1, steps + 1))
    return frame


def linear_study(config: LinearConfig, *, progress: bool = True) -> DemoResult:
    """Simulate, fit by gradient descent, and compare with OLS and the truth."""
    config.validate()
    x, y = simulate_linear(config.data, seed=derive_seed(config.seed, 1))
    device = resolve_device(config.train.device)
    with seeded(config.seed):
        model = Linear1D().to(device)
        history = fit_linear(
            model, x.to(device), y.to(device), steps=config.train.steps, lr=config.train.lr,
            optimizer=config.train.optimizer, progress=progress,
        )
    fitted = gaussian_fit(x, y, model.beta0.item(), model.beta1.item())
    closed_form = gaussian_fit(x, y, *ols(x, y))
    truth = {"beta0": config.data.beta0, "beta1": config.data.beta1, "sigma": config.data.sigma}
    metrics = fitted | {"ols": closed_form, "truth": truth}
    table = pd.DataFrame(
        {"gradient descent": fitted, "OLS": closed_form, "truth": truth}
    ).reindex(["beta0", "beta1", "sigma", "log_likelihood"])
    references = {
        "beta0": {"OLS": closed_form["beta0"], "truth": truth["beta0"]},
        "beta1": {"OLS": closed_form["beta1"], "truth": truth["beta1"]},
        "loss": {"OLS": closed_form["sigma"] ** 2, "truth": truth["sigma"] ** 2},
    }
    figure = plot_panels(
        history,
        [("beta0", ["beta0"], "intercept"), ("beta1", ["beta1"], "slope"),
         ("loss (MSE)", ["loss"], "mean squared error")],
        x="step", layout=(1, 3), references=references,
        title="linear regression by gradient descent",
    )
    return DemoResult(
        config=config,
        metrics=metrics,
        history=history,
        figures={"history": figure},
        # four decimals show gradient descent and OLS alike: print their difference too
        table=table.assign(**{"GD - OLS": table["gradient descent"] - table["OLS"]}).to_string(
            float_format=lambda value: f"{value:.4f}", na_rep="",
            formatters={"GD - OLS": "{:+.1e}".format},
        ),
    )
