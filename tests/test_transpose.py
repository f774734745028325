"""clconv.conv_transpose1d / clconv.ConvTranspose1d: forward, backward, errors and repr.

Forward against the float64 reference; backward against the adjoint relation computed with the
reference (a transposed convolution's input gradient is a convolution of grad_output, its weight
gradient is a conv1d weight gradient with the roles of input and grad_output swapped), against central
finite differences in float64, and against torch autograd where torch is installed.
"""

from dataclasses import dataclass, replace

import numpy as np
import pyopencl.array as cla
import pytest

import clconv
from conftest import DTYPE_IDS, STRATEGIES, assert_close
from reference import conv1d_ref, conv1d_weight_grad_ref, conv_transpose1d_ref


@dataclass(frozen=True)
class TCase:
    n: int = 2
    cin: int = 4
    cout: int = 6
    k: int = 3
    length: int = 17
    stride: int = 1
    padding: int = 0
    output_padding: int = 0
    dilation: int = 1
    groups: int = 1
    bias: bool = True
    unbatched: bool = False
    dtype: str = "float32"

    @property
    def id(self):
        parts = [f"c{self.cin}o{self.cout}", f"g{self.groups}", f"k{self.k}", f"L{self.length}", f"s{self.stride}",
                 f"p{self.padding}", f"op{self.output_padding}", f"d{self.dilation}"]
        if self.n != 2:
            parts.insert(0, f"n{self.n}")
        if not self.bias:
            parts.append("nobias")
        if self.unbatched:
            parts.append("unbatched")
        parts.append(DTYPE_IDS[np.dtype(self.dtype)])
        return "-".join(parts)

    @property
    def length_out(self):
        return ((self.length - 1) * self.stride - 2 * self.padding + self.dilation * (self.k - 1)
                + self.output_padding + 1)


T = TCase()


def t(**kw):
    return replace(T, **kw)


CASES = [
    T,
    t(stride=2), t(stride=2, padding=1, output_padding=1), t(stride=3, padding=2, output_padding=2),
    t(dilation=2, k=5), t(dilation=3, output_padding=2),            # output_padding < dilation, >= stride
    t(stride=2, dilation=2, k=5, padding=3, output_padding=1),
    t(groups=2), t(cin=4, cout=8, groups=4, stride=2), t(groups=2, stride=3, padding=1, output_padding=1, dilation=2),
    t(bias=False), t(bias=False, stride=2, output_padding=1),
    t(unbatched=True), t(unbatched=True, groups=2, stride=2),
    t(k=1), t(k=1, stride=3, output_padding=2), t(k=9, stride=4, padding=4, length=30),
    t(cin=1, cout=1), t(length=1), t(length=1, stride=3, k=2), t(n=1, length=60), t(cin=7, cout=13, length=50),
    t(dtype="float64"), t(stride=2, padding=1, output_padding=1, groups=2, dtype="float64"),
    t(dtype="float16"), t(stride=2, padding=1, output_padding=1, dtype="float16"),
]
assert len({x.id for x in CASES}) == len(CASES)


def make_module(case, device):
    return clconv.ConvTranspose1d(case.cin, case.cout, case.k, stride=case.stride, padding=case.padding,
                                  output_padding=case.output_padding, groups=case.groups, bias=case.bias,
                                  dilation=case.dilation, device=device, dtype=np.dtype(case.dtype))


def make_input(rng, case):
    shape = (case.cin, case.length) if case.unbatched else (case.n, case.cin, case.length)
    return rng.uniform(-1.0, 1.0, size=shape).astype(case.dtype)


def skip_without_fp64(case, device):
    if np.dtype(case.dtype) == np.float64 and not device.has_fp64:
        pytest.skip("device has no fp64")


def forward_ref(m, x, case):
    w = np.asarray(m.weight).astype(np.float64)
    b = None if m.bias is None else np.asarray(m.bias).astype(np.float64)
    return conv_transpose1d_ref(x.astype(np.float64), w, b, case.stride, case.padding, case.output_padding,
                                case.groups, case.dilation)


