"""Trading policies: modules mapping a window of past inputs to a position.

A window holds ``F`` inputs per day (``features``; the scaled daily return alone when
``F = 1``) for ``L`` days (``lag``), flattened day-major into one row of ``L * F``
numbers: day 0's ``F`` features, then day 1's, ..., oldest day first. Windows stay 2-D,
``(B, L*F)``, so an ensemble tells shared windows ``(B, L*F)`` from per-replica ones
``(E, B, L*F)`` by their number of dimensions alone.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import PositionKind, check_float, check_int, check_position
from ..errors import ConfigError
from .masks import dropout_masks, mask_outputs, new_mask_key


class PositionHead(nn.Module):
    """Squash a score into a position: sigmoid → [0, 1] (long only) or tanh → [-1, 1]."""

    def __init__(self, position: PositionKind = "long") -> None:
        super().__init__()
        self.position = check_position(position)

    def forward(self, score: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(score) if self.position == "long" else torch.tanh(score)

    def extra_repr(self) -> str:
        return f"position={self.position!r}"


SATURATION_TOLERANCE = 1e-6


def saturated(positions: torch.Tensor, position: PositionKind) -> torch.Tensor:
    """Whether every position along the last axis sits at a bound of the head's range
    (0 or 1 long only, -1 or 1 long-short) within ``SATURATION_TOLERANCE``: a collapsed
    policy, whose head passes no gradient and which trades as a fixed rule.

    Shapes: ``(..., B)`` → ``(...)`` booleans.
    """
    low = 0.0 if check_position(position) == "long" else -1.0
    distance = torch.minimum((positions - low).abs(), (positions - 1.0).abs())
    return (distance <= SATURATION_TOLERANCE).all(-1)


class WindowPolicy(nn.Module):
    """Base of the traders: maps windows ``(B, L*F)`` to positions ``(B,)`` through a
    :class:`PositionHead`; keeps the lag L, the features per day F and the constructor
    arguments.

    A subclass whose constructor takes ``features`` adds it to :meth:`init_arguments`
    (every built-in policy does); one that does not keeps ``features = 1``. One whose
    ``forward`` ``torch.func.vmap`` cannot batch (an op without a batching rule, such
    as ``nn.LSTM``'s) sets ``batches_with_vmap = False``: its ensembles then run the
    replicas one after another (:class:`~neuraltrader.core.ensemble.FunctionalEnsemble`).
    """

    batches_with_vmap = True

    def __init__(self, lag: int, position: PositionKind, features: int = 1) -> None:
        super().__init__()
        self.lag = check_int("lag", lag, minimum=1)
        self.features = check_int("features", features, minimum=1)
        self.head = PositionHead(position)

    @property
    def position(self) -> PositionKind:
        return self.head.position

    @property
    def inputs(self) -> int:
        """Numbers per window, ``lag * features``: the width of the windows it reads."""
        return self.lag * self.features

    def init_arguments(self) -> dict[str, object]:
        """The constructor arguments that rebuild this architecture."""
        return {"lag": self.lag, "position": self.position}


class NeuralTrader(WindowPolicy):
    """The tutorial's trader: Linear(L*F, H) → sigmoid → Linear(H, 1) → position head.

    Parameters
    ----------
    lag
        Window length L, in days.
    hidden
        Hidden units H.
    position
        ``"long"`` for positions in [0, 1] (the tutorial), ``"long_short"`` for [-1, 1].
    features
        Inputs per day F (the first layer reads all ``L * F`` at once).

    Shapes: input ``(B, L*F)`` → output ``(B,)``.
    """

    def __init__(
        self, lag: int = 4, hidden: int = 5, position: PositionKind = "long", *,
        features: int = 1,
    ) -> None:
        super().__init__(lag, position, features)
        self.hidden = check_int("hidden", hidden, minimum=1)
        self.linear0 = nn.Linear(self.inputs, hidden)
        self.linear1 = nn.Linear(hidden, 1)

    def init_arguments(self) -> dict[str, object]:
        return super().init_arguments() | {"hidden": self.hidden, "features": self.features}

    def hidden_features(self, windows: torch.Tensor) -> torch.Tensor:
        """Hidden activations, ``(B, L*F)`` → ``(B, H)``; the hook subclasses change."""
        return torch.sigmoid(self.linear0(windows))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        score = self.linear1(self.hidden_features(windows)).squeeze(-1)
        return self.head(score)


class DropoutTrader(NeuralTrader):
    """:class:`NeuralTrader` with dropout (rate ``dropout``) on the hidden layer.

    Dropout is active in ``train()`` mode only; ``eval()`` uses the full network. The
    masks come from a counter-based stream of the policy's own
    (:mod:`~neuraltrader.core.masks`), keyed from torch's global generator when the
    policy is built: the same policy built under ``seeded(s)`` draws the same masks,
    alone or as replica ``s`` of an ensemble, on any device. ``mask_keys`` ``(1,)`` is
    the stream's key, ``mask_draws`` the count of its outputs used so far.
    """

    def __init__(
        self,
        lag: int = 4,
        hidden: int = 5,
        dropout: float = 0.5,
        position: PositionKind = "long",
        *,
        features: int = 1,
    ) -> None:
        super().__init__(lag, hidden, position, features=features)
        self.dropout = check_float("dropout", dropout, lower=0.0, upper=1.0, upper_open=True)
        # a buffer, so that it moves with the policy and an ensemble's vmap path stacks it;
        # not persistent: weights files hold weights only
        self.register_buffer("mask_keys", torch.tensor([new_mask_key()]), persistent=False)
        self.mask_draws = 0

    def hidden_features(self, windows: torch.Tensor) -> torch.Tensor:
        hidden = super().hidden_features(windows)  # (B, H)
        if not self.training or self.dropout == 0:
            return hidden
        batch, width = hidden.shape
        masks = dropout_masks(self.mask_keys, self.mask_draws, width, batch, self.dropout,
                              hidden.dtype)  # (1, H, B)
        self.mask_draws += mask_outputs(width, batch)
        return hidden * masks[0].T

    def init_arguments(self) -> dict[str, object]:
        return super().init_arguments() | {"dropout": self.dropout}

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}"


class LinearTrader(WindowPolicy):
    """A linear score of the window through the position head: Linear(L*F, 1) → head.

    The baseline every nonlinear policy must beat. Shapes: ``(B, L*F)`` → ``(B,)``.
    """

    def __init__(self, lag: int = 4, position: PositionKind = "long", *, features: int = 1) -> None:
        super().__init__(lag, position, features)
        self.linear = nn.Linear(self.inputs, 1)

    def init_arguments(self) -> dict[str, object]:
        return super().init_arguments() | {"features": self.features}

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.head(self.linear(windows).squeeze(-1))


class LSTMTrader(WindowPolicy):
    """An LSTM read over the window, one step per day (F inputs), oldest day first; its
    last hidden state → Linear(H, 1) → position head. Shapes: ``(B, L*F)`` → ``(B,)``.

    The LSTM is ``nn.LSTM``'s own kernel (oneDNN's on the CPU, cuDNN's on a GPU), which
    ``vmap`` cannot batch (``batches_with_vmap``): :func:`~neuraltrader.core.make_ensemble`
    runs an ensemble of it through a batched LSTM of its own
    (:class:`~neuraltrader.core.ensemble.LSTMEnsemble`).
    """

    batches_with_vmap = False

    def __init__(
        self, lag: int = 20, hidden: int = 8, position: PositionKind = "long", *,
        features: int = 1,
    ) -> None:
        super().__init__(lag, position, features)
        self.hidden = check_int("hidden", hidden, minimum=1)
        self.lstm = nn.LSTM(input_size=features, hidden_size=hidden, batch_first=True)
        self.linear = nn.Linear(hidden, 1)

    def init_arguments(self) -> dict[str, object]:
        return super().init_arguments() | {"hidden": self.hidden, "features": self.features}

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.head(self.linear(self.last_state(windows)).squeeze(-1))

    def last_state(self, windows: torch.Tensor) -> torch.Tensor:
        """The LSTM's hidden state after the window's last day, ``(B, L*F)`` → ``(B, H)``."""
        _, (state, _) = self.lstm(windows.unflatten(-1, (self.lag, self.features)))
        return state[0]


def sinusoidal_encoding(length: int, width: int) -> torch.Tensor:
    """The fixed positional encoding of "Attention is all you need", ``(length, width)``:
    column ``2i`` is ``sin(t / 10000^(2i/width))`` and column ``2i+1`` its cosine, for
    day ``t`` of the window (0 the oldest)."""
    day = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32)
                          * (-math.log(10000.0) / width))
    angle = day * frequency  # (length, ceil(width / 2))
    return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(-2)[:, :width]


class SelfAttention(nn.Module):
    """Multi-head self-attention over the days of a window, written out with
    ``nn.Linear`` and ``softmax`` (``nn.MultiheadAttention``'s fused kernels have no
    ``vmap`` batching rule). Shapes: ``(B, L, H)`` → ``(B, L, H)``."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        # no biases: a key bias shifts every score of a query alike, which softmax
        # cancels, so its gradient is rounding noise that Adam and RMSprop blow up into
        # steps (a value bias only repeats ``out``'s)
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.out = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, queries: int | None = None) -> torch.Tensor:
        """``queries``: attend from the last ``queries`` days only (all by default);
        the output then has that many days, ``(B, queries, H)``."""
        # (B, L, 3H) → three (B, heads, L, H / heads)
        query, key, value = (
            self.qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4).unbind(0)
        )
        if queries is not None:
            query = query[..., -queries:, :]
        scores = query @ key.transpose(-1, -2) / math.sqrt(query.shape[-1])  # (B, heads, Q, L)
        mixed = torch.softmax(scores, dim=-1) @ value  # (B, heads, Q, H / heads)
        return self.dropout(self.out(mixed.transpose(1, 2).flatten(-2)))


