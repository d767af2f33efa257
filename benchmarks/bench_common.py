"""What the benchmarks share: their speed targets (each a figure, a bound and whether
it is met, printed one per line and written into the benchmark's JSON) and their
argument types."""

from __future__ import annotations

import argparse

Targets = dict[str, tuple[float, str, float]]  # name: (figure, ">=" or "<=", bound)


def met(value: float, sense: str, bound: float) -> bool:
    return value >= bound if sense == ">=" else value <= bound


def report(targets: Targets) -> dict[str, dict[str, object]]:
    """Print one line per target; return them as JSON: ``{name: {value, target, met}}``."""
    for name, (value, sense, bound) in targets.items():
        verdict = "met" if met(value, sense, bound) else "NOT met"
        print(f"{name:<40}{value:>10.3f}  target {sense} {bound:<7g}{verdict}")
    return {name: {"value": value, "target": f"{sense} {bound:g}",
                   "met": met(value, sense, bound)}
            for name, (value, sense, bound) in targets.items()}


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def positive_ints(text: str) -> list[int]:
    """An argparse type: comma-separated integers >= 1, sorted, each once (``4,16``)."""
    return sorted({positive_int(item) for item in text.split(",")})
