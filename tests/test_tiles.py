"""Register-tile layouts of the forward and input-gradient kernels against the float64 reference.

The built-in parameters of the machine running the tests pick one layout per shape; these cases force
the others, so every layout is checked wherever the suite runs: the staged input copy (pad_rows.cl, split
into stride phases for strided cases) and the guarded edge path, several register tiles per work-item with a reduction in chunks that do not
divide the channels, and work-groups renumbered into cache blocks with a partial last block; stride-1 input gradients both
through the forward kernel with flipped weights (flip_weights.cl) and through the gather kernel; weight
gradient tiles picked within an accumulator budget, sliding back over the last channels and taps, and
with their lanes along blocks of input channels (pad_rows_blocked); input gradients that accumulate
whole rows in cache (conv1d_backward_data_rows); forward outputs written with non-temporal stores, and
in runs realigned to the flat output (conv1d_forward_aligned); depthwise passes over blocks of samples
(conv1d_forward_depthwise).
"""
from dataclasses import dataclass

import numpy as np
import pytest

import clconv
from conftest import DTYPE_IDS, assert_close
from test_backward import check_grads
from test_forward import reference_for

LAYOUTS = {
    "staged": dict(STAGE_MIN=1, STAGE_FLOPS=1, AS_FORWARD=True),
    "unstaged": dict(STAGE_MIN=None, STAGE_FLOPS=None, AS_FORWARD=False),
    "r2-p2-chunk3": dict(TILE_CO=2, TILE_L=1, VEC=4, TILE_R=2, TILE_P=2, CI_CHUNK=3, STAGE_MIN=1, STAGE_FLOPS=1,
                         AS_FORWARD=True),
    "cache-blocks": dict(TILE_CO=2, TILE_L=1, VEC=4, BLOCK_KB=1, STAGE_MIN=None, STAGE_FLOPS=None, AS_FORWARD=False),
    # weight tiles (channels x taps) picked per shape: 3x3, 4x4, 2x3, 5x5, 4x2, 2x10 sliding over 7 channels,
    # 1x17 twice over 33 taps
    "weight-budget": dict(TILE_CO=6, ACC_MAX=32, VEC=16, STAGE_MIN=1, STAGE_FLOPS=1, AS_FORWARD=True),
    # ... within 12 accumulators and at most 5 taps: K 10 in 2 x 5, K 33 in tiles of 5 sliding back over the last
    "weight-taps-max": dict(TILE_CO=3, ACC_MAX=12, TAPS_MAX=5, VEC=4, STAGE_MIN=1, STAGE_FLOPS=1),
    # weight gradient lanes along blocks of 4 input channels, the last block partly empty where C_in_g % 4 != 0
    "weight-channel-lanes": dict(CI_LANES_MIN=1, CI_LANES_ACC=24, VEC=4, STAGE_FLOPS=1, BLOCK_KB=1),
    # input gradients accumulating runs of rows (conv1d_backward_data_rows) in several segments
    "data-rows": dict(ROWS_CI=8, ROWS_CO=1, ROWS_SEG=16, AS_FORWARD=False, VEC=4),
    # non-temporal stores of the forward's aligned vectors (row 0 starts aligned), plain ones elsewhere
    "nt-stores": dict(NT_STORE_MIN=1, TILE_CO=2, TILE_L=1, VEC=4, AS_FORWARD=True),
    # forward runs of positions whose stores are realigned to the flat output (conv1d_forward_aligned):
    # tiles of 2 channels sliding back over odd counts, runs that split rows, 4 and 16 lanes (2 and 8 in float64)
    "aligned-runs-v4": dict(NT_STORE_MIN=1, ALIGNED_TAPS=64, ALIGNED_CO=2, ALIGNED_RUN=12, VEC=4, AS_FORWARD=True),
    "aligned-runs-v16": dict(NT_STORE_MIN=1, ALIGNED_TAPS=64, ALIGNED_CO=2, ALIGNED_RUN=32, VEC=16, AS_FORWARD=True),
}


