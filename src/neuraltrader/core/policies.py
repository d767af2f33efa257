"""Trading policies: modules mapping a window of past returns to a position."""

from __future__ import annotations

import torch
from torch import nn

from .._checks import PositionKind, check_float, check_int, check_position


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
    """Base of the traders: maps windows ``(B, L)`` to positions ``(B,)`` through a
    :class:`PositionHead`; keeps the lag and the constructor arguments."""

    def __init__(self, lag: int, position: PositionKind) -> None:
        super().__init__()
        self.lag = check_int("lag", lag, minimum=1)
        self.head = PositionHead(position)

    @property
    def position(self) -> PositionKind:
        return self.head.position

    def init_arguments(self) -> dict[str, object]:
        """The constructor arguments that rebuild this architecture."""
        return {"lag": self.lag, "position": self.position}


class NeuralTrader(WindowPolicy):
    """The tutorial's trader: Linear(L, H) → sigmoid → Linear(H, 1) → position head.

    Parameters
    ----------
    lag
        Window length L (number of inputs).
    hidden
        Hidden units H.
    position
        ``"long"`` for positions in [0, 1] (the tutorial), ``"long_short"`` for [-1, 1].

    Shapes: input ``(B, L)`` → output ``(B,)``.
    """

    def __init__(self, lag: int = 4, hidden: int = 5, position: PositionKind = "long") -> None:
        super().__init__(lag, position)
        self.hidden = check_int("hidden", hidden, minimum=1)
        self.linear0 = nn.Linear(lag, hidden)
        self.linear1 = nn.Linear(hidden, 1)

    def init_arguments(self) -> dict[str, object]:
        return super().init_arguments() | {"hidden": self.hidden}

    def hidden_features(self, windows: torch.Tensor) -> torch.Tensor:
        """Hidden activations, ``(B, L)`` → ``(B, H)``; the hook subclasses change."""
        return torch.sigmoid(self.linear0(windows))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        score = self.linear1(self.hidden_features(windows)).squeeze(-1)
        return self.head(score)


class DropoutTrader(NeuralTrader):
    """:class:`NeuralTrader` with dropout (rate ``dropout``) on the hidden layer.

    Dropout is active in ``train()`` mode only; ``eval()`` uses the full network.
    """

    def __init__(
        self,
        lag: int = 4,
        hidden: int = 5,
        dropout: float = 0.5,
        position: PositionKind = "long",
    ) -> None:
        super().__init__(lag, hidden, position)
        check_float("dropout", dropout, lower=0.0, upper=1.0, upper_open=True)
        self.dropout = nn.Dropout(dropout)

    def hidden_features(self, windows: torch.Tensor) -> torch.Tensor:
        return self.dropout(super().hidden_features(windows))

    def init_arguments(self) -> dict[str, object]:
        return super().init_arguments() | {"dropout": self.dropout.p}


class LinearTrader(WindowPolicy):
    """A linear score of the window through the position head: Linear(L, 1) → head.

    The baseline every nonlinear policy must beat. Shapes: ``(B, L)`` → ``(B,)``.
    """

    def __init__(self, lag: int = 4, position: PositionKind = "long") -> None:
        super().__init__(lag, position)
        self.linear = nn.Linear(lag, 1)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.head(self.linear(windows).squeeze(-1))


class LSTMTrader(WindowPolicy):
    """An LSTM read over the window, oldest return first; its last hidden state →
    Linear(H, 1) → position head. Shapes: ``(B, L)`` → ``(B,)``.
    """

    def __init__(self, lag: int = 20, hidden: int = 8, position: PositionKind = "long") -> None:
        super().__init__(lag, position)
        self.hidden = check_int("hidden", hidden, minimum=1)
        self.lstm = nn.LSTM(input_size=1, hidden_size=hidden, batch_first=True)
        self.linear = nn.Linear(hidden, 1)

    def init_arguments(self) -> dict[str, object]:
        return super().init_arguments() | {"hidden": self.hidden}

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.head(self.linear(self.last_state(windows)).squeeze(-1))

    def last_state(self, windows: torch.Tensor) -> torch.Tensor:
        """The LSTM's hidden state after the window's last return, ``(B, L)`` → ``(B, H)``.

        The cell is unrolled here with ``nn.LSTM``'s own weights and gate order (input,
        forget, cell, output) rather than calling ``nn.LSTM``: ``vmap`` has no batching
        rule for ``aten::lstm``, and this way a replica of an ensemble runs exactly the
        arithmetic of the policy trained alone.
        """
        lstm = self.lstm
        hidden = self.hidden
        # every step's input term at once, time-major so that each step's slice is
        # contiguous: (L, B, 4H)
        inputs = windows.T.unsqueeze(-1) * lstm.weight_ih_l0.squeeze(-1) + (
            lstm.bias_ih_l0 + lstm.bias_hh_l0
        )
        state = cell = windows.new_zeros(windows.shape[0], hidden)
        # unbind, not inputs[step]: each select's backward fills a zero (L, B, 4H)
        for step_input in inputs.unbind(0):
            gates = step_input + state @ lstm.weight_hh_l0.T
            # one sigmoid over all four gates (the candidate's is unused): fewer kernels
            write, forget, _, read = torch.sigmoid(gates).chunk(4, dim=-1)
            candidate = torch.tanh(gates[..., 2 * hidden : 3 * hidden])
            cell = forget * cell + write * candidate
            state = read * torch.tanh(cell)
        return state


__all__ = [
    "SATURATION_TOLERANCE", "saturated",
    "DropoutTrader", "LSTMTrader", "LinearTrader", "NeuralTrader", "PositionHead", "WindowPolicy",
]
