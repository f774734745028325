"""Plans: lengths of one class share their programs, the plan memo stays bounded, a kernel's own
work-group limit shrinks its plan, and layers with extreme strides build and compute."""
import numpy as np
import pytest

import clconv
from clconv.passes import plan as plan_module
from conftest import assert_close
from reference import conv1d_bias_grad_ref, conv1d_input_grad_ref, conv1d_ref, conv1d_weight_grad_ref


def training_step(m, x, dy):
    y = m(x)
    dx = m.backward(dy)
    return y, dx


def check_step(m, x, rng, stride=1, padding=0, dilation=1, groups=1, what=""):
    """A forward and backward of module m against the float64 reference."""
    x64, w64, b64 = x.astype(np.float64), m.weight.data.get().astype(np.float64), m.bias.data.get().astype(np.float64)
    y_ref = conv1d_ref(x64, w64, b64, stride, padding, dilation, groups)
    dy = rng.uniform(-1, 1, y_ref.shape).astype(np.float32)
    y, dx = training_step(m, x, dy)
    dy64 = dy.astype(np.float64)
    assert_close(y, y_ref, np.float32, f"{what} y")
    assert_close(dx, conv1d_input_grad_ref(x.shape, w64, dy64, stride, padding, dilation, groups), np.float32, f"{what} dx")
    assert_close(m.weight.grad.get(), conv1d_weight_grad_ref(x64, w64.shape, dy64, stride, padding, dilation, groups),
                 np.float32, f"{what} dw")
    assert_close(m.bias.grad.get(), conv1d_bias_grad_ref(dy64), np.float32, f"{what} db")
    m.zero_grad()


class Builds:
    """Counts the programs a device builds."""

    def __init__(self, device, monkeypatch):
        self.count, build = 0, device._build

        def counted(*args, **kwargs):
            self.count += 1
            return build(*args, **kwargs)
        monkeypatch.setattr(device, "_build", counted)


LAYERS = {  # id: (Conv1d arguments, two lengths of one class: output lengths in [2^k, 2^(k+1)))
    "c1-k10-s5": ((1, 8, 10), dict(stride=5), (2600, 5000)),
    "c16-k3-p1": ((16, 16, 3), dict(padding=1), (1030, 2000)),
    "c16-k3-s2": ((16, 16, 3), dict(stride=2, padding=1), (2100, 4000)),
    "dw16-k15": ((16, 16, 15), dict(padding=7, groups=16), (1100, 1900)),
    "c8-d8-k3": ((8, 8, 3), dict(padding=8, dilation=8), (1500, 2040)),
}


@pytest.mark.parametrize("layer", LAYERS.values(), ids=LAYERS.keys())
def test_lengths_of_one_class_share_programs(layer, device, rng, monkeypatch):
    args, kwargs, (warm, other) = layer
    m = clconv.Conv1d(*args, **kwargs, device=device)
    x = rng.uniform(-1, 1, (2, args[0], warm)).astype(np.float32)
    check_step(m, x, rng, kwargs.get("stride", 1), kwargs.get("padding", 0), kwargs.get("dilation", 1),
               kwargs.get("groups", 1), f"L={warm}")
    builds = Builds(device, monkeypatch)
    x = rng.uniform(-1, 1, (2, args[0], other)).astype(np.float32)
    check_step(m, x, rng, kwargs.get("stride", 1), kwargs.get("padding", 0), kwargs.get("dilation", 1),
               kwargs.get("groups", 1), f"L={other}")
    assert builds.count == 0, f"a length of the same class built {builds.count} programs"


def test_lengths_of_one_class_share_programs_in_stride_phases(device, rng, monkeypatch):
    """The same for input gradients run as one register-strategy forward per stride phase."""
    m = clconv.Conv1d(16, 16, 3, stride=2, padding=1, device=device)
    with clconv.params.override(strategy="register", PHASE_DEPTH_MIN=1, PHASE_FLOPS_MIN=1):
        check_step(m, rng.uniform(-1, 1, (2, 16, 2100)).astype(np.float32), rng, 2, 1, what="L=2100")
        builds = Builds(device, monkeypatch)
        check_step(m, rng.uniform(-1, 1, (2, 16, 4000)).astype(np.float32), rng, 2, 1, what="L=4000")
    assert builds.count == 0, f"a length of the same class built {builds.count} programs"


