"""An LSTM over a window, for E replicas at once, with its backward written out.

``nn.LSTM`` takes one set of weights, so an ensemble of LSTMs called it once per replica.
:func:`lstm_last_states` runs every replica's recursion in the same kernels instead: one
batched matmul and a dozen elementwise operations per day, forward and back, with the
batch axis last so that each gate is a contiguous block of rows.

It computes what ``nn.LSTM`` computes (gate order input, forget, cell, output; the two
biases added), in another summation order: it matches ``nn.LSTM`` to float rounding,
not to the bit.
"""

from __future__ import annotations

import torch


def _gates_sigmoids_first(tensor: torch.Tensor) -> torch.Tensor:
    """Rows in ``nn.LSTM``'s gate order (input, forget, cell, output) → input, forget,
    output, cell, so that the three sigmoid gates are one block. Along dim 1."""
    input_gate, forget_gate, cell_gate, output_gate = tensor.chunk(4, dim=1)
    return torch.cat([input_gate, forget_gate, output_gate, cell_gate], dim=1)


def _gates_torch_order(tensor: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`_gates_sigmoids_first`."""
    input_gate, forget_gate, output_gate, cell_gate = tensor.chunk(4, dim=1)
    return torch.cat([input_gate, forget_gate, cell_gate, output_gate], dim=1)


def _tanh(tensor: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``tanh`` as ``2 sigmoid(2x) - 1`` into ``out``: the CPU's ``tanh`` kernel measured
    three times slower than its ``sigmoid`` per element, the identity's four passes
    still half the time of one ``tanh``."""
    torch.mul(tensor, 2.0, out=out).sigmoid_()
    return out.mul_(2.0).sub_(1.0)


class _LSTMReplicas(torch.autograd.Function):
    """Shapes: ``days`` ``(E, L, F, B)``; ``weight_ih`` ``(E, 4H, F)``; ``weight_hh``
    ``(E, 4H, H)``; ``bias_ih``, ``bias_hh`` ``(E, 4H)`` → last hidden states
    ``(E, H, B)``. Weights in ``nn.LSTM``'s layout and gate order.

    Each day's input, the state before it and a constant 1 (the bias's input) are stacked
    as one ``(E, F + H + 1, B)`` operand of the day's only matmul, forward and back; the
    cell gate's rows are scaled by 2 so that one ``sigmoid`` activates every gate
    (``tanh(z) = 2 sigmoid(2z) - 1``). Nothing is allocated inside the loops.
    """

    @staticmethod
    def forward(ctx, days, weight_ih, weight_hh, bias_ih, bias_hh):  # type: ignore[no-untyped-def]
        replicas, length, features, batch = days.shape
        hidden = weight_hh.shape[-1]
        bias = (bias_ih + bias_hh)[..., None]
        # (E, 4H, F + H + 1): the bias is the weight of a constant input
        weights = _gates_sigmoids_first(torch.cat([weight_ih, weight_hh, bias], dim=2))
        scaled_weights = weights.clone()
        scaled_weights[:, 3 * hidden:] *= 2.0
        # day t's operand: its inputs, the state after day t - 1 (zero before day 0), a 1
        operands = days.new_zeros(length, replicas, features + hidden + 1, batch)
        operands[:, :, :features] = days.transpose(0, 1)
        operands[:, :, -1] = 1.0
        gates = days.new_empty(length, replicas, 4 * hidden, batch)  # activated, per day
        cells = days.new_zeros(length + 1, replicas, hidden, batch)
        tanh_cells = days.new_empty(length, replicas, hidden, batch)
        last_state = days.new_empty(replicas, hidden, batch)
        for day in range(length):
            gate = torch.bmm(scaled_weights, operands[day], out=gates[day]).sigmoid_()
            input_gate, forget_gate, output_gate, cell_gate = gate.chunk(4, dim=1)
            cell_gate.mul_(2.0).sub_(1.0)  # tanh of the unscaled rows
            cell = torch.mul(input_gate, cell_gate, out=cells[day + 1])
            cell.addcmul_(forget_gate, cells[day])
            _tanh(cell, out=tanh_cells[day])
            state = operands[day + 1, :, features:-1] if day + 1 < length else last_state
            torch.mul(output_gate, tanh_cells[day], out=state)
        ctx.save_for_backward(weights, operands, gates, cells, tanh_cells)
        ctx.features = features
        return last_state

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_state):  # type: ignore[no-untyped-def]
        weights, operands, gates, cells, tanh_cells = ctx.saved_tensors
        length, replicas, _, batch = operands.shape
        hidden, features = weights.shape[1] // 4, ctx.features
        grad_weights = torch.zeros_like(weights)
        want_days = ctx.needs_input_grad[0]
        grad_days = operands.new_empty(length, replicas, features, batch) if want_days else None
        # (E, F + H, 4H), or the state's rows only when the days' gradient is not wanted
        transposed = weights[..., 0 if want_days else features:-1].transpose(1, 2).contiguous()
        grad_state = grad_state.contiguous()
        # the operand's gradient (the state's rows; the days' too when wanted), one buffer
        # for every day: a day reads its state's gradient before its bmm overwrites it
        grad_operand = grad_state.new_empty(replicas, transposed.shape[1], batch)
        grad_cell = torch.zeros_like(grad_state)
        scratch = torch.empty_like(grad_state)
        grad_gate = torch.empty_like(gates[0])  # (E, 4H, B), reused every day
        grad_input, grad_forget, grad_output, grad_candidate = grad_gate.chunk(4, dim=1)
        grad_sigmoids = grad_gate[:, :3 * hidden]
        for day in range(length - 1, -1, -1):
            gate, tanh_cell = gates[day], tanh_cells[day]
            input_gate, forget_gate, output_gate, cell_gate = gate.chunk(4, dim=1)
            torch.mul(grad_state, tanh_cell, out=grad_output)
            torch.mul(grad_state, output_gate, out=scratch)
            grad_cell.add_(torch.ops.aten.tanh_backward.grad_input(
                scratch, tanh_cell, grad_input=scratch))
            torch.mul(grad_cell, cell_gate, out=grad_input)
            torch.mul(grad_cell, cells[day], out=grad_forget)
            torch.mul(grad_cell, input_gate, out=grad_candidate)
            grad_cell.mul_(forget_gate)  # on to the day before
            # the gates' pre-activation gradients, in place
            torch.ops.aten.sigmoid_backward.grad_input(
                grad_sigmoids, gate[:, :3 * hidden], grad_input=grad_sigmoids)
            torch.ops.aten.tanh_backward.grad_input(
                grad_candidate, cell_gate, grad_input=grad_candidate)
            grad_weights.baddbmm_(grad_gate, operands[day].transpose(1, 2))
            if want_days or day > 0:
                torch.bmm(transposed, grad_gate, out=grad_operand)
                if grad_days is not None:
                    grad_days[day] = grad_operand[:, :features]
                grad_state = grad_operand[:, -hidden:]
        grad_weights = _gates_torch_order(grad_weights)
        grad_bias = grad_weights[..., -1]
        return (None if grad_days is None else grad_days.transpose(0, 1),
                grad_weights[..., :features], grad_weights[..., features:-1], grad_bias, grad_bias)


def lstm_last_states(
    days: torch.Tensor, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
    bias_ih: torch.Tensor, bias_hh: torch.Tensor,
) -> torch.Tensor:
    """Each replica's hidden state after the last day, from a zero state.

    Parameters
    ----------
    days
        ``(E, L, F, B)``: day by day, oldest first, F inputs a day, the batch last (a
        stride-0 replica axis for windows all replicas share is fine).
    weight_ih, weight_hh, bias_ih, bias_hh
        ``(E, 4H, F)``, ``(E, 4H, H)``, ``(E, 4H)``, ``(E, 4H)``: each replica's
        ``nn.LSTM`` weights (``weight_ih_l0`` …), stacked.

    Returns
    -------
    torch.Tensor
        ``(E, H, B)``.
    """
    return _LSTMReplicas.apply(days, weight_ih, weight_hh, bias_ih, bias_hh)  # type: ignore[no-any-return]


__all__ = ["lstm_last_states"]