def backward_ref(w, x, dy, case):
    """Float64 (dx, dw, db) of sum(conv_transpose1d(x, w) * dy), from the adjoint relation.

    conv_transpose1d is the transpose of conv1d(., w): <dy, T(x)> = <conv1d(dy, w), x>.  So dx is
    conv1d(dy, w) (cut to the input length: output_padding >= stride adds positions no input reaches), and
    dw is conv1d's weight gradient with dy as the convolution's input and x as its output gradient.
    """
    w = np.asarray(w, dtype=np.float64)
    x64 = np.asarray(x, dtype=np.float64)
    dy64 = np.asarray(dy, dtype=np.float64)
    dx = conv1d_ref(dy64, w, None, case.stride, case.padding, case.dilation, case.groups)[..., :case.length]
    dw = conv1d_weight_grad_ref(dy64, w.shape, x64, case.stride, case.padding, case.dilation, case.groups)
    db = (dy64 if dy64.ndim == 3 else dy64[None]).sum(axis=(0, 2))
    return dx, dw, db


# ---------------------------------------------------------------------------
# forward
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[x.id for x in CASES])
def test_forward(case, device, strategy, rng):
    skip_without_fp64(case, device)
    dtype = np.dtype(case.dtype)
    m = make_module(case, device)
    assert m.weight.shape == (case.cin, case.cout // case.groups, case.k)
    x = make_input(rng, case)
    x_before = x.copy()
    with clconv.params.override(strategy=strategy):
        y = m(x)
    expected_shape = (case.cout, case.length_out) if case.unbatched else (case.n, case.cout, case.length_out)
    assert isinstance(y, np.ndarray) and y.dtype == dtype and y.shape == expected_shape
    np.testing.assert_array_equal(x, x_before, err_msg="input was modified")
    assert_close(y, forward_ref(m, x, case), dtype, "output")


FUNCTIONAL = [T, t(stride=2, padding=1, output_padding=1, dilation=2, groups=2), t(bias=False, stride=3),
              t(unbatched=True, stride=2)]


@pytest.mark.parametrize("case", FUNCTIONAL, ids=[x.id for x in FUNCTIONAL])
def test_functional(case, device, strategy, rng):
    x = make_input(rng, case)
    w = rng.uniform(-1, 1, size=(case.cin, case.cout // case.groups, case.k)).astype(np.float32)
    b = rng.uniform(-1, 1, size=case.cout).astype(np.float32) if case.bias else None
    ref = conv_transpose1d_ref(x, w, b, case.stride, case.padding, case.output_padding, case.groups, case.dilation)
    with clconv.params.override(strategy=strategy):
        y = clconv.conv_transpose1d(x, w, b, stride=case.stride, padding=case.padding,
                                    output_padding=case.output_padding, groups=case.groups, dilation=case.dilation)
        # keyword names and order as in torch.nn.functional.conv_transpose1d
        y_kw = clconv.conv_transpose1d(input=x, weight=w, bias=b, stride=(case.stride,), padding=(case.padding,),
                                       output_padding=(case.output_padding,), groups=case.groups,
                                       dilation=(case.dilation,))
        queue = clconv.Conv1d(1, 1, 1, device=device).weight.data.queue
        args = [None if a is None else cla.to_device(queue, a) for a in (x, w, b)]
        y_dev = clconv.conv_transpose1d(*args, case.stride, case.padding, case.output_padding, case.groups,
                                        case.dilation)
    assert isinstance(y, np.ndarray) and isinstance(y_dev, cla.Array)
    assert_close(y, ref, np.float32, "functional")
    np.testing.assert_array_equal(y, y_kw)
    np.testing.assert_array_equal(y, y_dev.get())


@pytest.mark.parametrize("case", [T, t(stride=3, padding=2, output_padding=2, groups=2, bias=False)],
                         ids=lambda x: x.id)
def test_forward_against_torch(case, device, rng):
    torch = pytest.importorskip("torch")
    m = make_module(case, device)
    x = make_input(rng, case)
    tm = torch.nn.ConvTranspose1d(case.cin, case.cout, case.k, stride=case.stride, padding=case.padding,
                                  output_padding=case.output_padding, groups=case.groups, bias=case.bias,
                                  dilation=case.dilation)
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    with torch.no_grad():
        expected = tm(torch.from_numpy(x)).numpy().astype(np.float64)
    assert_close(m(x), expected, np.float32, "vs torch")


# ---------------------------------------------------------------------------
# backward
# ---------------------------------------------------------------------------

# Each case once, the strategies taking turns (the forward test above runs both on every case).
BACKWARD = [(case, STRATEGIES[i % 2]) for i, case in enumerate(CASES)]


@pytest.mark.parametrize("case, strat", BACKWARD, ids=[f"{s}-{x.id}" for x, s in BACKWARD])
def test_backward(case, strat, device, rng):
    strategy = strat
    skip_without_fp64(case, device)
    dtype = np.dtype(case.dtype)
    m = make_module(case, device)
    x = make_input(rng, case)
    with clconv.params.override(strategy=strategy):
        y = m(x)
        dy = rng.uniform(-1, 1, size=y.shape).astype(dtype)
        dy_before = dy.copy()
        dx = m.backward(dy)
    assert isinstance(dx, np.ndarray) and dx.shape == x.shape and dx.dtype == dtype
    np.testing.assert_array_equal(dy, dy_before, err_msg="grad_output was modified")
    ref_dx, ref_dw, ref_db = backward_ref(m.weight.numpy(), x, dy, case)
    assert_close(dx, ref_dx, dtype, "input grad")
    assert isinstance(m.weight.grad, cla.Array) and m.weight.grad.shape == m.weight.shape
    assert_close(m.weight.grad.get(), ref_dw, dtype, "weight grad")
    if case.bias:
        assert_close(m.bias.grad.get(), ref_db, dtype, "bias grad")


TORCH_BACKWARD = [T, t(stride=2, padding=1, output_padding=1), t(groups=2, stride=3, padding=1, output_padding=1,
                                                                 dilation=2),
                  t(dilation=3, output_padding=2), t(unbatched=True, groups=2, stride=2), t(bias=False),
                  t(dtype="float64")]


@pytest.mark.parametrize("case", TORCH_BACKWARD, ids=[x.id for x in TORCH_BACKWARD])
def test_backward_against_torch(case, device, rng):
    torch = pytest.importorskip("torch")
    skip_without_fp64(case, device)
    dtype = np.dtype(case.dtype)
    m = make_module(case, device)
    x = make_input(rng, case)
    y = m(x)
    dy = rng.uniform(-1, 1, size=y.shape).astype(dtype)
    dx = m.backward(dy)

    tm = torch.nn.ConvTranspose1d(case.cin, case.cout, case.k, stride=case.stride, padding=case.padding,
                                  output_padding=case.output_padding, groups=case.groups, bias=case.bias,
                                  dilation=case.dilation, dtype=getattr(torch, dtype.name))
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = tm(tx)
    ty.backward(torch.from_numpy(dy))
    assert_close(y, ty.detach().numpy().astype(np.float64), dtype, "output vs torch")
    assert_close(dx, tx.grad.numpy().astype(np.float64), dtype, "input grad vs torch")
    assert_close(m.weight.grad.get(), tm.weight.grad.numpy().astype(np.float64), dtype, "weight grad vs torch")
    if case.bias:
        assert_close(m.bias.grad.get(), tm.bias.grad.numpy().astype(np.float64), dtype, "bias grad vs torch")


FD_CASES = [t(stride=2, padding=1, output_padding=1, dtype="float64", length=6, n=2),
            t(groups=2, stride=3, padding=1, output_padding=1, dilation=2, dtype="float64", length=5)]


@pytest.mark.parametrize("case", FD_CASES, ids=[x.id for x in FD_CASES])
def test_backward_finite_differences(case, fp64_device, rng):
    m = make_module(case, fp64_device)
    x = make_input(rng, case)
    w0, b0 = m.weight.numpy().copy(), m.bias.numpy().copy()
    y = m(x)
    g = rng.uniform(-1, 1, size=y.shape)

    def loss(x_, w_, b_):          # L = sum(g * tanh(y)): non-linear in the output
        m.weight.data.set(w_)
        m.bias.data.set(b_)
        return float(np.sum(g * np.tanh(m(x_))))

    loss(x, w0, b0)
    dx = m.backward(g * (1 - np.tanh(y) ** 2))
    grads = {"x": dx, "w": m.weight.grad.get(), "b": m.bias.grad.get()}
    eps = 1e-6
    for name, base in (("x", x), ("w", w0), ("b", b0)):
        for _ in range(3):
            v = rng.standard_normal(base.shape)
            args_p = {"x": x, "w": w0, "b": b0, name: base + eps * v}
            args_m = {"x": x, "w": w0, "b": b0, name: base - eps * v}
            numeric = (loss(args_p["x"], args_p["w"], args_p["b"]) - loss(args_m["x"], args_m["w"], args_m["b"])) / (2 * eps)
            analytic = float(np.sum(grads[name] * v))
            assert abs(numeric - analytic) <= 1e-7 * (1 + abs(numeric)), f"d{name}: {numeric!r} vs {analytic!r}"


def test_backward_semantics(device, rng):
    case = t(stride=2, padding=1, output_padding=1)
    m = make_module(case, device)
    with pytest.raises(RuntimeError):
        m.backward(np.zeros((2, 6, case.length_out), np.float32))
    x = make_input(rng, case)
    y = m(x)
    for bad in (np.zeros(y.shape[:-1] + (y.shape[-1] - 1,), np.float32), np.zeros(y.shape, np.float64),
                np.zeros(x.shape, np.float32)):
        with pytest.raises(RuntimeError):
            m.backward(bad)
    dy = rng.uniform(-1, 1, size=y.shape).astype(np.float32)
    assert m.backward(dy, input_grad=False) is None
    m.backward(dy)
    _, ref_dw, ref_db = backward_ref(m.weight.numpy(), x, dy, case)
    assert_close(m.weight.grad.get(), 2 * ref_dw, np.float32, "accumulated weight grad")
    assert_close(m.bias.grad.get(), 2 * ref_db, np.float32, "accumulated bias grad")
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None
    m.bias.requires_grad = False
    queue = m.weight.data.queue
    y_dev = m(cla.to_device(queue, x))
    dx = m.backward(cla.to_device(queue, dy))
    assert isinstance(y_dev, cla.Array) and isinstance(dx, cla.Array)
    assert m.bias.grad is None
    ref_dx, ref_dw, _ = backward_ref(m.weight.numpy(), x, dy, case)
    assert_close(dx.get(), ref_dx, np.float32, "device input grad")
    assert_close(m.weight.grad.get(), ref_dw, np.float32, "weight grad")


# ---------------------------------------------------------------------------
# errors and repr
# ---------------------------------------------------------------------------

OP_ERRORS = [(2, 2, 1), (3, 1, 3), (2, 2, 2), (1, 1, 1)]  # (output_padding, stride, dilation)


@pytest.mark.parametrize("op, stride, dilation", OP_ERRORS, ids=[f"op{o}-s{s}-d{d}" for o, s, d in OP_ERRORS])
def test_output_padding_too_large(op, stride, dilation, rng):
    x = rng.uniform(-1, 1, size=(2, 4, 9)).astype(np.float32)
    w = rng.uniform(-1, 1, size=(4, 6, 3)).astype(np.float32)
    msg = "output padding must be smaller than either stride or dilation"
    with pytest.raises(RuntimeError, match=msg):
        clconv.conv_transpose1d(x, w, stride=stride, output_padding=op, dilation=dilation)
    m = clconv.ConvTranspose1d(4, 6, 3, stride=stride, output_padding=op, dilation=dilation)  # as torch: no error yet
    with pytest.raises(RuntimeError, match=msg):
        m(x)


def test_output_padding_too_large_torch_agrees():
    torch = pytest.importorskip("torch")
    for op, stride, dilation in OP_ERRORS:
        with pytest.raises(RuntimeError, match="output padding must be smaller than either stride or dilation"):
            torch.nn.functional.conv_transpose1d(torch.zeros(2, 4, 9), torch.zeros(4, 6, 3), stride=stride,
                                                 output_padding=op, dilation=dilation)


def test_other_errors(rng):
    with pytest.raises(ValueError):
        clconv.ConvTranspose1d(4, 6, 3, padding_mode="reflect")
    with pytest.raises(ValueError):
        clconv.ConvTranspose1d(4, 6, 3, groups=3)
    m = clconv.ConvTranspose1d(4, 6, 3)
    with pytest.raises(RuntimeError):
        m(rng.uniform(-1, 1, size=(2, 5, 9)).astype(np.float32))       # wrong channels
    with pytest.raises(RuntimeError):
        m(rng.uniform(-1, 1, size=(2, 4, 9)).astype(np.float64))       # wrong dtype
    with pytest.raises(RuntimeError):
        m(rng.uniform(-1, 1, size=(4,)).astype(np.float32))            # wrong rank
    for length, padding in ((1, 2), (2, 2)):  # output lengths -1 and 0
        with pytest.raises(RuntimeError, match=r"Given input size per channel: \(1 x %d\)\. Calculated output size per "
                           r"channel: \(1 x %d\)\. Output size is too small" % (length, length + 2 - 2 * padding)):
            clconv.conv_transpose1d(np.zeros((1, 4, length), np.float32), np.zeros((4, 6, 3), np.float32), padding=padding)


# A zero batch gives an empty output whatever the lengths, an output length of 0 included.
ZERO_BATCH = [(0, {}), (0, dict(padding=1)), (0, dict(stride=2, output_padding=1)), (3, dict(padding=2))]


@pytest.mark.parametrize("length, kwargs", ZERO_BATCH, ids=["L0", "L0-out0", "L0-s2-op1", "L3-out1"])
def test_zero_batch(length, kwargs, device):
    m = clconv.ConvTranspose1d(4, 6, 3, device=device, **kwargs)
    y = m(np.zeros((0, 4, length), np.float32))
    out = (length - 1) * kwargs.get("stride", 1) - 2 * kwargs.get("padding", 0) + 2 + kwargs.get("output_padding", 0) + 1
    assert y.shape == (0, 6, out)
    dx = m.backward(np.zeros((0, 6, out), np.float32))
    assert dx.shape == (0, 4, length)
    assert not np.any(m.weight.grad.get()) and not np.any(m.bias.grad.get())


def test_zero_batch_torch_agrees():
    torch = pytest.importorskip("torch")
    for length, kwargs in ZERO_BATCH:
        y = torch.nn.functional.conv_transpose1d(torch.zeros(0, 4, length), torch.zeros(4, 6, 3), **kwargs)
        ours = clconv.conv_transpose1d(np.zeros((0, 4, length), np.float32), np.zeros((4, 6, 3), np.float32), **kwargs)
        assert tuple(y.shape) == ours.shape
    for length, padding in ((1, 2), (2, 2)):
        with pytest.raises(RuntimeError, match=r"Given input size per channel: \(1 x %d\)" % length):
            torch.nn.functional.conv_transpose1d(torch.zeros(1, 4, length), torch.zeros(4, 6, 3), padding=padding)


REPR_CASES = [
    ((4, 6, 3), dict(stride=2, padding=1, output_padding=1),
     "ConvTranspose1d(4, 6, kernel_size=(3,), stride=(2,), padding=(1,), output_padding=(1,))"),
    ((4, 6, 3), dict(), "ConvTranspose1d(4, 6, kernel_size=(3,), stride=(1,))"),
    ((4, 8, 5), dict(stride=3, padding=2, output_padding=1, groups=2, bias=False, dilation=2),
     "ConvTranspose1d(4, 8, kernel_size=(5,), stride=(3,), padding=(2,), dilation=(2,), output_padding=(1,), "
     "groups=2, bias=False)"),
    ((2, 2, (1,)), dict(stride=(1,), padding=(0,), output_padding=(0,)),
     "ConvTranspose1d(2, 2, kernel_size=(1,), stride=(1,))"),
]


@pytest.mark.parametrize("args, kwargs, expected", REPR_CASES, ids=["op", "default", "all", "tuples"])
def test_repr(args, kwargs, expected):
    m = clconv.ConvTranspose1d(*args, **kwargs)
    assert repr(m) == expected
    assert m.output_padding == (kwargs.get("output_padding", 0),) or m.output_padding == kwargs["output_padding"]


@pytest.mark.parametrize("args, kwargs, expected", REPR_CASES, ids=["op", "default", "all", "tuples"])
def test_repr_matches_torch(args, kwargs, expected):
    torch = pytest.importorskip("torch")
    tm = torch.nn.ConvTranspose1d(*args, **kwargs)
    m = clconv.ConvTranspose1d(*args, **kwargs)
    assert repr(tm) == expected
    assert repr(m) == repr(tm)
    for attr in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding", "dilation",
                 "groups"):
        assert getattr(m, attr) == getattr(tm, attr), attr
    assert m.weight.shape == tuple(tm.weight.shape)
