"""Every GPU class's built-in row (its tiles, work-groups and kernels: the local strategy's vector
micro-tiles, flipped weights read in place, split weight gradients, the bias tree) forced onto each test
device with CLCONV_DEVICE_CLASS, a module's forward and backward against the float64 numpy reference.
On a CPU device this runs the GPU kernels through a second compiler; tests/test_oclgrind.py runs them under
Oclgrind's bounds and race checks, and bench/gpu_model.py measures them.
"""
import numpy as np
import pytest

import clconv
from clconv import tuning_cache
from clconv.passes.backward_data import input_gradient_plan
from clconv.passes.backward_weight import weight_gradient_plan
from clconv.passes.forward import forward_plan
from clconv.runtime import DEVICE_CLASS_ENV
from conftest import assert_close
from reference import conv1d_bias_grad_ref, conv1d_input_grad_ref, conv1d_ref, conv1d_weight_grad_ref

GPU_CLASSES = ("nvidia-gpu", "amd-gpu", "intel-gpu")

# (id, Conv1d arguments, input shape, dtype): channel counts that the 4-wide micro-tiles do not divide,
# windows wider than a tile, every padding mode, strides that split the staged window into phases.
CASES = [
    ("dense-k3", dict(cin=24, cout=40, k=3, padding=1), (2, 24, 150), "f32"),
    ("grouped-k5", dict(cin=16, cout=24, k=5, padding=2, groups=4, mode="reflect"), (2, 16, 77), "f32"),
    ("strided-dilated", dict(cin=6, cout=10, k=4, stride=3, dilation=2, padding=3, mode="circular"), (2, 6, 61), "f32"),
    ("depthwise-x2", dict(cin=5, cout=10, k=7, padding=3, groups=5, mode="replicate"), (3, 5, 45), "f32"),
    ("frontend-c1", dict(cin=1, cout=9, k=10, stride=5), (2, 1, 203), "f32"),
    ("odd-channels-f16", dict(cin=7, cout=5, k=3, padding=1), (2, 7, 33), "f16"),
    ("f64-same", dict(cin=3, cout=6, k=4, padding="same", dilation=2), (1, 3, 29), "f64"),
    ("unbatched-long-k", dict(cin=2, cout=3, k=31, padding=15, bias=False), (2, 90), "f32"),
    # the depthwise weight-gradient kernel: dilated taps over a reflected edge; two output channels per
    # input channel with taps in tiles (K = 19 over 4-tap vectors), a sample's last vector partial
    ("depthwise-dilated", dict(cin=6, cout=6, k=5, dilation=3, padding=6, groups=6, mode="reflect"), (2, 6, 70), "f32"),
    ("depthwise-x2-long-k", dict(cin=3, cout=6, k=19, padding=9, groups=3), (2, 3, 141), "f32"),
    # conv1d_forward_depthwise_local, forward and input gradient: spans past an odd row's end, combs of
    # dilated taps over a reflected edge, groups that the work-group's group block does not divide, two
    # tap windows per comb (K = 35), a multiplier of 8, half storage
    ("depthwise-k15", dict(cin=10, cout=10, k=15, padding=7, groups=10), (2, 10, 301), "f32"),
    ("depthwise-dilated-reflect", dict(cin=7, cout=7, k=9, dilation=3, padding=12, groups=7, mode="reflect"),
     (1, 7, 83), "f32"),
    ("depthwise-x2-k35", dict(cin=5, cout=10, k=35, padding=17, groups=5, bias=False), (2, 5, 99), "f32"),
    ("depthwise-x8-odd", dict(cin=3, cout=24, k=5, padding=1, groups=3), (3, 3, 37), "f32"),
    ("depthwise-k15-f16", dict(cin=6, cout=6, k=15, padding=7, groups=6), (1, 6, 67), "f16"),
]


@pytest.fixture
def forced_class(monkeypatch, tmp_path, request):
    monkeypatch.setenv("CLCONV_CACHE_DIR", str(tmp_path))  # no tuned entry may stand in for the row
    tuning_cache.reload()
    monkeypatch.setenv(DEVICE_CLASS_ENV, request.param)
    yield request.param
    monkeypatch.undo()
    tuning_cache.reload()


# The rows differ in tile and work-group sizes over the same kernels: every case on one row, the first two
# on the others (PoCL compiles each variant for a second or more).
ROW_CASES = [pytest.param(cls, *case, id=f"{case[0]}-{cls}") for cls in GPU_CLASSES
             for case in (CASES if cls == GPU_CLASSES[0] else CASES[:2])]


