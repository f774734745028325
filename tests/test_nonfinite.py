"""NaN and +-Inf in the input or in grad_output: every result's NaN, +Inf and -Inf masks equal the reference's.

A value planted in x reaches y and the weight gradient; one planted in dy reaches the input, weight and bias
gradients. Kernels must neither make non-finite values from products that the formula does not have (a
lane past a row's end, a lane of a whole last vector that the vector before already counted, a channel
past the last of a group read with weight 0: 0 x Inf = NaN) nor lose them. Padding zeros are products of
the formula: Inf in dy times a zero of the padding is NaN in torch too.

The reference is torch in float64 (on one thread) where it is importable, else reference.py: float64,
written from the formula with explicit index maps, summing every product (padding zeros included) and
multiplying by no masks; test_numpy_reference_masks_match_torch checks that the two agree. The finite
entries are compared with the tolerance table, as everywhere else.

Each variant forces the kernel path it is named after with clconv.params.override, so that small shapes
select it on any device, and checks that the kernels it names ran. Lengths give L_out = 1 (mod 16): the last
vector of a row has one valid lane whatever VEC is, so position L_out - 2 lies in the lanes that a staged
weight gradient's whole last vector has already counted, and x's last positions are read by lanes past the
row's end. Places: first (sample 0, channel 0, position 0), mid (N/2, C/2, L/2), end2 (dy only: the last
sample, the next-to-last channel, position L_out - 2) and last (the last element).
"""

from dataclasses import dataclass, field

import numpy as np
import pytest

import clconv
from conftest import DTYPE_IDS, assert_close
from reference import (conv1d_bias_grad_ref, conv1d_input_grad_ref, conv1d_ref, conv1d_weight_grad_ref,
                       conv_transpose1d_ref)

try:
    import torch
except ImportError:  # the float64 numpy reference takes over
    torch = None

# Parameters of the generic register paths: no staged copies, no special kernels; vectors of 4 lanes (builds
# with 16 take several times as long; the variants that keep the device's own width cover those).
PLAIN = dict(strategy="register", STAGE_MIN=None, STAGE_FLOPS=None, CI_LANES_MIN=None, AS_FORWARD=False, NT_STORE_MIN=None,
             DW_ROWS=None, ROWS_CI=None, ALIGNED_TAPS=None, SLIDE_K_MIN=None, LANES_L_MAX=None, VEC=4)


@dataclass(frozen=True)
class Variant:
    name: str
    cin: int
    cout: int
    k: int
    length: int
    n: int = 2
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    mode: str = "zeros"
    transposed: bool = False
    output_padding: int = 0
    params: dict = field(default_factory=dict, hash=False, compare=False)
    kernels: tuple = ()  # kernels that must run (the path the variant is named after)
    dtypes: tuple = ("float32",)


def v(name, cin, cout, k, length, params, kernels, **kw):
    return Variant(name, cin, cout, k, length, params=params, kernels=tuple(kernels), **kw)


# (the sliding and output-lane kernels off, as in PLAIN, so that each variant runs the kernels it names)
SPECIAL_OFF = dict(SLIDE_K_MIN=None, LANES_L_MAX=None)
STAGED = dict(strategy="register", STAGE_MIN=1, CI_LANES_MIN=None, AS_FORWARD=True, NT_STORE_MIN=None, DW_ROWS=None,
              **SPECIAL_OFF)
BLOCKED = dict(strategy="register", CI_LANES_MIN=16, STAGE_FLOPS=1, AS_FORWARD=True, NT_STORE_MIN=None, **SPECIAL_OFF)
ALIGNED = dict(strategy="register", NT_STORE_MIN=1, ALIGNED_TAPS=15, ALIGNED_CO=8, ALIGNED_RUN=16, DW_ROWS=None,
               CI_LANES_MIN=None, **SPECIAL_OFF)
ROWS = dict(PLAIN, ROWS_CI=4, ROWS_CO=1, ROWS_SEG=16)

