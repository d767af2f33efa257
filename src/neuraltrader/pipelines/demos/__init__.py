"""The tutorial's two warm-up studies: linear regression and a neural classifier,
both fitted by gradient descent in plain PyTorch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._result import DemoResult
from .classifier import ClassifierConfig, HyperplaneClassifier, classifier_study
from .linear import Linear1D, LinearConfig, linear_study

# name → (config class, study function); the CLI offers one subcommand per entry.
DEMOS: dict[str, tuple[type, Callable[..., DemoResult]]] = {
    "linear": (LinearConfig, linear_study),
    "classifier": (ClassifierConfig, classifier_study),
}


def run_demo(name: str, config: Any, out: Any, *, progress: bool = True) -> DemoResult:
    """Run demo ``name`` with ``config`` and write its run directory at ``out``."""
    result = DEMOS[name][1](config, progress=progress)
    result.write(out)
    return result


__all__ = [
    "DEMOS", "ClassifierConfig", "DemoResult", "HyperplaneClassifier", "Linear1D",
    "LinearConfig", "classifier_study", "linear_study", "run_demo",
]