@dataclass(frozen=True)
class TileCase:
    cin: int
    cout: int
    k: int
    length: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    mode: str = "zeros"
    dtype: str = "float32"

    @property
    def id(self):
        return (f"c{self.cin}o{self.cout}-g{self.groups}-d{self.dilation}-k{self.k}-L{self.length}-s{self.stride}"
                f"-pad{self.padding}-{self.mode}-{DTYPE_IDS[np.dtype(self.dtype)]}")


CASES = [
    TileCase(7, 9, 3, 83, padding=1),
    TileCase(5, 7, 4, 61, stride=2, padding=3, dilation=2, mode="reflect"),
    TileCase(6, 6, 3, 50, padding=2, groups=3, mode="circular"),
    TileCase(4, 5, 5, 29, stride=3, padding=4, mode="replicate"),
    TileCase(3, 4, 2, 40, padding=1, dtype="float64"),
    TileCase(4, 3, 3, 45, padding=1, dtype="float16"),
    TileCase(1, 7, 10, 90, stride=5),
    TileCase(4, 4, 33, 80, padding=16, groups=4),
]


def skip_wider_than_compiled(device, vec):
    if device.type == "CPU" and vec > max(8, device.vector_floats):
        pytest.skip(f"{device.name} compiles {device.vector_floats}-float vectors: VEC={vec} runs as 8 there")


def run_case(case, device, rng, batch, **overrides):
    """The case's Conv1d on `device`, its forward of a batch of random inputs and its backward, all under
    the parameter overrides: (m, x, y, dy, dx). Skips float64 where the device has none."""
    dtype = np.dtype(case.dtype)
    if dtype == np.float64 and not device.has_fp64:
        pytest.skip("device has no fp64")
    with clconv.params.override(**overrides):
        m = clconv.Conv1d(case.cin, case.cout, case.k, stride=case.stride, padding=case.padding,
                          dilation=case.dilation, groups=case.groups, padding_mode=case.mode, device=device,
                          dtype=dtype)
        x = rng.uniform(-1.0, 1.0, size=(batch, case.cin, case.length)).astype(dtype)
        y = m(x)
        dy = rng.uniform(-1.0, 1.0, size=y.shape).astype(dtype)
        dx = m.backward(dy)
    return m, x, y, dy, dx


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
def test_register_layouts(case, layout, device, rng):
    skip_wider_than_compiled(device, LAYOUTS[layout].get("VEC", 0))
    m, x, y, dy, dx = run_case(case, device, rng, 3, strategy="register", **LAYOUTS[layout])
    dtype = np.dtype(case.dtype)
    assert_close(y, reference_for(m, x, case), dtype, f"{layout} forward")
    check_grads(m, x, dy, dx, dtype, layout)


# Depthwise stride-1 passes of even batches (conv1d_forward_depthwise), forward and input gradient (its
# forward form): blocks of 2 and 4 samples, edge tiles at both ends, rows shorter than a tile, and
# several tiles per work-item.
DEPTHWISE_CASES = [
    (TileCase(3, 3, 31, 90, padding=15, groups=3), 4),
    (TileCase(2, 2, 5, 70, padding=2, dilation=2, groups=2, mode="reflect"), 6),
    (TileCase(4, 4, 3, 45, padding=1, groups=4, mode="circular", dtype="float64"), 2),
    (TileCase(3, 3, 9, 50, padding=4, groups=3, mode="replicate", dtype="float16"), 4),
    (TileCase(2, 2, 7, 200, groups=2), 8),
]


@pytest.mark.parametrize("vec", [4, 16], ids=["v4", "v16"])
@pytest.mark.parametrize("case, batch", DEPTHWISE_CASES, ids=[f"n{b}-{c.id}" for c, b in DEPTHWISE_CASES])
def test_depthwise_rows(case, batch, vec, device, rng):
    skip_wider_than_compiled(device, vec)
    m, x, y, dy, dx = run_case(case, device, rng, batch, strategy="register", DW_ROWS=4, DW_TILE_L=2, DW_TILES=2,
                               VEC=vec, UNROLL_K_MAX=32, AS_FORWARD=True)
    dtype = np.dtype(case.dtype)
    assert_close(y, reference_for(m, x, case), dtype, "depthwise rows forward")
    check_grads(m, x, dy, dx, dtype, "depthwise rows")


