"""Units as Ray tasks: submitted at once, collected as they finish (``ray.wait``).

A task whose worker dies (a killed process, a lost node) is run again up to
``max_retries`` times by Ray itself; one that still fails, or that raises, is
reported as failed and the others go on. An error of neuraltrader's own (bad input
found inside a unit) is raised on the driver as it would be in-process.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator, Sequence
from typing import Any

from ...errors import ConfigError, NeuralTraderError
from .base import Engine, UnitResult, UnitTask

RAY_EXTRA = 'pip install "neuraltrader[ray]"'
CONNECT_SECONDS = 5.0


def import_ray() -> Any:
    """The ``ray`` module, or a ``ConfigError`` naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"engine.kind='ray' needs Ray, which is not installed: {RAY_EXTRA}"
                          ) from None
    return ray


def check_reachable(address: str) -> None:
    """Refuse, in a few seconds, a cluster ``address`` (``host:port`` or
    ``ray://host:port``) that nothing answers at: ``ray.init`` would retry for minutes.
    ``auto`` (the cluster this machine is part of) is left to Ray."""
    if address == "auto":
        return
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not host or not port.isdigit():
        raise ConfigError(f"engine.address must be host:port, ray://host:port or auto; "
                          f"got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), CONNECT_SECONDS).close()
    except (OSError, OverflowError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ConfigError(f"cannot reach a Ray cluster at {address!r}: {reason}") from None


def run_unit_task(task: UnitTask, threads: int, *shared: Any) -> list[Any]:
    """Run ``task`` in a worker on ``threads`` CPU threads, its shared arguments (Ray
    resolves the handles passed at the top level) put back in place."""
    import torch

    torch.set_num_threads(threads)
    args = iter(shared)
    return list(task.function(*(next(args) if isinstance(value, _Shared) else value
                                for value in task.args)))


class _Shared:
    """Marks a task argument that :meth:`RayEngine.share` sent to the cluster once."""

    def __init__(self, reference: Any) -> None:
        self.reference = reference


class RayEngine(Engine):
    """Tasks on the Ray cluster at ``address`` (``None``: the one ``RAY_ADDRESS`` names,
    else a new local instance), or on the one this process already joined."""

    kind = "ray"
    in_process = False  # a worker may be on another machine

    def __init__(self, address: str | None, *, max_retries: int = 3, cpus_per_task: int = 1,
                 gpus_per_task: float = 0.0) -> None:
        self.ray = ray = import_ray()
        if address is not None:
            check_reachable(address)
        self.started = not ray.is_initialized()
        if self.started:
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                     configure_logging=True, log_to_driver=True)
        self.pending: dict[Any, UnitTask] = {}
        self._check_fits(cpus_per_task)
        self.threads = cpus_per_task
        self.remote = ray.remote(run_unit_task).options(
            max_retries=max_retries, retry_exceptions=False, num_cpus=cpus_per_task,
            num_gpus=gpus_per_task)

    def _check_fits(self, cpus_per_task: int) -> None:
        """Refuse, before any work, tasks that no node has the CPUs for: Ray would wait
        for such a node forever (a run recorded on more threads than the cluster's
        nodes have cores, resumed here)."""
        largest = max((node["Resources"].get("CPU", 0.0) for node in self.ray.nodes()
                       if node.get("Alive")), default=0.0)
        if cpus_per_task > largest:
            self.close()
            raise ConfigError(
                f"train.threads={cpus_per_task}: each Ray task would take {cpus_per_task} "
                f"CPUs, and the largest node has {largest:g}; set --threads {int(largest) or 1}"
                f" or fewer (a run at another thread count differs in its last bits)")

    def share(self, value: Any) -> _Shared:
        return _Shared(self.ray.put(value))

    def run(self, tasks: Sequence[UnitTask]) -> Iterator[UnitResult]:
        ray = self.ray
        for task in tasks:
            shared = [value.reference for value in task.args if isinstance(value, _Shared)]
            self.pending[self.remote.remote(task, self.threads, *shared)] = task
        while self.pending:
            ready, _ = ray.wait(list(self.pending), num_returns=1)
            rest = [reference for reference in self.pending if reference not in ready]
            if rest:  # and whatever else has finished meanwhile, without waiting
                ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
            for reference in ready:
                task = self.pending.pop(reference)
                try:
                    yield UnitResult(task, ray.get(reference))
                except ray.exceptions.RayTaskError as error:
                    if isinstance(error.cause, NeuralTraderError):
                        raise error.cause from None
                    yield UnitResult(task, error=_one_line(error.cause or error))
                except ray.exceptions.RayError as error:  # the worker died, every retry
                    yield UnitResult(task, error=_one_line(error))

    def close(self) -> None:
        for reference in self.pending:
            with contextlib.suppress(Exception):  # finished meanwhile, or its node is gone
                self.ray.cancel(reference, force=True)
        self.pending.clear()
        if self.started:
            self.ray.shutdown()


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".strip(": ")


__all__ = ["RAY_EXTRA", "RayEngine", "check_reachable", "import_ray"]
