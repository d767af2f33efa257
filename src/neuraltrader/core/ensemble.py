"""E independent replicas of any policy, trained in one vectorised pass.

Three paths compute the same thing:

- :class:`TraderEnsemble`, the batched-matmul path, for exactly :class:`NeuralTrader` and
  :class:`DropoutTrader`: parameters stacked along a replica axis and every layer one
  ``torch.baddbmm`` with the batch axis last, ``(E, H, B)``. It measured faster than
  ``vmap`` for models this small (``benchmarks/bench_train.py``). Any other class,
  subclasses included, is refused: a subclass may change ``hidden_features`` and would
  otherwise train silently as the plain MLP.
- :class:`FunctionalEnsemble`, the generic path, for every other
  :class:`~neuraltrader.core.policies.WindowPolicy`: ``torch.func.stack_module_state`` +
  ``functional_call`` under ``vmap(randomness="different")``, so the replicas run the
  policy's own ``forward``; replica by replica for a policy ``vmap`` cannot batch
  (``batches_with_vmap = False``).
- :class:`LSTMEnsemble`, for exactly :class:`LSTMTrader`: ``nn.LSTM`` takes one set of
  weights, so every replica's recursion runs in the same kernels instead
  (:mod:`~neuraltrader.core.lstm_kernel`).

:func:`make_ensemble` picks the path. Replica ``s`` starts from the weights the policy
gets under ``seeded(s)`` and shuffles with seed ``s``, so it reproduces the policy
trained alone with that seed (``with seeded(s): model = ...; fit(model, ...,
generator=s)``), dropout masks included: a dropout policy's masks come from a
counter-based stream keyed when it is built (:mod:`~neuraltrader.core.masks`), and the
batched-matmul path draws every replica's from its replica's stream at once. On the
generic path ``vmap`` draws one mask for all replicas of ``nn.Dropout`` (the
transformer's), independent per replica but not those of the solo run. Batch orders are
the solo runs' on the CPU; on another device they come from that device's generators,
so replicas are reproducible there but do not equal a CPU solo run.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .._checks import check_int
from .._random import seeded
from ..errors import ConfigError
from .lstm_kernel import lstm_last_states
from .masks import dropout_masks, mask_outputs
from .policies import DropoutTrader, LSTMTrader, NeuralTrader, PositionHead, WindowPolicy


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, int):
        seeds = range(check_int("seeds", seeds, minimum=1))
    checked = [check_int("seed", seed, minimum=0) for seed in seeds]
    if not checked:
        raise ConfigError("seeds must name at least one replica")
    return checked


class Ensemble(nn.Module):
    """What every ensemble has: ``seeds``, ``replicas``, ``lag``, ``features``,
    ``inputs``, the template's class and arguments, and :meth:`replica`. Forward maps
    windows ``(B, L*F)`` shared by all replicas, or ``(E, B, L*F)`` one set per replica,
    to positions ``(E, B)``.

    Every parameter has the replica axis first, so per-replica bookkeeping (early
    stopping) can mask along it.
    """

    path: str = ""

    def __init__(self, template: WindowPolicy, seeds: int | Sequence[int]) -> None:
        super().__init__()
        if not isinstance(template, WindowPolicy):
            raise ConfigError(
                f"replicas need a WindowPolicy (a registered policy), got {type(template).__name__}"
            )
        self.seeds = _seed_list(seeds)
        self.policy_class = type(template)
        self.arguments = template.init_arguments()
        self.lag = template.lag
        self.features = template.features

    @property
    def replicas(self) -> int:
        return len(self.seeds)

    @property
    def inputs(self) -> int:
        """Numbers per window, ``lag * features``, as the template's."""
        return self.lag * self.features

    def _fresh_replicas(self) -> list[WindowPolicy]:
        """One policy per seed, each built under ``seeded(seed)``, as its solo run's."""
        replicas = []
        for seed in self.seeds:
            with seeded(seed):
                replicas.append(self.policy_class(**self.arguments))
        return replicas

    def replica_state(self, index: int) -> dict[str, torch.Tensor]:
        """Replica ``index``'s weights as the policy's own ``state_dict``."""
        raise NotImplementedError

    def replica(self, index: int) -> WindowPolicy:
        """Replica ``index`` as a stand-alone policy (a copy, on the CPU), in eval mode;
        a dropout policy's mask stream goes on where the replica's has got to."""
        model = self.policy_class(**self.arguments)
        state = {name: value.detach().cpu().clone()
                 for name, value in self.replica_state(index).items()}
        model.load_state_dict(state)
        if hasattr(model, "mask_keys"):
            model.mask_keys.copy_(self.mask_keys[index].reshape(-1))
            model.mask_draws = self.mask_draws
        return model.eval()

    def extra_repr(self) -> str:
        return (f"{self.policy_class.__name__}({self.arguments}), replicas={self.replicas}, "
                f"path={self.path!r}")


