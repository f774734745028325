"""Forward pass of clconv.Conv1d / clconv.conv1d against the float64 reference.

The matrix varies one or two dimensions at a time from a base configuration
(each distinct K/stride/dilation/groups/channels/mode/bias/dtype/strategy is a
kernel compile); lengths and batch sizes are runtime values and vary freely.
Every case runs on every tested device with both kernel strategies.
"""

from dataclasses import dataclass, replace

import numpy as np
import pyopencl.array as cla
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clconv
from conftest import DTYPE_IDS, assert_close
from reference import conv1d_ref


@dataclass(frozen=True)
class Case:
    n: int = 2
    cin: int = 8
    cout: int = 12
    k: int = 3
    length: int = 37
    stride: int = 1
    padding: object = 1
    dilation: int = 1
    groups: int = 1
    bias: bool = True
    mode: str = "zeros"
    dtype: str = "float32"
    unbatched: bool = False

    @property
    def id(self):
        pad = self.padding if not isinstance(self.padding, tuple) else "t" + "_".join(map(str, self.padding))
        parts = [f"c{self.cin}o{self.cout}", f"g{self.groups}", f"d{self.dilation}", f"k{self.k}",
                 f"L{self.length}", f"s{self.stride}", f"pad{pad}", self.mode]
        if self.n != 2:
            parts.insert(0, f"n{self.n}")
        if not self.bias:
            parts.append("nobias")
        if self.unbatched:
            parts.append("unbatched")
        parts.append(DTYPE_IDS[np.dtype(self.dtype)])
        return "-".join(parts)


BASE = Case()


def c(**kw):
    return replace(BASE, **kw)


F32_CASES = [
    BASE,
    # stride / dilation
    c(stride=2), c(stride=3), c(stride=4),
    c(dilation=2), c(dilation=3), c(dilation=4, length=40),
    c(groups=4, dilation=3, k=5, stride=2),
    c(k=5, stride=3, dilation=2, padding=2),
    c(stride=4, dilation=4, padding=0, length=60),
    # explicit padding (runtime value)
    c(padding=0), c(padding=2), c(padding=5), c(padding=(2,)), c(padding=7, length=5),
    # 'same' / 'valid': odd, even, dilated-even (asymmetric: extra on the right)
    c(padding="same"), c(padding="same", k=4), c(padding="same", k=4, dilation=3),
    c(padding="same", k=5, dilation=2), c(padding="same", k=2), c(padding="same", k=6, dilation=2),
    c(padding="valid", k=5), c(padding="valid", k=4, dilation=3, stride=2),
    # padding modes
    *[c(mode=m) for m in ("reflect", "replicate", "circular")],
    *[c(mode=m, k=5, dilation=2, padding=4) for m in ("reflect", "replicate", "circular")],
    *[c(mode=m, k=4, dilation=3, padding="same") for m in ("reflect", "replicate", "circular")],
    c(mode="reflect", padding=5, length=6),       # pad = L - 1 (largest legal)
    c(mode="circular", padding=5, length=5),      # pad = L (wraps exactly once)
    c(mode="replicate", padding=6, length=2),     # pad much larger than L
    c(mode="reflect", groups=2, stride=2, k=5, padding=3),
    c(mode="circular", groups=4, stride=3, padding=2, bias=False),
    c(mode="replicate", padding=2, length=300),
    # groups
    c(groups=2), c(groups=4),
    c(cin=4, cout=8, groups=4),                   # depthwise, multiplier 2
    c(cin=8, cout=8, groups=8, k=5, padding=2),   # depthwise, multiplier 1
    c(groups=2, stride=2, dilation=2, k=5),
    c(groups=4, bias=False),
    c(groups=2, k=1, padding=0),
    # bias
    c(bias=False), c(bias=False, stride=2, length=100),
    # C_in = 1, K = 1
    c(cin=1), c(cin=1, cout=1), c(cin=1, cout=4, k=5, stride=2, padding=0),
    c(k=1, padding=0), c(k=1, padding=0, stride=2), c(k=1, padding=1),
    # kernels wider than a tile
    c(k=17, padding=0, length=50), c(k=40, padding=0, length=120),
    c(k=40, dilation=2, padding=5, length=100), c(k=33, stride=3, padding=16, length=200),
    # lengths (runtime): tiny, around powers of two, long
    c(length=1), c(length=2), c(length=3), c(length=63), c(length=64), c(length=65),
    c(length=127), c(length=300), c(length=1000),
    # L_out = 1
    c(k=5, length=5, padding=0), c(k=3, stride=4, length=6, padding=0), c(k=17, length=17, padding=8, stride=3),
    # more channels / odd channel counts (partial tiles)
    c(cin=19, cout=37, length=300), c(cout=37), c(cin=32, cout=64, stride=2, length=130),
    c(cin=3, cout=5, length=29), c(cin=6, cout=33, groups=3, k=7, padding=3, length=77),
    # batch sizes (runtime)
    c(n=1), c(n=5, length=53), c(n=0), c(n=0, groups=4),
    # unbatched input
    c(unbatched=True), c(unbatched=True, groups=4, stride=2),
]

