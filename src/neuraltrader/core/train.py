"""The fit loop: gradient ascent on an objective, with a per-epoch history.

Layered like skorch: :func:`fit` → :func:`train_epoch` / :func:`evaluate`. Batches are
slices of one permuted copy of the training tensors per epoch (no per-sample
``DataLoader`` indexing), and per-epoch statistics stay in a tensor on the model's
device, so the only host synchronisation is one check per epoch. The same loop trains a
single policy (statistics of shape ``()``) or an
:class:`~neuraltrader.core.ensemble.Ensemble` of E replicas (shape ``(E,)``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import pandas as pd
import torch
from torch import nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from .._checks import check_int, check_tensor
from .._random import Seed, as_generator, derive_seed, seeded
from ..errors import DataError, TrainingError
from .ensemble import Ensemble, make_ensemble
from .objectives import Objective, mean_return
from .optimizers import make_optimizer

try:  # the engine call behind torch.autograd.backward (torch >= 2.3)
    from torch.autograd.graph import _engine_run_backward
except ImportError:  # pragma: no cover - older torch
    _engine_run_backward = None

WindowData = tuple[torch.Tensor, torch.Tensor] | TensorDataset

HISTORY_COLUMNS = ["train_recom", "train_return", "valid_recom", "valid_return"]
_FIT_DRAWS_KEY = 0x66697400  # keys an ensemble's global draws in fit apart from other streams


def as_window_pair(
    data: WindowData, name: str, replicas: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check and unpack ``(windows (B, L), targets (B,))`` from a pair or a TensorDataset.

    With ``replicas=E``, per-replica data ``(E, B, L)`` and ``(E, B)`` is accepted too.
    """
    if isinstance(data, TensorDataset):
        data = data.tensors  # type: ignore[assignment]
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise DataError(f"{name} must be a (windows, targets) pair or a TensorDataset of two")
    per_replica = replicas is not None and isinstance(data[0], torch.Tensor) and data[0].ndim == 3
    windows = check_tensor(f"{name} windows", data[0], ndim=3 if per_replica else 2)
    targets = check_tensor(f"{name} targets", data[1], ndim=2 if per_replica else 1)
    if per_replica and (len(windows) != replicas or len(targets) != replicas):
        raise DataError(
            f"per-replica {name} data must have {replicas} rows on its first axis, "
            f"got {len(windows)} and {len(targets)}"
        )
    if windows.shape[:-1] != targets.shape or targets.shape[-1] == 0:
        raise DataError(
            f"{name} windows and targets must have the same non-zero length, "
            f"got {windows.shape[-2]} and {targets.shape[-1]}"
        )
    return windows, targets


# a window row of this many bytes, gathered as one element of this dtype
_ROW_DTYPES = {8: torch.float64, 16: torch.complex128}


