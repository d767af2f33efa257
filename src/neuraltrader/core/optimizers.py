"""Optimizers with a lean step: torch's arithmetic, less torch's per-step overhead.

:class:`RMSprop` and :class:`Adam` are torch's, with :meth:`~LeanStep.unhooked_step`:
at torch's defaults but ``lr`` (what :func:`make_optimizer` builds), and when every
parameter has a gradient, it is one kernel per operation over all parameters, without
the wrapper torch puts around every ``step`` (step hooks and a profiler label). The
state lives in flat buffers, one per moment (and one for the step counts), each
parameter's entry in ``state`` a view into them, and the gradients are gathered into
one more with a single ``torch._foreach_copy_``. The arithmetic per element is that of
torch's own single-tensor step, so weights and state are bit for bit torch's
(``tests/test_speed_paths.py``). Other settings, a closure, a parameter without a
gradient, or parameters that are not all float32 or all float64 on the CPU take
torch's ``step``. ``state`` and ``state_dict`` keep torch's layout, so
checkpoints, ``load_state_dict`` (after which the buffers are rebuilt) and torch's own
``step`` work on it unchanged.

For NeuralTrader(4, 5) on the CPU a step takes 25 µs (RMSprop) and 30 µs (Adam),
against torch's 85 and 120 µs (a third of a small policy's training step) and 45 and
65 µs for a lean step of one ``torch._foreach_*`` call per operation, whose CPU
implementation loops over the parameters.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .._checks import check_choice, check_float


class FlatState:
    """The state of an optimizer's parameters in flat buffers: ``steps`` ``(P,)`` (on
    the CPU, as torch keeps them), one ``(N,)`` buffer per moment, and ``gradients`` and
    ``denominators`` ``(N,)`` for the step's arithmetic (``gradients`` ends as its
    update), for P parameters of N numbers in all. ``state[parameter]``'s entries are
    views into them, in torch's shapes."""

    # where the split addcdiv_ (multiply, divide, add) rounds as torch's does: in the
    # tensor's own dtype, on the CPU (half types round once in float32 there, and
    # CUDA's kernel divides first)
    DTYPES = (torch.float32, torch.float64)

    def __init__(self, state: dict[Any, dict[str, Any]], params: list[torch.Tensor],
                 names: tuple[str, ...]) -> None:
        first = params[0]
        total = sum(parameter.numel() for parameter in params)
        self.state, self.params = state, list(params)
        # torch's dtype for step counts: float64 only under a float64 default
        counts = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
        self.steps = torch.zeros(len(params), dtype=counts, device="cpu")
        self.moments = [torch.zeros(total, dtype=first.dtype, device=first.device)
                        for _ in names]
        self.gradients = torch.empty(total, dtype=first.dtype, device=first.device)
        self.denominators = torch.empty_like(self.gradients)
        self.gradient_views: list[torch.Tensor] = []
        # (parameter, its entries, an entry's name, the view it must still be)
        self.watched: list[tuple[torch.Tensor, dict[str, Any], str, torch.Tensor]] = []
        offset = 0
        for index, parameter in enumerate(params):
            numbers = slice(offset, offset + parameter.numel())
            offset = numbers.stop
            entries = state[parameter]
            if entries:  # carried over from torch's step or a loaded state_dict
                self.steps[index] = entries["step"]
                for moment, name in zip(self.moments, names, strict=True):
                    moment[numbers] = entries[name].reshape(-1)
            entries["step"] = self.steps[index]
            for moment, name in zip(self.moments, names, strict=True):
                entries[name] = moment[numbers].view_as(parameter)
            self.gradient_views.append(self.gradients[numbers].view_as(parameter))
            self.watched += [(parameter, entries, name, entries[name])
                             for name in ("step", *names)]

    @classmethod
    def fits(cls, params: list[torch.Tensor], state: dict[Any, dict[str, Any]],
             names: tuple[str, ...]) -> bool:
        """Whether ``params`` can share flat buffers: on the CPU, all float32 or all
        float64, and each one's state empty or torch's for these moments."""
        first = params[0]
        return first.dtype in cls.DTYPES and first.device.type == "cpu" and all(
            parameter.dtype == first.dtype and parameter.device == first.device
            and (not state.get(parameter) or state[parameter].keys() == {"step", *names})
            for parameter in params
        )

    def holds(self, state: dict[Any, dict[str, Any]], params: list[torch.Tensor]) -> bool:
        """Whether these buffers are still ``state``'s for exactly ``params``: the same
        state (torch replaces it whole to load a state_dict), entries and dtype."""
        dtype = self.gradients.dtype
        return state is self.state and len(params) == len(self.params) and all(
            map(operator.is_, params, self.params)) and all(
            parameter.dtype == dtype and state.get(parameter) is entries
            and entries.get(name) is view
            for parameter, entries, name, view in self.watched)


