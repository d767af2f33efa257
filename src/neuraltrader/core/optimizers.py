"""Optimizers with a lean step: torch's arithmetic, less torch's per-step overhead.

:class:`RMSprop` and :class:`Adam` are torch's, with :meth:`~LeanStep.unhooked_step`:
at torch's defaults but ``lr`` (what :func:`make_optimizer` builds) it is one
``torch._foreach_*`` call per operation, without the wrapper torch puts around every
``step`` (step hooks and a profiler label). The arithmetic per element is that of
torch's own single-tensor step, so weights and state are bit for bit torch's
(``tests/test_speed_paths.py``). Other settings, or a closure, take torch's ``step``.

On the CPU torch's step costs half of a small policy's training step and a third of a
backtest's (Adam with its per-parameter Python); this one a fifth of either.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .._checks import check_choice, check_float

# a step's count, added as a tensor (the scalar overload converts it once per tensor);
# on the CPU, where torch keeps the counts of every step but a capturable one
_ONE = torch.ones((), device="cpu")


class LeanStep:
    """What :class:`RMSprop` and :class:`Adam` share: collect the parameters with a
    gradient, start their state as torch does (``step`` and the ``MOMENTS``, zeros),
    count the step, and leave the update to :meth:`_update`."""

    MOMENTS: tuple[str, ...] = ()
    param_groups: list[dict[str, Any]]
    state: dict[Any, dict[str, Any]]
    step: Any

    def _lean(self) -> bool:
        """Whether the group's settings are those :meth:`_update` computes."""
        raise NotImplementedError

    def _update(self, group: dict[str, Any], params: list[torch.Tensor],
                grads: list[torch.Tensor], moments: list[list[torch.Tensor]],
                step: float) -> None:
        raise NotImplementedError

    def _plain(self) -> bool:
        """What both steps need: one group, torch's single-tensor step (not its foreach,
        fused, differentiable or capturable ones), a float ``lr``, real parameters."""
        group = self.param_groups[0]
        return len(self.param_groups) == 1 and not (
            group.get("foreach") or group.get("fused") or group["differentiable"]
            or group["capturable"] or torch.is_tensor(group["lr"])
            or any(torch.is_complex(parameter) for parameter in group["params"])
        )

    @torch.no_grad()
    def unhooked_step(self, closure: Any = None) -> Any:
        """``step`` without torch's wrapper, for :func:`~neuraltrader.core.train.train_epoch`."""
        group = self.param_groups[0]
        if closure is not None or not (self._plain() and self._lean()):
            return self.step(closure)
        params, grads, steps = [], [], []
        moments: list[list[torch.Tensor]] = [[] for _ in self.MOMENTS]
        for parameter in group["params"]:
            if parameter.grad is None:
                continue
            state = self.state[parameter]
            if not state:  # as torch's step starts
                state["step"] = torch.zeros(())
                for name in self.MOMENTS:
                    state[name] = torch.zeros_like(parameter, memory_format=torch.preserve_format)
            params.append(parameter)
            grads.append(parameter.grad)
            steps.append(state["step"])
            for moment, name in zip(moments, self.MOMENTS, strict=True):
                moment.append(state[name])
        if not params:
            return None
        counts = {float(step) for step in steps}  # CPU scalars: no device sync
        if len(counts) > 1:  # parameters that skipped steps: torch corrects each apart
            return self.step()
        torch._foreach_add_(steps, [_ONE] * len(steps))
        self._update(group, params, grads, moments, counts.pop() + 1)
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

    def _update(self, group: dict[str, Any], params: list[torch.Tensor],
                grads: list[torch.Tensor], moments: list[list[torch.Tensor]],
                step: float) -> None:
        (averages,) = moments
        alpha = group["alpha"]
        torch._foreach_mul_(averages, alpha)
        torch._foreach_addcmul_(averages, grads, grads, value=1 - alpha)
        denominators = torch._foreach_sqrt(averages)
        torch._foreach_add_(denominators, group["eps"])
        torch._foreach_addcdiv_(params, grads, denominators, value=-group["lr"])


class Adam(LeanStep, torch.optim.Adam):
    """``torch.optim.Adam`` with :meth:`~LeanStep.unhooked_step`."""

    MOMENTS = ("exp_avg", "exp_avg_sq")

    def _lean(self) -> bool:
        group = self.param_groups[0]
        return not (group["amsgrad"] or group["weight_decay"] or group["maximize"]
                    or any(map(torch.is_tensor, group["betas"])))

    def _update(self, group: dict[str, Any], params: list[torch.Tensor],
                grads: list[torch.Tensor], moments: list[list[torch.Tensor]],
                step: float) -> None:
        averages, squares = moments
        beta1, beta2 = group["betas"]
        torch._foreach_lerp_(averages, grads, 1 - beta1)
        torch._foreach_mul_(squares, beta2)
        torch._foreach_addcmul_(squares, grads, grads, value=1 - beta2)
        step_size = group["lr"] / (1 - beta1**step)
        denominators = torch._foreach_sqrt(squares)
        torch._foreach_div_(denominators, (1 - beta2**step) ** 0.5)
        torch._foreach_add_(denominators, group["eps"])
        torch._foreach_addcdiv_(params, averages, denominators, value=-step_size)


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


__all__ = ["OPTIMIZERS", "Adam", "LeanStep", "RMSprop", "make_optimizer"]