# Weight gradients with lanes along blocks of input channels, whose copy (pad_rows_blocked) transposes
# squares of 4, 8 and 16 positions x channels in registers inside the rows and goes element by element on
# the padding, at the row's end and in a partly empty last block (40 channels: 16 + 16 + 8).
CHANNEL_LANES_CASES = [
    TileCase(40, 6, 3, 70, padding=2, mode="reflect"),
    TileCase(32, 5, 4, 61, stride=2, padding=4, dilation=3),
    TileCase(36, 4, 3, 50, padding=1, groups=2, mode="circular", dtype="float64"),
    TileCase(20, 3, 3, 45, padding=2, mode="replicate", dtype="float16"),
]


@pytest.mark.parametrize("vec", [4, 8, 16], ids=["v4", "v8", "v16"])
@pytest.mark.parametrize("case", CHANNEL_LANES_CASES, ids=[c.id for c in CHANNEL_LANES_CASES])
def test_weight_channel_lanes_squares(case, vec, device, rng):
    dtype = np.dtype(case.dtype)
    if dtype == np.float64 and not device.has_fp64:
        pytest.skip("device has no fp64")
    with clconv.params.override(strategy="register", CI_LANES_MIN=1, CI_LANES_ACC=24, VEC=vec, STAGE_FLOPS=1):
        m = clconv.Conv1d(case.cin, case.cout, case.k, stride=case.stride, padding=case.padding,
                          dilation=case.dilation, groups=case.groups, padding_mode=case.mode, device=device,
                          dtype=dtype)
        x = rng.uniform(-1.0, 1.0, size=(2, case.cin, case.length)).astype(dtype)
        y = m(x)
        dy = rng.uniform(-1.0, 1.0, size=y.shape).astype(dtype)
        m.backward(dy, input_grad=False)
    check_grads(m, x, dy, None, dtype, "channel lanes")


# Pointwise weight gradients with channel lanes whose tiles span several channel blocks (CI_LANES_B): 3
# blocks of 4 sliding back over 10, a partly empty last block, groups, float64 and float16.
BLOCKS_CASES = [
    TileCase(40, 7, 1, 50),
    TileCase(38, 6, 1, 33, groups=2, dtype="float64"),
    TileCase(22, 5, 1, 45, dtype="float16"),
]


@pytest.mark.parametrize("case", BLOCKS_CASES, ids=[c.id for c in BLOCKS_CASES])
def test_weight_channel_lanes_blocks(case, device, rng):
    overrides = dict(strategy="register", CI_LANES_MIN=1, CI_LANES_ACC=12, CI_LANES_B=3, VEC=4, STAGE_FLOPS=1)
    m, x, y, dy, _ = run_case(case, device, rng, 2, **overrides)
    with clconv.params.override(**overrides):
        assert "conv1d_backward_weight_blocked" in weight_kernels(device, case, x.shape, np.dtype(case.dtype))
    check_grads(m, x, dy, None, np.dtype(case.dtype), "channel blocks")


# Strided forwards over the staged input split into phases (pad_rows.cl copies lines inside the row as
# vectors: shuffles for strides 2 and 4, lane by lane otherwise), with several channel tiles per work-item
# (PHASE_TILE_R), the last one partly past the group's channels, and several position tiles.
PHASE_CASES = [
    TileCase(6, 7, 3, 301, stride=2, padding=1),
    TileCase(5, 9, 8, 403, stride=4, padding=2, mode="reflect"),
    TileCase(8, 6, 5, 250, stride=3, padding=2, groups=2, dtype="float64"),
    TileCase(4, 5, 4, 260, stride=2, padding=3, dilation=2, mode="replicate", dtype="float16"),
]


