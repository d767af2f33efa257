"""What a side study returns, and how it is written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ...io.rundir import RunRecord, staged_run_dir, write_record

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class DemoResult:
    """A side study's figures: ``metrics`` go to ``metrics.json`` (beside ``version`` and
    ``config``), ``history`` to ``history.csv``, ``figures`` to PNGs, ``table`` to the
    terminal."""

    config: Any
    metrics: dict[str, Any]
    history: pd.DataFrame
    figures: dict[str, Figure]
    table: str

    def write(self, out: str | Path) -> None:
        """Write the run directory at ``out``, complete or not at all."""
        with staged_run_dir(out) as staging:
            write_record(RunRecord("demo", self.config, self.metrics, self.history,
                                   self.figures), staging)
