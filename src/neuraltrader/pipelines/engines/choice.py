"""The engine a config asks for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...io.sections import RAY_TASK_THREADS
from .base import Engine, LocalEngine

if TYPE_CHECKING:
    from ...io.sections import EngineSection, OptimizerSection


def make_engine(engine: EngineSection | None, train: OptimizerSection | None = None) -> Engine:
    """The engine ``engine`` (``[engine]``) asks for; each Ray task takes ``train.threads``
    CPUs (unset: ``RAY_TASK_THREADS``, 1) and, when ``train.device`` is a GPU,
    ``engine.gpus_per_task`` GPUs.
    A Ray that is not installed, or a cluster that cannot be reached, is a
    ``ConfigError`` before any work."""
    if engine is None or engine.kind == "local":
        return LocalEngine()
    from .ray_cluster import RayEngine  # only here: the local engine never imports Ray

    threads = train.threads if train is not None and train.threads else RAY_TASK_THREADS
    on_gpu = train is not None and train.device.startswith("cuda")
    return RayEngine(engine.address, max_retries=engine.max_retries, cpus_per_task=threads,
                     gpus_per_task=engine.gpus_per_task if on_gpu else 0.0)


__all__ = ["make_engine"]