@pytest.mark.parametrize("case", PHASE_CASES, ids=[c.id for c in PHASE_CASES])
def test_strided_phase_tiles(case, device, rng):
    m, x, y, dy, dx = run_case(case, device, rng, 2, strategy="register", STAGE_FLOPS=1, PHASE_TILE_R=3, TILE_CO=2,
                               TILE_L=1, VEC=4, WORK_MIN=1)
    dtype = np.dtype(case.dtype)
    assert_close(y, reference_for(m, x, case), dtype, "strided phase tiles forward")
    check_grads(m, x, dy, dx, dtype, "strided phase tiles")


def test_strided_phase_tiles_plan(device):
    """The strided forward's plan reads the phase copy with PHASE_TILE_R channel tiles per work-item."""
    from clconv.api.checks import conv_geometry
    from clconv.passes.forward import forward_plan

    geo = conv_geometry((2, 6, 301), (7, 6, 3), (7,), 2, 1, 1, 1, 1)
    with clconv.params.override(strategy="register", STAGE_FLOPS=1, PHASE_TILE_R=3, TILE_CO=2):
        plan = forward_plan(device, geo, np.float32, True)
    assert [s.kernel.function_name for s in plan.steps] == ["pad_rows", "conv1d_forward"]
    assert plan.params.TILE_R == 3


@pytest.mark.parametrize("taps, expected", [(8, (3, 4)), (5, (2, 5)), (3, (3, 3)), (31, (2, 5)), (251, (2, 5))])
def test_weight_tiles_within_taps_max(taps, expected):
    """Weight tiles within 12 accumulators and 5 taps split the taps evenly where they can."""
    from clconv.passes.backward_weight import _weight_tiles

    assert _weight_tiles(taps, 64, 3, 12, max_taps=5) == expected


@pytest.mark.parametrize("taps", [1, 3, 5, 8, 31])
def test_channel_lane_tiles_keep_within_the_registers(taps):
    """Lanes along 8 input channels, 12 accumulators: a tile's accumulators and its input vectors stay
    within 15 registers (3 x 4 at K = 8 held 16 and ran a third slower than 4 x 3)."""
    from clconv.passes.backward_weight import _weight_tiles

    tile_co, tile_k = _weight_tiles(taps, 256, 12, 12, channel_lanes=8, max_registers=15)
    assert (tile_co + 1) * tile_k <= 15 and tile_co * tile_k <= 12 and tile_k <= taps
    if taps == 8:  # without the bound, the score alone picks the tile that spilled
        unbounded_co, unbounded_k = _weight_tiles(taps, 256, 12, 12, channel_lanes=8)
        assert (unbounded_co + 1) * unbounded_k > 15


# Stride-1 layers of long kernels with their taps VEC apart, the input vectors sliding through registers
# (conv1d_forward_slide, conv1d_backward_weight_slide): single-channel filterbanks (their input gradients
# as forwards of several input channels into one), channel multipliers in tiles of 3 sliding back over 5
# outputs per group, taps not a multiple of the lanes, edge tiles at both ends under every padding mode,
# rows shorter than a tile, several position tiles per work-item and weight-gradient chunks that split
# rows (RUN).
SLIDE_CASES = [
    TileCase(1, 5, 70, 700, padding=35),
    TileCase(2, 10, 33, 150, padding=16, groups=2, mode="reflect"),
    TileCase(3, 6, 31, 90, padding=15, groups=3, mode="reflect"),
    TileCase(2, 6, 25, 61, padding=12, groups=2, mode="circular", dtype="float64"),
    TileCase(2, 2, 21, 19, padding=10, groups=2, mode="replicate"),
    TileCase(1, 3, 40, 130, padding=3, dtype="float16"),
]


@pytest.mark.parametrize("vec", [4, 8, 16], ids=["v4", "v8", "v16"])
@pytest.mark.parametrize("case", SLIDE_CASES, ids=[c.id for c in SLIDE_CASES])
def test_slide_tiles(case, vec, device, rng):
    skip_wider_than_compiled(device, vec)
    m, x, y, dy, dx = run_case(case, device, rng, 3, strategy="register", SLIDE_K_MIN=20, SLIDE_CO=3, VEC=vec,
                               RUN=64, WORK_MIN=1 << 30, AS_FORWARD=True, TILE_REGS=15)
    dtype = np.dtype(case.dtype)
    assert_close(y, reference_for(m, x, case), dtype, "slide forward")
    check_grads(m, x, dy, dx, dtype, "slide")


