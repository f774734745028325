"""Conv1d as a module: attributes, repr, initialisation, parameters, state dicts, devices."""

import math

import numpy as np
import pyopencl as cl
import pyopencl.array as cla
import pytest

import clconv
from conftest import assert_close
from reference import conv1d_ref

# (constructor args, kwargs, torch's repr) -- written from torch's extra_repr rules:
# "in, out, kernel_size=(k,), stride=(s,)" then only non-default padding, dilation,
# groups, bias=False, padding_mode.
REPR_CASES = [
    ((16, 33, 3), dict(stride=2), "Conv1d(16, 33, kernel_size=(3,), stride=(2,))"),
    ((4, 4, 3), dict(), "Conv1d(4, 4, kernel_size=(3,), stride=(1,))"),
    ((4, 8, 5), dict(padding=2, dilation=3, groups=4, bias=False, padding_mode="reflect"),
     "Conv1d(4, 8, kernel_size=(5,), stride=(1,), padding=(2,), dilation=(3,), groups=4, bias=False, "
     "padding_mode=reflect)"),
    ((4, 4, 3), dict(padding="same"), "Conv1d(4, 4, kernel_size=(3,), stride=(1,), padding=same)"),
    ((4, 4, 3), dict(padding="valid"), "Conv1d(4, 4, kernel_size=(3,), stride=(1,), padding=valid)"),
    ((4, 4, 3), dict(padding=(1,)), "Conv1d(4, 4, kernel_size=(3,), stride=(1,), padding=(1,))"),
    ((4, 4, (3,)), dict(stride=(1,), padding=0, dilation=(1,)), "Conv1d(4, 4, kernel_size=(3,), stride=(1,))"),
    ((4, 4, 3), dict(padding_mode="circular"), "Conv1d(4, 4, kernel_size=(3,), stride=(1,), padding_mode=circular)"),
    ((2, 4, 1), dict(dilation=2), "Conv1d(2, 4, kernel_size=(1,), stride=(1,), dilation=(2,))"),
    ((6, 9, 7), dict(stride=3, groups=3, padding_mode="replicate", padding=1),
     "Conv1d(6, 9, kernel_size=(7,), stride=(3,), padding=(1,), groups=3, padding_mode=replicate)"),
]

REPR_IDS = ["stride2", "default", "all-options", "same", "valid", "pad-tuple", "tuples", "circular",
            "k1-dilated", "groups-replicate"]


@pytest.mark.parametrize("args, kwargs, expected", REPR_CASES, ids=REPR_IDS)
def test_repr(args, kwargs, expected):
    m = clconv.Conv1d(*args, **kwargs)
    assert repr(m) == expected
    assert m.extra_repr() == expected[len("Conv1d("):-1]


@pytest.mark.parametrize("args, kwargs, expected", REPR_CASES, ids=REPR_IDS)
def test_repr_and_attributes_match_torch(args, kwargs, expected):
    torch = pytest.importorskip("torch")
    t = torch.nn.Conv1d(*args, **kwargs)
    m = clconv.Conv1d(*args, **kwargs)
    assert repr(t) == expected  # the hard-written strings are torch's
    assert repr(m) == repr(t)
    for attr in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                 "padding_mode"):
        assert getattr(m, attr) == getattr(t, attr), attr
        assert type(getattr(m, attr)) is type(getattr(t, attr)), attr
    assert m.weight.shape == tuple(t.weight.shape)
    assert (m.bias is None) == (t.bias is None)


def test_attributes():
    m = clconv.Conv1d(8, 12, 5, stride=2, padding=3, dilation=2, groups=4, bias=False, padding_mode="circular")
    assert (m.in_channels, m.out_channels) == (8, 12)
    assert m.kernel_size == (5,) and m.stride == (2,) and m.padding == (3,) and m.dilation == (2,)
    assert m.groups == 4 and m.padding_mode == "circular"
    assert isinstance(m.device, clconv.Device)
    assert m.dtype == np.dtype(np.float32)
    assert m.weight.shape == (12, 2, 5)
    assert m.bias is None
    s = clconv.Conv1d(4, 4, 3, padding="same")
    assert s.padding == "same"
    assert clconv.Conv1d(4, 4, 3, padding="valid").padding == "valid"
    # ints and 1-tuples are equivalent
    assert clconv.Conv1d(4, 4, (3,), stride=(2,), padding=(1,), dilation=(3,)).extra_repr() == \
        clconv.Conv1d(4, 4, 3, stride=2, padding=1, dilation=3).extra_repr()


