"""The engine interface and the in-process engine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class UnitTask:
    """One task: ``function(*args)`` returns one value per name in ``names`` (a list),
    the units it finishes; most tasks finish one. ``function`` is module-level so that
    a worker imports it rather than receiving its code."""

    names: tuple[str, ...]
    function: Callable[..., list[Any]]
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class UnitResult:
    """What became of one task: its ``values`` (one per name), or why it failed."""

    task: UnitTask
    values: list[Any] | None = None
    error: str | None = None


class Engine(ABC):
    """Runs tasks and yields their results as they finish. Use it as a context manager:
    leaving it cancels what is still running and lets go of what it started."""

    kind: str
    # whether tasks run in this process: they see its files (a training state kept
    # mid-unit) and the tensors it placed on a device
    in_process: bool = True

    def share(self, value: Any) -> Any:
        """A handle to ``value`` for task arguments: sent to the workers once, however
        many tasks take it."""
        return value

    @abstractmethod
    def run(self, tasks: Sequence[UnitTask]) -> Iterator[UnitResult]:
        """Run every task; yield each result as it finishes."""

    def close(self) -> None:  # noqa: B027 (a hook: the local engine has nothing to close)
        """Cancel what is still running and release what the engine started."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


class LocalEngine(Engine):
    """Every task in this process, one after another, in order. An exception in a task
    is raised at once, as a direct call's would be."""

    kind = "local"

    def run(self, tasks: Sequence[UnitTask]) -> Iterator[UnitResult]:
        for task in tasks:
            yield UnitResult(task, list(task.function(*task.args)))


__all__ = ["Engine", "LocalEngine", "UnitResult", "UnitTask"]
