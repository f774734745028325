"""Property-based tests: random valid convolutions against the float64 reference, and random invalid
arguments that must fail with ValueError / TypeError / RuntimeError only.

Hypothesis profiles (environment variable HYPOTHESIS_PROFILE):
  ci    (default) few examples per test, no deadline, derandomized: the same examples on every run.
  long  500 examples per test, random, every structural parameter drawn independently.

The profiles are applied per test (settings(parent=...)), so loading this file does not change the
settings of property tests elsewhere in the suite.

Compile budget.  Every distinct kernel specialisation (channels per group, groups, kernel size, stride,
dilation, padding mode, dtype, strategy, and the work-group shape the length class implies) costs about
half a second to build on PoCL, the backward pass a few more.  Batch, lengths, padding amounts, data
and input layouts are runtime arguments and cost nothing.  So in the ci profile the valid-configuration
tests are parametrized over STRUCTURES, a fixed covering list (every groups kind, stride, dilation,
padding mode, dtype, strategy and length class appears), with a few examples each drawing everything
else; the long profile draws the structural part with hypothesis as well.
"""

import os
from dataclasses import dataclass

import numpy as np
import pyopencl as cl
import pyopencl.array as cla
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clconv
from conftest import assert_close
from reference import (PADDING_MODES, conv1d_bias_grad_ref, conv1d_input_grad_ref, conv1d_ref,
                       conv1d_weight_grad_ref, resolve_padding)

# ---------------------------------------------------------------------------
# profiles
# ---------------------------------------------------------------------------

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True, database=None,
                          print_blob=True, suppress_health_check=_HEALTH)
settings.register_profile("long", max_examples=500, deadline=None, print_blob=True,
                          suppress_health_check=_HEALTH)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in ("ci", "long"):
    PROFILE = "ci"
LONG = PROFILE == "long"


def profile(ci_examples):
    """This file's profile; in ci with `ci_examples` examples (per structure where parametrized)."""
    parent = settings.get_profile(PROFILE)
    return settings(parent=parent, max_examples=parent.max_examples if LONG else ci_examples)


# ---------------------------------------------------------------------------
# structures
# ---------------------------------------------------------------------------

# (in_channels, out_channels, groups, kernel_size)
ARCHS = {
    "dense": (4, 6, 1, 3),
    "grouped": (4, 6, 2, 3),
    "depthwise": (4, 4, 4, 3),
    "depthwise-x2": (3, 6, 3, 5),   # depthwise with multiplier 2, odd K
    "evenK": (3, 5, 1, 2),
    "K1": (2, 4, 1, 1),
}
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
STRATS = ("register", "local")


@dataclass(frozen=True)
class Structure:
    arch: str
    stride: int
    dilation: int
    mode: str
    dtype: np.dtype
    strategy: str
    length_class: str   # "short": L_out of a few positions; "long": >= 64 (stable tiles); "any" (long profile)

    @property
    def shape(self):
        return ARCHS[self.arch]


def S(arch, stride, dilation, mode, dtype, strategy, length_class):
    return Structure(arch, stride, dilation, mode, np.dtype(dtype), strategy, length_class)


STRUCTURES = [
    S("dense", 1, 1, "zeros", np.float32, "register", "long"),
    S("grouped", 2, 1, "reflect", np.float32, "register", "long"),
    S("depthwise", 1, 2, "circular", np.float32, "register", "long"),
    S("depthwise-x2", 1, 1, "replicate", np.float64, "register", "long"),
    S("evenK", 3, 2, "zeros", np.float64, "register", "short"),
    S("dense", 1, 1, "zeros", np.float32, "local", "long"),
    S("grouped", 2, 2, "reflect", np.float32, "local", "short"),
    S("K1", 2, 1, "zeros", np.float32, "register", "long"),          # stride > kernel
    S("depthwise", 1, 1, "circular", np.float32, "local", "long"),
    S("evenK", 1, 3, "replicate", np.float32, "register", "short"),
]
# the covering list really covers
assert {s.arch for s in STRUCTURES} == set(ARCHS)
assert {s.mode for s in STRUCTURES} == set(PADDING_MODES)
assert {s.stride for s in STRUCTURES} == {1, 2, 3} and {s.dilation for s in STRUCTURES} == {1, 2, 3}
assert {s.strategy for s in STRUCTURES} == set(STRATS) and set(s.dtype for s in STRUCTURES) == set(DTYPES)



