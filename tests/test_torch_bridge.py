"""clconv.torch: clconv's Conv1d inside torch models, checked against torch's own Conv1d and autograd."""

import copy
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import clconv.torch  # noqa: E402  (needs torch)

from conftest import assert_close  # noqa: E402

nn = torch.nn
F = torch.nn.functional


def torch_dtype(name):
    return {"f16": torch.float16, "f32": torch.float32, "f64": torch.float64}[name]


def reference_conv(conv, x):
    """torch's Conv1d of `conv`'s configuration in float64, from the same (rounded) values."""
    ref = nn.Conv1d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode, dtype=torch.float64)
    ref.load_state_dict({k: v.double() for k, v in conv.state_dict().items()})
    return ref


def grads(y, inputs, seed=0):
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(y.dtype)
    return torch.autograd.grad(y, inputs, dy)


def check_against_torch(conv, x):
    """Forward and gradients (input, weight, bias) of `conv` on `x` against torch in float64."""
    dtype = np.dtype(str(x.dtype).removeprefix("torch."))
    ref = reference_conv(conv, x)
    x = x.clone().requires_grad_()
    x_ref = x.detach().double().requires_grad_()
    y, y_ref = conv(x), ref(x_ref)
    assert y.dtype == x.dtype and y.shape == y_ref.shape
    assert_close(y.detach().numpy(), y_ref.detach().numpy(), dtype, "forward")
    params, params_ref = [x, *conv.parameters()], [x_ref, *ref.parameters()]
    for name, g, g_ref in zip(("input", "weight", "bias"), grads(y, params), grads(y_ref, params_ref)):
        assert g.dtype == x.dtype
        assert_close(g.numpy(), g_ref.numpy(), dtype, f"{name} gradient")


CONFIGS = {
    # id: (Conv1d arguments, input shape)
    "basic": (dict(in_channels=4, out_channels=6, kernel_size=3), (2, 4, 19)),
    "stride-dilation": (dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, dilation=2, padding=1), (3, 4, 23)),
    "groups": (dict(in_channels=6, out_channels=9, kernel_size=5, groups=3, padding=2), (2, 6, 17)),
    "depthwise-nobias": (dict(in_channels=5, out_channels=5, kernel_size=3, groups=5, bias=False), (2, 5, 12)),
    "unbatched": (dict(in_channels=3, out_channels=4, kernel_size=3, padding="same"), (3, 11)),
}


@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
def test_module_matches_torch(device, config):
    torch.manual_seed(0)
    kwargs, shape = CONFIGS[config]
    conv = clconv.torch.Conv1d(**kwargs, cl_device=device)
    check_against_torch(conv, torch.randn(shape))


@pytest.mark.parametrize("config", ["basic", "groups"])
@pytest.mark.parametrize("dtype", ["f16", "f64"])
def test_module_dtypes(device, config, dtype):
    if dtype == "f64" and not device.has_fp64:
        pytest.skip(f"{device.name} has no fp64")
    torch.manual_seed(0)
    kwargs, shape = CONFIGS[config]
    conv = clconv.torch.Conv1d(**kwargs, dtype=torch_dtype(dtype), cl_device=device)
    check_against_torch(conv, torch.randn(shape).to(torch_dtype(dtype)))


@pytest.mark.parametrize("mode, padding", [("zeros", "same"), ("reflect", 2), ("replicate", "same"), ("circular", 2)],
                         ids=["zeros-same", "reflect-2", "replicate-same", "circular-2"])
def test_padding_modes(device, mode, padding):
    torch.manual_seed(1)
    conv = clconv.torch.Conv1d(4, 6, 4, padding=padding, dilation=2 if padding == "same" else 1,
                               padding_mode=mode, cl_device=device)
    check_against_torch(conv, torch.randn(2, 4, 13))


