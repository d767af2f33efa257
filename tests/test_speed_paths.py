"""The fast paths of training, each against what it replaces: the lean RMSprop and Adam
steps against torch's and the batched MLP's written-out gradient against autograd's, to
the bit; the batched LSTM against ``nn.LSTM``, to float rounding."""

import copy

import pytest
import torch
from torch.overrides import TorchFunctionMode

from neuraltrader import DropoutTrader, NeuralTrader
from neuraltrader.core.ensemble import LSTMEnsemble, TraderEnsemble, make_ensemble
from neuraltrader.core.masks import dropout_masks
from neuraltrader.core.optimizers import Adam, RMSprop
from neuraltrader.core.policies import LSTMTrader
from neuraltrader.core.train import train_epoch


def small(windows, rows=2100):
    return tuple(tensor[:rows] for tensor in windows)


LEAN = {"rmsprop": (RMSprop, torch.optim.RMSprop, ("square_avg",)),
        "adam": (Adam, torch.optim.Adam, ("exp_avg", "exp_avg_sq"))}


def twins(name, make=lambda: NeuralTrader(4, 5)):
    """Two equal models, the first with the lean optimizer ``name``, the second with
    torch's: ``(ours, theirs), (lean, torch's)``."""
    lean, reference, _ = LEAN[name]
    ours = make()
    theirs = copy.deepcopy(ours)
    return (ours, theirs), (lean(ours.parameters(), lr=0.01),
                            reference(theirs.parameters(), lr=0.01))


def assert_same_weights(ours, theirs):
    for mine, expected in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(mine, expected)


@pytest.mark.parametrize("name", list(LEAN))
@pytest.mark.parametrize("make", [lambda: NeuralTrader(4, 5),
                                  lambda: TraderEnsemble(NeuralTrader(4, 5), 3)])
def test_lean_steps_are_torchs_to_the_bit(momentum_windows, name, make):
    """Weights and state: the same elementwise arithmetic, less Python."""
    moments = LEAN[name][2]
    windows, targets = small(momentum_windows["train"])
    (ours, theirs), optimizers = twins(name, make)
    for model, optimizer in zip((ours, theirs), optimizers, strict=True):
        for _ in range(3):
            train_epoch(model, optimizer, windows, targets, batch_size=500)
    assert_same_weights(ours, theirs)
    flat = optimizers[0]._flat  # the flat path was taken, and the state is its views
    assert flat is not None
    assert all(optimizers[0].state[parameter][key]._base is buffer
               for parameter in ours.parameters()
               for key, buffer in zip(moments, flat.moments, strict=True))
    mine, expected = (optimizer.state_dict() for optimizer in optimizers)
    assert mine["state"].keys() == expected["state"].keys()
    for index, state in expected["state"].items():
        assert float(state["step"]) == 3 * 5
        for key in ("step", *moments):
            assert torch.equal(mine["state"][index][key], state[key])


@pytest.mark.parametrize("name", list(LEAN))
def test_lean_state_survives_load_state_dict_and_torchs_step(momentum_windows, name):
    """The flat buffers behind the state are rebuilt from a loaded state_dict (a resumed
    training) and follow torch's own step taken in between, to the bit."""
    windows, targets = small(momentum_windows["train"])
    (ours, theirs), (mine, expected) = twins(name)
    for model, optimizer in ((ours, mine), (theirs, expected)):
        train_epoch(model, optimizer, windows, targets, batch_size=500)
    weights, state = copy.deepcopy((ours.state_dict(), mine.state_dict()))
    train_epoch(ours, mine, windows, targets, batch_size=500)  # then taken back
    ours.load_state_dict(weights)
    mine.load_state_dict(state)
    for model, optimizer in ((ours, mine), (theirs, expected)):
        train_epoch(model, optimizer, windows, targets, batch_size=500)
        optimizer.step()  # torch's step, with the last batch's gradients
        train_epoch(model, optimizer, windows, targets, batch_size=500)
    assert_same_weights(ours, theirs)
    assert {float(entries["step"]) for entries in mine.state.values()} == {3 * 5 + 1}


