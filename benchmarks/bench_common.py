"""What the benchmarks share: their speed targets (each a figure, a bound and whether
it is met, printed one per line and written into the benchmark's JSON), the host they
ran on, and their argument types."""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import torch

from neuraltrader.core.device import resolve_device

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


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform``'s guess)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def host(device: str) -> dict[str, object]:
    """What the figures were measured on, printed as one line and returned for the JSON.

    Even ratios against the tutorial loop move from one host to another (README,
    Speed), so every benchmark records the CPU's model, the instruction set torch's
    kernels use on it (``AVX512``, ``AVX2``, ...), the cores this process may use,
    torch's version, and the GPU's name when ``device`` (as ``--device`` takes it) is one.
    """
    info: dict[str, object] = {
        "cpu": _cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "torch": torch.__version__,
    }
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(resolved)
    print("host: " + ", ".join(f"{key} {value}" for key, value in info.items()))
    return info


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
