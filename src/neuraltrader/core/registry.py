"""The policy registry: one table from a policy's name to its class and the ``[model]``
config keys its constructor takes.

Study, sweep, backtest, checkpoint loading and the CLI all read this table, so a new
policy is one module (a :class:`~neuraltrader.core.policies.WindowPolicy` subclass) and
one :func:`register_policy` call::

    register_policy("toy", ToyTrader, options=("position",))

after which ``--set model.models=toy`` (study, sweep) and ``--model toy`` (backtest)
train it, as an ensemble of ``train.seeds`` replicas.

The number of inputs per day (``features``) comes from the data, not from ``[model]``:
:meth:`PolicySpec.build` passes it to the constructor when it is not 1, so a policy that
takes several features per day has a ``features`` keyword (every built-in one does) and
one that does not is refused multi-feature data with a ``ConfigError``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError
from .policies import (
    DropoutTrader,
    LinearTrader,
    LSTMTrader,
    NeuralTrader,
    TransformerTrader,
    WindowPolicy,
)


@dataclass(frozen=True)
class PolicySpec:
    """A registered policy: its ``name``, its ``policy_class`` and the ``options``, the
    ``[model]`` keys passed to the constructor besides ``lag``."""

    name: str
    policy_class: type[WindowPolicy]
    options: tuple[str, ...]

    def build(self, lag: int, model: Any, features: int = 1) -> WindowPolicy:
        """A fresh policy of window length ``lag`` reading ``features`` inputs per day,
        its options read from the ``[model]`` section ``model``; initial weights from
        torch's global generator.

        ``features`` is passed to the constructor only when it is not 1; a policy whose
        constructor has no ``features`` argument then raises ``ConfigError``.
        """
        options = {key: getattr(model, key) for key in self.options}
        if features != 1:
            if not self.takes_features:
                raise ConfigError(
                    f"policy {self.name!r} ({self.policy_class.__name__}) does not take "
                    f"multi-feature inputs: its constructor has no 'features' argument, "
                    f"and the data have {features} features per day"
                )
            options["features"] = features
        return self.policy_class(lag, **options)

    @property
    def takes_features(self) -> bool:
        """Whether the constructor accepts ``features`` (several inputs per day)."""
        parameters = inspect.signature(self.policy_class).parameters.values()
        return any(p.name == "features" or p.kind is p.VAR_KEYWORD for p in parameters)

    def parameter_count(self, lag: int, model: Any, features: int = 1) -> int:
        """Weights of the policy :meth:`build` makes, counted on the ``meta`` device:
        nothing is allocated, whatever the sizes (for memory estimates)."""
        with torch.device("meta"):
            policy = self.build(lag, model, features)
        return sum(parameter.numel() for parameter in policy.parameters())


POLICIES: dict[str, PolicySpec] = {}


def register_policy(
    name: str, policy_class: type[WindowPolicy], options: Iterable[str] = ("position",)
) -> PolicySpec:
    """Register ``policy_class`` under ``name``; re-registering a name replaces it."""
    if not (isinstance(policy_class, type) and issubclass(policy_class, WindowPolicy)):
        raise ConfigError(f"policy {name!r} must be a WindowPolicy subclass, got {policy_class!r}")
    POLICIES[name] = PolicySpec(name, policy_class, tuple(options))
    return POLICIES[name]


def policy_names() -> tuple[str, ...]:
    """The registered names, in registration order."""
    return tuple(POLICIES)


def policy_spec(name: str, key: str = "model") -> PolicySpec:
    """The policy registered as ``name``; an unknown name is a ``ConfigError`` naming
    the config ``key`` and listing the known policies."""
    if name not in POLICIES:
        raise ConfigError(
            f"{key} {name!r} is not a registered policy; known: {', '.join(POLICIES)}"
        )
    return POLICIES[name]


def spec_of_class(class_name: str) -> PolicySpec | None:
    """The registered policy whose class is called ``class_name`` (checkpoints record it)."""
    return next((s for s in POLICIES.values() if s.policy_class.__name__ == class_name), None)


register_policy("mlp", NeuralTrader, ("hidden", "position"))
register_policy("dropout", DropoutTrader, ("hidden", "dropout", "position"))
register_policy("linear", LinearTrader, ("position",))
register_policy("lstm", LSTMTrader, ("hidden", "position"))
register_policy(
    "transformer", TransformerTrader, ("hidden", "layers", "heads", "dropout", "position")
)

__all__ = [
    "POLICIES", "PolicySpec", "policy_names", "policy_spec", "register_policy", "spec_of_class",
]