def test_an_active_torch_function_mode_sees_the_backward(momentum_windows):
    """The direct engine call is skipped where ``__torch_function__`` may handle
    ``backward``: a mode (or subclass) sees the call, as with ``Tensor.backward``."""
    windows, targets = small(momentum_windows["train"], 1000)
    seen = []

    class Recording(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            seen.append(getattr(func, "__name__", ""))
            return func(*args, **(kwargs or {}))

    model = NeuralTrader(4, 5)
    with Recording():
        train_epoch(model, RMSprop(model.parameters(), lr=0.01), windows, targets,
                    batch_size=500)
    assert seen.count("backward") == 2


def test_a_parameter_that_skipped_steps_takes_torchs_step():
    """Adam corrects each parameter by its own step count: unequal counts go to torch."""
    model = NeuralTrader(4, 5)
    reference = copy.deepcopy(model)
    optimizers = Adam(model.parameters(), lr=0.01), torch.optim.Adam(reference.parameters(),
                                                                        lr=0.01)
    windows = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    for step in range(3):
        for net, optimizer in zip((model, reference), optimizers, strict=True):
            optimizer.zero_grad()
            net(windows).sum().backward()
            if step == 0:
                net.linear1.bias.grad = None  # skipped its first step
            getattr(optimizer, "unhooked_step", optimizer.step)()
    assert_same_weights(model, reference)


@pytest.mark.parametrize("options", [{"amsgrad": True}, {"weight_decay": 0.1},
                                     {"maximize": True}, {"foreach": True}])
def test_other_adam_settings_take_torchs_step(momentum_windows, options):
    windows, targets = small(momentum_windows["train"])
    model = NeuralTrader(4, 5)
    reference = copy.deepcopy(model)
    ours = Adam(model.parameters(), lr=0.01, **options)
    theirs = torch.optim.Adam(reference.parameters(), lr=0.01, **options)
    for net, optimizer in ((model, ours), (reference, theirs)):
        train_epoch(net, optimizer, windows, targets, batch_size=700)
    assert_same_weights(model, reference)


@pytest.mark.parametrize("name", list(LEAN))
@pytest.mark.parametrize("dtypes", [
    (torch.complex64,),  # torch steps it as its real view
    (torch.bfloat16, torch.bfloat16),  # torch's addcdiv_ rounds once, in float32
    (torch.float16, torch.float16),
    (torch.float32, torch.float64),  # no one flat buffer
], ids=["complex64", "bfloat16", "float16", "mixed"])
def test_other_dtypes_take_torchs_step(name, dtypes):
    lean, reference, _ = LEAN[name]
    generator = torch.Generator().manual_seed(0)
    shapes = [(50,), (7, 3)][:len(dtypes)]
    starts = [torch.randn(shape, generator=generator).to(dtype)
              if not dtype.is_complex else torch.randn(shape, dtype=dtype, generator=generator)
              for shape, dtype in zip(shapes, dtypes, strict=True)]
    mine = [torch.nn.Parameter(start.clone()) for start in starts]
    theirs = [torch.nn.Parameter(start.clone()) for start in starts]
    optimizers = lean(mine, lr=0.1), reference(theirs, lr=0.1)
    for _ in range(5):
        for ours, reference_parameter in zip(mine, theirs, strict=True):
            gradient = torch.randn(ours.shape, generator=generator).to(ours.dtype)
            ours.grad, reference_parameter.grad = gradient.clone(), gradient.clone()
        optimizers[0].unhooked_step()
        optimizers[1].step()
    assert optimizers[0]._flat is None
    assert all(torch.equal(ours, reference_parameter)
               for ours, reference_parameter in zip(mine, theirs, strict=True))


def _empty(state, parameter):
    state.clear()


def _fresh_moment(state, parameter):
    entries = state[parameter]
    name = next(key for key in entries if key != "step")
    entries[name] = torch.zeros_like(parameter)


@pytest.mark.parametrize("name", list(LEAN))
@pytest.mark.parametrize("reset", [_empty, _fresh_moment])
def test_state_reset_in_place_carries_on_as_torchs(momentum_windows, name, reset):
    """Emptying ``state`` or replacing an entry in place is seen: the next step starts
    from the state as torch's would, rather than from the old buffers."""
    windows, targets = small(momentum_windows["train"])
    models, optimizers = twins(name)
    for model, optimizer in zip(models, optimizers, strict=True):
        train_epoch(model, optimizer, windows, targets, batch_size=500)
        reset(optimizer.state, next(model.parameters()))
        train_epoch(model, optimizer, windows, targets, batch_size=500)
    assert_same_weights(*models)


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


def autograd_scores(ensemble, windows, masks):
    """The batched MLP as plain autograd expressions: what ``_HiddenLayers`` replaces."""
    inputs = windows.transpose(-1, -2)
    if inputs.ndim == 2:
        inputs = inputs.expand(ensemble.replicas, *inputs.shape)
    hidden = torch.sigmoid(torch.baddbmm(ensemble.bias0, ensemble.weight0, inputs))
    if masks is not None:
        hidden = hidden * masks
    return ensemble.head(torch.baddbmm(ensemble.bias1, ensemble.weight1, hidden).squeeze(1))


@pytest.mark.parametrize("template", [
    NeuralTrader(4, 5), DropoutTrader(4, 7, 0.3), NeuralTrader(6, 3, "long_short")])
@pytest.mark.parametrize("replicas", [1, 3, 64])
@pytest.mark.parametrize("shared", [True, False])
def test_written_out_gradient_is_autograds_to_the_bit(template, replicas, shared):
    generator = torch.Generator().manual_seed(replicas)
    shape = (500, template.inputs) if shared else (replicas, 500, template.inputs)
    windows, targets = torch.randn(shape, generator=generator), torch.randn(replicas, 500)
    windows.requires_grad_()  # a saliency map: the windows' gradient too
    ensemble = TraderEnsemble(template, replicas).train()
    start = getattr(ensemble, "mask_draws", 0)
    positions = ensemble(windows)
    masks = (dropout_masks(ensemble.mask_keys, start, ensemble.weight0.shape[1], 500,
                           ensemble.dropout) if ensemble.dropout else None)
    (positions * targets).mean(-1).sum().backward()
    written = [parameter.grad for parameter in ensemble.parameters()]
    written_windows, windows.grad = windows.grad, None
    ensemble.zero_grad()
    expected = autograd_scores(ensemble, windows, masks)
    (expected * targets).mean(-1).sum().backward()
    assert torch.equal(positions, expected)
    for mine, reference in zip(written, ensemble.parameters(), strict=True):
        assert torch.equal(mine, reference.grad)
    torch.testing.assert_close(written_windows, windows.grad)  # not needed to the bit


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("replicas", "features", "shared"),
                         [(1, 1, True), (3, 1, True), (3, 2, False)])
