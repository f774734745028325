"""Unusual devices, simulated on the real one, and the library's limits.

The Device attributes the library plans with (has_fp64, local_mem_size, max_work_group_size,
buffer_limit) are plain attributes: each test patches them on the tested device with monkeypatch (or a
fixture that restores them in `finally`), so the rest of the session sees the device unchanged.

Checked here:
  * no fp64: float64 refused with a RuntimeError naming fp64; float32 unaffected;
  * small local memory: the local strategy shrinks its tiles or falls back, still exact, and no kernel
    it builds needs more __local memory than the device has;
  * max work-group size 1 (and 2): both strategies exact, no launch larger than the device allows;
  * kernel build failure: RuntimeError carrying the compiler log, the process and device still usable;
  * buffer_limit: inputs/outputs larger than it are processed in pieces (batch, or length with halos),
    exact, and no single buffer larger than the limit is allocated;
  * out of memory: MemoryError (never a pyopencl error), the module usable afterwards;
  * NaN / Inf propagation matching torch.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyopencl as cl
import pyopencl.array as cla
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clconv
from conftest import STRATEGIES, assert_close
from reference import conv1d_bias_grad_ref, conv1d_input_grad_ref, conv1d_ref, conv1d_weight_grad_ref

ROOT = Path(__file__).resolve().parent.parent


def not_pyopencl(exc):
    assert not isinstance(exc, cl.Error), f"pyopencl error leaked: {exc!r}"
    assert type(exc).__module__.split(".")[0] != "pyopencl", f"pyopencl error leaked: {exc!r}"


def module_case(device, cin=8, cout=12, k=5, stride=1, padding=2, dilation=1, groups=2, mode="zeros",
                bias=True, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    m = clconv.Conv1d(cin, cout, k, stride=stride, padding=padding, dilation=dilation, groups=groups,
                      bias=bias, padding_mode=mode, device=device, dtype=dtype)
    state = {"weight": rng.uniform(-1, 1, m.weight.shape).astype(dtype)}
    if bias:
        state["bias"] = rng.uniform(-1, 1, (cout,)).astype(dtype)
    m.load_state_dict(state)
    return m, state


def check_module(m, state, x, rng, strategy=None, what=""):
    """Forward and backward of m on x against the reference; returns nothing, asserts everything."""
    s, d, g, mode = m.stride[0], m.dilation[0], m.groups, m.padding_mode
    p = m.padding if isinstance(m.padding, str) else m.padding[0]
    w = state["weight"].astype(np.float64)
    b = state.get("bias")
    dt = m.dtype
    y_ref = conv1d_ref(x, w, b, s, p, d, g, mode)
    dy = rng.uniform(-1, 1, y_ref.shape).astype(dt)
    m.zero_grad()
    with clconv.params.override(**({"strategy": strategy} if strategy else {})):
        y = m(x)
        dx = m.backward(dy)
    assert_close(y, y_ref, dt, f"{what} forward")
    assert_close(dx, conv1d_input_grad_ref(x.shape, w, dy, s, p, d, g, mode), dt, f"{what} input grad")
    assert_close(m.weight.grad.get(), conv1d_weight_grad_ref(x, w.shape, dy, s, p, d, g, mode), dt,
                 f"{what} weight grad")
    if b is not None:
        assert_close(m.bias.grad.get(), conv1d_bias_grad_ref(dy), dt, f"{what} bias grad")


class Recorder:
    """Wraps device.kernel / device.launch / device.empty on one device to see what the library asks for."""

    def __init__(self, device, monkeypatch):
        self.kernels = []
        self.launches = []
        self.allocations = []
        kernel, launch, empty = device.kernel, device.launch, device.empty

        def rec_kernel(filename, name, defines):
            k = kernel(filename, name, defines)
            self.kernels.append((name, dict(defines), k))
            return k

        def rec_launch(k, global_size, local_size, *args, **kwargs):
            self.launches.append((k.function_name, tuple(global_size), None if local_size is None else tuple(local_size)))
            return launch(k, global_size, local_size, *args, **kwargs)

        def rec_empty(shape, dtype):
            shape = (shape,) if np.isscalar(shape) else tuple(shape)
            self.allocations.append((shape, int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize))
            return empty(shape, dtype)

        monkeypatch.setattr(device, "kernel", rec_kernel)
        monkeypatch.setattr(device, "launch", rec_launch)
        monkeypatch.setattr(device, "empty", rec_empty)


def simulate(device, monkeypatch, **attrs):
    """Patch device attributes for one test.  Launch plans the library memoised under the real limits are
    set aside too (restored afterwards), so every shape is planned for the simulated device;
    test_patched_limits_apply_after_first_use checks, separately, that this is not needed."""
    for name, value in attrs.items():
        monkeypatch.setattr(device, name, value)
    if isinstance(getattr(device, "plans", None), dict):
        monkeypatch.setattr(device, "plans", {})


# ---------------------------------------------------------------------------
# no fp64
# ---------------------------------------------------------------------------

def test_no_fp64_refuses_float64(device, monkeypatch):
    if device.has_fp64:  # a module built while fp64 was there, used after it "went away"
        early, _ = module_case(device, dtype=np.float64)
    else:
        early = None
    simulate(device, monkeypatch, has_fp64=False)
    x64 = np.random.default_rng(0).uniform(-1, 1, (2, 8, 40))
    with pytest.raises(RuntimeError, match="fp64") as info:
        clconv.Conv1d(8, 12, 5, groups=2, device=device, dtype=np.float64)
    not_pyopencl(info.value)
    if early is not None:
        with pytest.raises(RuntimeError, match="fp64"):
            early(x64)
    q = device.queue
    xd = cla.to_device(q, x64)
    wd = cla.to_device(q, np.ones((12, 4, 5)))
    dyd = cla.to_device(q, np.ones((2, 12, 36)))
    with pytest.raises(RuntimeError, match="fp64"):
        clconv.conv1d(xd, wd, None, 1, 0, 1, 2)
    with pytest.raises(RuntimeError, match="fp64"):
        clconv.grad.conv1d_input(x64.shape, wd, dyd, 1, 0, 1, 2)
    with pytest.raises(RuntimeError, match="fp64"):
        clconv.grad.conv1d_weight(xd, (12, 4, 5), dyd, 1, 0, 1, 2)


def test_no_fp64_float32_still_works(device, monkeypatch):
    simulate(device, monkeypatch, has_fp64=False)
    rng = np.random.default_rng(1)
    m, state = module_case(device, mode="reflect")
    x = rng.uniform(-1, 1, (2, 8, 70)).astype(np.float32)
    for strategy in STRATEGIES:
        check_module(m, state, x, rng, strategy, f"no fp64, {strategy}")
    w = rng.uniform(-1, 1, (12, 4, 5)).astype(np.float32)
    assert_close(clconv.conv1d(x, w, None, 1, 2, 1, 2), conv1d_ref(x, w, None, 1, 2, 1, 2), np.float32)


# ---------------------------------------------------------------------------
# small local memory, work-group size 1
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("local_mem", [2048, 512, 64, 0])
def test_small_local_memory(device, monkeypatch, local_mem):
    """local strategy on a device with little __local memory: smaller tiles, or the register strategy."""
    simulate(device, monkeypatch, local_mem_size=local_mem)
    rec = Recorder(device, monkeypatch)
    rng = np.random.default_rng(2)
    m, state = module_case(device, cin=16, cout=16, k=9, padding=4, groups=1, mode="replicate")
    x = rng.uniform(-1, 1, (2, 16, 150)).astype(np.float32)
    check_module(m, state, x, rng, "local", f"local_mem_size={local_mem}")
    assert rec.kernels, "no kernel was requested"
    for name, defines, k in rec.kernels:
        used = k.get_work_group_info(cl.kernel_work_group_info.LOCAL_MEM_SIZE, device.cl_device)
        assert used <= local_mem, f"{name} {defines} needs {used} bytes of __local memory > {local_mem}"


@pytest.mark.parametrize("max_wg", [1, 2])
def test_small_work_groups(device, monkeypatch, strategy, max_wg):
    simulate(device, monkeypatch, max_work_group_size=max_wg)
    rec = Recorder(device, monkeypatch)
    rng = np.random.default_rng(3)
    for mode, stride, dilation in (("zeros", 2, 1), ("circular", 1, 2)):
        m, state = module_case(device, stride=stride, dilation=dilation, padding=3, mode=mode)
        x = rng.uniform(-1, 1, (2, 8, 61)).astype(np.float32)
        check_module(m, state, x, rng, strategy, f"max_work_group_size={max_wg} {mode}")
    assert rec.launches, "no launch recorded"
    too_big = [(name, local) for name, _, local in rec.launches
               if local is not None and int(np.prod(local)) > max_wg]
    assert not too_big, f"launches with work-groups larger than max_work_group_size={max_wg}: {sorted(set(too_big))}"
    for name, defines, k in rec.kernels:
        reqd = k.get_work_group_info(cl.kernel_work_group_info.COMPILE_WORK_GROUP_SIZE, device.cl_device)
        assert int(np.prod(reqd)) <= max_wg or int(np.prod(reqd)) == 0, f"{name} requires work-groups {reqd}"


def test_patched_limits_apply_after_first_use(device, monkeypatch):
    """A shape run under the real limits, then again after the device's limits were lowered: the second
    run obeys the new limits (nothing planned under the old ones is reused blindly)."""
    rng = np.random.default_rng(31)
    m, state = module_case(device, cin=6, cout=10, k=7, padding=3, groups=2, mode="reflect")
    x = rng.uniform(-1, 1, (2, 6, 97)).astype(np.float32)
    for strategy in STRATEGIES:
        check_module(m, state, x, rng, strategy, "real limits")
    monkeypatch.setattr(device, "max_work_group_size", 1)
    monkeypatch.setattr(device, "local_mem_size", 256)
    rec = Recorder(device, monkeypatch)
    for strategy in STRATEGIES:
        check_module(m, state, x, rng, strategy, "lowered limits")
    too_big = sorted({(name, local) for name, _, local in rec.launches if local is not None and int(np.prod(local)) > 1})
    assert not too_big, f"launches planned under the old max_work_group_size reused: {too_big}"
    for name, defines, k in rec.kernels:
        used = k.get_work_group_info(cl.kernel_work_group_info.LOCAL_MEM_SIZE, device.cl_device)
        assert used <= 256, f"{name} needs {used} bytes of __local memory > 256"


# ---------------------------------------------------------------------------
# kernel build failure
# ---------------------------------------------------------------------------

GOOD_DEFINES = dict(C_IN_G=4, C_OUT_G=4, GROUPS=1, K=3, STRIDE=1, DILATION=1, STRATEGY=0, VEC=4,
                    PAD_MODE=0, TILE_CO=2, TILE_L=2, WG_L=4, WG_CO=1, CI_TILE=4)


@pytest.mark.parametrize("bad", [{"K": "("}, {"TILE_CO": "2+*3"}, {"STRIDE": "undeclared_identifier"}],
                         ids=["preprocessor", "expression", "identifier"])
def test_kernel_build_failure(device, bad):
    defines = {**GOOD_DEFINES, **bad}
    for attempt in range(2):  # a failed build is not cached as a success
        with pytest.raises(RuntimeError) as info:
            device.kernel("conv1d_forward.cl", "conv1d_forward", defines)
        not_pyopencl(info.value)
        msg = str(info.value)
        lines = msg.splitlines()
        assert len(lines) > 1, f"no build log in the message: {msg!r}"
        assert any("error" in line.lower() for line in lines[1:]), f"no compiler diagnostic in: {msg}"
        assert "conv1d_forward" in msg
    # the process and the device survive: a good build and a real convolution still work
    assert device.kernel("conv1d_forward.cl", "conv1d_forward", GOOD_DEFINES) is not None
    rng = np.random.default_rng(4)
    m, state = module_case(device)
    check_module(m, state, rng.uniform(-1, 1, (2, 8, 40)).astype(np.float32), rng, None, "after build failure")


# ---------------------------------------------------------------------------
# buffer_limit: processing in pieces
# ---------------------------------------------------------------------------

@pytest.fixture
def buffer_limit(device):
    """Set device.buffer_limit for one test; restored in finally."""
    old = device.buffer_limit

    def set_limit(value):
        device.buffer_limit = value

    try:
        yield set_limit
    finally:
        device.buffer_limit = old


def test_buffer_limit_default(device):
    """A plain int attribute, never above what one allocation may take (nor the environment's cap)."""
    limit = device.buffer_limit
    assert isinstance(limit, (int, np.integer)) and not isinstance(limit, bool)
    assert 0 < limit <= device.max_alloc
    assert limit <= device.global_mem_size
    env = os.environ.get("CLCONV_MAX_BUFFER_BYTES")
    if env and int(env) > 0:
        assert limit <= int(env)


def test_buffer_limit_from_environment(device):
    code = ("import clconv; d = clconv.get_device({!r}); print(d.buffer_limit, d.max_alloc)"
            .format(device.spec))
    env = {**os.environ, "CLCONV_MAX_BUFFER_BYTES": "4096"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    limit, max_alloc = map(int, out.stdout.split())
    assert limit == min(4096, max_alloc)


LIMIT = 4096  # bytes: 1024 float32 values

# (description, module arguments, input shape, strategy): every input/output exceeds LIMIT.  Every case
# runs with the register strategy, a few with the local one too (each piece length is its own compile).
SPLIT_CASES = [
    ("batch-zeros", dict(padding=2), (12, 8, 40), "register"),
    ("batch-stride2-dil2-reflect", dict(stride=2, dilation=2, padding=3, mode="reflect"), (9, 8, 45), "register"),
    ("batch-stride2-dil2-reflect", dict(stride=2, dilation=2, padding=3, mode="reflect"), (9, 8, 45), "local"),
    ("batch-circular-unbiased", dict(padding=4, mode="circular", bias=False), (7, 8, 33), "register"),
    ("length-zeros", dict(padding=2), (1, 8, 700), "register"),
    ("length-zeros", dict(padding=2), (1, 8, 700), "local"),
    ("length-stride3-dil2-zeros", dict(stride=3, dilation=2, padding=5), (1, 8, 901), "register"),
    ("length-reflect", dict(padding=4, mode="reflect"), (1, 8, 650), "register"),
    ("length-circular-dil3", dict(padding=6, dilation=3, mode="circular"), (1, 8, 611), "register"),
    ("length-circular-dil3", dict(padding=6, dilation=3, mode="circular"), (1, 8, 611), "local"),
    ("length-replicate-stride2", dict(stride=2, padding=3, mode="replicate"), (2, 8, 555), "register"),
    ("length-unbatched-same", dict(padding="same", dilation=2, mode="reflect"), (8, 800), "register"),
    ("length-depthwise-k1", dict(cin=8, cout=8, k=1, groups=8, stride=2, padding=0), (1, 8, 1500), "register"),
]


@pytest.mark.parametrize("desc, kwargs, shape, strat", SPLIT_CASES, ids=[f"{c[3]}-{c[0]}" for c in SPLIT_CASES])
def test_buffer_limit_pieces(device, monkeypatch, buffer_limit, desc, kwargs, shape, strat):
    rng = np.random.default_rng(5)
    m, state = module_case(device, **kwargs)        # parameters allocated before the limit
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    assert x.nbytes > LIMIT
    buffer_limit(LIMIT)
    rec = Recorder(device, monkeypatch)
    check_module(m, state, x, rng, strat, f"buffer_limit={LIMIT} {desc}")
    assert rec.allocations, "no allocation went through device.empty"
    biggest = max(rec.allocations, key=lambda a: a[1])
    assert biggest[1] <= LIMIT, f"allocated {biggest[0]} = {biggest[1]} bytes > buffer_limit {LIMIT}"
    forward = [launch for launch in rec.launches if launch[0] == "conv1d_forward"]
    assert len(forward) >= 2, f"the forward pass ran in {len(forward)} piece(s)"


@pytest.mark.parametrize("fn", ["conv1d", "conv1d_input", "conv1d_weight"])
@pytest.mark.parametrize("shape", [(3, 8, 400), (8, 1200)], ids=["batch", "length-unbatched"])
def test_buffer_limit_functional_pieces(device, buffer_limit, monkeypatch, fn, shape):
    rng = np.random.default_rng(6)
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    w = rng.uniform(-1, 1, (12, 4, 5)).astype(np.float32)
    b = rng.uniform(-1, 1, (12,)).astype(np.float32)
    y_ref = conv1d_ref(x, w, b, 2, 2, 1, 2)
    dy = rng.uniform(-1, 1, y_ref.shape).astype(np.float32)
    buffer_limit(LIMIT)
    rec = Recorder(device, monkeypatch)
    if fn == "conv1d":
        assert_close(clconv.conv1d(x, w, b, 2, 2, 1, 2), y_ref, np.float32, fn)
    elif fn == "conv1d_input":
        dx = clconv.grad.conv1d_input(x.shape, w, dy, 2, 2, 1, 2)
        assert_close(dx, conv1d_input_grad_ref(x.shape, w, dy, 2, 2, 1, 2), np.float32, fn)
    else:
        dw = clconv.grad.conv1d_weight(x, w.shape, dy, 2, 2, 1, 2)
        assert_close(dw, conv1d_weight_grad_ref(x, w.shape, dy, 2, 2, 1, 2), np.float32, fn)
    assert rec.allocations, "no allocation went through device.empty"
    biggest = max(rec.allocations, key=lambda a: a[1])
    assert biggest[1] <= LIMIT, f"{fn} allocated {biggest[0]} = {biggest[1]} bytes > buffer_limit {LIMIT}"


def test_buffer_limit_float64(fp64_device, buffer_limit):
    rng = np.random.default_rng(7)
    m, state = module_case(fp64_device, stride=2, padding=3, mode="circular", dtype=np.float64)
    x = rng.uniform(-1, 1, (2, 8, 300))
    buffer_limit(LIMIT)
    check_module(m, state, x, rng, None, "float64 pieces")


def test_buffer_limit_restored_results_unchanged(device, buffer_limit):
    """The same call with and without a limit gives results within tolerance of each other."""
    rng = np.random.default_rng(8)
    m, state = module_case(device, padding=2, mode="reflect")
    x = rng.uniform(-1, 1, (4, 8, 300)).astype(np.float32)
    full = m(x)
    buffer_limit(LIMIT)
    pieces = m(x)
    assert_close(pieces, full.astype(np.float64), np.float32, "pieces vs whole")


# Random piece boundaries: the limit, the lengths and the batch drawn; one structure per padding mode so
# that the kernels repeat (each piece length class is a compile).  derandomize: the same examples each run.
PIECE_STRUCTURES = [
    dict(stride=1, dilation=1, padding=2, mode="zeros"),
    dict(stride=2, dilation=2, padding=3, mode="reflect"),
    dict(stride=1, dilation=3, padding=5, mode="circular"),
    dict(stride=3, dilation=1, padding=4, mode="replicate"),
]


@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, len(PIECE_STRUCTURES) - 1), batch=st.integers(1, 5), length=st.integers(12, 400),
       limit_values=st.integers(60, 1200), unbatched=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_buffer_limit_pieces_property(device, monkeypatch, which, batch, length, limit_values, unbatched, seed):
    kwargs = PIECE_STRUCTURES[which]
    rng = np.random.default_rng(seed)
    m, state = module_case(device, cin=4, cout=6, k=3, groups=2, **kwargs)
    if kwargs["mode"] == "reflect":
        length = max(length, kwargs["padding"] + 1)
    shape = (4, length) if unbatched else (batch, 4, length)
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    old = device.buffer_limit
    try:
        device.buffer_limit = 4 * limit_values
        with monkeypatch.context() as mp:
            rec = Recorder(device, mp)
            check_module(m, state, x, rng, "register", f"limit {4 * limit_values} B, shape {shape}, {kwargs}")
        biggest = max(rec.allocations, key=lambda a: a[1])
        assert biggest[1] <= 4 * limit_values, f"allocated {biggest[0]} = {biggest[1]} bytes > {4 * limit_values}"
    finally:
        device.buffer_limit = old


# ---------------------------------------------------------------------------
# out of memory
# ---------------------------------------------------------------------------

def test_out_of_memory_is_memory_error(device):
    """An output larger than the whole device memory, for a device-array input (the output must then be one
    device array): MemoryError, or (should a device ever manage) a correct result; never a pyopencl error.
    Then the same module on a moderate input still works."""
    length = 1 << 20
    cout = device.global_mem_size // (4 * length) + 8
    m = clconv.Conv1d(1, cout, 1, bias=True, device=device)
    x = cla.zeros(device.queue, (1, 1, length), np.float32)
    try:
        y = m(x)
    except MemoryError as exc:
        not_pyopencl(exc)
        assert str(exc)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"expected MemoryError, got {type(exc).__module__}.{type(exc).__name__}: {exc}")
    else:
        b = m.bias.numpy()
        assert y.shape == (1, cout, length)
        np.testing.assert_allclose(y[0, :, :4].get(), np.repeat(b[:, None], 4, axis=1), rtol=1e-6)
        del y
    rng = np.random.default_rng(9)
    small = rng.uniform(-1, 1, (2, 1, 500)).astype(np.float32)
    w = m.weight.numpy().astype(np.float64)
    b = m.bias.numpy().astype(np.float64)
    assert_close(m(small), conv1d_ref(small, w, b), np.float32, "after out of memory")
    dx = m.backward(np.ones((2, cout, 500), np.float32))
    assert_close(dx, conv1d_input_grad_ref(small.shape, w, np.ones((2, cout, 500))), np.float32, "dx after OOM")