def test_slide_plans(device):
    """Long kernels of stride 1 plan the sliding kernels: the forward with several position tiles per
    work-item, its input gradient through the flipped copy, the weight gradient over a padded copy."""
    from clconv.api.checks import conv_geometry
    from clconv.passes.backward_data import input_gradient_plan
    from clconv.passes.backward_weight import weight_gradient_plan
    from clconv.passes.forward import forward_plan

    geo = conv_geometry((2, 1, 700), (5, 1, 70), (5,), 1, 35, 35, 1, 1)
    with clconv.params.override(strategy="register", SLIDE_K_MIN=20, WORK_MIN=1 << 30, AS_FORWARD=True):
        forward = forward_plan(device, geo, np.float32, True)
        data = input_gradient_plan(device, geo, np.float32)
        weight = weight_gradient_plan(device, geo, np.float32)
    assert [s.kernel.function_name for s in forward.steps] == ["conv1d_forward_slide"]
    assert forward.params.TILE_P > 1
    assert [s.kernel.function_name for s in data.steps] == ["flip_weights", "conv1d_forward_slide"]
    assert [s.kernel.function_name for s in weight.steps][:2] == ["pad_rows", "conv1d_backward_weight_slide"]


# Rows of a few outputs with lanes along output channels (conv1d_forward_channel_lanes over lane_weights'
# copy), forward and the stride-1 input gradient in forward form: positions counted across samples with a
# partial last tile, channel tiles past the group's channels, several reduction blocks (40 channels x 33
# taps), strides, dilations and every padding mode.
OUTPUT_LANES_CASES = [
    (TileCase(24, 20, 3, 5, padding=1, groups=2), dict(LANES_POS=5, LANES_CV=1)),
    (TileCase(16, 9, 4, 16, stride=3, padding=2, dilation=2, mode="reflect"), dict(LANES_POS=4, LANES_CV=1)),
    (TileCase(40, 16, 33, 21, padding=16, mode="circular"), dict(LANES_POS=3, LANES_CV=2)),
    (TileCase(10, 8, 5, 7, padding=2, mode="replicate", dtype="float64"), dict(LANES_POS=7, LANES_CV=2)),
    (TileCase(12, 10, 3, 9, stride=2, padding=1, dtype="float16"), dict(LANES_POS=2, LANES_CV=3)),
]


@pytest.mark.parametrize("case, tiles", OUTPUT_LANES_CASES, ids=[c.id for c, _ in OUTPUT_LANES_CASES])
def test_output_channel_lanes(case, tiles, device, rng):
    from clconv.api.checks import conv_geometry
    from clconv.passes.forward import forward_plan

    lanes = dict(strategy="register", LANES_L_MAX=64, LANES_FLOPS_MIN=1, VEC=4, AS_FORWARD=True)
    m, x, y, dy, dx = run_case(case, device, rng, 3, **lanes, **tiles)
    dtype = np.dtype(case.dtype)
    with clconv.params.override(**lanes, **tiles):
        geo = conv_geometry(x.shape, m.weight.shape, m.bias.shape, case.stride, case.padding, case.padding,
                            case.dilation, case.groups, case.mode)
        assert forward_plan(device, geo, dtype, True).info.get("channel_lanes")
    assert_close(y, reference_for(m, x, case), dtype, "output channel lanes forward")
    check_grads(m, x, dy, dx, dtype, "output channel lanes")


