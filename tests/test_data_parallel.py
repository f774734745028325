"""clconv.DataParallel: one module over several devices, against the float64 reference.

Every machine has at least one device, so the splitting, the gathering and the ordered reduction are
tested with two replicas on one device; the tests marked `distinct` also run over every distinct device
found (PoCL and Intel's CPU runtime side by side, for instance) and skip where there is only one.
"""

import numpy as np
import pytest

import clconv
import conftest
from conftest import assert_close
from reference import (conv1d_bias_grad_ref, conv1d_input_grad_ref, conv1d_ref, conv1d_weight_grad_ref,
                       conv_transpose1d_ref)

# (id, Conv1d arguments, reference arguments: stride, padding, dilation, groups, padding_mode)
LAYERS = [
    ("strided-reflect", dict(in_channels=4, out_channels=6, kernel_size=5, stride=2, padding=2, padding_mode="reflect"),
     (2, 2, 1, 1, "reflect")),
    ("grouped-dilated", dict(in_channels=6, out_channels=4, kernel_size=3, padding=2, dilation=2, groups=2, bias=False),
     (1, 2, 2, 2, "zeros")),
    ("same-circular", dict(in_channels=3, out_channels=5, kernel_size=4, padding="same", padding_mode="circular"),
     (1, "same", 1, 1, "circular")),
]


def distinct_devices():
    found = {}
    for _, device in conftest.tested_devices():
        found.setdefault(device.spec, device)
    return list(found.values())


def make_layer(kwargs, device):
    clconv.manual_seed(5)
    return clconv.Conv1d(**kwargs, device=device)


def references(m, x, dy, ref_args):
    w = m.weight.numpy().astype(np.float64)
    b = None if m.bias is None else m.bias.numpy().astype(np.float64)
    return (conv1d_ref(x, w, b, *ref_args), conv1d_input_grad_ref(x.shape, w, dy, *ref_args),
            conv1d_weight_grad_ref(x, w.shape, dy, *ref_args), None if b is None else conv1d_bias_grad_ref(dy))