class LeanStep:
    """What :class:`RMSprop` and :class:`Adam` share: keep the state in a
    :class:`FlatState`, gather the gradients there, count the step, leave the update to
    :meth:`_update` and add it to the parameters."""

    MOMENTS: tuple[str, ...] = ()
    param_groups: list[dict[str, Any]]
    state: dict[Any, dict[str, Any]]
    step: Any
    _flat: FlatState | None = None

    def _lean(self) -> bool:
        """Whether the group's settings are those :meth:`_update` computes."""
        raise NotImplementedError

    def _update(self, group: dict[str, Any], flat: FlatState, step: float) -> None:
        """Write the update into ``flat.gradients``, given the gradients there, and move
        the moments on; ``step`` is the count after this step."""
        raise NotImplementedError

    def _plain(self) -> bool:
        """What both steps need: one group, torch's single-tensor step (not its foreach,
        fused, differentiable or capturable ones), a float ``lr``."""
        group = self.param_groups[0]
        return len(self.param_groups) == 1 and not (
            group.get("foreach") or group.get("fused") or group["differentiable"]
            or group["capturable"] or torch.is_tensor(group["lr"])
        )

    def _flat_state(self, params: list[torch.Tensor]) -> FlatState | None:
        """The parameters' :class:`FlatState`, built on the first step and again after
        their state was replaced; ``None`` if they cannot share one."""
        if self._flat is not None and self._flat.holds(self.state, params):
            return self._flat
        self._flat = None
        if FlatState.fits(params, self.state, self.MOMENTS):
            self._flat = FlatState(self.state, params, self.MOMENTS)
        return self._flat

    @torch.no_grad()
    def unhooked_step(self, closure: Any = None) -> Any:
        """``step`` without torch's wrapper, for :func:`~neuraltrader.core.train.train_epoch`."""
        group = self.param_groups[0]
        if closure is not None or not (self._plain() and self._lean()):
            return self.step(closure)
        params = group["params"]
        grads = [parameter.grad for parameter in params]
        if not params or any(grad is None for grad in grads):
            return self.step()  # torch's step skips the parameters without a gradient
        flat = self._flat_state(params)
        if flat is None:
            return self.step()
        counts = flat.steps.tolist()  # on the CPU: no device sync
        if min(counts) != max(counts):  # parameters that skipped steps: torch corrects each
            return self.step()
        torch._foreach_copy_(flat.gradient_views, grads)
        flat.steps.add_(1)
        self._update(group, flat, counts[0] + 1)
        torch._foreach_add_(params, flat.gradient_views)
        return None

    def zero_grad(self, set_to_none: bool = True) -> None:
        if not set_to_none:
            super().zero_grad(set_to_none)  # type: ignore[misc]
            return
        for group in self.param_groups:  # torch's, less its profiler label
            for parameter in group["params"]:
                parameter.grad = None


class RMSprop(LeanStep, torch.optim.RMSprop):
    """``torch.optim.RMSprop`` with :meth:`~LeanStep.unhooked_step`."""

    MOMENTS = ("square_avg",)

    def _lean(self) -> bool:
        group = self.param_groups[0]
        return not (group["momentum"] or group["centered"] or group["weight_decay"]
                    or group["maximize"])

    def _update(self, group: dict[str, Any], flat: FlatState, step: float) -> None:
        (averages,) = flat.moments
        grads, denominators, alpha = flat.gradients, flat.denominators, group["alpha"]
        averages.mul_(alpha).addcmul_(grads, grads, value=1 - alpha)
        torch.sqrt(averages, out=denominators).add_(group["eps"])
        # the parameter's addcdiv_ in two: value * grad / denominator, then added
        grads.mul_(-group["lr"]).div_(denominators)


class Adam(LeanStep, torch.optim.Adam):
    """``torch.optim.Adam`` with :meth:`~LeanStep.unhooked_step`."""

    MOMENTS = ("exp_avg", "exp_avg_sq")

    def _lean(self) -> bool:
        group = self.param_groups[0]
        return not (group["amsgrad"] or group["weight_decay"] or group["maximize"]
                    or any(map(torch.is_tensor, group["betas"])))

    def _update(self, group: dict[str, Any], flat: FlatState, step: float) -> None:
        averages, squares = flat.moments
        grads, denominators = flat.gradients, flat.denominators
        beta1, beta2 = group["betas"]
        averages.lerp_(grads, 1 - beta1)
        squares.mul_(beta2).addcmul_(grads, grads, value=1 - beta2)
        torch.sqrt(squares, out=denominators).div_((1 - beta2**step) ** 0.5)
        denominators.add_(group["eps"])
        step_size = group["lr"] / (1 - beta1**step)
        torch.mul(averages, -step_size, out=grads).div_(denominators)


OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "rmsprop": RMSprop,
    "adam": Adam,
    "sgd": torch.optim.SGD,
}


def make_optimizer(
    name: str, parameters: Iterable[nn.Parameter], lr: float
) -> torch.optim.Optimizer:
    """Build optimizer ``name`` (``rmsprop``, ``adam`` or ``sgd``) with learning rate ``lr``."""
    check_choice("optimizer", name, tuple(OPTIMIZERS))
    check_float("lr", lr, lower=0.0, lower_open=True)
    return OPTIMIZERS[name](parameters, lr=lr)


__all__ = ["OPTIMIZERS", "Adam", "FlatState", "LeanStep", "RMSprop", "make_optimizer"]
