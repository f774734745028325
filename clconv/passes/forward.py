"""The forward pass, y = conv1d(x): conv1d_forward.cl's general kernel, its depthwise sample-block kernel,
its depthwise local-memory kernel for GPUs and its realigned kernel for shallow reductions. The plan reads "x", "w", "bias" and writes "y".
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import params
from ..params import ceil_div
from ..api.checks import ConvGeometry
from . import staging
from ..params import ForwardParams
from .plan import (PAD_MODE_CODE, Pass, Plan, Step, acc_bytes, common_defines, compiled_class, dtype_defines,
                   exceeds_kernel, line_step, pass_params, pass_record, planned, position_block)


def forward_plan(device, geo: ConvGeometry, dtype, has_bias: bool, w_flipped: bool = False) -> Plan:
    """w_flipped: "w" is the weight of the layer whose stride-1 input gradient this forward is (geo is that
    layer's dual): the plan reads it flipped and transposed (flip_weights.cl's wf), in place where the
    kernel stages weights in __local memory, else through a flipped copy."""
    dtype = np.dtype(dtype)
    return planned(device, (Pass.FORWARD, geo, dtype.str, has_bias, w_flipped),
                   lambda: _build(device, geo, dtype, has_bias, w_flipped))


def flipped(device, geo: ConvGeometry, dtype, plan: Plan) -> Plan:
    """flip_weights.cl into the scratch buffer "flipped", then `plan` reading it as its "w"."""
    flip = device.kernel("flip_weights.cl", "flip_weights", dtype_defines(dtype))
    size = geo.out_channels * geo.in_per_group * geo.kernel_size
    # The layer's input channels (the dual's outputs) in blocks of 8 along dim 0, its output channels' blocks
    # per group along dim 1 (flip_weights.cl).
    squares = geo.groups * ceil_div(geo.in_per_group, 8)
    flipping = Plan((line_step(device, flip, ceil_div(geo.out_per_group, 8), "w", "flipped",
                               np.int32(geo.out_per_group), np.int32(geo.in_per_group), np.int32(geo.groups),
                               np.int32(geo.kernel_size), rows=squares, preferred=16),),
                    (("flipped", size * dtype.itemsize),))
    return flipping.then(plan.renamed(w="flipped"))


def _build(device, geo: ConvGeometry, dtype, has_bias: bool, w_flipped: bool, max_group: int | None = None) -> Plan:
    # Compiled choices come from the shape's class (rep), launch sizes and arguments from the shape itself.
    rep = compiled_class(geo)

    def local_bytes(p):
        vec = p.VEC
        win = ceil_div((p.WG_L * p.TILE_L * vec - 1) * geo.stride + (geo.kernel_size - 1) * geo.dilation + 1, vec) * vec
        phase_len = ceil_div(ceil_div(win, geo.stride), vec) * vec
        staged_x = vec * geo.stride * phase_len  # shifted copies of every phase (conv1d_forward.cl)
        return acc_bytes(dtype) * p.CI_TILE * (staged_x + geo.kernel_size * p.WG_CO * p.TILE_CO)

    p = pass_params(device, Pass.FORWARD, geo, dtype, geo.out_per_group, rep.length_out, local_bytes, max_group,
                    local_vectors=True)
    output_bytes = rep.batch * rep.out_channels * rep.length_out * dtype.itemsize
    nt_stores = p.NT_STORE_MIN is not None and p.NT_STORE_MIN <= output_bytes
    # (one sample per work-item shares no weights and ran no faster than the generic kernel: (1,256,4000) K31)
    # (its loop over input offsets unrolls fully, over the dilated kernel's reach)
    if p.strategy == "local" and _small_groups(geo):
        small = _depthwise_local(device, geo, rep, dtype, has_bias, w_flipped, p)
        if small is not None:
            return small
    if w_flipped and p.strategy == "register":
        return flipped(device, geo, dtype, _build(device, geo, dtype, has_bias, False, max_group))
    if (p.strategy == "register" and p.SLIDE_K_MIN is not None and geo.stride == 1 and geo.dilation == 1
            and geo.kernel_size >= p.SLIDE_K_MIN and geo.out_per_group <= p.SLIDE_CO_MAX):
        return _slide(device, geo, rep, dtype, has_bias, p)
    if p.strategy == "register":
        by_columns = _columns(device, geo, dtype, has_bias)
        if by_columns is not None:
            return by_columns
        lanes = _channel_lanes(device, geo, dtype, has_bias, p)
        if lanes is not None:
            return lanes
    if (p.strategy == "register" and p.DW_ROWS is not None and p.DW_ROWS > 1
            and geo.in_per_group == geo.out_per_group == 1 and geo.stride == 1 and (geo.kernel_size - 1) * geo.dilation + 1 <= p.UNROLL_K_MAX
            and geo.batch % 2 == 0):
        return _depthwise(device, geo, rep, dtype, has_bias, p, nt_stores)
    # Outputs of under 16 multiply-adds each are bound by their stores, and longer runs per work-item
    # lost there (wav2vec 59 -> 38 GF/s), as did more channel tiles per work-item.
    if (p.strategy == "register" and geo.stride > 1 and geo.in_per_group * geo.kernel_size >= 16
            and staging.stages_input(rep, p)):
        p = replace(p, TILE_R=max(p.TILE_R, min(p.PHASE_TILE_R, ceil_div(geo.out_per_group, p.TILE_CO))))
    if (p.strategy == "register" and p.WORK_MIN is not None and geo.in_per_group * geo.kernel_size >= 16
            and rep.flops() >= 16 * device.compute_units * p.WORK_MIN):
        p = replace(p, TILE_P=_position_tiles(device, rep, p))
    if (p.strategy == "register" and nt_stores and p.ALIGNED_TAPS is not None
            and 0 < geo.in_per_group * geo.kernel_size <= p.ALIGNED_TAPS
            and geo.out_per_group >= p.ALIGNED_CO and dtype != np.float16):
        aligned = _aligned(device, geo, rep, dtype, has_bias, p)
        if aligned is not None:
            return aligned
    span_co = p.WG_CO * p.TILE_R * p.TILE_CO
    span_l = p.WG_L * p.TILE_P * p.TILE_L * p.VEC
    staged = staging.phase_rows(device, geo, dtype, ceil_div(geo.length_out, span_l) * span_l) \
        if staging.stages_input(rep, p) else None
    span_in = (span_l - 1) * geo.stride + (geo.kernel_size - 1) * geo.dilation + 1
    rep_row = rep.length_in if staged is None else ceil_div(rep.length_in, geo.stride) * geo.stride
    defines = {**common_defines(geo, dtype, p), "NT_STORES": nt_stores,
               "PAD_MODE": 0 if staged else PAD_MODE_CODE[geo.padding_mode],
               "X_PHASES": staged.phases if staged else 1, "TILE_CO": p.TILE_CO, "W_FLIPPED": int(w_flipped),
               "TILE_L": p.TILE_L, "WG_L": p.WG_L, "WG_CO": p.WG_CO,
               "CI_TILE": min(p.CI_TILE, geo.in_per_group),
               "TILE_R": p.TILE_R, "TILE_P": p.TILE_P, "CI_CHUNK": p.CI_CHUNK}
    kernel = device.kernel("conv1d_forward.cl", "conv1d_forward", defines)
    limit = exceeds_kernel(device, kernel, p.WG_L * p.WG_CO)
    if limit:
        return _build(device, geo, dtype, has_bias, w_flipped, limit)
    positions = ceil_div(geo.length_out, span_l) * p.WG_L
    rows = geo.groups * ceil_div(geo.out_per_group, span_co) * p.WG_CO
    row_length = geo.length_in if staged is None else staged.row_length
    step = Step(kernel, (positions, rows, geo.batch), (p.WG_L, p.WG_CO, 1),
                ("staged" if staged else "x", "w", "bias" if has_bias else "w", "y",
                 np.int32(row_length), np.int32(geo.length_out), np.int32(0 if staged else geo.pad_left), np.int32(has_bias),
                 np.int32(geo.length_out), np.int32(0), np.int32(geo.kernel_size - 1),
                 np.int32(position_block(p, geo.in_channels * span_in * dtype.itemsize,
                                         geo.in_channels * rep_row * dtype.itemsize))))
    plan = Plan((step,), params=p)
    return staged.plan.then(plan) if staged else plan


def phase_forward(device, geo: ConvGeometry, dtype, has_bias: bool, *, w_row_taps: int, w_tap_step: int,
                  y_step: int, y_row: int, y_offset: int, w_tap_last: int, register: bool = False) -> Plan | None:
    """One stride phase of an input gradient as a forward: geo is the stride-1 convolution of dy with that
    phase's taps (flipped, w_tap_step apart in the layer's rows of w_row_taps, the last at w_tap_last),
    whose output l goes to position l * y_step + y_offset of rows y_row long. Its "w" is the layer's weight
    (local strategy, read in place) or (register) flip_weights.cl's copy of it, which the caller makes.
    None where the device's row runs neither the local strategy nor (register) the register one."""
    rep = compiled_class(geo)

    def local_bytes(p):
        vec = p.VEC
        win = ceil_div((p.WG_L * p.TILE_L * vec - 1) + (geo.kernel_size - 1) * geo.dilation + 1, vec) * vec
        return acc_bytes(dtype) * p.CI_TILE * (vec * win + geo.kernel_size * p.WG_CO * p.TILE_CO)

    p = pass_params(device, Pass.FORWARD, geo, dtype, geo.out_per_group, rep.length_out, local_bytes,
                    local_vectors=True)
    if p.strategy != "local" and not (register and p.strategy == "register"):
        return None
    if p.strategy == "register":
        p = replace(p, TILE_R=max(p.TILE_R, min(p.PHASE_TILE_R, ceil_div(geo.out_per_group, p.TILE_CO))))
    if (p.strategy == "register" and p.WORK_MIN is not None and geo.in_per_group * geo.kernel_size >= 16
            and rep.flops() >= 16 * device.compute_units * p.WORK_MIN):
        p = replace(p, TILE_P=_position_tiles(device, rep, p))
    defines = {**common_defines(geo, dtype, p), "PAD_MODE": 0, "W_FLIPPED": 1, "W_ROW_TAPS": w_row_taps,
               "W_TAP_STEP": w_tap_step, "Y_STEP": y_step, "TILE_CO": p.TILE_CO, "TILE_L": p.TILE_L,
               "WG_L": p.WG_L, "WG_CO": p.WG_CO, "CI_TILE": min(p.CI_TILE, geo.in_per_group)}
    if p.strategy == "register":
        defines.update(TILE_R=p.TILE_R, TILE_P=p.TILE_P, CI_CHUNK=p.CI_CHUNK)
    kernel = device.kernel("conv1d_forward.cl", "conv1d_forward", defines)
    if exceeds_kernel(device, kernel, p.WG_L * p.WG_CO):
        return None
    span_l = p.WG_L * p.TILE_P * p.TILE_L * p.VEC
    rows = geo.groups * ceil_div(geo.out_per_group, p.WG_CO * p.TILE_R * p.TILE_CO) * p.WG_CO
    span_in = span_l + (geo.kernel_size - 1) * geo.dilation
    pos_block = position_block(p, geo.in_channels * span_in * dtype.itemsize, geo.in_channels * rep.length_in * dtype.itemsize)
    step = Step(kernel, (ceil_div(geo.length_out, span_l) * p.WG_L, rows, geo.batch), (p.WG_L, p.WG_CO, 1),
                ("x", "w", "bias" if has_bias else "w", "y", np.int32(geo.length_in), np.int32(geo.length_out),
                 np.int32(geo.pad_left), np.int32(has_bias), np.int32(y_row), np.int32(y_offset), np.int32(w_tap_last),
                 np.int32(pos_block)))
    return Plan((step,), params=p)