def structure_params(modes=PADDING_MODES):
    """What the valid-configuration tests are parametrized with: each structure of the covering list
    (ci), or None: hypothesis draws the structure (long)."""
    if LONG:
        return [pytest.param(None, id="drawn")]
    return [pytest.param(s, id=f"{s.arch}-s{s.stride}d{s.dilation}-{s.mode}-{s.dtype.name}-{s.strategy}-{s.length_class}")
            for s in STRUCTURES if s.mode in modes]


def structures(modes=PADDING_MODES):
    return st.builds(Structure, arch=st.sampled_from(sorted(ARCHS)), stride=st.integers(1, 3),
                     dilation=st.integers(1, 3), mode=st.sampled_from(modes),
                     dtype=st.sampled_from(DTYPES), strategy=st.sampled_from(STRATS),
                     length_class=st.just("any"))


@dataclass(frozen=True)
class Config:
    s: Structure
    padding: object        # int, "same" or "valid"
    length: int
    batch: int             # ignored when unbatched
    unbatched: bool
    bias: bool
    seed: int

    @property
    def pads(self):
        _, _, _, k = self.s.shape
        return resolve_padding(self.padding, k, self.s.dilation)

    @property
    def x_shape(self):
        cin = self.s.shape[0]
        return (cin, self.length) if self.unbatched else (self.batch, cin, self.length)


@st.composite
def configs(draw, structure=None, modes=PADDING_MODES):
    s = structure if structure is not None else draw(structures(modes))
    _, _, _, k = s.shape
    span = s.dilation * (k - 1) + 1
    kind = draw(st.sampled_from(["int", "int", "same", "valid"]))
    if kind == "same" and s.stride != 1:
        kind = "int"
    padding = draw(st.integers(0, 4)) if kind == "int" else kind
    left, right = resolve_padding(padding, k, s.dilation)
    if s.length_class == "long":
        l_out = draw(st.integers(64, 140))
    elif s.length_class == "short":
        l_out = draw(st.integers(1, 4))
    else:
        l_out = draw(st.integers(1, 160))
    rest = draw(st.integers(0, s.stride - 1))
    length = (l_out - 1) * s.stride + span - left - right + rest
    # the padding modes' own limits, and a kernel that fits the padded input
    floor = 1
    if s.mode == "reflect":
        floor = max(left, right) + 1
    elif s.mode == "circular":
        floor = max(left, right, 1)
    length = max(length, floor, span - left - right)
    batch = draw(st.sampled_from([2, 1, 3, 0]))
    return Config(s, padding, length, batch, draw(st.booleans()), draw(st.booleans()),
                  draw(st.integers(0, 2 ** 32 - 1)))


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def skip_without_fp64(device, dtype):
    if np.dtype(dtype) == np.float64 and not device.has_fp64:
        pytest.skip("device has no fp64")


def build_module(cfg, device, rng):
    cin, cout, groups, k = cfg.s.shape
    m = clconv.Conv1d(cin, cout, k, stride=cfg.s.stride, padding=cfg.padding, dilation=cfg.s.dilation,
                      groups=groups, bias=cfg.bias, padding_mode=cfg.s.mode, device=device, dtype=cfg.s.dtype)
    state = {"weight": rng.uniform(-1, 1, m.weight.shape).astype(cfg.s.dtype)}
    if cfg.bias:
        state["bias"] = rng.uniform(-1, 1, (cout,)).astype(cfg.s.dtype)
    m.load_state_dict(state)
    return m, state


def layout(x, how):
    """The same values as x in another memory layout (still a numpy array)."""
    if how == "fortran":
        return np.asfortranarray(x)
    if how == "reversed":       # negative strides along the length
        return np.ascontiguousarray(x[..., ::-1])[..., ::-1]
    if how == "strided":        # every other element of a buffer twice as long
        wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
        wide[..., ::2] = x
        return wide[..., ::2]
    return x