_SUBSET = [
    BASE, c(stride=2), c(dilation=3), c(padding="same", k=4, dilation=3),
    c(mode="reflect"), c(mode="replicate", k=5, dilation=2, padding=4), c(mode="circular"),
    c(cin=4, cout=8, groups=4), c(bias=False), c(k=17, padding=0, length=50),
    c(cin=19, cout=37, length=300), c(unbatched=True), c(n=0),
]
F64_CASES = [replace(x, dtype="float64") for x in _SUBSET]
F16_CASES = [replace(x, dtype="float16") for x in _SUBSET]

ALL_CASES = F32_CASES + F64_CASES + F16_CASES
assert len({x.id for x in ALL_CASES}) == len(ALL_CASES), "duplicate case ids"


def make_module(case, device, strategy):
    with clconv.params.override(strategy=strategy):
        return clconv.Conv1d(case.cin, case.cout, case.k, stride=case.stride, padding=case.padding,
                             dilation=case.dilation, groups=case.groups, bias=case.bias,
                             padding_mode=case.mode, device=device, dtype=np.dtype(case.dtype))


def run(m, x, strategy):
    with clconv.params.override(strategy=strategy):
        return m(x)


def reference_for(m, x, case):
    w = np.asarray(m.weight).astype(np.float64)
    b = None if m.bias is None else np.asarray(m.bias).astype(np.float64)
    return conv1d_ref(x.astype(np.float64), w, b, case.stride, case.padding, case.dilation,
                      case.groups, case.mode)


def make_input(rng, case):
    shape = (case.cin, case.length) if case.unbatched else (case.n, case.cin, case.length)
    return rng.uniform(-1.0, 1.0, size=shape).astype(case.dtype)


def check_case(case, device, strategy, rng):
    dtype = np.dtype(case.dtype)
    if dtype == np.float64 and not device.has_fp64:
        pytest.skip("device has no fp64")
    m = make_module(case, device, strategy)
    x = make_input(rng, case)
    x_before = x.copy()
    y = run(m, x, strategy)
    assert isinstance(y, np.ndarray)
    assert y.dtype == dtype
    np.testing.assert_array_equal(x, x_before, err_msg="input was modified")
    ref = reference_for(m, x, case)
    assert_close(y, ref, dtype)


@pytest.mark.parametrize("case", ALL_CASES, ids=[x.id for x in ALL_CASES])
def test_forward_matrix(case, device, strategy, rng):
    check_case(case, device, strategy, rng)


# ---------------------------------------------------------------------------
# input layouts
# ---------------------------------------------------------------------------

def _layouts(rng):
    base = rng.uniform(-1, 1, size=(2, 8, 74)).astype(np.float32)
    nlc = np.ascontiguousarray(rng.uniform(-1, 1, size=(2, 37, 8)).astype(np.float32))
    wide = rng.uniform(-1, 1, size=(2, 16, 37)).astype(np.float32)
    return {
        "step2-L": base[:, :, ::2],
        "transposed-NLC": nlc.transpose(0, 2, 1),
        "fortran": np.asfortranarray(base[:, :, :37]),
        "reversed-L": base[:, :, ::-1][:, :, :37],
        "step2-C": wide[:, ::2, :],
        "unbatched-transposed": np.ascontiguousarray(nlc[0]).T,
        "readonly": np.frombuffer(base[:, :, :37].tobytes(), dtype=np.float32).reshape(2, 8, 37),
    }


@pytest.mark.parametrize("layout", ["step2-L", "transposed-NLC", "fortran", "reversed-L", "step2-C",
                                    "unbatched-transposed", "readonly"])
def test_noncontiguous_input(layout, device, strategy, rng):
    x = _layouts(rng)[layout]
    assert x.shape[-2:] == (8, 37)
    if layout != "readonly":
        assert not x.flags.c_contiguous
    x_before = x.copy()
    m = make_module(BASE, device, strategy)
    y = run(m, x, strategy)
    np.testing.assert_array_equal(x, x_before)
    assert_close(y, reference_for(m, np.ascontiguousarray(x), BASE), np.float32)


def test_output_is_fresh_contiguous_array(device, strategy, rng):
    m = make_module(BASE, device, strategy)
    x = make_input(rng, BASE)
    y1 = run(m, x, strategy)
    y2 = run(m, x, strategy)
    assert y1.flags.c_contiguous and y1.flags.writeable
    assert y1.shape == (2, 12, 37)
    np.testing.assert_array_equal(y1, y2)  # deterministic
    y1[...] = 0
    np.testing.assert_array_equal(run(m, x, strategy), y2)


# ---------------------------------------------------------------------------
# device arrays in, device arrays out
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", [BASE, c(unbatched=True), c(groups=4, stride=2, mode="reflect"), c(n=0)],
                         ids=lambda x: x.id)
def test_device_array_input(case, device, strategy, rng):
    m = make_module(case, device, strategy)
    queue = m.weight.data.queue
    x = make_input(rng, case)
    x_dev = cla.to_device(queue, x)
    y = run(m, x_dev, strategy)
    assert isinstance(y, cla.Array)
    assert y.context == m.weight.data.context
    assert y.dtype == np.float32
    np.testing.assert_array_equal(x_dev.get(), x, err_msg="device input was modified")
    assert_close(y.get(), reference_for(m, x, case), np.float32)