def test_output_channel_lanes_plan(device):
    """Rows shorter than LANES_L_MAX with a vector of output channels per group take the lanes where the
    position tiles fitted to the row would leave more lanes idle; longer rows, rows that whole vectors
    fill, groups of fewer channels, or passes of fewer than LANES_FLOPS_MIN flops, keep the position tiles."""
    from clconv.api.checks import conv_geometry
    from clconv.passes.forward import forward_plan

    def kernels(length, c_out, flops_min=1):
        geo = conv_geometry((2, 8, length), (c_out, 8, 3), (c_out,), 1, 1, 1, 1, 1)
        with clconv.params.override(strategy="register", LANES_L_MAX=32, LANES_FLOPS_MIN=flops_min, LANES_POS=5,
                                    VEC=4):
            return [s.kernel.function_name for s in forward_plan(device, geo, np.float32, True).steps]

    assert kernels(5, 4) == ["lane_weights", "pad_rows", "conv1d_forward_channel_lanes"]  # 10 positions, 10 lanes
    assert "conv1d_forward_channel_lanes" not in kernels(28, 4)
    assert "conv1d_forward_channel_lanes" not in kernels(37, 4)
    assert "conv1d_forward_channel_lanes" not in kernels(5, 3)
    flops = 2 * 2 * 4 * 5 * 8 * 3
    assert kernels(5, 4, flops_min=flops)[-1] == "conv1d_forward_channel_lanes"
    assert "conv1d_forward_channel_lanes" not in kernels(5, 4, flops_min=flops + 1)


# Large-stride input gradients in columns (a pointwise forward of dy with lane_weights' copy, then
# conv1d_backward_data_cols adding the columns back): taps overlapping across strides (K > stride), gaps
# between windows (K < stride), dilation, groups, runs of positions past COLS_RUN and every padding mode.
COLUMN_CASES = [
    TileCase(1, 16, 40, 1300, stride=16, padding=12),
    TileCase(4, 16, 12, 200, stride=8, padding=3, dilation=3, groups=2, mode="reflect"),
    TileCase(3, 8, 5, 90, stride=9, padding=2, mode="circular", dtype="float64"),
    TileCase(2, 10, 10, 120, stride=10, padding=4, mode="replicate", dtype="float16"),
]


@pytest.mark.parametrize("case", COLUMN_CASES, ids=[c.id for c in COLUMN_CASES])
def test_input_gradient_columns(case, device, rng):
    from clconv.api.checks import conv_geometry
    from clconv.passes.backward_data import input_gradient_plan

    m, x, y, dy, dx = run_case(case, device, rng, 2, strategy="register", COLS_STRIDE_MIN=8)
    dtype = np.dtype(case.dtype)
    with clconv.params.override(strategy="register", COLS_STRIDE_MIN=8):
        geo = conv_geometry(x.shape, m.weight.shape, m.bias.shape, case.stride, case.padding, case.padding,
                            case.dilation, case.groups, case.mode)
        kernels = [s.kernel.function_name for s in input_gradient_plan(device, geo, dtype).steps]
    assert kernels[0] == "lane_weights" and "conv1d_backward_data_cols" in kernels
    check_grads(m, x, dy, dx, dtype, "input gradient in columns")


def test_transposed_columns_with_bias(device, rng):
    """conv_transpose1d of a large stride (its forward is an input gradient) through the columns, with its
    bias and output_padding."""
    from reference import conv_transpose1d_ref

    w = rng.uniform(-1, 1, (12, 3, 20)).astype(np.float32)
    b = rng.uniform(-1, 1, 3).astype(np.float32)
    x = rng.uniform(-1, 1, (2, 12, 9)).astype(np.float32)
    with clconv.params.override(strategy="register", COLS_STRIDE_MIN=8):
        y = clconv.functional.conv_transpose1d(x, w, b, stride=16, padding=3, output_padding=5)
    ref = conv_transpose1d_ref(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), stride=16,
                               padding=3, output_padding=5)
    assert_close(y, ref, np.dtype(np.float32), "transposed columns")