# ---------------------------------------------------------------------------
# initialisation
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("cin, cout, k, groups", [(16, 33, 3, 1), (4, 8, 5, 4), (1, 64, 1, 1), (6, 6, 40, 2)])
def test_init_bounds(cin, cout, k, groups):
    m = clconv.Conv1d(cin, cout, k, groups=groups)
    bound = math.sqrt(groups / (cin * k))
    w, b = m.weight.numpy(), m.bias.numpy()
    assert w.shape == (cout, cin // groups, k) and b.shape == (cout,)
    assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound)
    assert np.unique(w).size > 1 and np.unique(b).size > 1
    if w.size >= 200:  # spread over the interval, not squeezed near zero
        assert np.max(np.abs(w)) > 0.8 * bound
        assert abs(np.mean(w)) < 0.2 * bound


def test_reset_parameters_changes_values():
    m = clconv.Conv1d(8, 12, 3)
    w0, b0 = m.weight.numpy().copy(), m.bias.numpy().copy()
    m.reset_parameters()
    assert not np.array_equal(w0, m.weight.numpy())
    assert not np.array_equal(b0, m.bias.numpy())
    bound = math.sqrt(1 / 24)
    assert np.all(np.abs(m.weight.numpy()) <= bound)


def test_two_modules_differ():
    a, b = clconv.Conv1d(8, 12, 3), clconv.Conv1d(8, 12, 3)
    assert not np.array_equal(a.weight.numpy(), b.weight.numpy())


# ---------------------------------------------------------------------------
# Parameter API
# ---------------------------------------------------------------------------

def test_parameter_api():
    m = clconv.Conv1d(4, 6, 3)
    for p, shape in ((m.weight, (6, 4, 3)), (m.bias, (6,))):
        assert isinstance(p, clconv.Parameter)
        assert isinstance(p.data, cla.Array)
        assert p.grad is None
        assert p.shape == shape and isinstance(p.shape, tuple)
        assert p.dtype == np.float32
        a = p.numpy()
        assert isinstance(a, np.ndarray) and a.shape == shape and a.dtype == np.float32
        np.testing.assert_array_equal(np.asarray(p), a)
        np.testing.assert_array_equal(p.data.get(), a)
        assert np.asarray(p, dtype=np.float64).dtype == np.float64
    assert clconv.Conv1d(4, 6, 3, bias=False).bias is None


def test_parameter_data_write_is_used(device, rng):
    m = clconv.Conv1d(4, 6, 3, device=device)
    w = rng.uniform(-1, 1, (6, 4, 3)).astype(np.float32)
    m.weight.data.set(w)
    x = rng.uniform(-1, 1, (2, 4, 20)).astype(np.float32)
    assert_close(m(x), conv1d_ref(x, w, m.bias.numpy()), np.float32)


# ---------------------------------------------------------------------------
# state dicts
# ---------------------------------------------------------------------------

def test_state_dict():
    m = clconv.Conv1d(4, 6, 3)
    sd = m.state_dict()
    assert list(sd) == ["weight", "bias"]
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    np.testing.assert_array_equal(sd["weight"], m.weight.numpy())
    np.testing.assert_array_equal(sd["bias"], m.bias.numpy())
    assert list(clconv.Conv1d(4, 6, 3, bias=False).state_dict()) == ["weight"]


def test_state_dict_round_trip(device, rng):
    a = clconv.Conv1d(4, 6, 3, padding=1, device=device)
    b = clconv.Conv1d(4, 6, 3, padding=1, device=device)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())
    np.testing.assert_array_equal(a.bias.numpy(), b.bias.numpy())
    x = rng.uniform(-1, 1, (2, 4, 20)).astype(np.float32)
    np.testing.assert_array_equal(a(x), b(x))