def to_kind(a, kind, device):
    return cla.to_device(device.queue, np.ascontiguousarray(a)) if kind == "device" else a


def host(a):
    return a.get() if isinstance(a, cla.Array) else np.asarray(a)


def ref_args(cfg):
    return cfg.s.stride, cfg.padding, cfg.s.dilation, cfg.s.shape[2], cfg.s.mode


# ---------------------------------------------------------------------------
# valid configurations
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("structure", structure_params())
@profile(4)
@given(data=st.data(), how=st.sampled_from(["C", "fortran", "device", "reversed", "strided"]))
def test_forward_property(device, structure, data, how):
    cfg = data.draw(configs(structure), label="config")
    skip_without_fp64(device, cfg.s.dtype)
    rng = np.random.default_rng(cfg.seed)
    m, state = build_module(cfg, device, rng)
    x = rng.uniform(-1, 1, cfg.x_shape).astype(cfg.s.dtype)
    x_in = to_kind(x, "device", device) if how == "device" else layout(x, how)
    snapshot = np.array(x_in.get() if how == "device" else x_in, copy=True)
    with clconv.params.override(strategy=cfg.s.strategy):
        y = m(x_in)
    assert isinstance(y, cla.Array if how == "device" else np.ndarray)
    assert y.dtype == cfg.s.dtype
    s, p, d, g, mode = ref_args(cfg)
    ref = conv1d_ref(x.astype(np.float64), state["weight"], state.get("bias"), s, p, d, g, mode)
    assert_close(host(y), ref, cfg.s.dtype, f"forward {cfg}")
    np.testing.assert_array_equal(host(x_in), snapshot, err_msg="input modified")


@pytest.mark.parametrize("structure", structure_params())
@profile(4)
@given(data=st.data(), kind=st.sampled_from(["numpy", "device"]), twice=st.booleans(),
       input_grad=st.sampled_from([True, True, False]))
def test_backward_property(device, structure, data, kind, twice, input_grad):
    """Module forward + backward: input, weight and bias gradients; twice=True checks accumulation."""
    cfg = data.draw(configs(structure), label="config")
    skip_without_fp64(device, cfg.s.dtype)
    rng = np.random.default_rng(cfg.seed)
    m, state = build_module(cfg, device, rng)
    x = rng.uniform(-1, 1, cfg.x_shape).astype(cfg.s.dtype)
    s, p, d, g, mode = ref_args(cfg)
    x64, w64 = x.astype(np.float64), state["weight"].astype(np.float64)
    y_ref = conv1d_ref(x64, w64, state.get("bias"), s, p, d, g, mode)
    dy = rng.uniform(-1, 1, y_ref.shape).astype(cfg.s.dtype)
    with clconv.params.override(strategy=cfg.s.strategy):
        y = m(to_kind(x, kind, device))
        dx = m.backward(to_kind(dy, kind, device), input_grad=input_grad)
        if twice:
            dx2 = m.backward(to_kind(dy, kind, device), input_grad=input_grad)
    assert_close(host(y), y_ref, cfg.s.dtype, f"forward {cfg}")
    dy64 = dy.astype(np.float64)
    factor = 2.0 if twice else 1.0
    if input_grad:
        assert isinstance(dx, cla.Array if kind == "device" else np.ndarray)
        assert dx.shape == x.shape and dx.dtype == cfg.s.dtype
        ref_dx = conv1d_input_grad_ref(x.shape, w64, dy64, s, p, d, g, mode)
        assert_close(host(dx), ref_dx, cfg.s.dtype, f"input grad {cfg}")
        if twice:  # the input gradient is returned, never accumulated
            assert_close(host(dx2), ref_dx, cfg.s.dtype, f"second input grad {cfg}")
    else:
        assert dx is None
    ref_dw = conv1d_weight_grad_ref(x64, w64.shape, dy64, s, p, d, g, mode)
    assert m.weight.grad.shape == w64.shape and m.weight.grad.dtype == cfg.s.dtype
    assert_close(m.weight.grad.get(), factor * ref_dw, cfg.s.dtype, f"weight grad {cfg}")
    if cfg.bias:
        assert_close(m.bias.grad.get(), factor * conv1d_bias_grad_ref(dy64), cfg.s.dtype, f"bias grad {cfg}")
    else:
        assert m.bias is None