# Short rows in columns: forwards as dot products of weight rows with the input's columns (pad_columns in
# panels of one vector, conv1d_forward_columns: channel tiles of 3 sliding back, 4-position tiles with a
# partial last one, rows ending inside a vector), weight gradients over the input's columns (pad_columns,
# conv1d_backward_weight_columns) in panels of 2 vectors with a last panel partly past C_in_g x K, channel
# tiles of 3 sliding back over the group's last channels, several tiles per work-item with a partial last
# block; input gradients whose columns come straight from the weights (conv1d_backward_data_columns), tiles
# of 4 positions across samples with a partial last one, the last entry tile sliding back, then the
# overlap-add. Every padding mode, strides, dilations and groups; the second backward adds to the first
# weight gradient.
COLUMN_CASES = [
    TileCase(7, 11, 3, 9, padding=1),
    TileCase(5, 10, 4, 17, stride=2, padding=3, dilation=2, mode="reflect"),
    TileCase(6, 14, 5, 12, padding=2, groups=2, mode="circular"),
    TileCase(9, 7, 2, 8, stride=3, padding=1, mode="replicate", dtype="float64"),
    TileCase(8, 9, 3, 10, padding=1, dtype="float16"),
    TileCase(12, 10, 5, 14, padding=2, dilation=3),
]
COLUMN_OVERRIDES = dict(strategy="register", COLS_L_MAX=64, COLS_CHANNELS_MIN=1, COLS_CO=3, COLS_RV=2,
                        COLS_STEPS=2, COLS_POS=4)


@pytest.mark.parametrize("vec", [4, 8, 16], ids=["v4", "v8", "v16"])
@pytest.mark.parametrize("case", COLUMN_CASES, ids=[c.id for c in COLUMN_CASES])
def test_short_row_columns(case, vec, device, rng):
    dtype = np.dtype(case.dtype)
    if case.cin // case.groups * case.k < 2 * (vec // 2 if dtype == np.float64 else vec):
        pytest.skip("weight rows of fewer than two vectors keep the other kernels")
    skip_wider_than_compiled(device, vec)
    m, x, y, dy, dx = run_case(case, device, rng, 3, VEC=vec, **COLUMN_OVERRIDES)
    with clconv.params.override(VEC=vec, **COLUMN_OVERRIDES):
        assert "conv1d_backward_weight_columns" in weight_kernels(device, case, x.shape, dtype)
        assert "conv1d_backward_data_columns" in input_kernels(device, case, x.shape, dtype)
        assert "conv1d_forward_columns" in forward_kernels(device, case, x.shape, dtype)
    assert_close(y, reference_for(m, x, case), dtype, "columns forward")
    check_grads(m, x, dy, dx, dtype, "columns")
    first = m.weight.grad.get()
    with clconv.params.override(VEC=vec, **COLUMN_OVERRIDES):
        m.backward(dy, input_grad=False)
    assert_close(m.weight.grad.get(), 2 * first.astype(np.float64), dtype, "weight columns, accumulated")