def test_huge_parameters_fail_cleanly(device):
    """Parameters that cannot be allocated: MemoryError (or another clean error), not a pyopencl error."""
    with pytest.raises((MemoryError, ValueError, RuntimeError)) as info:
        clconv.Conv1d(4, 10 ** 12, 3, device=device)
    not_pyopencl(info.value)
    rng = np.random.default_rng(10)
    m, state = module_case(device)
    check_module(m, state, rng.uniform(-1, 1, (2, 8, 40)).astype(np.float32), rng, None, "after huge parameters")


# ---------------------------------------------------------------------------
# NaN / Inf propagation, as torch does it
# ---------------------------------------------------------------------------

def _torch_conv(x, w, b, stride, padding, dilation, groups, double=False):
    """torch's conv1d of the same values; double=True computes in float64 (then rounds to x's dtype).

    torch itself is not consistent about 0 * inf in the zero padding: its float32 oneDNN path (batch > 1
    on CPU) skips padded taps and returns +-inf there, its direct path (batch 1, or float64) multiplies and
    returns NaN.  The float64 path is the one that follows the formula, so Inf comparisons use it."""
    torch = pytest.importorskip("torch")

    def t(a):
        if a is None:
            return None
        a = torch.from_numpy(np.ascontiguousarray(a))
        return a.double() if double else a

    out = torch.nn.functional.conv1d(t(x), t(w), t(b), stride, padding, dilation, groups).numpy()
    return out.astype(x.dtype)