def test_batched_lstm_is_nn_lstms_recursion(dtype, replicas, features, shared):
    """The batched-lstm path against each replica's own ``nn.LSTM``: positions and the
    gradients of every weight and of the windows. In float64 the two summation orders
    agree to 1e-12, so a wrong gate or a missed term cannot hide in the tolerance."""
    template = LSTMTrader(5, 4, "long_short", features=features)
    ensemble = LSTMEnsemble(template, replicas).to(dtype).train()
    assert make_ensemble(template, replicas).path == ensemble.path == "batched-lstm"
    generator = torch.Generator().manual_seed(replicas)
    shape = (300, template.inputs) if shared else (replicas, 300, template.inputs)
    windows = torch.randn(shape, generator=generator, dtype=dtype, requires_grad=True)
    targets = torch.randn(replicas, 300, dtype=dtype)
    (ensemble(windows) * targets).mean(-1).sum().backward()
    tolerance = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {}
    expected_windows = torch.zeros_like(windows)
    for index in range(replicas):
        solo = ensemble.replica(index).to(dtype).train()
        inputs = (windows if shared else windows[index]).detach().requires_grad_()
        position = solo(inputs)
        (position * targets[index]).mean().backward()
        if shared:
            expected_windows += inputs.grad
        else:
            expected_windows[index] = inputs.grad
        with torch.no_grad():
            torch.testing.assert_close(ensemble(windows)[index], position, **tolerance)
        for name, parameter in solo.named_parameters():
            stacked = ensemble.get_parameter(name.replace(".", "__"))
            torch.testing.assert_close(stacked.grad[index], parameter.grad, **tolerance)
    torch.testing.assert_close(windows.grad, expected_windows, **tolerance)