@pytest.mark.parametrize("forced_class, case_id, kw, shape, dt", ROW_CASES, indirect=["forced_class"])
def test_gpu_row_matches_reference(device, forced_class, rng, case_id, kw, shape, dt):
    dtype = {"f64": np.float64, "f32": np.float32, "f16": np.float16}[dt]
    if dtype == np.float64 and not device.has_fp64:
        pytest.skip("device has no fp64")
    m = clconv.Conv1d(kw["cin"], kw["cout"], kw["k"], stride=kw.get("stride", 1), padding=kw.get("padding", 0),
                      dilation=kw.get("dilation", 1), groups=kw.get("groups", 1), bias=kw.get("bias", True),
                      padding_mode=kw.get("mode", "zeros"), device=device, dtype=dtype)
    w = rng.uniform(-1, 1, m.weight.shape).astype(dtype)
    state = {"weight": w, **({"bias": rng.uniform(-1, 1, m.bias.shape).astype(dtype)} if m.bias is not None else {})}
    m.load_state_dict(state)
    x = rng.uniform(-1, 1, shape).astype(dtype)
    s, d, g, mode = m.stride[0], m.dilation[0], m.groups, m.padding_mode
    p = m.padding if isinstance(m.padding, str) else m.padding[0]
    w64 = w.astype(np.float64)
    y_ref = conv1d_ref(x.astype(np.float64), w64, state.get("bias"), s, p, d, g, mode)
    dy = rng.uniform(-1, 1, y_ref.shape).astype(dtype)

    y = m(x)
    dx = m.backward(dy)
    m.backward(dy, input_grad=False)  # the weight and bias gradients accumulate

    plan = weight_gradient_plan(m.device, m._saved[0], dtype)
    assert plan.params.strategy == "local"
    if case_id.startswith("depthwise-"):
        assert "conv1d_backward_weight_depthwise" in [step.kernel.function_name for step in plan.steps]
        geo = m._saved[0]
        for pass_plan in (forward_plan(m.device, geo, dtype, m.bias is not None), input_gradient_plan(m.device, geo, dtype)):
            assert "conv1d_forward_depthwise_local" in [step.kernel.function_name for step in pass_plan.steps]
    assert_close(y, y_ref, dtype, "forward")
    assert_close(dx, conv1d_input_grad_ref(x.shape, w64, dy, s, p, d, g, mode), dtype, "input grad")
    assert_close(m.weight.grad.get(), 2 * conv1d_weight_grad_ref(x, w.shape, dy, s, p, d, g, mode), dtype, "weight grad")
    if m.bias is not None:
        assert_close(m.bias.grad.get(), 2 * conv1d_bias_grad_ref(dy), dtype, "bias grad")


@pytest.mark.parametrize("forced_class", ["nvidia-gpu"], indirect=True)
def test_split_weight_gradient_is_deterministic(device, forced_class, rng, monkeypatch):
    """Enough positions for several chunks of partial sums: the result is the reference's, and the same
    bits on every run (the chunks are reduced in a fixed order, no atomics)."""
    monkeypatch.setattr(device, "compute_units", 64)
    x = rng.uniform(-1, 1, (3, 8, 1500)).astype(np.float32)
    dy = rng.uniform(-1, 1, (3, 12, 1500)).astype(np.float32)
    runs = [clconv.grad.conv1d_weight(device.to_device(x), (12, 8, 3), device.to_device(dy), padding=1).get()
            for _ in range(2)]
    geo = clconv.api.checks.conv_geometry(x.shape, (12, 8, 3), None, 1, 1, 1, 1, 1)
    assert weight_gradient_plan(device, geo, np.float32).info["chunks"] > 1
    assert_close(runs[0], conv1d_weight_grad_ref(x, (12, 8, 3), dy, 1, 1), np.float32, "split weight grad")
    assert np.array_equal(runs[0], runs[1])


# Devices the GPU rows must still run on: no __local memory, 16 KiB of it, work-groups of 32 (the register
# strategy takes over where a local tile cannot fit; the depthwise layer's long row wants 64 x 2 work-items).
ODD_DEVICES = {"no-local-memory": dict(local_mem_size=0), "local-16k": dict(local_mem_size=16 << 10),
               "work-groups-32": dict(max_work_group_size=32)}


@pytest.mark.parametrize("forced_class", ["nvidia-gpu"], indirect=True)
@pytest.mark.parametrize("limits", ODD_DEVICES.values(), ids=ODD_DEVICES.keys())
def test_gpu_row_on_odd_devices(device, forced_class, monkeypatch, rng, limits):
    import pyopencl as cl
    from test_devices_limits import Recorder, simulate

    simulate(device, monkeypatch, **limits)
    record = Recorder(device, monkeypatch)
    for kw, shape in ((dict(cin=24, cout=40, k=3, padding=1), (2, 24, 150)),
                      (dict(cin=6, cout=10, k=4, stride=3, dilation=2, padding=3), (2, 6, 61)),
                      (dict(cin=4, cout=8, k=15, padding=7, groups=4), (2, 4, 1100))):
        m = clconv.Conv1d(kw["cin"], kw["cout"], kw["k"], stride=kw.get("stride", 1), padding=kw["padding"],
                          dilation=kw.get("dilation", 1), groups=kw.get("groups", 1), device=device)
        w, b = rng.uniform(-1, 1, m.weight.shape).astype(np.float32), rng.uniform(-1, 1, m.bias.shape).astype(np.float32)
        m.load_state_dict({"weight": w, "bias": b})
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        s, d, p, g = m.stride[0], m.dilation[0], m.padding[0], m.groups
        y_ref = conv1d_ref(x.astype(np.float64), w.astype(np.float64), b, s, p, d, g)
        dy = rng.uniform(-1, 1, y_ref.shape).astype(np.float32)
        y = m(x)
        dx = m.backward(dy)
        assert_close(y, y_ref, np.float32, f"forward {limits}")
        assert_close(dx, conv1d_input_grad_ref(x.shape, w, dy, s, p, d, g), np.float32, "input grad")
        assert_close(m.weight.grad.get(), conv1d_weight_grad_ref(x, w.shape, dy, s, p, d, g), np.float32, "weight grad")
        assert_close(m.bias.grad.get(), conv1d_bias_grad_ref(dy), np.float32, "bias grad")
    max_group, local_bytes = device.max_work_group_size, device.local_mem_size
    assert all(local is None or int(np.prod(local)) <= max_group for _, _, local in record.launches)
    for name, defines, kernel in record.kernels:
        used = kernel.get_work_group_info(cl.kernel_work_group_info.LOCAL_MEM_SIZE, device.cl_device)
        assert used <= local_bytes, f"{name} {defines} needs {used} bytes of __local memory > {local_bytes}"