@pytest.mark.parametrize("case", ["stride-groups", "unbatched-same-nobias"])
def test_gradcheck_float64(fp64_device, case):
    gen = torch.Generator().manual_seed(2)

    def rand(*shape):
        return torch.randn(shape, dtype=torch.float64, generator=gen, requires_grad=True)

    if case == "stride-groups":
        args = (rand(2, 4, 9), rand(6, 2, 3), rand(6))
        kwargs = dict(stride=2, padding=1, groups=2)
    else:
        args = (rand(3, 8), rand(2, 3, 3), None)
        kwargs = dict(padding="same", dilation=2)
    assert torch.autograd.gradcheck(
        lambda x, w, b: clconv.torch.conv1d(x, w, b, cl_device=fp64_device, **kwargs), args)


@pytest.mark.parametrize("mode", ["reflect"])
def test_gradcheck_module_padding_modes(fp64_device, mode):
    torch.manual_seed(3)
    conv = clconv.torch.Conv1d(2, 3, 3, padding=2, padding_mode=mode, dtype=torch.float64, cl_device=fp64_device)
    x = torch.randn(2, 2, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: conv._conv_forward(x, w, b), (x, conv.weight, conv.bias))


def make_model():
    return nn.Sequential(
        nn.Conv1d(1, 6, 5, padding=2), nn.ReLU(),
        nn.Conv1d(6, 8, 3, stride=2, padding=1, padding_mode="reflect"), nn.ReLU(),
        nn.Conv1d(8, 8, 3, groups=2, padding="same", padding_mode="circular"), nn.ReLU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 3))


def test_training_matches_torch_step_for_step(device):
    torch.manual_seed(4)
    reference = make_model()
    model = clconv.torch.convert(copy.deepcopy(reference), cl_device=device)
    optimisers = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (reference, model)]
    gen = torch.Generator().manual_seed(5)
    for step in range(15):
        x = torch.randn(8, 1, 32, generator=gen)
        labels = torch.randint(0, 3, (8,), generator=gen)
        losses = []
        for m, opt in zip((reference, model), optimisers):
            opt.zero_grad()
            loss = F.cross_entropy(m(x), labels)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert abs(losses[0] - losses[1]) <= 1e-4, f"step {step}: torch {losses[0]} vs clconv {losses[1]}"
    for p, q in zip(reference.parameters(), model.parameters()):
        assert torch.allclose(p, q, atol=1e-4)


def test_convert_in_place(device):
    torch.manual_seed(6)
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.Sequential(nn.Conv1d(4, 4, 3, groups=2)), nn.ConvTranspose1d(4, 2, 3))
    before = [id(p) for p in model.parameters()]
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []
    model[0].register_forward_hook(lambda module, args, out: calls.append(type(module)))
    x = torch.randn(2, 2, 10)
    expected = model(x).detach()
    assert clconv.torch.convert(model, cl_device=device) is model
    assert type(model[0]) is clconv.torch.Conv1d and type(model[1][0]) is clconv.torch.Conv1d
    assert type(model[2]) is nn.ConvTranspose1d  # not a Conv1d: untouched
    assert model[0].cl_device is device
    assert [id(p) for p in model.parameters()] == before
    y = model(x)
    assert calls == [nn.Conv1d, clconv.torch.Conv1d]
    assert torch.allclose(y, expected, atol=1e-5)
    y.sum().backward()
    weight = model[0].weight.detach().clone()
    optimiser.step()  # built before the conversion, on the same parameters
    assert not torch.equal(weight, model[0].weight)


def test_state_dict_round_trip(device):
    torch.manual_seed(7)
    conv = clconv.torch.Conv1d(3, 4, 3, cl_device=device)
    plain = nn.Conv1d(3, 4, 3)
    plain.load_state_dict(conv.state_dict())
    assert conv.state_dict().keys() == plain.state_dict().keys()
    other = clconv.torch.Conv1d(3, 4, 3, cl_device=device)
    other.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 8)
    assert torch.allclose(other(x), plain(x), atol=1e-5)


def test_pickle_and_deepcopy(device):
    conv = clconv.torch.Conv1d(2, 3, 3, cl_device=device)
    x = torch.randn(1, 2, 6)
    for clone in (copy.deepcopy(conv), pickle.loads(pickle.dumps(conv))):
        assert clone.cl_device is device
        assert torch.equal(clone(x), conv(x))