def test_plan_memo_is_bounded(device, rng, monkeypatch):
    monkeypatch.setattr(plan_module, "PLAN_MEMO_SIZE", 4)
    monkeypatch.setattr(device, "plans", {})
    m = clconv.Conv1d(3, 4, 3, padding=1, device=device)
    w64 = m.weight.data.get().astype(np.float64)
    b64 = m.bias.data.get().astype(np.float64)
    for length in range(20, 32):
        x = rng.uniform(-1, 1, (2, 3, length)).astype(np.float32)
        assert_close(m(x), conv1d_ref(x.astype(np.float64), w64, b64, 1, 1), np.float32, f"L={length}")
        assert len(device.plans) <= 4
    assert len(device.plans) == 4


def test_kernel_work_group_limit_shrinks_the_plan(device, rng, monkeypatch):
    """A kernel whose own limit is below the planned work-group gets a plan fitted within it."""
    monkeypatch.setattr(device, "plans", {})
    monkeypatch.setattr(device, "group_limit", lambda kernel: 4)
    launched = []
    launch = device.launch

    def recording(kernel, global_size, local_size, *args, **kwargs):
        launched.append(int(np.prod(local_size)))
        return launch(kernel, global_size, local_size, *args, **kwargs)
    monkeypatch.setattr(device, "launch", recording)
    m = clconv.Conv1d(8, 8, 3, stride=2, padding=1, device=device)
    x = rng.uniform(-1, 1, (2, 8, 300)).astype(np.float32)
    with clconv.params.override(strategy="local", WG_L=16, WG_CO=4):
        check_step(m, x, rng, stride=2, padding=1, what="local, limit 4")
    assert launched and max(launched) <= 4, launched


def test_vectors_stay_within_the_compiled_registers(device, rng, monkeypatch):
    """A CPU whose compiler makes 8-float vectors (PoCL compiling AVX2 code on an AVX-512 host) runs forced
    16-lane tiles as 8 lanes, which LLVM can compile, and still computes the convolution."""
    if device.type != "CPU":
        pytest.skip("the cap is for CPU compilers")
    monkeypatch.setattr(device, "plans", {})
    monkeypatch.setattr(device, "vector_floats", 8)
    m = clconv.Conv1d(6, 8, 3, padding=1, device=device)
    x = rng.uniform(-1, 1, (2, 6, 100)).astype(np.float32)
    with clconv.params.override(strategy="register", VEC=16):
        check_step(m, x, rng, padding=1, what="VEC=16 on 8-float registers")
    vecs = {plan.params.VEC for plan in device.plans.values() if getattr(plan, "params", None) is not None}
    assert vecs and max(vecs) <= 8, vecs


@pytest.mark.parametrize("stride", [128, 1000], ids=lambda s: f"s{s}")
def test_large_strides(stride, device, rng):
    """Strides far beyond the kernels' unrolled phases build in bounded time and compute."""
    m = clconv.Conv1d(2, 3, 3, stride=stride, device=device)
    x = rng.uniform(-1, 1, (2, 2, 3 * stride + 5)).astype(np.float32)
    check_step(m, x, rng, stride=stride, what=f"stride {stride}")


def test_layers_share_the_weight_gradient_reduce(device, rng, monkeypatch):
    """The reduce of the weight gradient's partial sums takes its sizes as arguments: one program per
    dtype serves every layer."""
    monkeypatch.setattr(device, "plans", {})
    for args, kwargs, length in [((4, 6, 3), dict(padding=1), 3000), ((8, 8, 5), dict(groups=2), 2500),
                                 ((16, 16, 15), dict(padding=7, groups=16), 2000)]:
        m = clconv.Conv1d(*args, **kwargs, device=device)
        check_step(m, rng.uniform(-1, 1, (4, args[0], length)).astype(np.float32), rng, padding=kwargs.get("padding", 0),
                   groups=kwargs.get("groups", 1), what=f"{args}")
    reduces = [step.kernel for plan in device.plans.values() for step in plan.steps
               if step.kernel.function_name == "conv1d_backward_weight_reduce"]
    assert len(reduces) >= 2 and len(set(reduces)) == 1, reduces