def test_load_state_dict_casts_dtype():
    m = clconv.Conv1d(4, 6, 3)
    w = np.linspace(-1, 1, 72).reshape(6, 4, 3)  # float64
    m.load_state_dict({"weight": w, "bias": np.arange(6)})  # float64, int64
    assert m.weight.dtype == np.float32 and m.bias.dtype == np.float32
    np.testing.assert_array_equal(m.weight.numpy(), w.astype(np.float32))
    np.testing.assert_array_equal(m.bias.numpy(), np.arange(6, dtype=np.float32))


def test_load_state_dict_does_not_alias():
    m = clconv.Conv1d(4, 6, 3)
    sd = {"weight": np.ones((6, 4, 3), np.float32), "bias": np.zeros(6, np.float32)}
    m.load_state_dict(sd)
    sd["weight"][...] = 5
    assert np.all(m.weight.numpy() == 1)


def test_load_state_dict_errors():
    m = clconv.Conv1d(4, 6, 3)
    sd = m.state_dict()
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "bias"'):
        m.load_state_dict({"weight": sd["weight"]})
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "extra"'):
        m.load_state_dict({**sd, "extra": sd["bias"]})
    with pytest.raises(RuntimeError, match=r"size mismatch for weight: copying a param with shape \[6, 4, 2\]"):
        m.load_state_dict({"weight": np.zeros((6, 4, 2), np.float32), "bias": sd["bias"]})
    with pytest.raises(RuntimeError, match=r"Error\(s\) in loading state_dict for Conv1d"):
        m.load_state_dict({"weight": sd["weight"]})
    # a failed load leaves the module untouched
    np.testing.assert_array_equal(m.weight.numpy(), sd["weight"])
    with pytest.raises(RuntimeError, match=r"size mismatch for bias"):
        m.load_state_dict({"weight": np.ones((6, 4, 3), np.float32), "bias": np.zeros(7, np.float32)}, strict=False)
    np.testing.assert_array_equal(m.weight.numpy(), sd["weight"])


def test_load_state_dict_non_strict():
    m = clconv.Conv1d(4, 6, 3)
    b0 = m.bias.numpy().copy()
    w = np.ones((6, 4, 3), np.float32)
    m.load_state_dict({"weight": w, "extra": np.zeros(1)}, strict=False)
    np.testing.assert_array_equal(m.weight.numpy(), w)
    np.testing.assert_array_equal(m.bias.numpy(), b0)
    nb = clconv.Conv1d(4, 6, 3, bias=False)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "bias"'):
        nb.load_state_dict(m.state_dict())


def test_state_dict_with_torch(device, rng):
    torch = pytest.importorskip("torch")
    t = torch.nn.Conv1d(8, 12, 5, stride=2, padding=2, dilation=2, groups=4, padding_mode="reflect")
    m = clconv.Conv1d(8, 12, 5, stride=2, padding=2, dilation=2, groups=4, padding_mode="reflect", device=device)
    m.load_state_dict(t.state_dict())  # torch CPU tensors
    x = rng.uniform(-1, 1, (3, 8, 40)).astype(np.float32)
    with torch.no_grad():
        expected = t(torch.from_numpy(x)).numpy()
    assert_close(m(x), expected.astype(np.float64), np.float32)
    # and the other way round
    m.reset_parameters()
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    with torch.no_grad():
        expected = t(torch.from_numpy(x)).numpy()
    assert_close(m(x), expected.astype(np.float64), np.float32)


def test_load_state_dict_torch_float64_tensors():
    torch = pytest.importorskip("torch")
    t = torch.nn.Conv1d(4, 6, 3, dtype=torch.float64)
    m = clconv.Conv1d(4, 6, 3)
    m.load_state_dict(t.state_dict())
    assert m.weight.dtype == np.float32
    np.testing.assert_array_equal(m.weight.numpy(), t.weight.detach().numpy().astype(np.float32))


# ---------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------

def test_float64_module(fp64_device, rng):
    m = clconv.Conv1d(4, 6, 3, padding=1, device=fp64_device, dtype=np.float64)
    assert m.dtype == np.float64
    assert m.weight.dtype == np.float64 and m.bias.dtype == np.float64
    assert m.state_dict()["weight"].dtype == np.float64
    x = rng.uniform(-1, 1, (2, 4, 25))
    y = m(x)
    assert y.dtype == np.float64
    assert_close(y, conv1d_ref(x, m.weight.numpy(), m.bias.numpy(), 1, 1), np.float64)