@pytest.mark.parametrize("structure", structure_params(modes=("zeros",)))
@profile(5)
@given(data=st.data(), kind=st.sampled_from(["numpy", "device"]))
def test_functional_property(device, structure, data, kind):
    """conv1d, grad.conv1d_input and grad.conv1d_weight (zero padding: the functional form's only mode)."""
    cfg = data.draw(configs(structure, modes=("zeros",)), label="config")
    skip_without_fp64(device, cfg.s.dtype)
    rng = np.random.default_rng(cfg.seed)
    cin, cout, groups, k = cfg.s.shape
    dt = cfg.s.dtype
    x = rng.uniform(-1, 1, cfg.x_shape).astype(dt)
    w = rng.uniform(-1, 1, (cout, cin // groups, k)).astype(dt)
    b = rng.uniform(-1, 1, (cout,)).astype(dt) if cfg.bias else None
    s, p, d = cfg.s.stride, cfg.padding, cfg.s.dilation
    y_ref = conv1d_ref(x.astype(np.float64), w, b, s, p, d, groups)
    dy = rng.uniform(-1, 1, y_ref.shape).astype(dt)
    dev = lambda a: None if a is None else to_kind(a, kind, device)  # noqa: E731
    with clconv.params.override(strategy=cfg.s.strategy):
        y = clconv.conv1d(dev(x), dev(w), dev(b), s, p, d, groups)
        dx = clconv.grad.conv1d_input(x.shape, dev(w), dev(dy), s, p, d, groups)
        dw = clconv.grad.conv1d_weight(dev(x), w.shape, dev(dy), s, p, d, groups)
    for out in (y, dx, dw):
        assert isinstance(out, cla.Array if kind == "device" else np.ndarray)
    assert_close(host(y), y_ref, dt, f"conv1d {cfg}")
    assert_close(host(dx), conv1d_input_grad_ref(x.shape, w, dy, s, p, d, groups), dt, f"conv1d_input {cfg}")
    assert_close(host(dw), conv1d_weight_grad_ref(x, w.shape, dy, s, p, d, groups), dt, f"conv1d_weight {cfg}")


# ---------------------------------------------------------------------------
# invalid arguments and inputs
# ---------------------------------------------------------------------------

ALLOWED = (ValueError, TypeError, RuntimeError)


def assert_clean_error(exc):
    """An allowed built-in exception type, not a pyopencl one (pyopencl's errors subclass none of them,
    but guard against a future pyopencl whose errors would)."""
    assert isinstance(exc, ALLOWED), f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
    assert not isinstance(exc, cl.Error), f"pyopencl error leaked: {exc!r}"
    assert type(exc).__module__.split(".")[0] != "pyopencl", f"pyopencl error leaked: {exc!r}"
    assert str(exc), "error without a message"


def expect_error(fn):
    try:
        fn()
    except ALLOWED as exc:
        assert_clean_error(exc)
        return exc
    except BaseException as exc:  # noqa: BLE001 - the point is to see anything else
        raise AssertionError(f"expected ValueError/TypeError/RuntimeError, got {type(exc).__module__}."
                             f"{type(exc).__name__}: {exc}") from exc
    raise AssertionError("no error raised")


# Constructor arguments that are invalid on their own: (name, values).  A construction that succeeds
# must then fail at forward (e.g. stride=0, which torch also only rejects in forward).
BAD_CTOR = {
    "groups": [0, -1, 1.5, "2", None, 3],                     # 3 divides neither 4 nor 6
    "in_channels": [5, -4, 4.0, "4", None],                 # 5: not divisible by groups=2
    "out_channels": [5, -6, 6.0, None],
    "kernel_size": [0, -1, (3, 3), "3", 2.5, None, ()],
    "stride": [0, -1, (1, 2), 1.5, "1", None],
    "padding": [-1, "full", "SAME", (1, 2), 1.5, None, ("same",)],
    "dilation": [0, -2, (1, 1), 0.5, "1", None],
    "padding_mode": ["Zeros", "wrap", "", None, 0],
    "dtype": [np.int32, np.complex64, np.uint8, bool, "banana", object],
    "device": ["no-such-opencl-device", 99, -1, 1.5, object()],
}
BASE_CTOR = dict(in_channels=4, out_channels=6, kernel_size=3, groups=2)


@profile(40)
@given(changes=st.dictionaries(st.sampled_from(sorted(BAD_CTOR)), st.integers(0, 100), min_size=1, max_size=3),
       stride2=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_invalid_constructor_property(device, changes, stride2, seed):
    kwargs = dict(BASE_CTOR, device=device)
    if stride2:
        kwargs["stride"] = 2     # makes padding='same' invalid too
    for name, i in changes.items():
        values = BAD_CTOR[name]
        kwargs[name] = values[i % len(values)]
    if "padding" not in changes and stride2 and seed % 2:
        kwargs["padding"] = "same"
    x = np.random.default_rng(seed).uniform(-1, 1, (2, 4, 20)).astype(np.float32)

    def construct_and_run():
        m = clconv.Conv1d(**kwargs)
        y = m(x)
        m.backward(np.ones_like(y))

    expect_error(construct_and_run)


def bad_input_module(device, mode):
    """The module _bad_inputs is written for: K=5 with padding 1, so lengths 0 and 1 are too short in
    every padding mode (the padded input, 2 or 3 positions, is shorter than the kernel)."""
    return clconv.Conv1d(4, 6, 5, padding=1, groups=2, padding_mode=mode, device=device)


def _bad_inputs(m, x, device):
    """(description, callable) pairs that must each fail; m is bad_input_module(), x float32 (N, 4, L)."""
    n, c, length = x.shape
    q = device.queue
    xd = cla.to_device(q, x)
    return [
        ("1-d input", lambda: m(x[0, 0])),
        ("4-d input", lambda: m(x[None])),
        ("0-d input", lambda: m(np.float32(1.0))),
        ("0-d array", lambda: m(np.array(1.0, np.float32))),
        ("wrong channels", lambda: m(np.concatenate([x, x[:, :1]], axis=1))),
        ("no channels", lambda: m(x[:, :0])),
        ("float64 input", lambda: m(x.astype(np.float64))),
        ("float16 input", lambda: m(x.astype(np.float16))),
        ("int32 input", lambda: m(x.astype(np.int32))),
        ("complex input", lambda: m(x.astype(np.complex64))),
        ("bool input", lambda: m(x > 0)),
        ("object input", lambda: m(x.astype(object))),
        ("list input", lambda: m(x.tolist())),
        ("None input", lambda: m(None)),
        ("string input", lambda: m("x")),
        ("too short", lambda: m(x[:, :, :1])),
        ("empty length", lambda: m(x[:, :, :0])),
        ("device input of wrong dtype", lambda: m(cla.to_device(q, x.astype(np.float64)))),
        ("device input transposed", lambda: m(xd.transpose((0, 2, 1)))),
    ]


@profile(40)
@given(which=st.integers(0, 10 ** 6), n=st.integers(1, 3), length=st.integers(12, 40),
       mode=st.sampled_from(PADDING_MODES), seed=st.integers(0, 2 ** 32 - 1))
def test_invalid_inputs_property(device, which, n, length, mode, seed):
    rng = np.random.default_rng(seed)
    m = bad_input_module(device, mode)
    x = rng.uniform(-1, 1, (n, 4, length)).astype(np.float32)
    cases = _bad_inputs(m, x, device)
    desc, fn = cases[which % len(cases)]
    exc = expect_error(fn)
    assert exc is not None, desc


BAD_BACKWARD = [
    ("before forward", lambda m, y, dev: clconv.Conv1d(4, 6, 3, groups=2, device=dev).backward(y)),
    ("wrong length", lambda m, y, dev: m.backward(y[..., :-1])),
    ("wrong channels", lambda m, y, dev: m.backward(np.concatenate([y, y], axis=1))),
    ("wrong batch", lambda m, y, dev: m.backward(np.concatenate([y, y], axis=0))),
    ("wrong rank", lambda m, y, dev: m.backward(y[0])),
    ("wrong dtype", lambda m, y, dev: m.backward(y.astype(np.float64))),
    ("int dtype", lambda m, y, dev: m.backward(y.astype(np.int64))),
    ("list", lambda m, y, dev: m.backward(y.tolist())),
    ("None", lambda m, y, dev: m.backward(None)),
    ("non-contiguous device", lambda m, y, dev: m.backward(
        cla.to_device(dev.queue, np.repeat(y, 2, axis=-1))[..., ::2])),
]


@profile(20)
@given(which=st.integers(0, len(BAD_BACKWARD) - 1), n=st.integers(1, 3), length=st.integers(64, 100),
       seed=st.integers(0, 2 ** 32 - 1))
def test_invalid_backward_property(device, which, n, length, seed):
    rng = np.random.default_rng(seed)
    m = clconv.Conv1d(4, 6, 3, groups=2, device=device)
    x = rng.uniform(-1, 1, (n, 4, length)).astype(np.float32)
    y = m(x)
    expect_error(lambda: BAD_BACKWARD[which][1](m, y, device))
    # a failed backward leaves the module usable
    m.zero_grad()
    dx = m.backward(np.ones_like(y))
    w = m.weight.numpy().astype(np.float64)
    assert_close(dx, conv1d_input_grad_ref(x.shape, w, np.ones(y.shape), 1, 0, 1, 2), np.float32)


def _bad_functional(x, w, b, dy):
    F, G = clconv.conv1d, clconv.grad
    return [
        ("weight 2-d", lambda: F(x, w[0])),
        ("weight 4-d", lambda: F(x, w[..., None])),
        ("weight list", lambda: F(x, w.tolist())),
        ("kernel size 0", lambda: F(x, w[..., :0])),
        ("bias shape", lambda: F(x, w, b[:-1])),
        ("bias 2-d", lambda: F(x, w, b[:, None])),
        ("bias dtype", lambda: F(x, w, b.astype(np.float64))),
        ("weight dtype", lambda: F(x, w.astype(np.float64), b)),
        ("stride 0", lambda: F(x, w, b, 0)),
        ("stride -2", lambda: F(x, w, b, -2)),
        ("stride pair", lambda: F(x, w, b, (1, 2))),
        ("stride float", lambda: F(x, w, b, 1.0)),
        ("padding -1", lambda: F(x, w, b, 1, -1)),
        ("padding same strided", lambda: F(x, w, b, 2, "same")),
        ("padding string", lambda: F(x, w, b, 1, "full")),
        ("padding None", lambda: F(x, w, b, 1, None)),
        ("dilation 0", lambda: F(x, w, b, 1, 0, 0)),
        ("groups 0", lambda: F(x, w, b, 1, 0, 1, 0)),
        ("groups 4", lambda: F(x, w, b, 1, 0, 1, 4)),
        ("groups float", lambda: F(x, w, b, 1, 0, 1, 2.0)),
        ("groups mismatch", lambda: F(x, w, b, 1, 0, 1, 1)),
        ("input_size int", lambda: G.conv1d_input(5, w, dy, 1, 0, 1, 2)),
        ("input_size 4-d", lambda: G.conv1d_input((1,) + x.shape, w, dy, 1, 0, 1, 2)),
        ("input_size length", lambda: G.conv1d_input(x.shape[:-1] + (x.shape[-1] + 1,), w, dy, 1, 0, 1, 2)),
        ("input_size negative", lambda: G.conv1d_input(x.shape[:-1] + (-1,), w, dy, 1, 0, 1, 2)),
        ("input_size None", lambda: G.conv1d_input(None, w, dy, 1, 0, 1, 2)),
        ("grad_output dtype", lambda: G.conv1d_input(x.shape, w, dy.astype(np.float64), 1, 0, 1, 2)),
        ("grad_output shape", lambda: G.conv1d_input(x.shape, w, dy[..., 1:], 1, 0, 1, 2)),
        ("weight_size 2", lambda: G.conv1d_weight(x, w.shape[:2], dy, 1, 0, 1, 2)),
        ("weight_size None", lambda: G.conv1d_weight(x, None, dy, 1, 0, 1, 2)),
        ("weight_size kernel 0", lambda: G.conv1d_weight(x, w.shape[:2] + (0,), dy, 1, 0, 1, 2)),
        ("weight_size channels", lambda: G.conv1d_weight(x, (w.shape[0], w.shape[1] + 1, w.shape[2]), dy, 1, 0, 1, 2)),
        ("weight grad stride 0", lambda: G.conv1d_weight(x, w.shape, dy, 0, 0, 1, 2)),
        ("weight grad input list", lambda: G.conv1d_weight(x.tolist(), w.shape, dy, 1, 0, 1, 2)),
    ]


@profile(40)
@given(which=st.integers(0, 10 ** 6), n=st.integers(1, 3), length=st.integers(8, 40),
       seed=st.integers(0, 2 ** 32 - 1))
def test_invalid_functional_property(device, which, n, length, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 4, length)).astype(np.float32)
    w = rng.uniform(-1, 1, (6, 2, 3)).astype(np.float32)
    b = rng.uniform(-1, 1, (6,)).astype(np.float32)
    dy = rng.uniform(-1, 1, (n, 6, length - 2)).astype(np.float32)
    cases = _bad_functional(x, w, b, dy)
    expect_error(cases[which % len(cases)][1])


# Every entry of the lists above at least once, whatever the profile draws (no kernel is built: each
# fails in argument checking; the module is built once per padding mode).
@pytest.mark.parametrize("mode", PADDING_MODES)
def test_every_bad_input_fails_cleanly(device, mode):
    m = bad_input_module(device, mode)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 4, 16)).astype(np.float32)
    for desc, fn in _bad_inputs(m, x, device):
        try:
            expect_error(fn)
        except AssertionError as exc:
            raise AssertionError(f"{desc}: {exc}") from None
    # reflect / circular padding larger than the input
    if mode in ("reflect", "circular"):
        big = clconv.Conv1d(4, 6, 3, padding=9, groups=2, padding_mode=mode, device=device)
        expect_error(lambda: big(x[:, :, :8]))