def _select_rows(windows: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``windows.index_select(0, rows)`` for windows ``(N, L)``: rows of 8 or 16 bytes
    (the default lag 4 of float32) on the CPU are copied as one float64 or complex128
    element each, a 1-D gather 3-4 times faster than row by row, and the same bytes."""
    wide = _ROW_DTYPES.get(windows.shape[-1] * windows.element_size())
    if wide is None or windows.device.type != "cpu" or not windows.is_contiguous():
        return windows.index_select(0, rows)
    rows_as_elements = windows.view(wide).view(-1)
    return rows_as_elements.index_select(0, rows).view(windows.dtype).view(-1, windows.shape[-1])


def _batches(
    windows: torch.Tensor, targets: torch.Tensor, batch_size: int, order: torch.Tensor | None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of rows of ``windows (..., n, L)`` and ``targets (..., n)``.

    ``order`` is ``None`` (rows as given), one permutation ``(n,)``, or one per replica
    ``(E, n)``, which gathers ``(E, B, L)`` batches.
    """
    if order is not None and order.ndim == 1:  # one order for all rows: permute once
        windows = (_select_rows(windows, order) if windows.ndim == 2
                   else windows.index_select(-2, order))
        targets = targets.index_select(-1, order)
        order = None
    n = targets.shape[-1]
    if order is not None:
        # gather with index_select on flat row numbers: ~5x faster than advanced indexing
        lag = windows.shape[-1]
        flat_windows, flat_targets = windows.reshape(-1, lag), targets.reshape(-1)
        if windows.ndim == 3:  # per-replica data: replica e's rows start at e * n
            offsets = torch.arange(len(order), dtype=order.dtype, device=order.device) * n
            order = order + offsets[:, None]
    for start in range(0, n, batch_size):
        stop = start + batch_size
        if order is None:
            yield windows[..., start:stop, :], targets[..., start:stop]
        else:
            rows = order[:, start:stop]
            shape = rows.shape
            rows = rows.flatten()
            yield (_select_rows(flat_windows, rows).view(*shape, lag),
                   flat_targets.index_select(0, rows).view(shape))


def _backward(output: torch.Tensor, gradient: torch.Tensor) -> None:
    """``output.backward(gradient)`` through torch's engine call less the checks and
    conversions ``torch.autograd.backward`` makes of its arguments, which are known
    good here (a plain tensor and its same-shaped gradient): about 10 µs of a single
    small policy's 250-µs step. Torch's own call where the engine's is not there
    (before 2.3), where ``__torch_function__`` may handle ``backward`` (a tensor
    subclass, an active mode) and inside a ``torch.func`` transform (torch's error)."""
    if (_engine_run_backward is None or torch._C._has_torch_function_unary(output)
            or torch._C._are_functorch_transforms_active()):
        output.backward(gradient)
        return
    _engine_run_backward((output,), (gradient,), False, False, (),
                         allow_unreachable=True, accumulate_grad=True)


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
        ``(n, L)`` and ``(n,)``, or per replica ``(E, n, L)`` and ``(E, n)``.
    order
        Row order: ``None`` (as given), a permutation ``(n,)``, or one per replica
        ``(E, n)``.

    Returns
    -------
    torch.Tensor
        ``(2,)`` or, for an ensemble, ``(E, 2)``: mean position and mean objective,
        averaged over batches (as the tutorial does, so a short last batch counts as
        much as a full one).
    """
    model.train()
    recoms, gains = [], []
    descent = None
    step = getattr(optimizer, "unhooked_step", optimizer.step)  # see core.optimizers
    for batch_windows, batch_targets in _batches(windows, targets, batch_size, order):
        positions = model(batch_windows)
        gain = objective(positions, batch_targets)
        optimizer.zero_grad(set_to_none=True)
        if descent is None:
            descent = torch.full_like(gain, -1.0)
        # the gradient of -gain.sum() (replicas' objectives are independent), given
        # rather than computed: two fewer kernels and autograd nodes a step
        _backward(gain, descent)
        step()
        recoms.append(positions.detach().mean(-1))
        gains.append(gain.detach())
    return torch.stack((torch.stack(recoms), torch.stack(gains)), -1).mean(0)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    windows: torch.Tensor,
    targets: torch.Tensor,
    objective: Objective = mean_return,
) -> torch.Tensor:
    """Mean position and objective in eval mode on all windows: ``(2,)`` or ``(E, 2)``."""
    model.eval()
    positions = model(windows)
    return torch.stack((positions.mean(-1), objective(positions, targets)), -1)


class _BestWeights:
    """Keep each replica's best weights by validation return; with a ``patience``, stop
    tracking a replica that many epochs after its last improvement."""

    def __init__(
        self, model: nn.Module, shape: tuple[int, ...], patience: int | None,
        device: torch.device,
    ) -> None:
        self.patience = patience
        self.value = torch.full(shape, -torch.inf, device=device)
        self.epoch = torch.zeros(shape, dtype=torch.long, device=device)
        self.active = torch.ones(shape, dtype=torch.bool, device=device)
        self.weights = [parameter.detach().clone() for parameter in model.parameters()]

    def update(self, model: nn.Module, valid_return: torch.Tensor, epoch: int) -> torch.Tensor:
        """Record epoch ``epoch``; return a boolean tensor, true once every replica has
        stopped (a tensor, so that the caller syncs once per epoch)."""
        improved = (valid_return > self.value) & self.active
        self.value = torch.where(improved, valid_return, self.value)
        self.epoch = torch.where(improved, epoch, self.epoch)
        for parameter, best in zip(model.parameters(), self.weights, strict=True):
            mask = improved.reshape(improved.shape + (1,) * (parameter.ndim - improved.ndim))
            best.copy_(torch.where(mask, parameter.detach(), best))
        if self.patience is not None:
            self.active &= epoch - self.epoch < self.patience
        return ~self.active.any()

    @torch.no_grad()
    def restore(self, model: nn.Module) -> None:
        for parameter, best in zip(model.parameters(), self.weights, strict=True):
            parameter.copy_(best)

    def state(self) -> dict[str, Any]:
        return {"value": self.value, "epoch": self.epoch, "active": self.active,
                "weights": self.weights}

    def load_state(self, state: dict[str, Any]) -> None:
        device = self.value.device
        self.value, self.epoch, self.active = (
            state[key].to(device) for key in ("value", "epoch", "active")
        )
        self.weights = [weights.to(device) for weights in state["weights"]]


class TrainingState(Protocol):
    """Where :func:`fit` keeps its state every ``every`` epochs and finds it again: a
    killed training resumes from the last state kept, with the same weights, optimizer
    moments, history and random-number streams, so it ends as if never stopped."""

    every: int

    def load(self) -> dict[str, Any] | None: ...

    def save(self, state: dict[str, Any]) -> None: ...


def _snapshot(
    epochs_done: int, model: nn.Module, optimizer: torch.optim.Optimizer,
    shufflers: list[torch.Generator], best: _BestWeights | None, history: torch.Tensor,
) -> dict[str, Any]:
    """Everything the next epoch depends on, after ``epochs_done`` epochs."""
    return {
        "epochs_done": epochs_done,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "shufflers": [generator.get_state() for generator in shufflers],
        "mask_draws": getattr(model, "mask_draws", 0),
        "mask_keys": getattr(model, "mask_keys", None),
        "global_rng": torch.get_rng_state(),
        "device_rng": _device_rng_state(history.device),
        "history": history[:epochs_done],
        "best": best.state() if best is not None else None,
    }


def _device_rng_state(device: torch.device) -> torch.Tensor | None:
    """A CUDA device's generator state (what its ``nn.Dropout`` draws from), else ``None``."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _restore(
    snapshot: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
    shufflers: list[torch.Generator], best: _BestWeights | None, history: torch.Tensor,
) -> int:
    """Put ``snapshot`` back; return the number of epochs it had done."""
    model.load_state_dict(snapshot["model"])
    optimizer.load_state_dict(snapshot["optimizer"])
    for generator, state in zip(shufflers, snapshot["shufflers"], strict=True):
        generator.set_state(state)
    if hasattr(model, "mask_draws"):  # a dropout policy's mask stream, key included
        model.mask_draws = int(snapshot.get("mask_draws", 0))
        if snapshot.get("mask_keys") is not None:
            model.mask_keys.copy_(snapshot["mask_keys"])
    torch.set_rng_state(snapshot["global_rng"])
    if snapshot.get("device_rng") is not None and history.device.type == "cuda":
        torch.cuda.set_rng_state(snapshot["device_rng"], history.device)
    done = int(snapshot["epochs_done"])
    history[:done] = snapshot["history"].to(history.device)
    if best is not None:
        best.load_state(snapshot["best"])
    return done


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
    seeds: int | Sequence[int] | None = None,
    patience: int | None = None,
    restore_best: bool | None = None,
    state: TrainingState | None = None,
) -> pd.DataFrame:
    """Train ``model`` in place by gradient ascent on ``objective``; return its history.

    Parameters
    ----------
    model
        A policy mapping windows ``(B, L)`` to positions ``(B,)``, or an
        :class:`~neuraltrader.core.ensemble.Ensemble` of E replicas trained at once.
        Training runs on the device of the model's parameters; the data are moved there.
    train, valid
        ``(windows, targets)`` pairs (or ``TensorDataset``s) from
        :func:`~neuraltrader.generate_sequences`; for an ensemble, also per-replica
        data ``(E, n, L)``, ``(E, n)``.
    epochs
        Passes over the training data, ``>= 1``.
    lr, optimizer
        Learning rate and optimizer name (``rmsprop``, the tutorial's, ``adam``, ``sgd``).
    batch_size, shuffle
        Rows per step; whether to visit them in a fresh random order each epoch.
    progress
        Show a tqdm bar over epochs.
    generator
        Seed or ``torch.Generator`` for a single policy's shuffling. Its initial weights
        and its dropout masks' stream are drawn from torch's global generator when the
        policy is built: build it under :func:`neuraltrader.seeded` to fix them. An
        ensemble's replica ``s`` shuffles with seed ``s`` instead, and the policy's own
        draws (``nn.Dropout`` under ``vmap``) come from the global generators seeded from
        the ensemble's seeds, the caller's state left as it was (CPU and CUDA).
    objective
        ``objective(positions, targets)`` to maximise, reducing the last axis.
    seeds
        Shorthand for ``fit(make_ensemble(model, seeds), ...)``: train replicas of
        ``model``'s architecture (``model`` itself is left untouched) when only the
        history is wanted; build the ensemble yourself to keep the weights.
    patience
        Early stopping: stop a replica after this many epochs without a higher
        validation return. ``None`` trains all epochs.
    restore_best
        End with each replica's weights of its best validation epoch rather than its
        last; default: whenever ``patience`` is set.
    state
        Keep the training state there every ``state.every`` epochs, and start from the
        state found there (a resumed run); see :class:`TrainingState`.

    Returns
    -------
    pandas.DataFrame
        One row per epoch (and, for an ensemble, per ``seed``): ``epoch`` (from 1),
        ``train_recom`` and ``train_return`` (mean position and objective over the
        epoch's batches, in train mode), ``valid_recom`` and ``valid_return`` (on the
        whole validation set, eval mode). Rows end at each replica's stopping epoch.

    Raises
    ------
    TrainingError
        If a statistic becomes NaN or infinite; the message names the epoch.
    """
    if seeds is not None:
        model = make_ensemble(model, seeds, device=_device_of(model))
    replicas = model.replicas if isinstance(model, Ensemble) else None
    device = _device_of(model)
    train_x, train_y = (t.to(device) for t in as_window_pair(train, "train", replicas))
    valid_x, valid_y = (t.to(device) for t in as_window_pair(valid, "valid", replicas))
    check_int("epochs", epochs, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    if patience is not None:
        check_int("patience", patience, minimum=1)
    if restore_best is None:
        restore_best = patience is not None
    width = getattr(model, "inputs", train_x.shape[-1])  # lag L × features per day F
    for name, windows in (("train", train_x), ("valid", valid_x)):
        if windows.shape[-1] != width:
            raise DataError(
                f"{name} windows have {windows.shape[-1]} columns, the model reads "
                f"{width} (lag {model.lag} × {getattr(model, 'features', 1)} features a day)"
            )
    optim = make_optimizer(optimizer, model.parameters(), lr)
    shape = (replicas,) if replicas is not None else ()
    shufflers = (
        [as_generator(seed, device) for seed in model.seeds] if replicas is not None
        else [as_generator(generator, device)]
    )
    tracked = restore_best or patience is not None
    best = _BestWeights(model, shape, patience, device) if tracked else None

    # int32 permutations written in place: the same orders as int64, ~35% cheaper for E
    orders = torch.empty(len(shufflers), train_y.shape[-1], dtype=torch.int32, device=device)
    history = torch.empty(epochs, *shape, len(HISTORY_COLUMNS), device=device)
    stopped = torch.zeros((), dtype=torch.bool, device=device)
    last = epochs - 1
    start = 0
    # an ensemble's global draws seeded from its seeds: a unit of work gives the same
    # numbers in any order, on any worker, resumed or not (snapshots keep the states)
    randomness = (seeded(derive_seed(_FIT_DRAWS_KEY, *model.seeds), device)
                  if replicas is not None else contextlib.nullcontext())
    with randomness:
        snapshot = state.load() if state is not None else None
        if snapshot is not None:
            start = _restore(snapshot, model, optim, shufflers, best, history)
        for epoch in tqdm(range(start, epochs), desc=description, disable=not progress,
                          leave=False, initial=start, total=epochs):
            order = None
            if shuffle:
                for shuffler, row in zip(shufflers, orders, strict=True):
                    torch.randperm(len(row), generator=shuffler, out=row)
                order = orders if replicas is not None else orders[0]
            history[epoch, ..., :2] = train_epoch(
                model, optim, train_x, train_y, batch_size=batch_size, order=order,
                objective=objective,
            )
            history[epoch, ..., 2:] = evaluate(model, valid_x, valid_y, objective)
            if best is not None:
                stopped = best.update(model, history[epoch, ..., 3], epoch)
            # the epoch's one host synchronisation: divergence and early stopping together
            finite, done = torch.stack((torch.isfinite(history[epoch]).all(), stopped)).tolist()
            if not finite:
                raise TrainingError(
                    f"training diverged at epoch {epoch + 1}: non-finite statistics "
                    f"{history[epoch].tolist()}; lower the learning rate (lr={lr})"
                )
            if done:
                last = epoch
                break
            if state is not None and (epoch + 1) % state.every == 0 and epoch + 1 < epochs:
                state.save(_snapshot(epoch + 1, model, optim, shufflers, best, history))
    if best is not None and restore_best:
        best.restore(model)
    return _history_frame(history[: last + 1].cpu(), model, best)


def _device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _history_frame(
    history: torch.Tensor, model: nn.Module, best: _BestWeights | None
) -> pd.DataFrame:
    epochs = torch.arange(1, len(history) + 1)
    if not isinstance(model, Ensemble):
        frame = pd.DataFrame(history.numpy(), columns=HISTORY_COLUMNS)
        frame.insert(0, "epoch", epochs.numpy())
        return frame
    replicas = model.replicas
    frame = pd.DataFrame(history.reshape(-1, len(HISTORY_COLUMNS)).numpy(), columns=HISTORY_COLUMNS)
    frame.insert(0, "seed", model.seeds * len(history))
    frame.insert(0, "epoch", epochs.repeat_interleave(replicas).numpy())
    if best is not None and best.patience is not None:  # stops `patience` after its best
        stopped = (best.epoch + best.patience + 1).tolist()  # 1-based epoch numbers
        last = dict(zip(model.seeds, stopped, strict=True))
        frame = frame[frame["epoch"] <= frame["seed"].map(last)]
    return frame.sort_values(["seed", "epoch"], kind="stable").reset_index(drop=True)


__all__ = [
    "HISTORY_COLUMNS", "TrainingState", "evaluate", "fit", "train_epoch",
]