def test_device_array_matches_numpy_path(device, strategy, rng):
    m = make_module(BASE, device, strategy)
    x = make_input(rng, BASE)
    y_host = run(m, x, strategy)
    y_dev = run(m, cla.to_device(m.weight.data.queue, x), strategy)
    np.testing.assert_array_equal(y_dev.get(), y_host)


# ---------------------------------------------------------------------------
# functional form
# ---------------------------------------------------------------------------

FUNCTIONAL = [
    # (cin, cout, k, groups, stride, padding, dilation, bias)
    (8, 12, 3, 1, 1, 1, 1, True),
    (8, 12, 3, 1, 2, (2,), 1, False),
    (8, 12, 4, 1, 1, "same", 3, True),
    (8, 12, 5, 4, 1, "valid", 2, True),
    (4, 8, 3, 4, (3,), 0, (2,), True),
]


@pytest.mark.parametrize("cfg", FUNCTIONAL, ids=lambda cfg: "-".join(str(v) for v in cfg))
def test_functional_numpy_default_device(cfg, rng):
    cin, cout, k, g, s, p, d, has_bias = cfg
    x = rng.uniform(-1, 1, size=(3, cin, 41)).astype(np.float32)
    w = rng.uniform(-1, 1, size=(cout, cin // g, k)).astype(np.float32)
    b = rng.uniform(-1, 1, size=cout).astype(np.float32) if has_bias else None
    y = clconv.conv1d(x, w, b, stride=s, padding=p, dilation=d, groups=g)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    assert_close(y, conv1d_ref(x, w, b, s, p, d, g), np.float32)
    # keyword names as in torch.nn.functional.conv1d
    y2 = clconv.conv1d(input=x, weight=w, bias=b, stride=s, padding=p, dilation=d, groups=g)
    np.testing.assert_array_equal(y, y2)
    # unbatched
    assert_close(clconv.conv1d(x[0], w, b, s, p, d, g), conv1d_ref(x[0], w, b, s, p, d, g), np.float32)


@pytest.mark.parametrize("cfg", FUNCTIONAL[:4], ids=lambda cfg: "-".join(str(v) for v in cfg))
def test_functional_device_arrays(cfg, device, strategy, rng):
    cin, cout, k, g, s, p, d, has_bias = cfg
    queue = clconv.Conv1d(1, 1, 1, device=device).weight.data.queue
    x = rng.uniform(-1, 1, size=(2, cin, 41)).astype(np.float32)
    w = rng.uniform(-1, 1, size=(cout, cin // g, k)).astype(np.float32)
    b = rng.uniform(-1, 1, size=cout).astype(np.float32) if has_bias else None
    args = [cla.to_device(queue, a) if a is not None else None for a in (x, w, b)]
    with clconv.params.override(strategy=strategy):
        y = clconv.conv1d(*args, stride=s, padding=p, dilation=d, groups=g)
    assert isinstance(y, cla.Array)
    assert_close(y.get(), conv1d_ref(x, w, b, s, p, d, g), np.float32)


def test_functional_f64(fp64_device, rng):
    queue = clconv.Conv1d(1, 1, 1, device=fp64_device).weight.data.queue
    x = rng.uniform(-1, 1, size=(2, 4, 30))
    w = rng.uniform(-1, 1, size=(6, 2, 3))
    b = rng.uniform(-1, 1, size=6)
    y = clconv.conv1d(cla.to_device(queue, x), cla.to_device(queue, w), cla.to_device(queue, b),
                      stride=2, padding=1, groups=2)
    assert y.dtype == np.float64
    assert_close(y.get(), conv1d_ref(x, w, b, 2, 1, 1, 2), np.float64)


# ---------------------------------------------------------------------------
# property test over runtime values only (no new kernel specialisations)
# ---------------------------------------------------------------------------

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 3), length=st.integers(1, 130), padding=st.integers(0, 6),
       unbatched=st.booleans(), seed=st.integers(0, 2 ** 31))
def test_runtime_values_property(device, strategy, n, length, padding, unbatched, seed):
    case = c(groups=2, k=5, stride=2, dilation=2, length=length, padding=padding, n=n, unbatched=unbatched)
    if length + 2 * padding < 9:  # dilated kernel span is 9
        return
    check_case(case, device, strategy, np.random.default_rng(seed))


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_rows_longer_than_the_cache(mode, device, rng):
    """One sample of 18 MB (beyond the 16 MB the forward keeps a sample's rows within): the register
    kernel then walks channel tiles before positions; results must not change."""
    x = rng.standard_normal((1, 3, 1_500_000)).astype(np.float32)
    w = rng.standard_normal((4, 3, 5)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    m = clconv.Conv1d(3, 4, 5, padding=2, padding_mode=mode, device=device)
    m.load_state_dict({"weight": w, "bias": b})
    assert_close(m(x), conv1d_ref(x, w, b, padding=2, padding_mode=mode), "float32")