def test_double_backward_raises(device):
    conv = clconv.torch.Conv1d(2, 3, 3, cl_device=device)
    x = torch.randn(1, 2, 6, requires_grad=True)
    gx, = torch.autograd.grad(conv(x).pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        gx.sum().backward()


@pytest.mark.parametrize("view", ["strided", "transposed"])
def test_non_contiguous_input(device, view):
    torch.manual_seed(8)
    conv = clconv.torch.Conv1d(3, 4, 3, cl_device=device)
    base = torch.randn(2, 3, 20) if view == "strided" else torch.randn(2, 10, 3)
    x = base[:, :, ::2] if view == "strided" else base.transpose(1, 2)
    assert not x.is_contiguous()
    check_against_torch(conv, x)
    assert torch.allclose(conv(x), conv(x.contiguous()))


def test_no_grad_and_eval(device):
    conv = clconv.torch.Conv1d(2, 3, 3, cl_device=device).eval()
    x = torch.randn(1, 2, 6, requires_grad=True)
    with torch.no_grad():
        y = conv(x)
    assert not y.requires_grad
    assert conv(x).requires_grad


def test_input_larger_than_the_device_runs_in_pieces(device, monkeypatch):
    torch.manual_seed(9)
    conv = clconv.torch.Conv1d(2, 3, 5, padding=2, padding_mode="reflect", cl_device=device)
    x = torch.randn(3, 2, 40)
    monkeypatch.setattr(device, "buffer_limit", 3 * 40 * 4)  # less than one sample: length blocks
    check_against_torch(conv, x)


def test_functional_matches_torch(device):
    gen = torch.Generator().manual_seed(10)
    x, w, b = torch.randn(2, 4, 15, generator=gen), torch.randn(6, 2, 3, generator=gen), torch.randn(6, generator=gen)
    y = clconv.torch.conv1d(x, w, b, stride=2, padding=(1,), dilation=2, groups=2, cl_device=device)
    ref = F.conv1d(x.double(), w.double(), b.double(), stride=2, padding=1, dilation=2, groups=2)
    assert_close(y.numpy(), ref.numpy(), np.float32)


def test_errors(device):
    w = torch.randn(3, 2, 3)
    with pytest.raises(RuntimeError, match="CPU tensors.*meta"):
        clconv.torch.conv1d(torch.empty(1, 2, 5, device="meta"), w, cl_device=device)
    with pytest.raises(TypeError, match="bfloat16"):
        clconv.torch.conv1d(torch.randn(1, 2, 5, dtype=torch.bfloat16), w.bfloat16(), cl_device=device)
    with pytest.raises(RuntimeError, match=r"Input type \(double\) and weight type \(float\)"):
        clconv.torch.conv1d(torch.randn(1, 2, 5, dtype=torch.float64), w, cl_device=device)
    with pytest.raises(RuntimeError, match="expected input.* to have 2 channels"):
        clconv.torch.conv1d(torch.randn(1, 3, 5), w, cl_device=device)
    with pytest.raises(TypeError, match="must be Tensor"):
        clconv.torch.conv1d(np.zeros((1, 2, 5), np.float32), w, cl_device=device)


def test_import_clconv_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, clconv; assert 'torch' not in sys.modules, 'torch imported'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_devices_without_shared_memory_get_copies(device, monkeypatch):
    """The upload path of devices with memory of their own (GPUs), taken here on any device."""
    monkeypatch.setattr(device, "host_unified_memory", False)
    torch.manual_seed(11)
    conv = clconv.torch.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, cl_device=device)
    check_against_torch(conv, torch.randn(3, 4, 23))


def test_overhead_bench_runs(device):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, str(root / "bench" / "torch_bridge_overhead.py"), "--calls", "3",
                          "--device", device.spec], capture_output=True, text=True, cwd=root, timeout=300)
    assert out.returncode == 0, out.stderr
    assert len([line for line in out.stdout.splitlines()
                if line.startswith(("forward ", "forward, recorded", "training step"))]) == 3, out.stdout
