"""Counter-based dropout masks: every replica's masks in one set of tensor operations.

A dropout policy owns a stream: a 64-bit key, drawn from torch's global generator when
the policy is built (as its initial weights are), and a count of the outputs it has
used. Output ``i`` of key ``k`` is SplitMix64's ``mix(k + (i + 1) * GAMMA)`` (Steele,
Lea and Flood 2014, the generator of ``java.util.SplittableRandom``): any stretch of
any number of streams is a dozen elementwise integer operations, so an ensemble draws
all its replicas' masks at once, and replica ``s`` draws exactly the masks of the
policy trained alone under ``seeded(s)``, on any device.

Each output gives four 16-bit draws, low bits first; a unit keeps its activation when
its draw, a signed 16-bit integer, is below the ``1 - rate`` quantile of that range:
with probability ``1 - rate`` rounded to a multiple of 2^-16 (a rate within 2^-17 of 1
keeps nothing). A mask of ``(H, B)`` units takes ``ceil(H * B / 4)`` outputs, in
``(H, B)`` order.
"""

from __future__ import annotations

import torch


def _signed64(value: int) -> int:
    """``value`` modulo 2**64 as a signed 64-bit integer (torch's ``int64``)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >> 63 else value


SPLITMIX_GAMMA = _signed64(0x9E3779B97F4A7C15)
_SPLITMIX_MULTIPLIERS = (_signed64(0xBF58476D1CE4E5B9), _signed64(0x94D049BB133111EB))
DRAWS_PER_OUTPUT = 4  # 16-bit draws per 64-bit output


def new_mask_key() -> int:
    """A stream key from torch's global (CPU) generator: 62 random bits."""
    return int(torch.randint(0, 2**62, (), dtype=torch.int64, device="cpu"))


def _xor_shift_(bits: torch.Tensor, shift: int) -> torch.Tensor:
    """``bits ^= bits >>> shift`` in place; ``>>>`` is the logical shift (torch's
    ``>>`` on ``int64`` is arithmetic, so the sign copies are masked off)."""
    return bits.bitwise_xor_(bits.bitwise_right_shift(shift).bitwise_and_((1 << 64 - shift) - 1))


def splitmix64(keys: torch.Tensor, start: int, count: int) -> torch.Tensor:
    """Outputs ``start .. start + count - 1`` of the SplitMix64 stream of each key.

    Shapes: ``keys`` ``(E,)`` ``int64`` → ``(E, count)`` ``int64`` (the outputs' 64
    bits, two's complement).
    """
    steps = torch.arange(count, device=keys.device).mul_(SPLITMIX_GAMMA)
    offset = keys + _signed64((start + 1) * SPLITMIX_GAMMA)  # integer overflow wraps
    bits = torch.add(offset[:, None], steps)
    _xor_shift_(bits, 30).mul_(_SPLITMIX_MULTIPLIERS[0])
    _xor_shift_(bits, 27).mul_(_SPLITMIX_MULTIPLIERS[1])
    return _xor_shift_(bits, 31)


def mask_outputs(hidden: int, batch: int) -> int:
    """Stream outputs one ``(hidden, batch)`` mask takes."""
    return -(-hidden * batch // DRAWS_PER_OUTPUT)


def dropout_masks(
    keys: torch.Tensor, start: int, hidden: int, batch: int, rate: float,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Scaled keep-masks from outputs ``start ..`` of each key's stream: ``1 / (1 -
    rate)`` where a unit is kept, else 0, as ``nn.Dropout`` multiplies by.

    Shapes: ``keys`` ``(E,)`` → ``(E, hidden, batch)`` of ``dtype``. The caller moves
    its stream on by :func:`mask_outputs` ``(hidden, batch)``.
    """
    size = hidden * batch
    bits = splitmix64(keys, start, mask_outputs(hidden, batch))
    draws = bits.view(torch.int16)[:, :size].view(len(keys), hidden, batch)
    keep = 1.0 - rate
    # compared as floats, in place: a bool mask and its conversion cost 3 times more; in
    # float32 at least, where every 16-bit draw is exact
    exact = dtype if torch.finfo(dtype).bits >= 32 else torch.float32
    uniform, threshold = draws.to(exact), round(keep * 2**16) - 2**15
    if torch._C._functorch.is_batchedtensor(uniform):  # vmap has no rule for lt_
        return torch.lt(uniform, threshold).to(dtype).div_(keep)
    return uniform.lt_(threshold).div_(keep).to(dtype)


__all__ = ["SPLITMIX_GAMMA", "dropout_masks", "mask_outputs", "new_mask_key", "splitmix64"]
