"""Seed handling: one helper turns any seed into a ``torch.Generator``.

The library never sets torch's global seed for good. Model initialisation and dropout
draw from the global generator, so :func:`seeded` forks it, seeds the fork, and puts the
caller's state back on exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

Seed = int | torch.Generator | None


def as_generator(seed: Seed, device: torch.device | str = "cpu") -> torch.Generator:
    """Return a generator on ``device`` for ``seed``: a fresh one seeded from an int, the
    same generator when one is given, and one seeded from OS entropy for ``None``."""
    if isinstance(seed, torch.Generator):
        return seed
    generator = torch.Generator(device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator


def derive_seed(*keys: int) -> int:
    """An independent 63-bit seed for a stream named by integer ``keys``.

    Streams with different keys do not overlap (NumPy's ``SeedSequence`` hashing), so
    training data, validation data and each replica can be drawn from one user seed.
    """
    return int(np.random.SeedSequence(list(keys)).generate_state(2, dtype=np.uint64)[0] >> 1)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | str | None = None) -> Iterator[None]:
    """Run the block with torch's global CPU generator seeded to ``seed``, then restore it;
    with a CUDA ``device``, that device's generator too.

    Use it around model construction and training so that initial weights and dropout
    masks are reproducible without changing the caller's random state. No other
    generator is touched: ``torch.manual_seed`` would seed every CUDA, XPU and MTIA
    device's for good (and, on a machine without them, capture a stack trace for each
    one's lazy queue, 0.1-0.4 ms a call). Other devices (``mps``) are not seeded.
    """
    device = torch.device("cpu" if device is None else device)
    cuda_indices = [] if device.type != "cuda" else [
        device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda_indices, device_type="cuda"):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda_indices:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield
