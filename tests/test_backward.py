"""Backward pass of clconv.Conv1d (input, weight and bias gradients) and clconv.grad.*.

Checked against the float64 reference in reference.py (written from the formulas), against
central finite differences in float64, and against torch autograd where torch is installed.

Compile budget: every (configuration, strategy) adds 3-5 kernel builds (input gradient, weight-gradient
partials and their reduction, bias gradient, padding fold) on top of the forward kernel, about 1.5 s
on PoCL.  So the matrix reuses the forward file's cases (their forward kernels are shared when the
suite runs in one process) and runs each configuration with one strategy, the two taking turns; the
other tests reuse matrix configurations with the matrix's strategy wherever they can.
"""

from dataclasses import replace

import numpy as np
import pyopencl.array as cla
import pytest

import clconv
from clconv.passes.backward_data import input_gradient_plan
from clconv.passes.backward_weight import weight_gradient_plan
from conftest import STRATEGIES, assert_close
from reference import (PADDING_MODES, conv1d_bias_grad_ref, conv1d_input_grad_ref, conv1d_ref,
                       conv1d_weight_grad_ref)
from test_forward import BASE, F32_CASES, c, make_input, make_module


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def forward_backward(m, x, strategy, rng, input_grad=True, dy=None):
    """Run forward then backward under `strategy`; returns (y, dy, dx)."""
    with clconv.params.override(strategy=strategy):
        y = m(x)
        if dy is None:
            dy = rng.uniform(-1.0, 1.0, size=y.shape).astype(m.dtype)
        dx = m.backward(dy, input_grad=input_grad)
    return y, dy, dx


def params64(m):
    w = np.asarray(m.weight).astype(np.float64)
    b = None if m.bias is None else np.asarray(m.bias).astype(np.float64)
    return w, b


def conv_args(m):
    """(stride, padding, dilation, groups, padding_mode) of a module, as the reference takes them."""
    padding = m.padding if isinstance(m.padding, str) else m.padding[0]
    return m.stride[0], padding, m.dilation[0], m.groups, m.padding_mode


def reference_grads(m, x, dy):
    """Float64 (dx, dw, db) of sum(conv1d(x) * dy) for module m's parameters."""
    w, _ = params64(m)
    s, p, d, g, mode = conv_args(m)
    x64 = np.asarray(x).astype(np.float64)
    dy64 = np.asarray(dy).astype(np.float64)
    dx = conv1d_input_grad_ref(x64.shape, w, dy64, s, p, d, g, mode)
    dw = conv1d_weight_grad_ref(x64, w.shape, dy64, s, p, d, g, mode)
    db = conv1d_bias_grad_ref(dy64)
    return dx, dw, db


def check_grads(m, x, dy, dx, dtype, what=""):
    ref_dx, ref_dw, ref_db = reference_grads(m, x, dy)
    if dx is not None:
        assert_close(dx, ref_dx, dtype, f"{what} input grad")
    assert isinstance(m.weight.grad, cla.Array)
    assert m.weight.grad.shape == m.weight.shape and m.weight.grad.dtype == dtype
    assert_close(m.weight.grad.get(), ref_dw, dtype, f"{what} weight grad")
    if m.bias is not None:
        assert isinstance(m.bias.grad, cla.Array)
        assert m.bias.grad.shape == m.bias.shape and m.bias.grad.dtype == dtype
        assert_close(m.bias.grad.get(), ref_db, dtype, f"{what} bias grad")


# ---------------------------------------------------------------------------
# the forward matrix, run backward
# ---------------------------------------------------------------------------

def _alternate(cases):
    """Each case once, the strategies taking turns down the list (neighbouring cases vary the same dimension)."""
    return [(case, STRATEGIES[i % len(STRATEGIES)]) for i, case in enumerate(cases)]


# float32: every configuration of the forward matrix, each with one strategy, alternating, so both
# strategies meet every kind of case (strides, dilations, padding modes, groups, tiles, lengths).
# float64 / float16: a few configurations only (the finite-difference checks run in float64 and
# test_float16_storage covers long float16 reductions).
_OTHER_DTYPES = [c(mode="reflect"), c(cin=4, cout=8, groups=4), c(unbatched=True, stride=2),
                 c(k=40, padding=0, length=120)]
MATRIX = (_alternate(F32_CASES) + _alternate([replace(x, dtype="float64") for x in _OTHER_DTYPES])
          + _alternate([replace(x, dtype="float16") for x in _OTHER_DTYPES[::-1]]))
MATRIX_STRATEGY = {case: strat for case, strat in MATRIX}
assert len(MATRIX_STRATEGY) == len(MATRIX)


def matrix_strategy(case):
    """The strategy the matrix runs `case` with: reusing it costs no new kernel build."""
    return MATRIX_STRATEGY[case]


@pytest.mark.parametrize("case, strat", MATRIX, ids=[f"{s}-{case.id}" for case, s in MATRIX])
def test_backward_matrix(case, strat, device, rng):
    dtype = np.dtype(case.dtype)
    if dtype == np.float64 and not device.has_fp64:
        pytest.skip("device has no fp64")
    m = make_module(case, device, strat)
    x = make_input(rng, case)
    x_before = x.copy()
    with clconv.params.override(strategy=strat):
        y = m(x)
        dy = rng.uniform(-1.0, 1.0, size=y.shape).astype(dtype)
        dy_before = dy.copy()
        dx = m.backward(dy)
    assert isinstance(dx, np.ndarray)
    assert dx.shape == x.shape and dx.dtype == dtype
    np.testing.assert_array_equal(x, x_before, err_msg="input was modified")
    np.testing.assert_array_equal(dy, dy_before, err_msg="grad_output was modified")
    assert (m.bias is None) == (not case.bias)
    check_grads(m, x, dy, dx, dtype)


# ---------------------------------------------------------------------------
# finite differences (float64), every padding mode
# ---------------------------------------------------------------------------

# Tiny shapes (N=2, C_in=4, C_out=8, L=7); the strategy alternates over modes and combos so that each
# padding mode and each combo meets both.
FD_COMBOS = [
    dict(k=3, stride=1, dilation=1, groups=1, padding=1),
    dict(k=3, stride=3, dilation=2, groups=2, padding=2),
    dict(k=2, stride=1, dilation=3, groups=4, padding="same"),     # asymmetric: (1, 2), extra on the right
]
FD_CASES = [(mode, i, STRATEGIES[(i + j) % 2]) for j, mode in enumerate(PADDING_MODES) for i in range(len(FD_COMBOS))]


def _fd_id(mode, i, strategy):
    cfg = FD_COMBOS[i]
    return f"{mode}-k{cfg['k']}-s{cfg['stride']}-d{cfg['dilation']}-g{cfg['groups']}-pad{cfg['padding']}-{strategy}"


def _loss_and_grad_output(y, g):
    """A non-linear scalar loss of the output, L = sum(g * tanh(y)), and dL/dy."""
    t = np.tanh(y)
    return float(np.sum(g * t)), g * (1.0 - t * t)


@pytest.mark.parametrize("mode, combo, strat", FD_CASES, ids=[_fd_id(*fc) for fc in FD_CASES])
def test_finite_differences(mode, combo, strat, fp64_device, rng):
    cfg = FD_COMBOS[combo]
    strategy = strat
    with clconv.params.override(strategy=strategy):
        m = clconv.Conv1d(4, 8, cfg["k"], stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"],
                          groups=cfg["groups"], padding_mode=mode, device=fp64_device, dtype=np.float64)
    x = rng.uniform(-1, 1, size=(2, 4, 7))
    w0, b0 = m.weight.numpy().copy(), m.bias.numpy().copy()
    with clconv.params.override(strategy=strategy):
        y = m(x)
    g = rng.uniform(-1, 1, size=y.shape)
    _, dy = _loss_and_grad_output(y, g)
    with clconv.params.override(strategy=strategy):
        dx = m.backward(dy)
    dw, db = m.weight.grad.get(), m.bias.grad.get()

    def loss(x_, w_, b_):
        m.weight.data.set(w_)
        m.bias.data.set(b_)
        with clconv.params.override(strategy=strategy):
            return _loss_and_grad_output(m(x_), g)[0]

    eps = 1e-6
    # central differences of a smooth function: truncation O(eps^2) ~ 1e-12, rounding ~ 1e-16 / eps ~ 1e-10
    def check(analytic_dot, plus, minus, what):
        numeric = (plus - minus) / (2 * eps)
        assert abs(numeric - analytic_dot) <= 1e-7 * (1 + abs(numeric)), \
            f"{what}: finite difference {numeric!r} vs analytic {analytic_dot!r}"

    # Jacobian-vector products along random directions
    for _ in range(2):
        v = rng.standard_normal(x.shape)
        check(np.sum(dx * v), loss(x + eps * v, w0, b0), loss(x - eps * v, w0, b0), "input JVP")
        v = rng.standard_normal(w0.shape)
        check(np.sum(dw * v), loss(x, w0 + eps * v, b0), loss(x, w0 - eps * v, b0), "weight JVP")
        v = rng.standard_normal(b0.shape)
        check(np.sum(db * v), loss(x, w0, b0 + eps * v), loss(x, w0, b0 - eps * v), "bias JVP")
    # single coordinates, including the edges that padding modes fold back
    coords = [(0, 0, 0), (1, 3, 6), (0, 2, 1), (1, 1, 5), tuple(rng.integers(0, s) for s in x.shape)]
    for idx in coords:
        e = np.zeros_like(x)
        e[idx] = 1.0
        check(dx[idx], loss(x + eps * e, w0, b0), loss(x - eps * e, w0, b0), f"dx{idx}")
    for _ in range(4):
        idx = tuple(rng.integers(0, s) for s in w0.shape)
        e = np.zeros_like(w0)
        e[idx] = 1.0
        check(dw[idx], loss(x, w0 + eps * e, b0), loss(x, w0 - eps * e, b0), f"dw{idx}")
    for o in range(b0.size):
        e = np.zeros_like(b0)
        e[o] = 1.0
        check(db[o], loss(x, w0, b0 + eps * e), loss(x, w0, b0 - eps * e), f"db[{o}]")


# ---------------------------------------------------------------------------
# torch autograd
# ---------------------------------------------------------------------------

# Matrix cases with the matrix's strategy: no kernel is built for these alone.
TORCH_CASES = [
    BASE,
    c(mode="reflect", groups=2, stride=2, k=5, padding=3),
    c(mode="circular", groups=4, stride=3, padding=2, bias=False),
    c(mode="replicate", k=5, dilation=2, padding=4),
    c(padding="same", k=4, dilation=3),
    c(cin=4, cout=8, groups=4),
    c(unbatched=True, groups=4, stride=2),
    replace(c(mode="reflect"), dtype="float64"),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("case", TORCH_CASES, ids=[f"{matrix_strategy(x)}-{x.id}" for x in TORCH_CASES])
def test_against_torch_autograd(case, device, rng):
    torch = pytest.importorskip("torch")
    strategy = matrix_strategy(case)
    dtype = np.dtype(case.dtype)
    if dtype == np.float64 and not device.has_fp64:
        pytest.skip("device has no fp64")
    m = make_module(case, device, strategy)
    x = make_input(rng, case)
    y, dy, dx = forward_backward(m, x, strategy, rng)

    t = torch.nn.Conv1d(case.cin, case.cout, case.k, stride=case.stride, padding=case.padding,
                        dilation=case.dilation, groups=case.groups, bias=case.bias, padding_mode=case.mode,
                        dtype=getattr(torch, dtype.name))
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = t(tx)
    ty.backward(torch.from_numpy(dy))
    assert_close(y, ty.detach().numpy().astype(np.float64), dtype, "output vs torch")
    assert_close(dx, tx.grad.numpy().astype(np.float64), dtype, "input grad vs torch")
    assert_close(m.weight.grad.get(), t.weight.grad.numpy().astype(np.float64), dtype, "weight grad vs torch")
    if case.bias:
        assert_close(m.bias.grad.get(), t.bias.grad.numpy().astype(np.float64), dtype, "bias grad vs torch")


# ---------------------------------------------------------------------------
# accumulation semantics (torch's: summed until zero_grad)
# ---------------------------------------------------------------------------

@pytest.fixture
def base_module(device):
    return make_module(BASE, device, "register")


def _run(m, x, dy=None, rng=None, input_grad=True):
    y = m(x)
    if dy is None:
        dy = rng.uniform(-1, 1, size=y.shape).astype(np.float32)
    return dy, m.backward(dy, input_grad=input_grad)


def test_two_backward_calls_sum(base_module, rng):
    m = base_module
    x1, x2 = make_input(rng, BASE), make_input(rng, replace(BASE, n=3, length=20))
    dy1, _ = _run(m, x1, rng=rng)
    w1, b1 = m.weight.grad.get().copy(), m.bias.grad.get().copy()
    dy2, _ = _run(m, x2, rng=rng)
    _, ref_w1, ref_b1 = reference_grads(m, x1, dy1)
    _, ref_w2, ref_b2 = reference_grads(m, x2, dy2)
    assert_close(w1, ref_w1, np.float32, "first weight grad")
    assert_close(b1, ref_b1, np.float32, "first bias grad")
    assert_close(m.weight.grad.get(), ref_w1 + ref_w2, np.float32, "summed weight grad")
    assert_close(m.bias.grad.get(), ref_b1 + ref_b2, np.float32, "summed bias grad")
    # the same forward, backward twice: twice the gradient
    m.zero_grad()
    m(x1)
    m.backward(dy1)
    m.backward(dy1)
    assert_close(m.weight.grad.get(), 2 * ref_w1, np.float32, "doubled weight grad")
    assert_close(m.bias.grad.get(), 2 * ref_b1, np.float32, "doubled bias grad")


def test_zero_grad_resets_to_none(base_module, rng):
    m = base_module
    assert m.weight.grad is None and m.bias.grad is None
    x = make_input(rng, BASE)
    _run(m, x, rng=rng)
    _run(m, x, rng=rng)
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None
    dy, _ = _run(m, x, rng=rng)  # starts afresh, nothing left over
    check_grads(m, x, dy, None, np.float32)


@pytest.mark.parametrize("frozen", ["weight", "bias", "both"])
def test_requires_grad_false(base_module, rng, frozen):
    m = base_module
    if frozen in ("weight", "both"):
        m.weight.requires_grad = False
    if frozen in ("bias", "both"):
        m.bias.requires_grad = False
    x = make_input(rng, BASE)
    dy, dx = _run(m, x, rng=rng)
    ref_dx, ref_dw, ref_db = reference_grads(m, x, dy)
    assert_close(dx, ref_dx, np.float32, "input grad")
    if frozen in ("weight", "both"):
        assert m.weight.grad is None
    else:
        assert_close(m.weight.grad.get(), ref_dw, np.float32, "weight grad")
    if frozen in ("bias", "both"):
        assert m.bias.grad is None
    else:
        assert_close(m.bias.grad.get(), ref_db, np.float32, "bias grad")


# One input channel per group (C_in = 1, depthwise, channel multipliers): the weight-gradient kernel's work-item
# rows each own a channel tile's every tap, so they sum the bias gradient from the dy they load (BIAS_SUM).
# Two backward calls: the fused sum accumulates; a frozen weight leaves the bias to its own kernel.
BIAS_SUM_CASES = [c(cin=1, cout=37, k=10, stride=5, padding=0, length=203, n=3),
                  c(cin=6, cout=6, groups=6, k=5, padding=2, length=77),
                  c(cin=4, cout=8, groups=4, k=3, mode="reflect", unbatched=True),
                  c(cin=1, cout=5, k=31, padding=15, length=40, dtype="float64"),
                  c(cin=3, cout=3, groups=3, k=3, dilation=2, length=50, dtype="float16")]


@pytest.mark.parametrize("variant", ["fused", "fused-staged", "weight-frozen"])
@pytest.mark.parametrize("case", BIAS_SUM_CASES, ids=lambda x: x.id)
def test_bias_gradient_from_the_weight_pass(case, variant, device, rng):
    dtype = np.dtype(case.dtype)
    if dtype == np.float64 and not device.has_fp64:
        pytest.skip("device has no fp64")
    m = make_module(case, device, "register")
    frozen_weight = variant == "weight-frozen"
    m.weight.requires_grad = not frozen_weight
    x = make_input(rng, case)
    # staged: the kernel reads pad_rows.cl's copy, and a row's last partial vector takes the masked tail path;
    # every tap in one tile (TILE_K) on every CPU class, as the AVX-512 row picks for these layers itself
    # (not the sliding tap tiles of long kernels, which leave the bias to its own kernel)
    with clconv.params.override(strategy="register", TILE_K=case.k, ACC_MAX=None, SLIDE_K_MIN=None,
                                **({"STAGE_MIN": 1} if variant == "fused-staged" else {})):
        y = m(x)
        partial = weight_gradient_plan(m.device, m._saved[0], dtype, bias=True)
        assert partial.info["bias_sum"], "the case should take the fused bias gradient"
        dy = rng.uniform(-1, 1, size=y.shape).astype(dtype)
        m.backward(dy, input_grad=False)
        m.backward(dy, input_grad=False)
    _, ref_dw, ref_db = reference_grads(m, x, dy)
    assert_close(m.bias.grad.get(), 2 * ref_db, dtype, "bias grad of two backward calls")
    if frozen_weight:
        assert m.weight.grad is None
    else:
        assert_close(m.weight.grad.get(), 2 * ref_dw, dtype, "weight grad of two backward calls")


def test_input_grad_false_returns_none(base_module, rng):
    m = base_module
    x = make_input(rng, BASE)
    dy, dx = _run(m, x, rng=rng, input_grad=False)
    assert dx is None
    check_grads(m, x, dy, None, np.float32)  # parameter gradients still computed


def test_no_bias_module(device, rng):
    case = c(bias=False)
    m = make_module(case, device, matrix_strategy(case))
    x = make_input(rng, case)
    _, dy, dx = forward_backward(m, x, matrix_strategy(case), rng)
    assert m.bias is None
    check_grads(m, x, dy, dx, np.float32)


def test_backward_uses_latest_forward(base_module, rng):
    m = base_module
    x1 = make_input(rng, BASE)
    x2 = make_input(rng, replace(BASE, n=3, length=45))
    m(x1)
    y2 = m(x2)
    dy = rng.uniform(-1, 1, size=y2.shape).astype(np.float32)
    dx = m.backward(dy)
    assert dx.shape == x2.shape
    check_grads(m, x2, dy, dx, np.float32)


@pytest.mark.parametrize("case", [c(unbatched=True), c(unbatched=True, groups=4, stride=2)], ids=lambda x: x.id)
def test_unbatched_input_gives_unbatched_gradient(case, device, rng):
    strategy = matrix_strategy(case)
    m = make_module(case, device, strategy)
    x = make_input(rng, case)
    y, dy, dx = forward_backward(m, x, strategy, rng)
    assert y.ndim == 2 and dy.ndim == 2
    assert isinstance(dx, np.ndarray) and dx.shape == x.shape
    check_grads(m, x, dy, dx, np.float32)


@pytest.mark.parametrize("case", [BASE, c(unbatched=True), c(mode="reflect", groups=2, stride=2, k=5, padding=3)],
                         ids=lambda x: x.id)
@pytest.mark.parametrize("dy_kind", ["numpy-dy", "device-dy"])
def test_device_array_input_gives_device_array_gradient(case, dy_kind, device, rng):
    strategy = matrix_strategy(case)
    m = make_module(case, device, strategy)
    queue = m.weight.data.queue
    x = make_input(rng, case)
    x_dev = cla.to_device(queue, x)
    with clconv.params.override(strategy=strategy):
        y = m(x_dev)
        assert isinstance(y, cla.Array)
        dy = rng.uniform(-1, 1, size=y.shape).astype(np.float32)
        dy_arg = cla.to_device(queue, dy) if dy_kind == "device-dy" else dy
        dx = m.backward(dy_arg)
    assert isinstance(dx, cla.Array)
    assert dx.context == m.weight.data.context
    assert dx.shape == x.shape and dx.dtype == np.float32
    np.testing.assert_array_equal(x_dev.get(), x, err_msg="device input was modified")
    if dy_kind == "device-dy":
        np.testing.assert_array_equal(dy_arg.get(), dy, err_msg="device grad_output was modified")
    check_grads(m, x, dy, dx.get(), np.float32)
    # the numpy path gives the same bits
    m.zero_grad()
    _, _, dx_host = forward_backward(m, x, strategy, rng, dy=dy)
    np.testing.assert_array_equal(dx.get(), dx_host)


# A single chunk of partial sums is written straight into a fresh float32/float64 weight gradient (no reduce
# launch); several chunks, an accumulating call and float16 storage go through the reduction.
@pytest.mark.parametrize("run", [1 << 20, 16], ids=["one-chunk", "chunks"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_weight_gradient_chunks(dtype, run, device, rng):
    if dtype == "float64" and not device.has_fp64:
        pytest.skip("device has no fp64")
    case = c(n=3, cin=16, cout=24, k=3, length=41, stride=2, dtype=dtype)  # 16 x 4 work-items fill 2 cores
    m = make_module(case, device, "register")
    x = make_input(rng, case)
    with clconv.params.override(strategy="register", RUN=run):
        y = m(x)
        chunks = weight_gradient_plan(m.device, m._saved[0], np.dtype(dtype), bias=True).info["chunks"]
        if m.device.type == "CPU":  # (a GPU asks for more chunks to fill its compute units)
            assert (chunks == 1) == (run > 1000), chunks
        dy = rng.uniform(-1, 1, size=y.shape).astype(dtype)
        m.backward(dy, input_grad=False)
        first = m.weight.grad.get().copy()
        m.backward(dy, input_grad=False)
    _, ref_dw, ref_db = reference_grads(m, x, dy)
    assert_close(first, ref_dw, np.dtype(dtype), "fresh weight grad")
    assert_close(m.weight.grad.get(), 2 * ref_dw, np.dtype(dtype), "accumulated weight grad")
    assert_close(m.bias.grad.get(), 2 * ref_db, np.dtype(dtype), "accumulated bias grad")


# ---------------------------------------------------------------------------
# determinism: bitwise-equal results across runs
# ---------------------------------------------------------------------------

# N=8, C=16, L=2000: long enough that the weight gradient is reduced from several partial chunks.
DET_CASES = [
    (c(n=8, cin=16, cout=16, length=2000), "register"),
    (c(n=8, cin=16, cout=16, length=2000, stride=2, k=5, padding=2, mode="reflect"), "local"),
]


@pytest.mark.parametrize("case, strat", DET_CASES, ids=[f"{s}-{x.id}" for x, s in DET_CASES])
def test_deterministic(case, strat, device, rng):
    strategy = strat
    x = make_input(rng, case)
    runs = []
    state = None
    for _ in range(2):
        m = make_module(case, device, strategy)
        if state is None:
            state = m.state_dict()
        m.load_state_dict(state)
        with clconv.params.override(strategy=strategy):
            y = m(x)
            dy = np.sin(np.arange(y.size, dtype=np.float64)).reshape(y.shape).astype(np.float32)
            dx = m.backward(dy)
            m(x)                   # a second step on the same module, accumulating
            m.backward(dy * 0.5)
        runs.append((dx, m.weight.grad.get(), m.bias.grad.get()))
    for name, a, b in zip(("input grad", "weight grad", "bias grad"), *runs):
        assert a.dtype == b.dtype == np.float32
        assert np.array_equal(a, b), f"{name} differs between two identical runs"
    _, ref_w, ref_b = reference_grads(m, x, dy * 1.5)
    assert_close(runs[0][1], ref_w, np.float32, "weight grad")
    assert_close(runs[0][2], ref_b, np.float32, "bias grad")


# ---------------------------------------------------------------------------
# float16 storage
# ---------------------------------------------------------------------------

# Tolerance: conftest's TOL[float16] = 5e-3 * (1 + max|ref|), against the float64 reference computed from
# exactly the stored float16 input, weight and grad_output.  Float accumulation plus one final rounding
# to float16 (2**-11 relative) passes it 10x over.  Non-negative data over a long reduction (N * L_out =
# 8000 terms of about 0.25) make the weight and bias gradients about 2000: a running float16 sum stops
# growing at 1024 once its terms are below half an ulp (0.5), which this bound would catch by far.
F16_LONG = [c(n=16, length=1000, dtype="float16", mode="reflect", stride=2)]


@pytest.mark.parametrize("case", F16_LONG, ids=[x.id for x in F16_LONG])
def test_float16_storage(case, device, rng):
    m = make_module(case, device, "register")
    x = rng.uniform(0, 1, size=(case.n, case.cin, case.length)).astype(np.float16)
    m.weight.data.set(rng.uniform(0, 1, size=m.weight.shape).astype(np.float16))
    dy = rng.uniform(0, 1, size=(case.n, case.cout, case.length // 2)).astype(np.float16)
    _, _, dx = forward_backward(m, x, "register", rng, dy=dy)
    assert dx.dtype == np.float16 and m.weight.grad.dtype == np.float16
    ref_dx, ref_dw, ref_db = reference_grads(m, x, dy)
    assert np.min(ref_dw) > 1500 and np.min(ref_db) > 1500   # the sums really are long
    assert_close(dx, ref_dx, np.float16, "input grad")
    assert_close(m.weight.grad.get(), ref_dw, np.float16, "weight grad")
    assert_close(m.bias.grad.get(), ref_db, np.float16, "bias grad")


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------

def test_backward_before_forward(base_module):
    with pytest.raises(RuntimeError, match="forward"):
        base_module.backward(np.zeros((2, 12, 37), np.float32))
    assert base_module.weight.grad is None


def test_wrong_grad_output(base_module, rng):
    m = base_module
    x = make_input(rng, BASE)
    y = m(x)
    assert y.shape == (2, 12, 37)
    for shape in [(2, 12, 36), (2, 12, 38), (2, 11, 37), (3, 12, 37), (12, 37), (1, 2, 12, 37)]:
        with pytest.raises(RuntimeError):
            m.backward(np.zeros(shape, np.float32))
    for dtype in (np.float64, np.float16):
        with pytest.raises(RuntimeError):
            m.backward(np.zeros(y.shape, dtype))
    with pytest.raises(RuntimeError):
        m.backward(cla.to_device(m.weight.data.queue, np.zeros(y.shape, np.float64)))
    assert m.weight.grad is None and m.bias.grad is None  # nothing accumulated by failed calls
    # the module still works afterwards
    dy = rng.uniform(-1, 1, size=y.shape).astype(np.float32)
    dx = m.backward(dy)
    check_grads(m, x, dy, dx, np.float32)


def test_unbatched_forward_rejects_batched_grad_output(device, rng):
    m = make_module(c(unbatched=True), device, "register")
    y = m(make_input(rng, c(unbatched=True)))
    with pytest.raises(RuntimeError):
        m.backward(np.zeros((1,) + y.shape, np.float32))


def _grad_error_calls():
    """(label, call(g)) pairs that must raise, g providing conv1d_input and conv1d_weight."""
    w = np.ones((6, 2, 3), np.float32)        # groups=2 -> C_in = 4
    dy = np.ones((2, 6, 8), np.float32)       # L_in = 10 with stride 1, padding 0
    x = np.ones((2, 4, 10), np.float32)
    return [
        ("input: channels", lambda g: g.conv1d_input((2, 5, 10), w, dy, groups=2)),
        ("input: length", lambda g: g.conv1d_input((2, 4, 11), w, dy, groups=2)),
        ("input: batch", lambda g: g.conv1d_input((3, 4, 10), w, dy, groups=2)),
        ("input: grad channels", lambda g: g.conv1d_input((2, 4, 10), w, dy[:, :5], groups=2)),
        ("input: groups", lambda g: g.conv1d_input((2, 4, 10), w, dy, groups=1)),
        ("input: too short", lambda g: g.conv1d_input((2, 4, 2), w, dy[:, :, :0], groups=2)),
        ("weight: rank", lambda g: g.conv1d_weight(x, (6, 2), dy, groups=2)),
        ("weight: channels", lambda g: g.conv1d_weight(x, (6, 3, 3), dy, groups=2)),
        ("weight: length", lambda g: g.conv1d_weight(x, (6, 2, 3), dy[:, :, :7], groups=2)),
        ("weight: grad channels", lambda g: g.conv1d_weight(x, (6, 2, 3), dy[:, :4], groups=2)),
        ("weight: kernel", lambda g: g.conv1d_weight(x, (6, 2, 4), dy, groups=2)),
    ]


_GRAD_ERRORS = [label for label, _ in _grad_error_calls()]


@pytest.mark.parametrize("label", _GRAD_ERRORS)
def test_grad_functions_inconsistent_sizes(label):
    call = dict(_grad_error_calls())[label]
    with pytest.raises(RuntimeError):
        call(clconv.grad)


@pytest.mark.parametrize("label", _GRAD_ERRORS)
def test_grad_functions_inconsistent_sizes_torch_agrees(label):
    """The cases above are errors in torch.nn.grad too (keeps the list honest)."""
    torch = pytest.importorskip("torch")

    class TorchGrad:
        @staticmethod
        def conv1d_input(size, w, dy, **kw):
            return torch.nn.grad.conv1d_input(size, torch.from_numpy(w), torch.from_numpy(np.ascontiguousarray(dy)), **kw)

        @staticmethod
        def conv1d_weight(x, size, dy, **kw):
            return torch.nn.grad.conv1d_weight(torch.from_numpy(x), size, torch.from_numpy(np.ascontiguousarray(dy)), **kw)

    call = dict(_grad_error_calls())[label]
    with pytest.raises(RuntimeError):
        call(TorchGrad)


# ---------------------------------------------------------------------------
# clconv.grad.conv1d_input / conv1d_weight
# ---------------------------------------------------------------------------

# Matrix configurations (run with the matrix's strategy, so their kernels are already built); the
# functions take zero padding only, so the padding mode plays no part here.
GRAD_FN_CASES = [
    (BASE, False), (BASE, True),                         # True: stride/padding/dilation as 1-tuples
    (c(stride=2), False),
    (c(k=5, stride=3, dilation=2, padding=2), False),
    (c(groups=4, dilation=3, k=5, stride=2), False),
    (c(padding="same", k=4, dilation=3), False),          # 'same', asymmetric (4, 5)
    (c(padding="same", k=2), False),                      # 'same', asymmetric (0, 1)
    (c(padding="valid", k=4, dilation=3, stride=2), False),
    (replace(c(cin=4, cout=8, groups=4), dtype="float64"), False),
]
GRAD_FN_IDS = [f"{matrix_strategy(x)}-{x.id}" + ("-tuples" if tup else "") for x, tup in GRAD_FN_CASES]


def _grad_fn_args(case, as_tuples):
    """The stride/padding/dilation/groups keywords for a case, as ints or as 1-tuples."""
    kw = dict(stride=case.stride, padding=case.padding, dilation=case.dilation, groups=case.groups)
    if as_tuples:
        kw = dict(stride=(case.stride,), padding=(case.padding,), dilation=(case.dilation,), groups=case.groups)
    return kw


def _grad_fn_data(case, rng):
    x = rng.uniform(-1, 1, size=(case.n, case.cin, case.length)).astype(case.dtype)
    w = rng.uniform(-1, 1, size=(case.cout, case.cin // case.groups, case.k)).astype(case.dtype)
    y = conv1d_ref(x, w, None, case.stride, case.padding, case.dilation, case.groups)
    dy = rng.uniform(-1, 1, size=y.shape).astype(case.dtype)
    return x, w, dy


def _grad_fn_refs(case, x, w, dy):
    args = (case.stride, case.padding, case.dilation, case.groups)
    return conv1d_input_grad_ref(x.shape, w, dy, *args), conv1d_weight_grad_ref(x, w.shape, dy, *args)


def _skip_f64(case, device):
    if np.dtype(case.dtype) == np.float64 and not device.has_fp64:
        pytest.skip("device has no fp64")


@pytest.mark.parametrize("case, as_tuples", GRAD_FN_CASES, ids=GRAD_FN_IDS)
def test_grad_functions(case, as_tuples, rng):
    _skip_f64(case, clconv.get_device())
    kw = _grad_fn_args(case, as_tuples)
    x, w, dy = _grad_fn_data(case, rng)
    with clconv.params.override(strategy=matrix_strategy(case)):
        dx = clconv.grad.conv1d_input(x.shape, w, dy, **kw)
        dw = clconv.grad.conv1d_weight(x, w.shape, dy, **kw)
        dx2 = clconv.grad.conv1d_input(list(x.shape), w, dy, **kw)   # any sequence of ints as the size
    assert isinstance(dx, np.ndarray) and isinstance(dw, np.ndarray)
    assert dx.dtype == dw.dtype == np.dtype(case.dtype)
    assert dx.shape == x.shape and dw.shape == w.shape
    ref_dx, ref_dw = _grad_fn_refs(case, x, w, dy)
    assert_close(dx, ref_dx, case.dtype, "conv1d_input")
    assert_close(dw, ref_dw, case.dtype, "conv1d_weight")
    np.testing.assert_array_equal(dx, dx2)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("case, as_tuples", GRAD_FN_CASES, ids=GRAD_FN_IDS)
def test_grad_functions_vs_torch(case, as_tuples, rng):
    torch = pytest.importorskip("torch")
    _skip_f64(case, clconv.get_device())
    kw = _grad_fn_args(case, as_tuples)
    x, w, dy = _grad_fn_data(case, rng)
    with clconv.params.override(strategy=matrix_strategy(case)):
        dx = clconv.grad.conv1d_input(x.shape, w, dy, **kw)
        dw = clconv.grad.conv1d_weight(x, w.shape, dy, **kw)
    tx, tw, tdy = (torch.from_numpy(a) for a in (x, w, dy))
    if isinstance(case.padding, str):
        # torch.nn.grad takes numeric padding only: autograd through F.conv1d(padding='same'/'valid')
        tx.requires_grad_(True)
        tw.requires_grad_(True)
        torch.nn.functional.conv1d(tx, tw, None, **kw).backward(tdy)
        ref_dx, ref_dw = tx.grad, tw.grad
    else:
        ref_dx = torch.nn.grad.conv1d_input(x.shape, tw, tdy, **kw)
        ref_dw = torch.nn.grad.conv1d_weight(tx, w.shape, tdy, **kw)
    assert_close(dx, ref_dx.numpy().astype(np.float64), case.dtype, "conv1d_input vs torch")
    assert_close(dw, ref_dw.numpy().astype(np.float64), case.dtype, "conv1d_weight vs torch")


def test_grad_functions_device_arrays(device, rng):
    case = c(groups=4, dilation=3, k=5, stride=2)
    kw = _grad_fn_args(case, False)
    x, w, dy = _grad_fn_data(case, rng)
    queue = clconv.Conv1d(1, 1, 1, device=device).weight.data.queue
    x_d, w_d, dy_d = (cla.to_device(queue, a) for a in (x, w, dy))
    with clconv.params.override(strategy=matrix_strategy(case)):
        dx = clconv.grad.conv1d_input(x.shape, w_d, dy_d, **kw)
        dw = clconv.grad.conv1d_weight(x_d, w.shape, dy_d, **kw)
        dx_mixed = clconv.grad.conv1d_input(x.shape, w, dy_d, **kw)    # one device array is enough
    assert isinstance(dx, cla.Array) and isinstance(dw, cla.Array) and isinstance(dx_mixed, cla.Array)
    ref_dx, ref_dw = _grad_fn_refs(case, x, w, dy)
    assert_close(dx.get(), ref_dx, np.float32, "conv1d_input")
    assert_close(dw.get(), ref_dw, np.float32, "conv1d_weight")
    np.testing.assert_array_equal(dx.get(), dx_mixed.get())


def test_grad_functions_unbatched(rng):
    x = rng.uniform(-1, 1, size=(8, 37)).astype(np.float32)
    w = rng.uniform(-1, 1, size=(12, 8, 3)).astype(np.float32)
    dy = rng.uniform(-1, 1, size=(12, 37)).astype(np.float32)
    dx = clconv.grad.conv1d_input(x.shape, w, dy, padding=1)
    dw = clconv.grad.conv1d_weight(x, w.shape, dy, padding=1)
    assert dx.shape == x.shape
    assert_close(dx, conv1d_input_grad_ref(x.shape, w, dy, 1, 1), np.float32, "conv1d_input")
    assert_close(dw, conv1d_weight_grad_ref(x, w.shape, dy, 1, 1), np.float32, "conv1d_weight")


def test_grad_functions_match_module_backward(device, rng):
    """Module backward and the functional gradients agree bit for bit on the same data."""
    case = c(padding="same", k=4, dilation=3)
    strategy = matrix_strategy(case)
    m = make_module(case, device, strategy)
    x = make_input(rng, case)
    _, dy, dx = forward_backward(m, x, strategy, rng)
    queue = m.weight.data.queue
    w_d, x_d, dy_d = (cla.to_device(queue, a) for a in (m.weight.numpy(), x, dy))
    with clconv.params.override(strategy=strategy):
        dx_f = clconv.grad.conv1d_input(x.shape, w_d, dy_d, padding="same", dilation=3).get()
        dw_f = clconv.grad.conv1d_weight(x_d, m.weight.shape, dy_d, padding="same", dilation=3).get()
    np.testing.assert_array_equal(dx, dx_f)
    np.testing.assert_array_equal(m.weight.grad.get(), dw_f)


@pytest.mark.parametrize("mode", ["zeros", "circular"])
def test_input_gradient_rows_longer_than_the_cache(mode, device, rng):
    """dy of one sample beyond 16 MB: the input-gradient kernel walks channel tiles before positions."""
    x = rng.standard_normal((1, 3, 1_100_000)).astype(np.float32)
    w = rng.standard_normal((4, 3, 5)).astype(np.float32)
    m = clconv.Conv1d(3, 4, 5, padding=2, stride=1, padding_mode=mode, bias=False, device=device)
    m.load_state_dict({"weight": w})
    g = rng.standard_normal(m(x).shape).astype(np.float32)
    dx = m.backward(g, input_grad=True)
    assert_close(dx, conv1d_input_grad_ref(x.shape, w, g, 1, 2, 1, 1, mode), "float32")


# (N, C_in, L, C_out, K, stride, padding, dilation, groups, padding_mode): stride phases of unequal tap
# counts and lengths, dilations, padding modes folded back, groups
PHASE_CASES = [(2, 6, 37, 5, 3, 2, 1, 1, 1, "zeros"), (3, 8, 101, 12, 8, 4, 2, 1, 1, "zeros"),
               (2, 4, 40, 6, 4, 3, 0, 2, 2, "zeros"), (2, 8, 90, 8, 5, 2, 3, 3, 1, "zeros"),
               (1, 6, 61, 9, 7, 3, 3, 1, 3, "reflect"), (2, 5, 33, 7, 2, 2, 0, 1, 1, "circular")]


@pytest.mark.parametrize("case", PHASE_CASES, ids=[f"phases{i}" for i in range(len(PHASE_CASES))])
def test_register_input_gradient_in_stride_phases(case, device, rng):
    """Strided input gradients as one register-strategy forward per stride phase, whatever their size."""
    n, cin, length, cout, k, s, p, d, g, mode = case
    x = rng.standard_normal((n, cin, length)).astype(np.float32)
    w = rng.standard_normal((cout, cin // g, k)).astype(np.float32)
    m = clconv.Conv1d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g, padding_mode=mode, bias=False,
                      device=device)
    m.load_state_dict({"weight": w})
    with clconv.params.override(strategy="register", PHASE_DEPTH_MIN=1, PHASE_FLOPS_MIN=1):
        dy = rng.standard_normal(m(x).shape).astype(np.float32)
        dx = m.backward(dy, input_grad=True)
        geo = m._saved[0]
        plan = input_gradient_plan(device, geo, np.float32)
    assert plan.info.get("phases") == s and all(step.kernel.function_name in ("flip_weights", "conv1d_forward", "pad_fold")
                                                for step in plan.steps)
    assert_close(dx, conv1d_input_grad_ref(x.shape, w.astype(np.float64), dy.astype(np.float64), s, p, d, g, mode),
                 np.float32, "input grad")