class _HiddenLayers(torch.autograd.Function):
    """Every replica's score before the head, ``W1 · (masks ⊙ sigmoid(W0 · x + b0)) + b1``,
    with its gradient written out.

    The backward runs the kernels autograd runs for the same expression (so the
    gradients are the same to the bit), less what autograd adds: the hidden layer's
    gradient is a broadcast product instead of a batched matmul over one term, the
    sigmoid and its gradient are taken in place, and one node replaces seven.

    Shapes: ``inputs`` ``(E, L*F, B)``, ``weight0`` ``(E, H, L*F)``, ``bias0`` ``(E, H,
    1)``, ``weight1`` ``(E, 1, H)``, ``bias1`` ``(E, 1, 1)``, ``masks`` ``(E, H, B)`` or
    ``None`` → ``(E, 1, B)``.
    """

    @staticmethod
    def forward(ctx, inputs, weight0, bias0, weight1, bias1, masks):  # type: ignore[no-untyped-def]
        hidden = torch.baddbmm(bias0, weight0, inputs).sigmoid_()  # (E, H, B)
        dropped = hidden if masks is None else hidden * masks
        ctx.save_for_backward(inputs, weight0, weight1, hidden, dropped, masks)
        return torch.baddbmm(bias1, weight1, dropped)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_score):  # type: ignore[no-untyped-def]
        inputs, weight0, weight1, hidden, dropped, masks = ctx.saved_tensors
        grad_weight1 = grad_score.bmm(dropped.transpose(1, 2))
        grad_bias1 = grad_score.sum(-1, keepdim=True)
        grad_hidden = weight1.transpose(1, 2) * grad_score  # (E, H, B): one term, exact
        if masks is not None:
            grad_hidden.mul_(masks)
        grad_pre = torch.ops.aten.sigmoid_backward.grad_input(  # in place: no new buffer
            grad_hidden, hidden, grad_input=grad_hidden)
        grad_weight0 = grad_pre.bmm(inputs.transpose(1, 2))
        grad_bias0 = grad_pre.sum(-1, keepdim=True)
        # the windows' gradient only when asked for (a saliency map): training never does
        grad_inputs = weight0.transpose(1, 2).bmm(grad_pre) if ctx.needs_input_grad[0] else None
        return grad_inputs, grad_weight0, grad_bias0, grad_weight1, grad_bias1, None