def assert_same_specials(actual, expected, dtype, what):
    assert actual.shape == expected.shape
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    assert np.array_equal(nan_a, nan_e), f"{what}: NaN at {np.argwhere(nan_a != nan_e)[:5].tolist()} differ from torch"
    inf_a, inf_e = np.isinf(actual), np.isinf(expected)
    assert np.array_equal(inf_a, inf_e), f"{what}: Inf at {np.argwhere(inf_a != inf_e)[:5].tolist()} differ from torch"
    assert np.array_equal(np.sign(actual[inf_a]), np.sign(expected[inf_e])), f"{what}: Inf signs differ"
    finite = np.isfinite(expected)
    if finite.any():
        assert_close(np.where(finite, actual, 0), np.where(finite, expected, 0).astype(np.float64), dtype, what)


@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 2)])
def test_nan_in_input_like_torch(device, strategy, stride, dilation):
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, (2, 8, 50)).astype(np.float32)
    x[0, 3, 17] = np.nan
    x[1, 6, 0] = np.nan
    x[1, 0, 49] = np.inf
    w = rng.uniform(-1, 1, (12, 4, 5)).astype(np.float32)
    b = rng.uniform(-1, 1, (12,)).astype(np.float32)
    expected = _torch_conv(x, w, b, stride, 2, dilation, 2)
    with clconv.params.override(strategy=strategy):
        y = clconv.conv1d(x, w, b, stride, 2, dilation, 2)
    assert np.isnan(expected).any()
    assert_same_specials(y, expected, np.float32, "NaN input")


