"""E independent replicas of an MLP trader, trained in one vectorised pass.

Parameters are stacked along a leading replica axis and every layer is one batched
matrix product (``torch.baddbmm``) with the batch axis last, ``(E, H, B)``, which measured
faster than ``torch.func.vmap`` over ``functional_call`` for models this small (see
``benchmarks/bench_train.py``).

Replica ``s`` reproduces ``NeuralTrader``/``DropoutTrader`` trained alone with seed ``s``
(``with seeded(s): model = ...; fit(model, ..., generator=s)``): its initial weights are
drawn under ``seeded(s)``, its batch order from ``torch.Generator().manual_seed(s)``
(batch order is *not* shared between replicas), and its dropout masks from a generator
left where ``seeded(s)`` was after initialisation, drawn the way ``nn.Dropout`` draws them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._checks import check_int
from .._random import seeded
from ..errors import ConfigError
from .policies import NeuralTrader, PositionHead


class TraderEnsemble(nn.Module):
    """Replicas of ``template``'s architecture, one per seed, as batched parameters.

    Parameters
    ----------
    template
        A :class:`NeuralTrader` or :class:`DropoutTrader`; only its architecture is used.
    seeds
        One seed per replica (an int E means seeds ``0 .. E-1``).

    Shapes: windows ``(B, L)`` shared by all replicas, or ``(E, B, L)`` one set per
    replica → positions ``(E, B)``.
    """

    def __init__(self, template: NeuralTrader, seeds: int | Sequence[int]) -> None:
        super().__init__()
        if not isinstance(template, NeuralTrader):
            raise ConfigError(
                f"replicas need a NeuralTrader or DropoutTrader, got {type(template).__name__}"
            )
        if isinstance(seeds, int):
            seeds = range(check_int("seeds", seeds, minimum=1))
        self.seeds = [check_int("seed", seed, minimum=0) for seed in seeds]
        if not self.seeds:
            raise ConfigError("seeds must name at least one replica")
        self.policy_class = type(template)
        self.arguments = template.init_arguments()
        replicas, self.mask_generators = [], []
        for seed in self.seeds:
            with seeded(seed):
                replicas.append(self.policy_class(**self.arguments))
                generator = torch.Generator()
                generator.set_state(torch.get_rng_state())
            self.mask_generators.append(generator)
        def stacked(name: str) -> nn.Parameter:
            return nn.Parameter(torch.stack([r.get_parameter(name).detach() for r in replicas]))

        self.weight0 = stacked("linear0.weight")  # (E, H, L)
        self.bias0 = nn.Parameter(stacked("linear0.bias")[..., None])  # (E, H, 1)
        self.weight1 = stacked("linear1.weight")  # (E, 1, H)
        self.bias1 = nn.Parameter(stacked("linear1.bias")[..., None])  # (E, 1, 1)
        self.dropout = float(self.arguments.get("dropout", 0.0))
        self.head = PositionHead(template.position)
        self.lag = template.lag

    @property
    def replicas(self) -> int:
        return len(self.seeds)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        inputs = windows.transpose(-1, -2)  # (L, B) or (E, L, B)
        if inputs.ndim == 2:
            inputs = inputs.expand(self.replicas, *inputs.shape)
        hidden = torch.sigmoid(torch.baddbmm(self.bias0, self.weight0, inputs))  # (E, H, B)
        if self.training and self.dropout > 0:
            hidden = hidden * self._dropout_masks(hidden.shape[-1])
        score = torch.baddbmm(self.bias1, self.weight1, hidden).squeeze(1)  # (E, B)
        return self.head(score)

    def _dropout_masks(self, batch: int) -> torch.Tensor:
        """Scaled keep-masks ``(E, H, B)``, replica by replica as ``nn.Dropout`` draws a
        ``(B, H)`` mask: one ``bernoulli_`` call on each replica's own generator."""
        keep = 1.0 - self.dropout
        masks = torch.empty(self.replicas, batch, self.weight0.shape[1])
        for mask, generator in zip(masks, self.mask_generators, strict=True):
            mask.bernoulli_(keep, generator=generator)
        return masks.div_(keep).transpose(1, 2)

    def replica(self, index: int) -> NeuralTrader:
        """Replica ``index`` as a stand-alone policy (a copy), in eval mode."""
        model = self.policy_class(**self.arguments)
        model.load_state_dict({
            "linear0.weight": self.weight0[index].detach().clone(),
            "linear0.bias": self.bias0[index, :, 0].detach().clone(),
            "linear1.weight": self.weight1[index].detach().clone(),
            "linear1.bias": self.bias1[index, :, 0].detach().clone(),
        })
        return model.eval()

    def extra_repr(self) -> str:
        return f"{self.policy_class.__name__}({self.arguments}), replicas={self.replicas}"


__all__ = ["TraderEnsemble"]