class TraderEnsemble(Ensemble):
    """Replicas of a :class:`NeuralTrader` or :class:`DropoutTrader` as batched
    parameters (the batched-matmul path).

    Parameters
    ----------
    template
        Exactly a ``NeuralTrader`` or ``DropoutTrader``; only its architecture is used.
    seeds
        One seed per replica (an int E means seeds ``0 .. E-1``).

    A dropout ensemble keeps each replica's mask-stream key (``mask_keys``, ``(E,)``)
    and one count of outputs used (``mask_draws``), the same for all replicas.
    """

    path = "batched-matmul"
    POLICY_CLASSES = (NeuralTrader, DropoutTrader)

    def __init__(self, template: WindowPolicy, seeds: int | Sequence[int]) -> None:
        if type(template) not in self.POLICY_CLASSES:
            raise ConfigError(
                "the batched-matmul path computes exactly NeuralTrader or DropoutTrader, got "
                f"{type(template).__name__}; use make_ensemble() for any other policy"
            )
        super().__init__(template, seeds)
        replicas = self._fresh_replicas()

        def stacked(name: str) -> nn.Parameter:
            return nn.Parameter(torch.stack([r.get_parameter(name).detach() for r in replicas]))

        self.weight0 = stacked("linear0.weight")  # (E, H, L*F)
        self.bias0 = nn.Parameter(stacked("linear0.bias")[..., None])  # (E, H, 1)
        self.weight1 = stacked("linear1.weight")  # (E, 1, H)
        self.bias1 = nn.Parameter(stacked("linear1.bias")[..., None])  # (E, 1, 1)
        self.dropout = float(self.arguments.get("dropout", 0.0))
        self.head = PositionHead(template.position)
        if isinstance(template, DropoutTrader):  # its streams, at any rate (0 draws none)
            keys = torch.cat([replica.get_buffer("mask_keys") for replica in replicas])
            self.register_buffer("mask_keys", keys, persistent=False)  # (E,)
            self.mask_draws = 0

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        inputs = windows.transpose(-1, -2)  # (L*F, B) or (E, L*F, B)
        if inputs.ndim == 2:
            inputs = inputs.expand(self.replicas, *inputs.shape)
        masks = None
        if self.training and self.dropout > 0:
            width, batch = self.weight0.shape[1], inputs.shape[-1]
            masks = dropout_masks(self.mask_keys, self.mask_draws, width, batch, self.dropout,
                                  self.weight0.dtype)
            self.mask_draws += mask_outputs(width, batch)
        score = _HiddenLayers.apply(inputs, self.weight0, self.bias0, self.weight1, self.bias1,
                                    masks)
        return self.head(score.squeeze(1))  # (E, B)

    def replica_state(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "linear0.weight": self.weight0[index], "linear0.bias": self.bias0[index, :, 0],
            "linear1.weight": self.weight1[index], "linear1.bias": self.bias1[index, :, 0],
        }


class FunctionalEnsemble(Ensemble):
    """Replicas of any :class:`WindowPolicy`, run through the policy's own ``forward``
    with ``torch.func.vmap`` over stacked parameters (the generic path).

    A policy whose ``forward`` ``vmap`` cannot batch (``batches_with_vmap = False``:
    the LSTM, whose ``nn.LSTM`` kernel has no batching rule) runs replica by replica
    instead, on slices of the same stacked parameters (``path`` ``"per-replica"``).

    Parameters and buffers are registered under the policy's names with ``.`` written
    as ``__`` (``lstm.weight_ih_l0`` → ``lstm__weight_ih_l0``), each ``(E, ...)``.
    """

    path = "vmap"

    def __init__(self, template: WindowPolicy, seeds: int | Sequence[int]) -> None:
        super().__init__(template, seeds)
        if not template.batches_with_vmap:
            self.path = "per-replica"
        replicas = self._fresh_replicas()
        parameters, buffers = stack_module_state(replicas)  # type: ignore[arg-type]
        self._parameter_names, self._buffer_names = list(parameters), list(buffers)
        saved = set(template.state_dict())  # a buffer the policy does not save, nor do we
        for name, value in parameters.items():
            self.register_parameter(self._attribute(name), nn.Parameter(value.detach()))
        for name, value in buffers.items():
            self.register_buffer(self._attribute(name), value, persistent=name in saved)
        # a weightless copy that vmap calls with each replica's tensors; kept in a tuple
        # so that it is not a submodule (its parameters are not the ensemble's)
        self._base = (copy.deepcopy(replicas[0]).to("meta"),)

    @staticmethod
    def _attribute(name: str) -> str:
        return name.replace(".", "__")

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        base = self._base[0].train(self.training)
        parameters = {n: getattr(self, self._attribute(n)) for n in self._parameter_names}
        buffers = {n: getattr(self, self._attribute(n)) for n in self._buffer_names}

        if self.path == "per-replica":
            return self._replica_by_replica(base, parameters, buffers, windows)

        def call(parameters, buffers, windows):  # type: ignore[no-untyped-def]
            return functional_call(base, (parameters, buffers), (windows,))

        shared = None if windows.ndim == 2 else 0
        return vmap(call, in_dims=(0, 0, shared), randomness="different")(
            parameters, buffers, windows
        )

    def _replica_by_replica(
        self, base: WindowPolicy, parameters: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor], windows: torch.Tensor,
    ) -> torch.Tensor:
        """Each replica's ``forward`` in turn, on its slices of the stacked tensors (their
        gradients reach the stacked parameters), stacked into ``(E, B)``."""
        inputs = windows.unbind(0) if windows.ndim == 3 else [windows] * self.replicas
        sliced = [{name: tensor.unbind(0) for name, tensor in group.items()}
                  for group in (parameters, buffers)]
        start = getattr(base, "mask_draws", None)  # each replica's stream from the same count
        positions = []
        with warnings.catch_warnings():
            # cuDNN copies a replica's slices into one block, as it would anyway
            warnings.filterwarnings("ignore", message="RNN module weights are not part")
            for index in range(self.replicas):
                if start is not None:
                    base.mask_draws = start
                tensors = tuple({name: slices[index] for name, slices in group.items()}
                                for group in sliced)
                positions.append(functional_call(base, tensors, (inputs[index],)))
        return torch.stack(positions)

    @property
    def mask_draws(self) -> int:
        """A dropout policy's mask-stream count (its replicas' streams move on together);
        an ``AttributeError`` for a policy that draws no masks."""
        return self._base[0].mask_draws  # type: ignore[no-any-return]

    @mask_draws.setter
    def mask_draws(self, value: int) -> None:
        self._base[0].mask_draws = value

    def replica_state(self, index: int) -> dict[str, torch.Tensor]:
        saved = self.state_dict()
        return {name: getattr(self, self._attribute(name))[index]
                for name in self._parameter_names + self._buffer_names
                if self._attribute(name) in saved}


