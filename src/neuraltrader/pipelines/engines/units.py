"""The driver's side of every engine: skip finished units, keep new ones as they
arrive, show progress, and fail with every unit that failed named."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from ...errors import UnitsFailedError
from .base import Engine, UnitTask

if TYPE_CHECKING:
    from ...io.units import Unit, UnitStore


def run_units(
    engine: Engine, tasks: Sequence[UnitTask], *, store: UnitStore | None = None,
    encode: Callable[[Any], Unit] | None = None, decode: Callable[[Unit], Any] | None = None,
    progress: bool = True, desc: str = "units",
) -> dict[str, Any]:
    """Every unit's value by name, in the order of ``tasks``.

    With ``store``, a unit already there is read back (``decode``) and a task none of
    whose units is missing is not run; each new value is kept there (``encode``) as it
    arrives, so a killed driver loses only the units in flight. A task that fails does
    not stop the others: when all have ended, a ``UnitsFailedError`` names each failed
    unit (on stderr as it happens, too) and every finished unit is kept.
    """
    values: dict[str, Any] = {}
    if store is not None and decode is not None:
        values = {name: decode(store.load(name)) for task in tasks for name in task.names
                  if name in store}
    # a task runs whole: units it finished before a kill are computed again, the same
    todo = [task for task in tasks if any(name not in values for name in task.names)]
    total = sum(len(task.names) for task in tasks)
    failed: dict[str, str] = {}
    with tqdm(total=total, initial=total - sum(len(task.names) for task in todo), desc=desc,
              unit="unit", disable=not progress, leave=False) as bar:
        for result in engine.run(todo):
            if result.values is None:
                for name in result.task.names:
                    failed[name] = result.error or "failed"
                    print(f"neuraltrader: unit {name} failed: {failed[name]}", file=sys.stderr)
            else:
                for name, value in zip(result.task.names, result.values, strict=True):
                    values[name] = value
                    if store is not None and encode is not None:
                        store.save(name, encode(value))
            bar.update(len(result.task.names))
    if failed:
        raise UnitsFailedError(failed, total)
    return {name: values[name] for task in tasks for name in task.names}


__all__ = ["run_units"]
