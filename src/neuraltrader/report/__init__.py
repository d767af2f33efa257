"""Pictures of runs (:mod:`.plots`) and the one-page HTML report (:mod:`.page`)."""

from __future__ import annotations

from .page import render_report, write_report
from .plots import (
    COLORS,
    plot_backtest,
    plot_equity,
    plot_history,
    plot_panels,
    plot_pbo,
    plot_placebo,
    plot_policy,
    plot_positions,
    plot_seed_returns,
    plot_sweep_heatmaps,
)

__all__ = [
    "COLORS", "plot_backtest", "plot_equity", "plot_history", "plot_panels", "plot_pbo",
    "plot_placebo", "plot_policy", "plot_positions", "plot_seed_returns", "plot_sweep_heatmaps",
    "render_report", "write_report",
]
