"""The fit loop: gradient ascent on an objective, with a per-epoch history.

Layered like skorch: :func:`fit` → :func:`train_epoch` / :func:`evaluate`. Batches are
slices of one permuted copy of the training tensors per epoch (no per-sample
``DataLoader`` indexing), and per-epoch statistics stay in a tensor, so the only host
sync is one finiteness check per epoch.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import torch
from torch import nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from ._checks import check_choice, check_float, check_int, check_tensor
from ._random import Seed, as_generator
from .errors import DataError, TrainingError
from .objectives import Objective, mean_return

WindowData = tuple[torch.Tensor, torch.Tensor] | TensorDataset

HISTORY_COLUMNS = ["train_recom", "train_return", "valid_recom", "valid_return"]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}


def make_optimizer(
    name: str, parameters: Iterable[nn.Parameter], lr: float
) -> torch.optim.Optimizer:
    """Build optimizer ``name`` (``rmsprop``, ``adam`` or ``sgd``) with learning rate ``lr``."""
    check_choice("optimizer", name, tuple(OPTIMIZERS))
    check_float("lr", lr, lower=0.0, lower_open=True)
    return OPTIMIZERS[name](parameters, lr=lr)


def as_window_pair(data: WindowData, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Check and unpack ``(windows (B, L), targets (B,))`` from a pair or a TensorDataset."""
    if isinstance(data, TensorDataset):
        data = data.tensors  # type: ignore[assignment]
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise DataError(f"{name} must be a (windows, targets) pair or a TensorDataset of two")
    windows = check_tensor(f"{name} windows", data[0], ndim=2)
    targets = check_tensor(f"{name} targets", data[1], ndim=1)
    if len(windows) != len(targets) or len(windows) == 0:
        raise DataError(
            f"{name} windows and targets must have the same non-zero length, "
            f"got {len(windows)} and {len(targets)}"
        )
    return windows, targets


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    windows: torch.Tensor,
    targets: torch.Tensor,
    *,
    batch_size: int,
    order: torch.Tensor | None = None,
    objective: Objective = mean_return,
) -> torch.Tensor:
    """One pass over the training windows in batches, one optimizer step per batch.

    Parameters
    ----------
    windows, targets
        ``(B, L)`` and ``(B,)``.
    order
        A permutation of ``range(B)`` to visit the rows in, or ``None`` for as given.

    Returns
    -------
    torch.Tensor
        ``(2,)``: mean position and mean objective, averaged over batches (as the
        tutorial does, so a short last batch counts as much as a full one).
    """
    model.train()
    if order is not None:
        windows, targets = windows[order], targets[order]
    starts = range(0, len(windows), batch_size)
    batch_stats = torch.empty(len(starts), 2)
    for i, start in enumerate(starts):
        positions = model(windows[start : start + batch_size])
        gain = objective(positions, targets[start : start + batch_size])
        optimizer.zero_grad(set_to_none=True)
        (-gain).backward()
        optimizer.step()
        batch_stats[i, 0] = positions.detach().mean()
        batch_stats[i, 1] = gain.detach()
    return batch_stats.mean(0)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    windows: torch.Tensor,
    targets: torch.Tensor,
    objective: Objective = mean_return,
) -> torch.Tensor:
    """Mean position and objective of ``model`` in eval mode on all windows, ``(2,)``."""
    model.eval()
    positions = model(windows)
    return torch.stack((positions.mean(), objective(positions, targets)))


def fit(
    model: nn.Module,
    train: WindowData,
    valid: WindowData,
    *,
    epochs: int,
    lr: float = 0.01,
    batch_size: int = 1000,
    shuffle: bool = True,
    optimizer: str = "rmsprop",
    progress: bool = True,
    generator: Seed = None,
    objective: Objective = mean_return,
    description: str | None = None,
) -> pd.DataFrame:
    """Train ``model`` in place by gradient ascent on ``objective``; return its history.

    Parameters
    ----------
    model
        A policy mapping windows ``(B, L)`` to positions ``(B,)``.
    train, valid
        ``(windows, targets)`` pairs (or ``TensorDataset``s) from
        :func:`~neuraltrader.generate_sequences`.
    epochs
        Passes over the training data, ``>= 1``.
    lr, optimizer
        Learning rate and optimizer name (``rmsprop``, the tutorial's, ``adam``, ``sgd``).
    batch_size, shuffle
        Rows per step; whether to visit them in a fresh random order each epoch.
    progress
        Show a tqdm bar over epochs.
    generator
        Seed or ``torch.Generator`` for the shuffling. Initial weights and dropout masks
        come from torch's global generator: wrap the call in
        :func:`neuraltrader.seeded` to fix them.
    objective
        ``objective(positions, targets) -> scalar`` to maximise.

    Returns
    -------
    pandas.DataFrame
        One row per epoch: ``epoch`` (from 1), ``train_recom`` and ``train_return``
        (mean position and objective over the epoch's batches, in train mode),
        ``valid_recom`` and ``valid_return`` (on the whole validation set, eval mode).

    Raises
    ------
    TrainingError
        If a statistic becomes NaN or infinite; the message names the epoch.
    """
    train_x, train_y = as_window_pair(train, "train")
    valid_x, valid_y = as_window_pair(valid, "valid")
    check_int("epochs", epochs, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    lag = getattr(model, "lag", train_x.shape[1])
    for name, windows in (("train", train_x), ("valid", valid_x)):
        if windows.shape[1] != lag:
            raise DataError(
                f"{name} windows have {windows.shape[1]} columns, the model's lag is {lag}"
            )
    optim = make_optimizer(optimizer, model.parameters(), lr)
    generator = as_generator(generator)

    history = torch.empty(epochs, len(HISTORY_COLUMNS))
    for epoch in tqdm(range(epochs), desc=description, disable=not progress, leave=False):
        order = torch.randperm(len(train_x), generator=generator) if shuffle else None
        history[epoch, :2] = train_epoch(
            model, optim, train_x, train_y, batch_size=batch_size, order=order, objective=objective
        )
        history[epoch, 2:] = evaluate(model, valid_x, valid_y, objective)
        if not bool(torch.isfinite(history[epoch]).all()):
            raise TrainingError(
                f"training diverged at epoch {epoch + 1}: non-finite statistics "
                f"{history[epoch].tolist()}; lower the learning rate (lr={lr})"
            )
    frame = pd.DataFrame(history.numpy(), columns=HISTORY_COLUMNS)
    frame.insert(0, "epoch", range(1, epochs + 1))
    return frame


__all__ = ["HISTORY_COLUMNS", "evaluate", "fit", "make_optimizer", "train_epoch"]
