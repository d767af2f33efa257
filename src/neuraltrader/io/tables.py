"""Plain-text tables for the terminal and label-first frames for the CSVs."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def format_table(frame: pd.DataFrame) -> str:
    """Text table with 4 decimals; missing figures (``None``, NaN) print as ``n/a``."""
    frame = frame.copy()
    for column in frame.columns:  # a figure column that is all None stays object dtype
        if frame[column].dtype == object and not frame[column].map(type).eq(str).any():
            frame[column] = frame[column].astype(float)
    return frame.to_string(index=False, float_format=lambda value: f"{value:.4f}", na_rep="n/a")


def labels_first(
    frame: pd.DataFrame, labels: Sequence[str] = ("dataset", "model", "seed", "epoch")
) -> pd.DataFrame:
    """``frame`` with its label columns (those of ``labels`` it has) moved to the front."""
    leading = [c for c in labels if c in frame.columns]
    return frame[leading + [c for c in frame.columns if c not in leading]]


__all__ = ["format_table", "labels_first"]