def test_every_bad_functional_call_fails_cleanly(device):
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (2, 4, 16)).astype(np.float32)
    w = rng.uniform(-1, 1, (6, 2, 3)).astype(np.float32)
    b = rng.uniform(-1, 1, (6,)).astype(np.float32)
    dy = rng.uniform(-1, 1, (2, 6, 14)).astype(np.float32)
    for desc, fn in _bad_functional(x, w, b, dy):
        try:
            expect_error(fn)
        except AssertionError as exc:
            raise AssertionError(f"{desc}: {exc}") from None


@pytest.mark.parametrize("name", sorted(BAD_CTOR))
def test_every_bad_constructor_argument_fails_cleanly(device, name):
    x = np.random.default_rng(3).uniform(-1, 1, (2, 4, 20)).astype(np.float32)
    for value in BAD_CTOR[name]:
        kwargs = {**BASE_CTOR, "device": device, name: value}

        def construct_and_run():
            m = clconv.Conv1d(**kwargs)
            m(x)

        try:
            expect_error(construct_and_run)
        except AssertionError as exc:
            raise AssertionError(f"{name}={value!r}: {exc}") from None


def test_module_usable_after_errors(device):
    """Many failures in a row leave the device, its queue and a module fully usable."""
    rng = np.random.default_rng(4)
    m = bad_input_module(device, "zeros")
    x = rng.uniform(-1, 1, (2, 4, 30)).astype(np.float32)
    for _, fn in _bad_inputs(m, x, device):
        expect_error(fn)
    y = m(x)
    dx = m.backward(np.ones_like(y))
    w, b = m.weight.numpy().astype(np.float64), m.bias.numpy().astype(np.float64)
    assert_close(y, conv1d_ref(x, w, b, 1, 1, 1, 2), np.float32)
    assert_close(dx, conv1d_input_grad_ref(x.shape, w, np.ones(y.shape), 1, 1, 1, 2), np.float32)