VARIANTS = [
    # generic register kernels (L_out 33)
    v("plain-zeros", 3, 6, 3, 33, PLAIN, ["conv1d_forward", "conv1d_backward_data", "conv1d_backward_weight_partial"],
      padding=1),
    v("plain-reflect", 3, 6, 3, 33, PLAIN, ["conv1d_forward", "conv1d_backward_data", "pad_fold"],
      padding=2, dilation=2, mode="reflect"),
    # strides 2..5, unstaged, every padding mode (L_out 17: x's last positions are read by few windows or
    # none, but by lanes past the row's end, and circular padding wraps x's first ones there)
    v("strided-s2", 4, 6, 5, 34, PLAIN, ["conv1d_backward_weight_partial"], stride=2, padding=2),
    v("strided-s3", 4, 6, 5, 51, PLAIN, ["conv1d_backward_weight_partial", "pad_fold"], stride=3, padding=2,
      mode="reflect"),
    v("strided-s4", 4, 6, 5, 68, PLAIN, ["conv1d_backward_weight_partial", "pad_fold"], stride=4, padding=2,
      mode="circular"),
    v("strided-s5", 4, 6, 5, 85, PLAIN, ["conv1d_backward_weight_partial", "pad_fold"], stride=5, padding=2,
      mode="replicate"),
    # the strided layer (C_in 32, K 5, stride 2) and grouped layer (C_in 128, groups 4, K 3), with
    # the device's own parameters (register strategy)
    v("strided-c32", 32, 6, 5, 34, dict(strategy="register"), [], stride=2, padding=2),
    v("grouped-c128", 128, 8, 3, 17, dict(strategy="register"), [], groups=4, padding=1),
    # staged input (pad_rows.cl) for a deep reduction, C_in_g x K = 272 (the staged layer, shorter):
    # the weight gradient's last whole vector; the input gradient as a forward convolution of dy with
    # flipped weights
    v("staged", 16, 6, 17, 33, STAGED, ["pad_rows", "conv1d_forward", "conv1d_backward_weight_partial",
                                        "flip_weights"], padding=8, dtypes=("float32", "float16")),
    v("staged-replicate", 16, 6, 17, 33, STAGED, ["pad_rows", "conv1d_backward_weight_partial", "pad_fold"],
      padding=8, mode="replicate", dtypes=("float64",)),
    # staged rows split into stride phases (forward and weight gradient)
    v("staged-phases", 4, 6, 5, 51, dict(STAGED, STAGE_FLOPS=1), ["pad_rows", "conv1d_backward_weight_partial"],
      stride=3, padding=2, mode="reflect"),
    # weight gradient with lanes along input channels (pad_rows_blocked)
    v("chanblock", 32, 6, 3, 33, BLOCKED, ["pad_rows_blocked", "conv1d_backward_weight_blocked"], padding=1),
    v("chanblock-grouped", 64, 8, 3, 34, BLOCKED, ["pad_rows_blocked", "conv1d_backward_weight_blocked"],
      groups=4, stride=2, padding=1, mode="circular", dtypes=("float16",)),
    # depthwise: the sample-block forward (even batch) and the generic one (odd batch); the weight gradient
    # sums the bias gradient too (one input channel per group, all taps in one tile)
    v("depthwise-even", 4, 4, 3, 33, dict(PLAIN, DW_ROWS=4, TILE_K=3, ACC_MAX=None),
      ["conv1d_forward_depthwise", "conv1d_backward_weight_partial"], n=4, groups=4, padding=1),
    v("depthwise-odd", 6, 6, 3, 33, dict(PLAIN, DW_ROWS=4), ["conv1d_forward"], n=3, groups=6, padding=1,
      mode="reflect"),
    # a single input channel (the C_in 1, K 10, stride 5): the realigned forward over staged phases
    # (non-temporal stores) with the bias gradient from the weight pass, unstaged; then both over staged phases
    v("cin1-aligned", 1, 8, 10, 94, dict(ALIGNED, TILE_K=10, ACC_MAX=None),
      ["conv1d_forward_aligned", "conv1d_backward_weight_partial"], stride=5, dtypes=("float32", "float64")),
    v("cin1-staged", 1, 8, 10, 94, dict(PLAIN, TILE_K=10, ACC_MAX=None, STAGE_FLOPS=1),
      ["pad_rows", "conv1d_forward", "conv1d_backward_weight_partial"], stride=5),
    # __local tiles (the strategy of GPUs)
    # (the input gradient in stride phases through the forward kernel; with a phase no tap reaches, the
    # gather kernel)
    v("local", 3, 6, 4, 33, dict(strategy="local", AS_FORWARD=False),
      ["conv1d_forward", "conv1d_backward_weight_local", "bias_grad_tree"], stride=2, padding=2,
      mode="replicate"),
    # the depthwise weight gradient of the local strategy: a sample's last, partial vector of positions;
    # two output channels per input channel, dilated; taps in two tiles, the second past K
    v("local-depthwise", 4, 8, 5, 33, dict(strategy="local"), ["conv1d_backward_weight_depthwise"], groups=4,
      padding=4, dilation=2, mode="reflect", dtypes=("float32", "float64", "float16")),
    v("local-depthwise-tiles", 3, 6, 19, 33, dict(strategy="local"), ["conv1d_backward_weight_depthwise"],
      groups=3, padding=9),
    # conv1d_forward_depthwise_local, forward and stride-1 input gradient (two input channels per group,
    # flipped weights): a span past the row's end; combs read as vectors (K = 15), dilated over reflected edges
    v("local-depthwise-forward", 4, 8, 15, 33, dict(strategy="local", AS_FORWARD=True),
      ["conv1d_forward_depthwise_local"], groups=4, padding=7, dtypes=("float32", "float16")),
    v("local-depthwise-forward-dilated", 5, 5, 4, 33, dict(strategy="local", AS_FORWARD=True),
      ["conv1d_forward_depthwise_local"], groups=5, padding=3, dilation=2, mode="reflect"),
    v("local-phase-without-taps", 3, 5, 2, 31, dict(strategy="local"), ["conv1d_backward_data"], stride=3,
      padding=1),
    # input gradient with whole rows per work-item: 6 output channels in groups of 5 and a last one of 1 (K 4),
    # of 4 and a last one of 2 (K 5), with the host's groups of min(C_out_g, 20 // K)
    v("data-rows", 2, 6, 4, 35, ROWS, ["conv1d_backward_data_rows"], stride=2, padding=1),
    v("data-rows-s1", 2, 6, 5, 33, ROWS, ["conv1d_backward_data_rows"], padding=4, dilation=2,
      dtypes=("float64",)),
    # conv_transpose1d (ConvTranspose1d: its forward is an input gradient, its backward a forward and a
    # weight gradient)
    v("transposed-s2", 4, 6, 4, 17, dict(strategy="register"), ["conv1d_backward_data"], transposed=True, stride=2,
      padding=1, output_padding=1),
    # short rows with lanes along output channels (13 positions per row, 26 across the batch in tiles of 6):
    # the forward and the input gradient as a forward, both over lane_weights' copy
    v("output-lanes", 16, 16, 3, 13, dict(strategy="register", LANES_L_MAX=64, LANES_FLOPS_MIN=1, LANES_POS=6, VEC=4,
                                          AS_FORWARD=True, SLIDE_K_MIN=None), ["lane_weights", "conv1d_forward_channel_lanes"],
      padding=1, dtypes=("float32", "float16")),
    # long kernels with their taps VEC apart, sliding through registers: forward and weight gradient
    v("slide", 1, 4, 25, 60, dict(strategy="register", SLIDE_K_MIN=12, LANES_L_MAX=None, VEC=4),
      ["conv1d_forward_slide", "conv1d_backward_weight_slide"], padding=12),
    # a large-stride input gradient in columns: the pointwise product, then the overlap-add
    v("columns", 3, 8, 12, 60, dict(PLAIN, COLS_STRIDE_MIN=8), ["lane_weights", "conv1d_backward_data_cols"],
      stride=8, padding=2),
    v("transposed-s1", 4, 6, 3, 17, dict(PLAIN, AS_FORWARD=True), ["flip_weights"], transposed=True, padding=1),
]

