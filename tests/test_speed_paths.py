"""The fast paths of training, each against what it replaces: the foreach RMSprop
step against torch's."""

import copy

import torch

from neuraltrader import NeuralTrader
from neuraltrader.core.ensemble import TraderEnsemble
from neuraltrader.core.train import RMSprop, train_epoch


def small(windows, rows=2100):
    return tuple(tensor[:rows] for tensor in windows)


def test_foreach_rmsprop_steps_as_torchs(momentum_windows):
    """Bit for bit, state included: the same elementwise arithmetic, less Python."""
    windows, targets = small(momentum_windows["train"])
    for make in (lambda: NeuralTrader(4, 5), lambda: TraderEnsemble(NeuralTrader(4, 5), 3)):
        ours = make()
        theirs = copy.deepcopy(ours)
        optimizers = (RMSprop(ours.parameters(), lr=0.01),
                      torch.optim.RMSprop(theirs.parameters(), lr=0.01))
        for model, optimizer in zip((ours, theirs), optimizers, strict=True):
            for _ in range(3):
                train_epoch(model, optimizer, windows, targets, batch_size=500)
        for mine, reference in zip(ours.parameters(), theirs.parameters(), strict=True):
            assert torch.equal(mine, reference)
        mine, reference = (optimizer.state_dict() for optimizer in optimizers)
        assert mine["state"].keys() == reference["state"].keys()
        for index, state in reference["state"].items():
            assert torch.equal(mine["state"][index]["square_avg"], state["square_avg"])
            assert torch.equal(mine["state"][index]["step"], state["step"])
            assert float(state["step"]) == 3 * 5


def test_foreach_rmsprop_falls_back_to_torchs_step(momentum_windows):
    windows, targets = small(momentum_windows["train"])
    model = NeuralTrader(4, 5)
    momentum = RMSprop(model.parameters(), lr=0.01, momentum=0.9)
    train_epoch(model, momentum, windows, targets, batch_size=700)
    assert all("momentum_buffer" in state for state in momentum.state.values())
    # torch's step after the lean one carries on from its state
    plain = RMSprop(model.parameters(), lr=0.01)
    train_epoch(model, plain, windows, targets, batch_size=700)
    plain.step()
    assert all(float(state["step"]) == 4 for state in plain.state.values())