def test_each_program_holds_one_kernel(device, rng, monkeypatch):
    """Sources with several kernels compile only the launched one (KERNEL_<name>): a build costs one
    kernel's compile."""
    import pyopencl as cl

    monkeypatch.setattr(device, "plans", {})
    monkeypatch.setattr(device, "_programs", {})
    monkeypatch.setattr(device, "_kernels", {})
    for args, kwargs, length in [((1, 8, 10), dict(stride=5), 2600), ((16, 16, 15), dict(padding=7, groups=16), 1100),
                                 ((4, 32, 3), dict(stride=2, padding=1), 500), ((8, 8, 3), dict(padding=1), 300)]:
        m = clconv.Conv1d(*args, **kwargs, device=device)
        check_step(m, rng.uniform(-1, 1, (2, args[0], length)).astype(np.float32), rng, kwargs.get("stride", 1),
                   kwargs.get("padding", 0), groups=kwargs.get("groups", 1), what=f"{args}")
    files = {filename for filename, _ in device._programs}
    assert {"conv1d_forward.cl", "conv1d_backward_data.cl", "bias_grad.cl"} <= files, files
    for (filename, options), program in device._programs.items():
        names = program.get_info(cl.program_info.KERNEL_NAMES).split(";")
        assert len(names) == 1, f"{filename} {options}: {names}"


@pytest.mark.parametrize("taps, kernel", [(3, "conv1d_backward_data_rows"), (5, "conv1d_backward_data")])
def test_rows_input_gradient_only_for_unrolled_taps(taps, kernel, device, rng, monkeypatch):
    """The rows input gradient unrolls over the taps: layers of more taps than UNROLL_K_MAX take the
    general kernel, and both compute the gradient."""
    monkeypatch.setattr(device, "plans", {})
    m = clconv.Conv1d(2, 8, taps, stride=2, padding=1, device=device)
    x = rng.uniform(-1, 1, (2, 2, 300)).astype(np.float32)
    with clconv.params.override(strategy="register", AS_FORWARD=False, ROWS_CI=4, ROWS_CO=4, UNROLL_K_MAX=4):
        check_step(m, x, rng, stride=2, padding=1, what=f"K={taps}")
    launched = {step.kernel.function_name for plan in device.plans.values() for step in plan.steps}
    other, = {"conv1d_backward_data", "conv1d_backward_data_rows"} - {kernel}
    assert kernel in launched and other not in launched, launched


def test_rows_input_gradient_before_stride_phases(device):
    """A strided input gradient that both the rows kernel (few input channels) and the stride phases would
    take accumulates in rows; without the rows kernel it runs per phase."""
    from clconv.api.checks import conv_geometry
    from clconv.passes.backward_data import input_gradient_plan

    geo = conv_geometry((2, 2, 300), (8, 2, 3), None, 2, 1, 1, 1, 1)
    both = dict(strategy="register", AS_FORWARD=False, ROWS_CO=4, PHASE_DEPTH_MIN=1, PHASE_FLOPS_MIN=1)
    with clconv.params.override(ROWS_CI=4, **both):
        rows = input_gradient_plan(device, geo, np.float32)
    with clconv.params.override(ROWS_CI=None, **both):
        phases = input_gradient_plan(device, geo, np.float32)
    assert [s.kernel.function_name for s in rows.steps] == ["conv1d_backward_data_rows"]
    assert phases.info.get("phases") == 2


def test_cache_block_order_shares_programs(device, rng, monkeypatch):
    """The order of cache blocks (pos_block, from BLOCK_KB) is a runtime argument: a layer in blocked and in
    grid order runs the same programs."""
    monkeypatch.setattr(device, "plans", {})
    m = clconv.Conv1d(16, 16, 3, padding=1, device=device)
    x = rng.uniform(-1, 1, (2, 16, 3000)).astype(np.float32)
    with clconv.params.override(strategy="register", BLOCK_KB=1):
        check_step(m, x, rng, padding=1, what="blocked order")
    blocked = [step.args[-1] for plan in device.plans.values() for step in plan.steps
               if step.kernel.function_name in ("conv1d_forward", "conv1d_backward_data")]
    assert blocked and all(b > 0 for b in blocked), blocked
    builds = Builds(device, monkeypatch)
    with clconv.params.override(strategy="register", BLOCK_KB=1 << 20):
        check_step(m, x, rng, padding=1, what="grid order")
    assert builds.count == 0, f"the grid order built {builds.count} programs"
