"""The speed targets of the benchmarks: each a figure, a bound and whether it is met,
printed one per line and written into the benchmark's JSON."""

from __future__ import annotations

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