# (tensor, place): rows and positions a value is planted at
PLACES = [("x", "first"), ("x", "mid"), ("x", "last"), ("dy", "first"), ("dy", "mid"), ("dy", "end2"), ("dy", "last")]
VALUES = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}


def plant_index(shape, place):
    n, c, length = shape
    return {"first": (0, 0, 0), "mid": (n // 2, c // 2, length // 2),
            "end2": (n - 1, max(0, c - 2), max(0, length - 2)), "last": (n - 1, c - 1, length - 1)}[place]


CASES = [(var, dt, value, tensor, place) for var in VARIANTS for dt in var.dtypes for value in VALUES
         for tensor, place in PLACES]


def case_id(case):
    var, dt, value, tensor, place = case
    return f"{var.name}-{value}-{tensor}-{place}-{DTYPE_IDS[np.dtype(dt)]}"


# ---------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------

def reference(var, x, w, b, dy):
    """Float64 (y, dx, dw, db) of var's layer on x, with output gradient dy: torch's, else reference.py's."""
    x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))
    if torch is not None:
        return _torch_reference(var, x64, w64, b64, dy64)
    return numpy_reference(var, x64, w64, b64, dy64)


def numpy_reference(var, x64, w64, b64, dy64):
    with np.errstate(invalid="ignore", over="ignore"):
        s, p, d, g = var.stride, var.padding, var.dilation, var.groups
        if var.transposed:
            y = conv_transpose1d_ref(x64, w64, b64, s, p, var.output_padding, g, d)
            dx = conv1d_ref(dy64, w64, None, s, p, d, g)
            dw = conv1d_weight_grad_ref(dy64, w64.shape, x64, s, p, d, g)
            return y, dx, dw, conv1d_bias_grad_ref(dy64)
        y = conv1d_ref(x64, w64, b64, s, p, d, g, var.mode)
        return (y, conv1d_input_grad_ref(x64.shape, w64, dy64, s, p, d, g, var.mode),
                conv1d_weight_grad_ref(x64, w64.shape, dy64, s, p, d, g, var.mode), conv1d_bias_grad_ref(dy64))