def test_float16_module(device, rng):
    m = clconv.Conv1d(4, 6, 3, device=device, dtype=np.float16)
    assert m.weight.dtype == np.float16
    x = rng.uniform(-1, 1, (2, 4, 25)).astype(np.float16)
    y = m(x)
    assert y.dtype == np.float16
    assert_close(y, conv1d_ref(x, m.weight.numpy(), m.bias.numpy()), np.float16)


@pytest.mark.parametrize("spec", ["float32", np.float32, np.dtype("float32")])
def test_dtype_spellings(spec):
    assert clconv.Conv1d(2, 2, 1, dtype=spec).dtype == np.dtype(np.float32)


# ---------------------------------------------------------------------------
# devices
# ---------------------------------------------------------------------------

def test_devices_list():
    devs = clconv.devices()
    assert len(devs) >= 1
    for d in devs:
        assert isinstance(d, clconv.Device)
        assert isinstance(d.name, str) and d.name
        assert isinstance(d.platform_name, str) and d.platform_name
        assert d.type in ("CPU", "GPU", "ACCELERATOR", "OTHER")
        assert isinstance(d.has_fp64, bool)


def _same(a, b):
    return (a.name, a.platform_name) == (b.name, b.platform_name)


def test_get_device_specs(monkeypatch):
    monkeypatch.delenv("CLCONV_DEVICE", raising=False)
    devs = clconv.devices()
    first = devs[0]
    assert _same(clconv.get_device(0), first)
    assert _same(clconv.get_device("0:0"), first)
    assert isinstance(clconv.get_device(None), clconv.Device)
    assert isinstance(clconv.get_device(), clconv.Device)
    # name substring, case-insensitive: the first device whose name matches
    sub = first.name[:6]
    assert _same(clconv.get_device(sub.upper()), first)
    assert _same(clconv.get_device(sub.lower()), first)
    # a pyopencl.Device
    cl_dev = cl.get_platforms()[0].get_devices()[0]
    assert _same(clconv.get_device(cl_dev), first)
    # a Device passes through
    assert _same(clconv.get_device(first), first)


def test_get_device_pocl(monkeypatch):
    platforms = [p for p in cl.get_platforms() if "portable computing language" in p.name.lower()
                 or "pocl" in p.vendor.lower()]
    if not platforms:
        pytest.skip("no PoCL platform")
    d = clconv.get_device("pocl")
    assert "portable computing language" in d.platform_name.lower() or "pocl" in d.platform_name.lower()
    assert _same(clconv.get_device("POCL"), d)


def test_get_device_from_env(monkeypatch):
    devs = clconv.devices()
    last = len(devs) - 1
    p_index = [i for i, p in enumerate(cl.get_platforms()) if p.get_devices()][-1]
    monkeypatch.setenv("CLCONV_DEVICE", f"{p_index}:{len(cl.get_platforms()[p_index].get_devices()) - 1}")
    assert _same(clconv.get_device(None), devs[last])
    assert _same(clconv.Conv1d(2, 2, 1).device, devs[last])
    monkeypatch.setenv("CLCONV_DEVICE", str(last))
    assert _same(clconv.get_device(), devs[last])


def test_module_on_device(device, rng):
    m = clconv.Conv1d(4, 6, 3, device=device)
    assert _same(m.device, device)
    assert m.weight.data.queue.device == m.bias.data.queue.device
    assert m.weight.data.queue.device.name.strip() == device.name.strip()
    index = [i for i, d in enumerate(clconv.devices()) if d is device or _same(d, device)][0]
    by_index = clconv.Conv1d(4, 6, 3, device=index)
    assert _same(by_index.device, device)


# ---------------------------------------------------------------------------
# README example
# ---------------------------------------------------------------------------

def test_readme_example(device, rng):
    m = clconv.Conv1d(16, 33, 3, stride=2, device=device)
    x = rng.standard_normal((20, 16, 50)).astype(np.float32)
    y = m(x)
    assert y.shape == (20, 33, 24)
    assert y.dtype == np.float32
    assert_close(y, conv1d_ref(x, m.weight.numpy(), m.bias.numpy(), 2), np.float32)