def _position_tiles(device, geo: ConvGeometry, p: ForwardParams) -> int:
    """TILE_P for the forward: register tiles per work-item along the positions, enough that a work-item
    does WORK_MIN multiply-adds, while every compute unit keeps 8 work-groups or more. A work-group's start
    costs PoCL about as much as a short one's work, and a long run of positions per work-item keeps a
    reduction chunk's rows within a few pages. Passes with fewer than 8 WORK_MIN per compute unit keep one
    tile."""
    tile_work = p.TILE_R * p.TILE_CO * p.TILE_L * p.VEC * geo.in_per_group * geo.kernel_size
    tiles_along = ceil_div(geo.length_out, p.WG_L * p.TILE_L * p.VEC)
    other_groups = geo.batch * geo.groups * ceil_div(geo.out_per_group, p.WG_CO * p.TILE_R * p.TILE_CO)
    tiles = min(params.pow2_ceil(ceil_div(p.WORK_MIN, tile_work)), params.pow2_floor(max(1, tiles_along)))
    while tiles > 1 and other_groups * ceil_div(tiles_along, tiles) < 8 * device.compute_units:
        tiles //= 2
    return max(p.TILE_P, tiles)


def _depthwise(device, geo: ConvGeometry, rep: ConvGeometry, dtype, has_bias: bool, p: ForwardParams,
               nt_stores: bool) -> Plan:
    """conv1d_forward_depthwise: DW_ROWS samples of one channel per work-item, sharing its weights."""
    rows = params.pow2_floor(p.DW_ROWS)
    while geo.batch % rows:  # sample blocks divide the batch: no partial block to guard
        rows //= 2
    tile_l = min(p.DW_TILE_L, params.pow2_ceil(ceil_div(rep.length_out, p.VEC)))
    rep_along = ceil_div(rep.length_out, tile_l * p.VEC)
    tiles = min(params.pow2_floor(p.DW_TILES), params.pow2_ceil(rep_along))
    while tiles > 1 and geo.in_channels * max(1, rep.batch // rows) * ceil_div(rep_along, tiles) < 8 * device.compute_units:
        tiles //= 2
    along = ceil_div(geo.length_out, tile_l * p.VEC)
    defines = {**common_defines(geo, dtype, p), "PAD_MODE": PAD_MODE_CODE[geo.padding_mode],
               "NT_STORES": nt_stores, "DW_ROWS": rows, "DW_TILE_L": tile_l, "DW_TILES": tiles}
    kernel = device.kernel("conv1d_forward.cl", "conv1d_forward_depthwise", defines)
    step = Step(kernel, (ceil_div(along, tiles), geo.in_channels, geo.batch // rows), (1, 1, 1),
                ("x", "w", "bias" if has_bias else "w", "y",
                 np.int32(geo.length_in), np.int32(geo.length_out), np.int32(geo.pad_left), np.int32(has_bias)))
    return Plan((step,), params=p)


def _slide(device, geo: ConvGeometry, rep: ConvGeometry, dtype, has_bias: bool, p: ForwardParams) -> Plan:
    """conv1d_forward_slide: taps by residue, the tile's input vectors sliding through registers."""
    tile_co = params.balanced_tile(geo.out_per_group, p.SLIDE_CO)
    # accumulators, the sliding input vectors and a broadcast weight within the registers
    tile_t = max(1, ((p.TILE_REGS or 16) - 1) // (tile_co + 1))
    tiled = replace(p, TILE_CO=tile_co, TILE_L=tile_t, TILE_R=1, WG_L=1, WG_CO=1, TILE_P=1)
    tiles = _position_tiles(device, rep, tiled) if p.WORK_MIN is not None else 1
    span = tile_t * p.VEC * tiles
    defines = {**common_defines(geo, dtype, p), "PAD_MODE": PAD_MODE_CODE[geo.padding_mode],
               "TILE_CO": tile_co, "SLIDE_T": tile_t, "TILE_P": tiles, "CI_CHUNK": p.CI_CHUNK}
    kernel = device.kernel("conv1d_forward.cl", "conv1d_forward_slide", defines)
    rows = geo.groups * ceil_div(geo.out_per_group, tile_co)
    step = Step(kernel, (ceil_div(geo.length_out, span), rows, geo.batch), (1, 1, 1),
                ("x", "w", "bias" if has_bias else "w", "y",
                 np.int32(geo.length_in), np.int32(geo.length_out), np.int32(geo.pad_left), np.int32(has_bias)))
    return Plan((step,), params=replace(tiled, TILE_P=tiles))


MULTIPLIER_MAX = 8  # channels per group beside a single one that conv1d_forward_depthwise_local takes


def _small_groups(geo: ConvGeometry) -> bool:
    """Stride-1 layers whose groups have one input channel and up to MULTIPLIER_MAX outputs, or (input
    gradients of those as forwards) the reverse: conv1d_forward_depthwise_local's."""
    return (geo.stride == 1 and min(geo.in_per_group, geo.out_per_group) == 1
            and max(geo.in_per_group, geo.out_per_group) <= MULTIPLIER_MAX)


def _depthwise_local(device, geo: ConvGeometry, rep: ConvGeometry, dtype, has_bias: bool, w_flipped: bool,
                     p: ForwardParams) -> Plan | None:
    """conv1d_forward_depthwise_local: a work-group stages a few groups' input windows and weights in
    __local memory once; a work-item keeps all its group's outputs at a run of positions DILATION apart in
    registers. None where its work-group or __local memory does not fit the device."""
    # A run of R outputs reads (R + K - 1) / (R K) elements per multiply-add; the accumulators stay at
    # about 32 registers.
    run = max(4, 32 // params.pow2_ceil(geo.out_per_group))
    blocks = max(1, min(64 // geo.dilation, ceil_div(rep.length_out, run * geo.dilation)))
    lanes = blocks * geo.dilation
    vec = 4
    block = run * geo.dilation
    window = _round(lanes * run + (geo.kernel_size - 1) * geo.dilation, vec)  # the kernel's DWL_ROW, DWL_W_ROW
    staged_row = _round(window - 1 + (window - 1) // block * vec + 1, vec)
    weights = geo.out_per_group * geo.in_per_group * _round(geo.kernel_size, vec) + _round(geo.out_per_group, vec)
    per_group = acc_bytes(dtype) * (geo.in_per_group * staged_row + weights)
    groups = min(geo.groups, max(1, 128 // lanes), device.max_work_group_size // lanes, device.local_mem_size // per_group)
    if groups < 1:
        return None
    defines = {**common_defines(geo, dtype, p),
               "PAD_MODE": PAD_MODE_CODE[geo.padding_mode], "W_FLIPPED": int(w_flipped), "VEC": vec, "DWL_RUN": run,
               "DWL_TAPS": min(geo.kernel_size, 16), "DWL_LANES": lanes, "DWL_GROUPS": groups}
    kernel = device.kernel("conv1d_forward.cl", "conv1d_forward_depthwise_local", defines)
    if exceeds_kernel(device, kernel, lanes * groups):
        return None
    step = Step(kernel, (ceil_div(geo.length_out, lanes * run) * lanes, ceil_div(geo.groups, groups) * groups, geo.batch),
                (lanes, groups, 1), ("x", "w", "bias" if has_bias else "w", "y", np.int32(geo.length_in),
                                     np.int32(geo.length_out), np.int32(geo.pad_left), np.int32(has_bias)))
    return Plan((step,), params=p)


def _columns(device, geo: ConvGeometry, dtype, has_bias: bool) -> Plan | None:
    """conv1d_forward_columns over pad_columns' copy (panels of one vector) where the layer takes columns
    (staging.takes_columns), the output channels sharing the copy; None for other layers (or past the
    device's buffer limit)."""
    p = pass_record(device, Pass.FORWARD, geo, dtype)
    if not staging.takes_columns(geo, p):
        return None
    staged = staging.columns(device, geo, dtype, p.VEC, p.VEC)
    if staged is None:
        return None
    tile_co = min(p.COLS_CO, geo.out_per_group)
    kernel = device.kernel("conv1d_forward.cl", "conv1d_forward_columns",
                           {**common_defines(geo, dtype, p), "COLS_CO": tile_co, "COLS_POS": p.COLS_POS})
    positions = geo.batch * geo.length_out
    step = Step(kernel, (ceil_div(positions, p.COLS_POS), geo.groups * ceil_div(geo.out_per_group, tile_co)), (1, 1),
                ("staged", "w", "bias" if has_bias else "w", "y", np.int32(geo.length_out), np.int32(positions),
                 np.int32(has_bias)))
    return staged.plan.then(Plan((step,), params=p, info={"panels": staging.panels_of(geo, p.VEC)}))


def _channel_lanes(device, geo: ConvGeometry, dtype, has_bias: bool, fitted: ForwardParams) -> Plan | None:
    """conv1d_forward_channel_lanes over lane_weights' copy of the weights and the phase-split input, for
    rows shorter than LANES_L_MAX with at least a vector of output channels per group and 16 products per
    output, in passes of LANES_FLOPS_MIN flops or more (launch-bound below), where its lanes do more useful
    work than the position tiles fitted to the row (`fitted`: a 35-position row in 4-lane vectors fills 35 of
    36 lanes of half-width vectors, 49%); None for other layers (or past the device's buffer limit)."""
    p = pass_record(device, Pass.FORWARD, geo, dtype)
    if (p.LANES_L_MAX is None or geo.length_out >= p.LANES_L_MAX or geo.out_per_group < p.VEC
            or geo.in_per_group * geo.kernel_size < 16 or geo.flops() < p.LANES_FLOPS_MIN):
        return None
    span = fitted.TILE_L * fitted.VEC
    positions_used = geo.length_out / (ceil_div(geo.length_out, span) * span) * fitted.VEC / p.VEC
    vectors = min(p.LANES_CV, ceil_div(geo.out_per_group, p.VEC))
    co_pad = ceil_div(geo.out_per_group, vectors * p.VEC) * vectors * p.VEC
    positions = geo.batch * geo.length_out
    channels_used = geo.out_per_group / co_pad * positions / (ceil_div(positions, p.LANES_POS) * p.LANES_POS)
    if channels_used <= positions_used:
        return None
    staged = staging.phase_rows(device, geo, dtype, geo.length_out)
    if staged is None:
        return None
    lane_weights = device.kernel("flip_weights.cl", "lane_weights", dtype_defines(dtype))
    rearrange = Plan((line_step(device, lane_weights, ceil_div(geo.in_per_group * geo.kernel_size, 8), "w", "lane_w",
                                np.int32(geo.in_per_group), np.int32(geo.out_per_group), np.int32(geo.groups),
                                np.int32(geo.kernel_size), np.int32(co_pad), rows=geo.groups * ceil_div(co_pad, 8),
                                preferred=16),),
                     (("lane_w", geo.groups * geo.in_per_group * geo.kernel_size * co_pad * acc_bytes(dtype)),))
    kernel = device.kernel("conv1d_forward.cl", "conv1d_forward_channel_lanes",
                           {**common_defines(geo, dtype, p), "LANES_POS": p.LANES_POS, "LANES_CV": vectors})
    step = Step(kernel, (ceil_div(positions, p.LANES_POS), geo.groups * co_pad // (vectors * p.VEC)), (1, 1),
                ("staged", "lane_w", "bias" if has_bias else "w", "y", np.int32(staged.row_length),
                 np.int32(staged.row_length // geo.stride), np.int32(geo.length_out), np.int32(positions),
                 np.int32(has_bias)))
    return rearrange.then(staged.plan).then(Plan((step,), params=p, info={"channel_lanes": True}))


def _round(n: int, vec: int) -> int:
    return ceil_div(n, vec) * vec


def _aligned(device, geo: ConvGeometry, rep: ConvGeometry, dtype, has_bias: bool, p: ForwardParams) -> Plan | None:
    """conv1d_forward_aligned over the staged input: runs of positions whose stores are realigned to the
    flat output and bypass the cache."""
    staged = staging.phase_rows(device, geo, dtype, ceil_div(geo.length_out, p.VEC) * p.VEC + p.VEC)
    if staged is None:
        return None
    run = min(p.ALIGNED_RUN, ceil_div(rep.length_out, p.VEC) * p.VEC)
    tile = params.balanced_tile(geo.out_per_group, p.ALIGNED_CO)
    defines = {**common_defines(geo, dtype, p), "NT_STORES": 1, "X_PHASES": geo.stride,
               "TILE_CO": tile, "RUN_L": run}
    kernel = device.kernel("conv1d_forward.cl", "conv1d_forward_aligned", defines)
    tiles = geo.groups * ceil_div(geo.out_per_group, tile)
    step = Step(kernel, (ceil_div(geo.length_out, run), tiles, geo.batch), (1, 1, 1),
                ("staged", "w", "bias" if has_bias else "w", "y",
                 np.int32(staged.row_length), np.int32(geo.length_out), np.int32(0), np.int32(has_bias)))
    return staged.plan.then(Plan((step,), params=p))
