"""E independent replicas of any policy, trained in one vectorised pass.

Two paths compute the same thing:

- :class:`TraderEnsemble`, the batched-matmul path, for exactly :class:`NeuralTrader` and
  :class:`DropoutTrader`: parameters stacked along a replica axis and every layer one
  ``torch.baddbmm`` with the batch axis last, ``(E, H, B)``. It measured faster than
  ``vmap`` for models this small (``benchmarks/bench_train.py``). Any other class,
  subclasses included, is refused: a subclass may change ``hidden_features`` and would
  otherwise train silently as the plain MLP.
- :class:`FunctionalEnsemble`, the generic path, for every other
  :class:`~neuraltrader.core.policies.WindowPolicy`: ``torch.func.stack_module_state`` +
  ``functional_call`` under ``vmap(randomness="different")``, so the replicas run the
  policy's own ``forward``.

:func:`make_ensemble` picks the path. Replica ``s`` starts from the weights the policy
gets under ``seeded(s)`` and shuffles with seed ``s``, so it reproduces the policy
trained alone with that seed (``with seeded(s): model = ...; fit(model, ...,
generator=s)``). On the batched-matmul path this holds for dropout masks too (each
replica draws from a generator left where ``seeded(s)`` was after initialisation, the
way ``nn.Dropout`` draws). On the generic path ``vmap`` draws one mask for all
replicas, independent per replica but not those of the solo run. These equalities are
CPU ones: on another device batch orders come from that device's generators and the
masks from generators seeded per replica, so replicas are reproducible there but do not
equal a CPU solo run.

Drawing those solo masks is serial (a Mersenne Twister per replica, about 3 ns a
number on the CPU, whatever the threads): a 64-replica dropout ensemble takes 1.4 to 2.4
times as long as a plain one (``benchmarks/bench_train.py``, 1 and 2 threads).
``exact_replicas=False`` trades the solo equality for speed, about 1.3 times a plain
ensemble: every replica's masks come at once from counter-based SplitMix64 streams
keyed by the seeds (:func:`splitmix64`), a dozen vectorised integer operations. The
keep probability is the same to 2^-17; replica ``s`` is still reproducible and resumes
exactly, and is the same in any ensemble and on any device, but no longer equals its
solo run. A checkpoint does not record the choice: a loaded ensemble draws exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .._checks import check_int
from .._random import derive_seed, seeded
from ..errors import ConfigError
from .policies import DropoutTrader, NeuralTrader, PositionHead, WindowPolicy, keep_mask_


def _signed64(value: int) -> int:
    """``value`` modulo 2**64 as a signed 64-bit integer (torch's ``int64``)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >> 63 else value


SPLITMIX_GAMMA = _signed64(0x9E3779B97F4A7C15)
_SPLITMIX_MULTIPLIERS = (_signed64(0xBF58476D1CE4E5B9), _signed64(0x94D049BB133111EB))


def _xor_shift_(bits: torch.Tensor, shift: int) -> torch.Tensor:
    """``bits ^= bits >>> shift`` in place; ``>>>`` is the logical shift (torch's
    ``>>`` on ``int64`` is arithmetic, so the sign copies are masked off)."""
    return bits.bitwise_xor_(bits.bitwise_right_shift(shift).bitwise_and_((1 << 64 - shift) - 1))


def splitmix64(keys: torch.Tensor, start: int, count: int,
               steps: torch.Tensor | None = None) -> torch.Tensor:
    """Outputs ``start .. start + count - 1`` of the SplitMix64 generator (Steele, Lea
    and Flood 2014, that of ``java.util.SplittableRandom``) seeded with each of ``keys``:
    output ``i`` is ``mix(key + (i + 1) * GAMMA)``, so any stretch of a stream is a few
    elementwise operations, in parallel across replicas and threads.

    Shapes: ``keys`` ``(E,)`` ``int64`` → ``(E, count)`` ``int64`` (the outputs' 64
    bits, two's complement). ``steps``, if given, is ``arange(count) * GAMMA``, kept
    by a caller that draws the same ``count`` again and again.
    """
    if steps is None:
        steps = torch.arange(count, device=keys.device).mul_(SPLITMIX_GAMMA)
    offset = keys + _signed64((start + 1) * SPLITMIX_GAMMA)  # integer overflow wraps
    bits = torch.add(offset[:, None], steps)
    _xor_shift_(bits, 30).mul_(_SPLITMIX_MULTIPLIERS[0])
    _xor_shift_(bits, 27).mul_(_SPLITMIX_MULTIPLIERS[1])
    return _xor_shift_(bits, 31)


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

    def _fresh_replicas(self) -> tuple[list[WindowPolicy], list[torch.Tensor]]:
        """One policy per seed, each initialised under ``seeded(seed)``, and the state
        of torch's global generator right after each initialisation (where the solo
        run's dropout masks start)."""
        replicas, states = [], []
        for seed in self.seeds:
            with seeded(seed):
                replicas.append(self.policy_class(**self.arguments))
                states.append(torch.get_rng_state())
        return replicas, states

    def replica_state(self, index: int) -> dict[str, torch.Tensor]:
        """Replica ``index``'s weights as the policy's own ``state_dict``."""
        raise NotImplementedError

    def replica(self, index: int) -> WindowPolicy:
        """Replica ``index`` as a stand-alone policy (a copy, on the CPU), in eval mode."""
        model = self.policy_class(**self.arguments)
        state = {name: value.detach().cpu().clone()
                 for name, value in self.replica_state(index).items()}
        model.load_state_dict(state)
        return model.eval()

    def extra_repr(self) -> str:
        return (f"{self.policy_class.__name__}({self.arguments}), replicas={self.replicas}, "
                f"path={self.path!r}")


class TraderEnsemble(Ensemble):
    """Replicas of a :class:`NeuralTrader` or :class:`DropoutTrader` as batched
    parameters (the batched-matmul path).

    Parameters
    ----------
    template
        Exactly a ``NeuralTrader`` or ``DropoutTrader``; only its architecture is used.
    seeds
        One seed per replica (an int E means seeds ``0 .. E-1``).
    exact_replicas
        Dropout masks: ``True`` draws replica ``s``'s from a generator of its own, those
        of its solo run, one replica at a time; ``False`` draws every replica's at once
        from counter-based streams (:func:`splitmix64` keyed by the seed): the same
        distribution, several times faster, but not the solo run's masks.
    """

    path = "batched-matmul"
    POLICY_CLASSES = (NeuralTrader, DropoutTrader)

    def __init__(
        self, template: WindowPolicy, seeds: int | Sequence[int], *, exact_replicas: bool = True
    ) -> None:
        if type(template) not in self.POLICY_CLASSES:
            raise ConfigError(
                "the batched-matmul path computes exactly NeuralTrader or DropoutTrader, got "
                f"{type(template).__name__}; use make_ensemble() for any other policy"
            )
        super().__init__(template, seeds)
        self.exact_replicas = bool(exact_replicas)
        replicas, states = self._fresh_replicas()
        self.mask_generators: list[torch.Generator] = []
        if self.exact_replicas:
            self.mask_generators = [torch.Generator() for _ in states]
            for generator, state in zip(self.mask_generators, states, strict=True):
                generator.set_state(state)
        # the counter-based streams: one key per seed, and the outputs each has given
        self.mask_keys = None if self.exact_replicas else torch.tensor(
            [_signed64(derive_seed(seed, 2)) for seed in self.seeds])
        self.mask_draws = 0
        self._mask_steps: torch.Tensor | None = None

        def stacked(name: str) -> nn.Parameter:
            return nn.Parameter(torch.stack([r.get_parameter(name).detach() for r in replicas]))

        self.weight0 = stacked("linear0.weight")  # (E, H, L*F)
        self.bias0 = nn.Parameter(stacked("linear0.bias")[..., None])  # (E, H, 1)
        self.weight1 = stacked("linear1.weight")  # (E, 1, H)
        self.bias1 = nn.Parameter(stacked("linear1.bias")[..., None])  # (E, 1, 1)
        self.dropout = float(self.arguments.get("dropout", 0.0))
        self.head = PositionHead(template.position)

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        """Moving the ensemble to another device moves its mask generators too."""
        module = super()._apply(fn, recurse)
        device = self.weight0.device
        if self.mask_keys is not None:
            self.mask_keys = self.mask_keys.to(device)
            self._mask_steps = None
        if self.mask_generators and self.mask_generators[0].device != device:
            # a CPU generator's state does not transfer: seed the new device's per replica
            self.mask_generators = [
                torch.Generator(device).manual_seed(derive_seed(seed, 1)) for seed in self.seeds
            ]
        return module

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        inputs = windows.transpose(-1, -2)  # (L*F, B) or (E, L*F, B)
        if inputs.ndim == 2:
            inputs = inputs.expand(self.replicas, *inputs.shape)
        hidden = torch.sigmoid(torch.baddbmm(self.bias0, self.weight0, inputs))  # (E, H, B)
        if self.training and self.dropout > 0:
            hidden = hidden * self._dropout_masks(hidden.shape[-1])
        score = torch.baddbmm(self.bias1, self.weight1, hidden).squeeze(1)  # (E, B)
        return self.head(score)

    def _dropout_masks(self, batch: int) -> torch.Tensor:
        """Scaled keep-masks ``(E, H, B)``, replica by replica as the solo
        ``DropoutTrader`` draws its ``(B, H)`` mask (:func:`dropout_mask`), each from the
        replica's own generator: one ``rand`` call per replica (its generator's stream),
        then one comparison and scaling for all. Without ``exact_replicas``, from the
        counter-based streams (:meth:`_counter_masks`)."""
        if not self.exact_replicas:
            return self._counter_masks(batch)
        uniform = torch.empty(self.replicas, batch, self.weight0.shape[1],
                              device=self.weight0.device)
        for replica, generator in zip(uniform, self.mask_generators, strict=True):
            torch.rand(replica.shape, generator=generator, out=replica)
        return keep_mask_(uniform, self.dropout).transpose(1, 2)

    def _counter_masks(self, batch: int) -> torch.Tensor:
        """Scaled keep-masks ``(E, H, B)`` from each replica's SplitMix64 stream: the
        next ``H * B / 4`` outputs (rounded up), each cut into four 16-bit draws, low
        first, in ``(H, B)`` order. A unit keeps its activation when its draw, a signed
        16-bit integer, is below the ``1 - dropout`` quantile of that range, so with
        probability ``1 - dropout`` rounded to a multiple of 2^-16. Hashing is most of
        the cost, so a draw takes 16 bits, not 32: four draws an output, not two.
        """
        hidden = self.weight0.shape[1]
        size = hidden * batch
        count = (size + 3) // 4
        if self._mask_steps is None or len(self._mask_steps) < count:
            self._mask_steps = torch.arange(count, device=self.mask_keys.device)
            self._mask_steps.mul_(SPLITMIX_GAMMA)
        bits = splitmix64(self.mask_keys, self.mask_draws, count, self._mask_steps[:count])
        self.mask_draws += count
        draws = bits.view(torch.int16)[:, :size].view(self.replicas, hidden, batch)
        keep = 1.0 - self.dropout
        # compared as floats, in place: a bool mask and its conversion cost 3 times more
        return draws.to(self.weight0.dtype).lt_(round(keep * 2**16) - 2**15).div_(keep)

    def extra_repr(self) -> str:
        exact = "" if self.exact_replicas else ", exact_replicas=False"
        return super().extra_repr() + exact

    def replica_state(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "linear0.weight": self.weight0[index], "linear0.bias": self.bias0[index, :, 0],
            "linear1.weight": self.weight1[index], "linear1.bias": self.bias1[index, :, 0],
        }


class FunctionalEnsemble(Ensemble):
    """Replicas of any :class:`WindowPolicy`, run through the policy's own ``forward``
    with ``torch.func.vmap`` over stacked parameters (the generic path).

    Parameters and buffers are registered under the policy's names with ``.`` written
    as ``__`` (``lstm.weight_ih_l0`` → ``lstm__weight_ih_l0``), each ``(E, ...)``.
    """

    path = "vmap"

    def __init__(self, template: WindowPolicy, seeds: int | Sequence[int]) -> None:
        super().__init__(template, seeds)
        replicas, _ = self._fresh_replicas()
        parameters, buffers = stack_module_state(replicas)  # type: ignore[arg-type]
        self._parameter_names, self._buffer_names = list(parameters), list(buffers)
        for name, value in parameters.items():
            self.register_parameter(self._attribute(name), nn.Parameter(value.detach()))
        for name, value in buffers.items():
            self.register_buffer(self._attribute(name), value)
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

        def call(parameters, buffers, windows):  # type: ignore[no-untyped-def]
            return functional_call(base, (parameters, buffers), (windows,))

        shared = None if windows.ndim == 2 else 0
        return vmap(call, in_dims=(0, 0, shared), randomness="different")(
            parameters, buffers, windows
        )

    def replica_state(self, index: int) -> dict[str, torch.Tensor]:
        names = self._parameter_names + self._buffer_names
        return {name: getattr(self, self._attribute(name))[index] for name in names}


def make_ensemble(
    template: WindowPolicy, seeds: int | Sequence[int], device: torch.device | str | None = None,
    *, exact_replicas: bool = True,
) -> Ensemble:
    """E replicas of ``template``'s architecture (weights from each seed), on ``device``.

    Exactly ``NeuralTrader``/``DropoutTrader`` take the batched-matmul path
    (:class:`TraderEnsemble`, which takes ``exact_replicas``: whether dropout masks are
    the solo runs'); every other policy the generic ``vmap`` path
    (:class:`FunctionalEnsemble`, whose masks are never the solo runs').
    """
    if type(template) in TraderEnsemble.POLICY_CLASSES:
        ensemble: Ensemble = TraderEnsemble(template, seeds, exact_replicas=exact_replicas)
    else:
        ensemble = FunctionalEnsemble(template, seeds)
    return ensemble.to(device) if device is not None else ensemble


__all__ = ["Ensemble", "FunctionalEnsemble", "TraderEnsemble", "make_ensemble", "splitmix64"]