@pytest.mark.parametrize("stride", [1, 2])
def test_inf_in_weight_with_zero_padding_like_torch(device, strategy, stride):
    """Windows that overlap the zero padding multiply 0 by inf: NaN, as in torch; elsewhere +-inf."""
    rng = np.random.default_rng(12)
    x = rng.uniform(0.5, 1, (2, 4, 30)).astype(np.float32)
    w = rng.uniform(-1, 1, (6, 4, 3)).astype(np.float32)
    w[1, 0, 0] = np.inf
    w[4, 2, 2] = -np.inf
    expected = _torch_conv(x, w, None, stride, 2, 1, 1, double=True)
    with clconv.params.override(strategy=strategy):
        y = clconv.conv1d(x, w, None, stride, 2, 1, 1)
    assert np.isnan(expected).any() and np.isinf(expected).any()
    assert_same_specials(y, expected, np.float32, "Inf weight")


def test_nan_in_input_backward_like_torch(device, strategy):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    x = rng.uniform(-1, 1, (2, 4, 40)).astype(np.float32)
    x[1, 2, 11] = np.nan
    m, state = module_case(device, cin=4, cout=6, k=3, padding=1, groups=2)
    dy = rng.uniform(-1, 1, (2, 6, 40)).astype(np.float32)
    with clconv.params.override(strategy=strategy):
        m(x)
        dx = m.backward(dy)
    xt = torch.from_numpy(x).requires_grad_(True)
    wt = torch.from_numpy(state["weight"]).requires_grad_(True)
    bt = torch.from_numpy(state["bias"]).requires_grad_(True)
    torch.nn.functional.conv1d(xt, wt, bt, 1, 1, 1, 2).backward(torch.from_numpy(dy))
    assert_same_specials(dx, xt.grad.numpy(), np.float32, "input grad")
    assert_same_specials(m.weight.grad.get(), wt.grad.numpy(), np.float32, "weight grad")
    assert_same_specials(m.bias.grad.get(), bt.grad.numpy(), np.float32, "bias grad")
    assert np.isnan(wt.grad.numpy()).any()