class LSTMEnsemble(FunctionalEnsemble):
    """Replicas of exactly an :class:`LSTMTrader`, every replica's recursion in the same
    kernels (:func:`~neuraltrader.core.lstm_kernel.lstm_last_states`; the
    ``"batched-lstm"`` path). Parameters are stored as the generic path stores them
    (``lstm__weight_ih_l0`` …, each ``(E, ...)``), so their state dicts are alike.

    ``nn.LSTM`` takes one set of weights: run replica by replica (``path`` ``"per-replica"``)
    it equals the solo run to the bit, batched it matches it to float rounding and
    measured 1.6 times faster at 4 replicas (``benchmarks/bench_backtest.py``).
    """

    path = "batched-lstm"

    def __init__(self, template: WindowPolicy, seeds: int | Sequence[int]) -> None:
        if type(template) is not LSTMTrader:
            raise ConfigError(f"the batched-lstm path computes exactly LSTMTrader, got "
                              f"{type(template).__name__}; use make_ensemble()")
        super().__init__(template, seeds)
        self.path = type(self).path
        self.head = PositionHead(template.position)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        days = windows.unflatten(-1, (self.lag, self.features)).movedim(-3, -1)  # (.., L, F, B)
        if days.ndim == 3:
            days = days.expand(self.replicas, *days.shape)
        states = lstm_last_states(days, self.lstm__weight_ih_l0, self.lstm__weight_hh_l0,
                                  self.lstm__bias_ih_l0, self.lstm__bias_hh_l0)  # (E, H, B)
        score = torch.baddbmm(self.linear__bias[..., None], self.linear__weight, states)
        return self.head(score.squeeze(1))  # (E, B)


def make_ensemble(
    template: WindowPolicy, seeds: int | Sequence[int], device: torch.device | str | None = None,
) -> Ensemble:
    """E replicas of ``template``'s architecture (weights from each seed), on ``device``.

    Exactly ``NeuralTrader``/``DropoutTrader`` take the batched-matmul path
    (:class:`TraderEnsemble`), exactly ``LSTMTrader`` the batched-lstm path
    (:class:`LSTMEnsemble`); every other policy the generic path
    (:class:`FunctionalEnsemble`).
    """
    if type(template) in TraderEnsemble.POLICY_CLASSES:
        ensemble: Ensemble = TraderEnsemble(template, seeds)
    elif type(template) is LSTMTrader:
        ensemble = LSTMEnsemble(template, seeds)
    else:
        ensemble = FunctionalEnsemble(template, seeds)
    return ensemble.to(device) if device is not None else ensemble


__all__ = ["Ensemble", "FunctionalEnsemble", "LSTMEnsemble", "TraderEnsemble", "make_ensemble"]