class EncoderBlock(nn.Module):
    """A pre-norm transformer encoder block: ``x + attention(norm(x))``, then
    ``x + feedforward(norm(x))`` with a feed-forward of width 2H. Pre-norm keeps the
    residual path an identity, which trains without a learning-rate warm-up.
    Shapes: ``(B, L, H)`` → ``(B, L, H)``."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm0 = nn.LayerNorm(hidden)
        self.attention = SelfAttention(hidden, heads, dropout)
        self.norm1 = nn.LayerNorm(hidden)
        self.feedforward = nn.Sequential(
            nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, hidden),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """``last_only``: compute the last day's output only, ``(B, 1, H)`` (every day
        still serves as a key and value): all a read-out of the last day needs."""
        queries = 1 if last_only else None
        x = (x[:, -1:] if last_only else x) + self.attention(self.norm0(x), queries)
        return x + self.feedforward(self.norm1(x))


class TransformerTrader(WindowPolicy):
    """A small self-attention encoder over the window's days; the last day's
    representation → Linear(H, 1) → position head.

    Each day's F inputs are embedded by Linear(F, H) plus a fixed sinusoidal positional
    encoding (the ``encoding`` buffer), then pass ``layers`` pre-norm encoder blocks
    (:class:`EncoderBlock`) and a final LayerNorm. Attention is not masked, but only the
    last day, which attends to every day of the window, is read out.

    Parameters
    ----------
    lag
        Window length L, in days.
    hidden
        Width H of each day's representation; a multiple of ``heads``.
    layers
        Encoder blocks.
    heads
        Attention heads, each of width ``hidden // heads``.
    dropout
        Dropout rate on each block's attention output and feed-forward output
        (``train()`` mode only).
    position
        ``"long"`` for positions in [0, 1], ``"long_short"`` for [-1, 1].
    features
        Inputs per day F.

    Shapes: input ``(B, L*F)`` → output ``(B,)``.

    Examples
    --------
    >>> model = TransformerTrader(lag=20, hidden=8, heads=2, features=3).eval()
    >>> model(torch.randn(5, 20 * 3)).shape
    torch.Size([5])
    """

    def __init__(
        self,
        lag: int = 20,
        hidden: int = 8,
        layers: int = 2,
        heads: int = 2,
        dropout: float = 0.1,
        position: PositionKind = "long",
        *,
        features: int = 1,
    ) -> None:
        super().__init__(lag, position, features)
        self.hidden = check_int("hidden", hidden, minimum=1)
        self.layers = check_int("layers", layers, minimum=1)
        self.heads = check_int("heads", heads, minimum=1)
        if hidden % heads:
            raise ConfigError(
                f"hidden ({hidden}) must be a multiple of heads ({heads}): each attention "
                f"head reads hidden / heads of every day's representation"
            )
        self.dropout = check_float("dropout", dropout, lower=0.0, upper=1.0, upper_open=True)
        self.embed = nn.Linear(features, hidden)
        self.register_buffer("encoding", sinusoidal_encoding(lag, hidden))  # (L, H)
        self.blocks = nn.ModuleList(
            EncoderBlock(hidden, heads, dropout) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(hidden)
        self.linear = nn.Linear(hidden, 1)

    def init_arguments(self) -> dict[str, object]:
        return super().init_arguments() | {
            "hidden": self.hidden, "layers": self.layers, "heads": self.heads,
            "dropout": self.dropout, "features": self.features,
        }

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        days = windows.unflatten(-1, (self.lag, self.features))  # (B, L, F)
        x = self.embed(days) + self.encoding  # (B, L, H)
        for block in self.blocks[:-1]:
            x = block(x)
        # only the last day is read out: the last block computes it alone
        x = self.blocks[-1](x, last_only=True)  # (B, 1, H)
        return self.head(self.linear(self.norm(x[:, -1])).squeeze(-1))


__all__ = [
    "SATURATION_TOLERANCE", "saturated", "sinusoidal_encoding",
    "DropoutTrader", "EncoderBlock", "LSTMTrader", "LinearTrader", "NeuralTrader",
    "PositionHead", "SelfAttention", "TransformerTrader", "WindowPolicy",
]