def _geometry(case, x_shape):
    from clconv.api.checks import conv_geometry

    return conv_geometry(x_shape, (case.cout, case.cin // case.groups, case.k), (case.cout,), case.stride,
                         case.padding, case.padding, case.dilation, case.groups, case.mode)


def weight_kernels(device, case, x_shape, dtype):
    """The kernels of the case's weight-gradient plan under the current overrides."""
    from clconv.passes.backward_weight import weight_gradient_plan

    return [s.kernel.function_name for s in weight_gradient_plan(device, _geometry(case, x_shape), dtype).steps]


def forward_kernels(device, case, x_shape, dtype):
    """The kernels of the case's forward plan under the current overrides."""
    from clconv.passes.forward import forward_plan

    return [s.kernel.function_name for s in forward_plan(device, _geometry(case, x_shape), dtype, True).steps]


def input_kernels(device, case, x_shape, dtype):
    """The kernels of the case's input-gradient plan under the current overrides."""
    from clconv.passes.backward_data import input_gradient_plan

    return [s.kernel.function_name for s in input_gradient_plan(device, _geometry(case, x_shape), dtype).steps]


def test_short_row_columns_plan(device):
    """Short rows with many output channels take the columns in both gradients; long rows, and too few
    channels, do not."""
    def kernels(length, out_channels):
        case = TileCase(32, out_channels, 3, length, padding=1)
        with clconv.params.override(strategy="register", COLS_L_MAX=48, COLS_CHANNELS_MIN=64, VEC=4):
            return (weight_kernels(device, case, (4, 32, length), np.float32)
                    + input_kernels(device, case, (4, 32, length), np.float32))

    assert kernels(47, 64) == ["pad_columns", "conv1d_backward_weight_columns", "conv1d_backward_data_columns",
                               "conv1d_backward_data_cols"]
    for length, out_channels in ((48, 64), (47, 63)):
        assert not {"conv1d_backward_weight_columns", "conv1d_backward_data_columns"} & set(kernels(length, out_channels))


# Strided weight gradients of long kernels as the stride-1 gradient of their stride phases (pad_rows.cl
# phases taken as input channels, conv1d_backward_weight_slide, unphase_weights): strides 2-4, taps that
# the stride does not divide (the phases' last taps past K dropped), groups, padding modes, float16 and
# float64; the second backward adds to the first gradient.
PHASE_WEIGHT_CASES = [
    TileCase(1, 5, 9, 60, stride=2, padding=4),
    TileCase(2, 4, 13, 70, stride=3, padding=2, groups=2, mode="reflect"),
    TileCase(1, 3, 10, 50, stride=4, padding=1, dtype="float64"),
    TileCase(2, 6, 8, 45, stride=2, padding=3, mode="circular", dtype="float16"),
]
PHASE_WEIGHT_OVERRIDES = dict(strategy="register", SLIDE_K_MIN=3, SLIDE_CO=2, VEC=4, RUN=16)


@pytest.mark.parametrize("case", PHASE_WEIGHT_CASES, ids=[c.id for c in PHASE_WEIGHT_CASES])
def test_weight_gradient_in_stride_phases(case, device, rng):
    dtype = np.dtype(case.dtype)
    m, x, y, dy, _ = run_case(case, device, rng, 2, **PHASE_WEIGHT_OVERRIDES)
    with clconv.params.override(**PHASE_WEIGHT_OVERRIDES):
        kernels = weight_kernels(device, case, x.shape, dtype)
        assert "conv1d_backward_weight_slide" in kernels and kernels[-1] == "unphase_weights"
    check_grads(m, x, dy, None, dtype, "stride phases")
    first = m.weight.grad.get()
    with clconv.params.override(**PHASE_WEIGHT_OVERRIDES):
        m.backward(dy, input_grad=False)
    assert_close(m.weight.grad.get(), 2 * first.astype(np.float64), dtype, "stride phases, accumulated")


# Weight gradients of rows padded by a quarter of their length or more read the padded copy, whatever
# their depth (the unstaged kernel would gather most vectors lane by lane through the padding map); a row
# padded less does not.
PADDED_CASES = [
    TileCase(4, 8, 9, 20, padding=8, dilation=2, groups=4),
    TileCase(3, 5, 5, 16, padding=4, mode="reflect", dtype="float64"),
    TileCase(2, 4, 7, 24, padding=6, stride=2, mode="circular", dtype="float16"),
]
UNSTAGED = dict(strategy="register", STAGE_MIN=None, STAGE_FLOPS=None, SLIDE_K_MIN=None, CI_LANES_MIN=None,
                COLS_L_MAX=None)


@pytest.mark.parametrize("case", PADDED_CASES, ids=[c.id for c in PADDED_CASES])
def test_weight_gradient_of_mostly_padded_rows(case, device, rng):
    dtype = np.dtype(case.dtype)
    m, x, y, dy, _ = run_case(case, device, rng, 2, **UNSTAGED)
    with clconv.params.override(**UNSTAGED):
        assert weight_kernels(device, case, x.shape, dtype)[:2] == ["pad_rows", "conv1d_backward_weight_partial"]
        padded_less = TileCase(case.cin, case.cout, case.k, 4 * 2 * case.padding + 1, padding=case.padding,
                               groups=case.groups)
        assert "pad_rows" not in weight_kernels(device, padded_less, (2, case.cin, padded_less.length), dtype)
    check_grads(m, x, dy, None, dtype, "mostly padded rows")
