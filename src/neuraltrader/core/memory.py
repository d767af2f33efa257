"""Memory: estimate what a training run needs and refuse one that cannot fit, before
anything is allocated.

The estimate counts the tensors that grow with the config (data windows, replicas'
weights with their gradients and optimizer moments, a batch's activations, the
evaluation pass, the history) in float32, and is meant to be within a small factor of
the peak, not exact: its job is to turn a typo such as ``data.n_train=10**9`` into a
one-line refusal instead of an hour of swapping or an out-of-memory kill.
"""

from __future__ import annotations

import os

import torch

from ..errors import ConfigError

FLOAT_BYTES = 4
GIB = 2**30


def available_bytes(device: torch.device) -> int | None:
    """Memory this process can still take on ``device``: free GPU memory for CUDA, the
    operating system's available memory (``MemAvailable`` on Linux) for the CPU;
    ``None`` where it cannot be read."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def training_bytes(
    *, replicas: int, parameters: int, train_rows: int, valid_rows: int, lag: int,
    batch: int, width: int, epochs: int,
) -> int:
    """Estimated peak bytes of training ``replicas`` policies of ``parameters`` weights
    each on ``train_rows``/``valid_rows`` windows of length ``lag``, in batches of
    ``batch`` rows, with hidden ``width``, for ``epochs`` epochs."""
    floats = (
        4 * replicas * parameters  # weights, gradients, two optimizer moments
        + (train_rows + valid_rows) * (lag + 1)  # windows and targets
        + replicas * train_rows  # per-replica batch orders (int32)
        + 3 * replicas * batch * (lag + width)  # a batch's windows, activations, gradients
        + 2 * replicas * valid_rows * (width + 1)  # the evaluation pass
        + 12 * epochs * replicas  # the history: a tensor, then a float64 frame
    )
    return FLOAT_BYTES * floats


def check_memory(
    needed: int, device: torch.device, limit_gb: float | None, what: str
) -> None:
    """Refuse ``what`` (e.g. ``"the study"``) if it needs more than ``limit_gb`` GiB, or,
    when that is unset, more than ``device`` has available; say both figures."""
    if limit_gb is not None:
        limit, source = int(limit_gb * GIB), "train.memory_limit_gb"
    else:
        limit, source = available_bytes(device), f"available on {device}"
        if limit is None:
            return
    if needed > limit:
        raise ConfigError(
            f"{what} would need about {needed / GIB:.3g} GiB, more than the "
            f"{limit / GIB:.3g} GiB {source}; make it smaller, or set "
            f"train.memory_limit_gb to allow more"
        )


__all__ = ["available_bytes", "check_memory", "training_bytes"]