def _torch_reference(var, x, w, b, dy):
    """torch's answer, on one thread: tiny float64 convolutions on a thread pool that the test processes
    share the cores with take a hundred times as long."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _torch_grads(var, x, w, b, dy)
    finally:
        torch.set_num_threads(threads)


def _torch_grads(var, x, w, b, dy):
    if var.transposed:
        layer = torch.nn.ConvTranspose1d(var.cin, var.cout, var.k, stride=var.stride, padding=var.padding,
                                         output_padding=var.output_padding, groups=var.groups,
                                         dilation=var.dilation, dtype=torch.float64)
    else:
        layer = torch.nn.Conv1d(var.cin, var.cout, var.k, stride=var.stride, padding=var.padding,
                                dilation=var.dilation, groups=var.groups, padding_mode=var.mode, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
        layer.bias.copy_(torch.from_numpy(b))
    xt = torch.from_numpy(x).requires_grad_()
    y = layer(xt)
    y.backward(torch.from_numpy(dy))
    return (y.detach().numpy(), xt.grad.numpy(), layer.weight.grad.numpy(), layer.bias.grad.numpy())


def make_data(var, dtype, value, tensor, place):
    """(w, b, x, dy) of a case, seeded by the variant (every planting of a variant sees the same numbers)."""
    rng = np.random.default_rng(sum(map(ord, var.name)) + 7 * len(np.dtype(dtype).name))
    w_shape = (var.cin, var.cout // var.groups, var.k) if var.transposed else (var.cout, var.cin // var.groups, var.k)
    w = rng.uniform(-1, 1, w_shape).astype(dtype)
    b = rng.uniform(-1, 1, var.cout).astype(dtype)
    x = rng.uniform(-1, 1, (var.n, var.cin, var.length)).astype(dtype)
    dy = rng.uniform(-1, 1, (var.n, var.cout, output_length(var))).astype(dtype)
    planted = x if tensor == "x" else dy
    planted[plant_index(planted.shape, place)] = VALUES[value]
    return w, b, x, dy


def output_length(var):
    if var.transposed:
        return (var.length - 1) * var.stride - 2 * var.padding + var.dilation * (var.k - 1) + var.output_padding + 1
    return (var.length + 2 * var.padding - var.dilation * (var.k - 1) - 1) // var.stride + 1


# ---------------------------------------------------------------------------
# the check
# ---------------------------------------------------------------------------

def assert_same_nonfinite(actual, ref, dtype, what):
    """NaN, +Inf and -Inf where the reference has them, and nowhere else; the finite entries close."""
    actual = np.asarray(actual).astype(np.float64)
    assert actual.shape == ref.shape, f"{what}: shape {actual.shape} != reference {ref.shape}"
    problems = []
    for mask in (np.isnan, np.isposinf, np.isneginf):
        wrong = mask(actual) != mask(ref)
        if wrong.any():
            first = tuple(int(i) for i in np.argwhere(wrong)[0])
            problems.append(f"{mask.__name__}: {int(wrong.sum())} entries differ ({int(mask(actual).sum())} here, "
                            f"{int(mask(ref).sum())} in the reference), first at {first}: got {actual[first]!r}, "
                            f"expected {ref[first]!r}")
    assert not problems, f"{what}: " + "; ".join(problems)
    finite = np.isfinite(ref)
    assert_close(actual[finite], ref[finite], dtype, f"{what} (finite entries)")


@pytest.fixture
def launched(device, monkeypatch):
    """The names of the kernels clconv launches on the device."""
    names = set()
    launch = device.launch

    def recording(kernel, *args, **kwargs):
        names.add(kernel.function_name)
        return launch(kernel, *args, **kwargs)

    monkeypatch.setattr(device, "launch", recording)
    return names


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_nonfinite_masks(case, device, launched):
    var, dt, value, tensor, place = case
    dtype = np.dtype(dt)
    if dtype == np.float64 and not device.has_fp64:
        pytest.skip("device has no fp64")
    w, b, x, dy = make_data(var, dtype, value, tensor, place)
    layer = clconv.ConvTranspose1d if var.transposed else clconv.Conv1d
    extra = dict(output_padding=var.output_padding) if var.transposed else dict(padding_mode=var.mode)
    m = layer(var.cin, var.cout, var.k, stride=var.stride, padding=var.padding, dilation=var.dilation,
              groups=var.groups, device=device, dtype=dtype, **extra)
    m.load_state_dict({"weight": w, "bias": b})
    with clconv.params.override(**var.params):
        y = m(x)
        dx = m.backward(dy)
    missing = set(var.kernels) - launched
    assert not missing, f"{var.name} did not run {sorted(missing)} (ran {sorted(launched)})"
    ref = reference(var, x, w, b, dy)
    for what, got, expected in zip(("y", "dx", "dw", "db"), (y, dx, m.weight.grad.get(), m.bias.grad.get()), ref):
        assert_same_nonfinite(got, expected, dtype, f"{case_id(case)} {what}")


@pytest.mark.skipif(torch is None, reason="torch is not installed")
@pytest.mark.parametrize("var", VARIANTS, ids=[var.name for var in VARIANTS])
def test_numpy_reference_masks_match_torch(var):
    """reference.py, which stands in for torch where torch is missing, has torch's NaN and Inf masks."""
    for value, tensor, place in (("inf", "x", "last"), ("nan", "x", "first"), ("-inf", "dy", "end2"),
                                 ("inf", "dy", "first"), ("nan", "dy", "mid")):
        w, b, x, dy = (a.astype(np.float64) for a in make_data(var, np.float64, value, tensor, place))
        for what, ours, theirs in zip(("y", "dx", "dw", "db"), numpy_reference(var, x, w, b, dy),
                                      _torch_reference(var, x, w, b, dy)):
            for mask in (np.isnan, np.isposinf, np.isneginf):
                assert np.array_equal(mask(ours), mask(theirs)), f"{value}-{tensor}-{place} {what} {mask.__name__}"
            finite = np.isfinite(theirs)
            np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-9, atol=1e-9)