def check_step(dp, x, rng, ref_args, what):
    """One forward and backward through dp against the reference; returns the reference gradients."""
    m = dp.module
    y = dp(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    y_ref, dx_ref, dw_ref, db_ref = references(m, x, dy, ref_args)
    assert isinstance(y, np.ndarray)
    assert_close(y, y_ref, np.float32, f"{what} forward")
    assert_close(dp.backward(dy), dx_ref, np.float32, f"{what} input gradient")
    assert_close(m.weight.grad.get(), dw_ref, np.float32, f"{what} weight gradient")
    if db_ref is not None:
        assert_close(m.bias.grad.get(), db_ref, np.float32, f"{what} bias gradient")
    return dw_ref, db_ref


@pytest.mark.parametrize("balance", ["measured", "even", (1, 3)], ids=["measured", "even", "one-to-three"])
@pytest.mark.parametrize("layer, ref_args", [(kw, ref) for _, kw, ref in LAYERS], ids=[i for i, _, _ in LAYERS])
def test_two_replicas_on_one_device(device, rng, layer, ref_args, balance):
    dp = clconv.DataParallel(make_layer(layer, device), devices=[device, device], balance=balance)
    x = rng.standard_normal((7, layer["in_channels"], 37)).astype(np.float32)
    check_step(dp, x, rng, ref_args, f"balance={balance}")
    blocks = dp._latest[0]
    assert sorted(blocks) == [0, 1], "both replicas take part"
    expected_first = {"measured": 4, "even": 4, (1, 3): 2}[balance]  # 7 samples: 3.5/3.5 rounds to 4/3; 1.75/5.25 to 2/5
    assert blocks[0] == (0, expected_first) and blocks[1] == (expected_first, 7)


@pytest.mark.parametrize("shape", [(1, 4, 30), (4, 30), (0, 4, 30)], ids=["batch-1", "unbatched", "batch-0"])
def test_fewer_samples_than_replicas(device, rng, shape):
    layer, ref_args = LAYERS[0][1], LAYERS[0][2]
    dp = clconv.DataParallel(make_layer(layer, device), devices=[device, device])
    x = rng.standard_normal(shape).astype(np.float32)
    y = dp(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    y_ref, dx_ref, dw_ref, db_ref = references(dp.module, x, dy, ref_args)
    assert_close(y, y_ref, np.float32, "forward")
    assert_close(dp.backward(dy), dx_ref, np.float32, "input gradient")
    assert_close(dp.module.weight.grad.get(), dw_ref, np.float32, "weight gradient")
    assert_close(dp.module.bias.grad.get(), db_ref, np.float32, "bias gradient")


def test_transposed_module(device, rng):
    clconv.manual_seed(6)
    m = clconv.ConvTranspose1d(4, 6, 3, stride=2, padding=1, output_padding=1, device=device)
    dp = clconv.DataParallel(m, devices=[device, device], balance="even")
    x = rng.standard_normal((5, 4, 20)).astype(np.float32)
    w, b = m.weight.numpy().astype(np.float64), m.bias.numpy().astype(np.float64)
    y = dp(x)
    assert_close(y, conv_transpose1d_ref(x, w, b, 2, 1, 1), np.float32, "forward")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    # ConvTranspose1d's input gradient is the conv1d of dy with the same weight; its weight gradient is the
    # conv1d weight gradient with the roles of input and output swapped.
    assert_close(dp.backward(dy), conv1d_ref(dy, w, None, 2, 1), np.float32, "input gradient")
    assert_close(m.weight.grad.get(), conv1d_weight_grad_ref(dy, w.shape, x, 2, 1), np.float32, "weight gradient")
    assert_close(m.bias.grad.get(), conv1d_bias_grad_ref(dy), np.float32, "bias gradient")


def test_gradients_accumulate_and_are_reproducible(device, rng):
    layer = LAYERS[1][1]
    x = rng.standard_normal((6, 6, 40)).astype(np.float32)
    dy = None
    grads = []
    for _ in range(2):
        dp = clconv.DataParallel(make_layer(layer, device), devices=[device, device], balance=(2, 1))
        y = dp(x)
        if dy is None:
            dy = rng.standard_normal(y.shape).astype(np.float32)
        dp.backward(dy, input_grad=False)
        first = dp.module.weight.grad.get()
        dp(x)
        assert dp.backward(dy, input_grad=False) is None
        grads.append((first, dp.module.weight.grad.get()))
    w = dp.module.weight.numpy().astype(np.float64)
    assert_close(grads[0][1], 2 * conv1d_weight_grad_ref(x, w.shape, dy, *LAYERS[1][2]), np.float32, "accumulated")
    # The same split and the same summation order: the same bits, run to run.
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    np.testing.assert_array_equal(grads[0][1], grads[1][1])


@pytest.mark.parametrize("change", ["in-place-step", "new-array", "load-state-dict"])
def test_parameter_changes_reach_the_replicas(device, rng, change):
    layer, ref_args = LAYERS[0][1], LAYERS[0][2]
    dp = clconv.DataParallel(make_layer(layer, device), devices=[device, device], balance="even")
    x = rng.standard_normal((4, 4, 30)).astype(np.float32)
    check_step(dp, x, rng, ref_args, "before the change")
    m = dp.module
    if change == "in-place-step":
        for param in m.parameters():
            param.data -= 0.5 * param.grad
    elif change == "new-array":
        m.weight.data = device.to_device(rng.standard_normal(m.weight.shape).astype(np.float32))
    else:
        m.load_state_dict({"weight": rng.standard_normal(m.weight.shape).astype(np.float32),
                           "bias": rng.standard_normal(m.bias.shape).astype(np.float32)})
    m.zero_grad()
    check_step(dp, x, rng, ref_args, f"after {change}")


@pytest.mark.parametrize("stage", ["forward", "backward"])
def test_a_failing_device_is_named_and_leaves_gradients_alone(device, rng, monkeypatch, stage):
    dp = clconv.DataParallel(make_layer(LAYERS[0][1], device), devices=[device, device], balance="even")
    x = rng.standard_normal((4, 4, 30)).astype(np.float32)
    y = dp(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dp.backward(dy)
    before = [p.grad.get() for p in dp.parameters()]

    def lost(*args, **kwargs):
        raise RuntimeError("device lost")

    if stage == "forward":
        monkeypatch.setattr(dp.replicas[1], "forward", lost)
        with pytest.raises(RuntimeError, match=rf"forward failed on replica 1, device {device.index} .*device lost"):
            dp(x)
        with pytest.raises(RuntimeError, match="before any forward"):
            dp.backward(dy)
    else:
        dp(x)
        monkeypatch.setattr(dp.replicas[1], "backward", lost)
        with pytest.raises(RuntimeError, match=rf"backward failed on replica 1, device {device.index} .*device lost"):
            dp.backward(dy)
    for param, old in zip(dp.parameters(), before):
        np.testing.assert_array_equal(param.grad.get(), old)


def test_bad_arguments(device, rng):
    m = make_layer(LAYERS[0][1], device)
    with pytest.raises(TypeError, match="Conv1d or ConvTranspose1d"):
        clconv.DataParallel(object())
    with pytest.raises(ValueError, match="balance must be"):
        clconv.DataParallel(m, devices=[device], balance="fast")
    with pytest.raises(ValueError, match="2 weights for 1 devices"):
        clconv.DataParallel(m, devices=[device], balance=(1, 2))
    with pytest.raises(ValueError, match="positive and finite"):
        clconv.DataParallel(m, devices=[device, device], balance=(1, 0))
    dp = clconv.DataParallel(m, devices=[device, device])
    with pytest.raises(RuntimeError, match="before any forward"):
        dp.backward(np.zeros((2, 6, 15), np.float32))
    with pytest.raises(TypeError, match="numpy arrays"):
        dp(device.to_device(np.zeros((2, 4, 30), np.float32)))
    # A wrong input keeps the type of its error (about the replica's block), with the device named.
    with pytest.raises(RuntimeError, match=r"failed on replica 0, device .*expected input\[1, 3, 30\] to have 4 channels"):
        dp(np.zeros((2, 3, 30), np.float32))
    y = dp(rng.standard_normal((2, 4, 30)).astype(np.float32))
    with pytest.raises(RuntimeError, match=r"grad_output has size \[2, 6, 14\]"):
        dp.backward(np.zeros((2, 6, 14), np.float32))
    with pytest.raises(RuntimeError, match="grad_output has dtype float64"):
        dp.backward(np.zeros(y.shape))


@pytest.mark.parametrize("balance", ["measured", "even"])
def test_distinct_devices(rng, balance):
    found = distinct_devices()
    if len(found) < 2:
        pytest.skip("one OpenCL device: distinct devices are tested where there are several")
    layer, ref_args = LAYERS[0][1], LAYERS[0][2]
    dp = clconv.DataParallel(make_layer(layer, found[0]), devices=found, balance=balance)
    x = rng.standard_normal((9, 4, 64)).astype(np.float32)
    dw_ref, db_ref = check_step(dp, x, rng, ref_args, f"{len(found)} devices")
    shares = dp.shares(x)
    assert len(shares) == len(found) and abs(sum(shares) - 1) < 1e-12 and min(shares) > 0
    # A second step on the same inputs accumulates the same partial sums.
    dy = rng.standard_normal(dp(x).shape).astype(np.float32)
    dp.module.zero_grad()
    dp.backward(dy)
    w = dp.module.weight.numpy().astype(np.float64)
    assert_close(dp.module.weight.grad.get(), conv1d_weight_grad_ref(x, w.shape, dy, *ref_args), np.float32, "second step")
