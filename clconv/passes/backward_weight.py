"""The weight and bias gradients (conv1d_backward_weight.cl, conv1d_backward_weight_reduce.cl,
bias_grad.cl): partial sums over chunks of the batch x positions, then a reduce in a fixed order, so the
bits never change between runs (no atomics). The plans read "x", "dy" and the flags "accumulate",
"bias_accumulate"; they write "dw", "db".
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import params
from ..params import ceil_div
from ..api.checks import ConvGeometry
from . import staging
from .plan import (PAD_MODE_CODE, Pass, Plan, Step, acc_bytes, common_defines, compiled_class, dtype_defines,
                   exceeds_kernel, line_step, params_key, pass_params, pass_record, planned, position_block)

PARTIAL_BYTES_CAP = 128 << 20  # partial sums of all chunks together


def weight_gradient_plan(device, geo: ConvGeometry, dtype, bias: bool = False, accumulate: bool = False) -> Plan:
    """dw (C_out, C_in/groups, K) = the sum over batch and positions of dy times the padded input, or
    dw += that (accumulate); with bias, db too, from the same read of dy where the kernel allows. The plan's
    params carry "chunks" and "bias_sum" (whether its launches give the bias gradient)."""
    dtype = np.dtype(dtype)
    return planned(device, (Pass.BACKWARD_WEIGHT, geo, dtype.str, bias, accumulate),
                   lambda: _build(device, geo, dtype, bias, accumulate))


def bias_gradient_plan(device, dy_shape: tuple, dtype) -> Plan:
    """db (C,) = dy (N, C, L) summed over batch and positions, or db += that ("bias_accumulate")."""
    dtype = np.dtype(dtype)
    return planned(device, ("bias_gradient", tuple(dy_shape), dtype.str), lambda: _bias_build(device, dy_shape, dtype))


def _bias_build(device, dy_shape: tuple, dtype) -> Plan:
    batch, channels, length = dy_shape
    if channels == 0:
        return Plan()
    if (params.lookup(device, Pass.BACKWARD_WEIGHT, ()).strategy == "local"
            and device.local_mem_size >= 256 * acc_bytes(dtype)):
        # A work-group per channel and a tree in __local memory: the device's many cores share each channel,
        # at least 16 elements per work-item (a short channel keeps its tree small; four sizes at most).
        group = params.pow2_floor(max(1, min(256, device.max_work_group_size, max(32, batch * length // 16))))
        kernel = device.kernel("bias_grad.cl", "bias_grad_tree", {"WG_SUM": group, **dtype_defines(dtype)})
        if device.group_limit(kernel) < group:
            group = params.pow2_floor(device.group_limit(kernel))
            kernel = device.kernel("bias_grad.cl", "bias_grad_tree", {"WG_SUM": group, **dtype_defines(dtype)})
        return Plan((Step(kernel, (channels * group,), (group,),
                          ("dy", "db", np.int32(batch), np.int32(channels), np.int32(length), "bias_accumulate")),))
    vec = 4 if dtype == np.float64 else 8
    kernel = device.kernel("bias_grad.cl", "bias_grad", {"VEC": vec, **dtype_defines(dtype)})
    return Plan((line_step(device, kernel, channels, "dy", "db", np.int32(batch), np.int32(channels), np.int32(length),
                           "bias_accumulate", preferred=8),))


def _build(device, geo: ConvGeometry, dtype, bias: bool, accumulate: bool, max_group: int | None = None) -> Plan:
    bias_alone = bias_gradient_plan(device, (geo.batch, geo.out_channels, geo.length_out), dtype) if bias else Plan()
    if geo.out_channels * geo.in_per_group * geo.kernel_size == 0:
        return bias_alone

    def local_bytes(p):
        return acc_bytes(dtype) * p.WG_CO * p.TILE_CO * p.LB

    # Compiled choices come from the shape's class (rep), launch sizes and arguments from the shape itself.
    rep = compiled_class(geo)
    p = pass_params(device, Pass.BACKWARD_WEIGHT, geo, dtype, geo.out_per_group, rep.length_out, local_bytes, max_group)
    if p.strategy == "local":
        local = _local(device, geo, dtype, accumulate, max_group)
        if local is not None:
            return local.then(bias_alone)
        p = replace(p, strategy="register")
    if (p.strategy == "register" and p.SLIDE_K_MIN is not None and geo.stride > 1 and geo.dilation == 1
            and ceil_div(geo.kernel_size, geo.stride) >= p.SLIDE_K_MIN):
        phased = _slide_phases(device, geo, dtype, accumulate)
        if phased is not None:
            return phased.then(bias_alone)
    whole = pass_record(device, Pass.BACKWARD_WEIGHT, geo, dtype)  # vectors along the weights, not the row
    if staging.takes_columns(geo, whole):
        by_columns = _columns(device, geo, dtype, accumulate, whole)
        if by_columns is not None:
            return by_columns.then(bias_alone)
    blocked = staging.channel_blocks(device, geo, dtype, p) if staging.blocks_channels(rep, p) else None
    if (not blocked and p.strategy == "register" and p.SLIDE_K_MIN is not None and geo.stride == 1
            and geo.dilation == 1 and geo.kernel_size >= p.SLIDE_K_MIN):
        return _slide(device, geo, rep, dtype, accumulate, p).then(bias_alone)
    tile_b = 1
    if blocked:
        # One tap: the tile spans CI_LANES_B channel blocks instead (fewer dy broadcasts per input vector).
        tile_b = min(p.CI_LANES_B, ceil_div(geo.in_per_group, p.VEC)) if geo.kernel_size == 1 else 1
        tile_co, tile_k = _weight_tiles(geo.kernel_size, geo.out_per_group, p.CI_LANES_ACC // tile_b,
                                        p.CI_LANES_ACC // tile_b, channel_lanes=p.VEC, max_registers=p.TILE_REGS)
        p = replace(p, WG_L=1, WG_CO=1, TILE_CO=tile_co, TILE_K=tile_k)
    elif p.strategy == "register" and p.ACC_MAX is not None:
        tile_co, tile_k = _weight_tiles(geo.kernel_size, geo.out_per_group, p.TILE_CO, p.ACC_MAX,
                                        max_taps=p.TAPS_MAX)
        p = replace(p, TILE_CO=tile_co, TILE_K=tile_k)
    tile_k = max(1, min(p.TILE_K, geo.kernel_size))
    tiles_ci = ceil_div(ceil_div(geo.in_per_group, p.VEC), tile_b) if blocked else geo.in_per_group
    lanes = tiles_ci * ceil_div(geo.kernel_size, tile_k)
    wg_a = max(1, min(p.WG_L, params.pow2_floor(lanes)))
    rows = geo.groups * ceil_div(geo.out_per_group, p.WG_CO * p.TILE_CO) * p.WG_CO
    work_items = ceil_div(lanes, wg_a) * wg_a * rows
    positions = geo.batch * geo.length_out
    vectors = positions if blocked else geo.batch * ceil_div(geo.length_out, p.VEC)
    w_size = geo.out_channels * geo.in_per_group * geo.kernel_size
    # One work-item row per channel tile (a single input channel, every tap): its dy loads give the bias
    # gradient too (C_in = 1 and depthwise passes are bound by reading dy).
    bias_sum = bias and not blocked and p.strategy == "register" and lanes == 1
    sums_per_chunk = w_size + (geo.out_channels if bias_sum else 0)
    # Chunks: enough to fill the device and short enough (RUN positions) that a chunk's rows stay in cache
    # while consecutive work-items reuse them; capped in memory. A function of the shape and the device
    # parameters only, so the summation order (and the bits) never change between runs.
    target = device.compute_units * (32 if device.type == "CPU" else 2048)

    def chunk_count(positions, vectors):
        chunks = max(ceil_div(target, work_items), ceil_div(positions, p.RUN))
        return max(1, min(chunks, vectors // 4, PARTIAL_BYTES_CAP // max(1, sums_per_chunk * acc_bytes(dtype))))

    chunks = chunk_count(positions, vectors)
    staged = blocked or (staging.phase_rows(device, geo, dtype, ceil_div(geo.length_out, p.VEC) * p.VEC)
                         if staging.stages_input(rep, p) or _mostly_padding(rep, p) else None)
    # Cache blocks of input rows: each chunk's run of positions of one input row (or channel block), over
    # the strides; taken from the shape's class.
    rep_positions = rep.batch * rep.length_out
    rep_vectors = rep_positions if blocked else rep.batch * ceil_div(rep.length_out, p.VEC)
    row_bytes = ceil_div(rep_positions, chunk_count(rep_positions, rep_vectors)) * geo.stride * dtype.itemsize
    if blocked:
        row_bytes *= p.VEC * acc_bytes(dtype) // dtype.itemsize
    pos_block = position_block(p, row_bytes * wg_a, row_bytes * lanes * geo.groups)
    phased = bool(staged) and not staged.channel_blocked
    defines = {**common_defines(geo, dtype, p), "PAD_MODE": 0 if staged else PAD_MODE_CODE[geo.padding_mode],
               "X_STAGED": phased, "X_PHASES": staged.phases if phased else 1,
               "TILE_CO": p.TILE_CO, "TILE_K": tile_k, "WG_A": wg_a, "WG_CO": p.WG_CO, "LB": p.LB,
               "BIAS_SUM": int(bias_sum), "X_BLOCKED": int(bool(blocked)), "TILE_B": tile_b}
    # One chunk's partial sums, laid out as dw, are the fresh gradient itself where they share its type: a
    # small pass then takes one launch (each costs tens of microseconds on a CPU device).
    direct = chunks == 1 and not accumulate and not bias_sum and acc_bytes(dtype) == dtype.itemsize
    sums = "dw" if direct else "sums"
    if blocked:
        name, args = "conv1d_backward_weight_blocked", ("staged", "dy", sums, np.int32(geo.batch),
                                                        np.int32(staged.row_length), np.int32(geo.length_out),
                                                        np.int32(chunks), np.int32(pos_block))
    else:
        name, args = "conv1d_backward_weight_partial", ("staged" if staged else "x", "dy", sums, np.int32(geo.batch),
                                                        np.int32(staged.row_length if staged else geo.length_in),
                                                        np.int32(geo.length_out),
                                                        np.int32(0 if staged else geo.pad_left), np.int32(chunks),
                                                        np.int32(pos_block))
    kernel = device.kernel("conv1d_backward_weight.cl", name, defines)
    limit = exceeds_kernel(device, kernel, wg_a * p.WG_CO)
    if limit:
        return _build(device, geo, dtype, bias, accumulate, limit)
    partial = Step(kernel, (ceil_div(lanes, wg_a) * wg_a, rows, chunks), (wg_a, p.WG_CO, 1), args)
    plan = Plan((partial,), params=replace(p, TILE_K=tile_k, WG_L=wg_a), info={"chunks": chunks, "bias_sum": bias_sum})
    if not direct:
        plan = plan.then(_reduce(device, dtype, w_size, sums_per_chunk, chunks, accumulate, bias_sum))
    if staged:
        plan = staged.plan.then(plan)
    return plan if bias_sum else plan.then(bias_alone)


def _slide(device, geo: ConvGeometry, rep: ConvGeometry, dtype, accumulate: bool, p) -> Plan:
    """conv1d_backward_weight_slide: tap tiles VEC apart, their input vectors sliding through registers
    from one position vector to the next."""
    tile_co = params.balanced_tile(geo.out_per_group, p.SLIDE_CO)
    # accumulators, the sliding input vectors and a dy vector within the registers
    most = max(1, (p.SLIDE_REGS - 1) // (tile_co + 1))
    per_residue = ceil_div(geo.kernel_size, p.VEC)
    tile_m = ceil_div(per_residue, ceil_div(per_residue, most))
    lanes = geo.in_per_group * p.VEC  # a work-item per residue takes all its tap tiles
    rows = geo.groups * ceil_div(geo.out_per_group, tile_co)
    w_size = geo.out_channels * geo.in_per_group * geo.kernel_size

    def chunk_count(g: ConvGeometry) -> int:
        vectors = g.batch * ceil_div(g.length_out, p.VEC)
        chunks = max(ceil_div(device.compute_units * 32, lanes * rows), ceil_div(g.batch * g.length_out, p.RUN))
        return max(1, min(chunks, vectors // 4, PARTIAL_BYTES_CAP // max(1, w_size * acc_bytes(dtype))))

    chunks = chunk_count(geo)
    row_bytes = ceil_div(rep.batch * rep.length_out, chunk_count(rep)) * dtype.itemsize
    pos_block = position_block(p, row_bytes, row_bytes * lanes * geo.groups)
    # A padded copy of the input (small beside dy: one input channel per group) leaves no edge vectors
    # but a sample's last partial one; its zero tail covers the taps of the last tile past K.
    staged = staging.phase_rows(device, geo, dtype, ceil_div(geo.length_out, p.VEC) * p.VEC
                                + ceil_div(per_residue, tile_m) * tile_m * p.VEC - geo.kernel_size + 1)
    defines = {**common_defines(geo, dtype, p), "PAD_MODE": 0 if staged else PAD_MODE_CODE[geo.padding_mode],
               "TILE_CO": tile_co, "SLIDE_M": tile_m, "WG_CO": 1}
    kernel = device.kernel("conv1d_backward_weight.cl", "conv1d_backward_weight_slide", defines)
    direct = chunks == 1 and not accumulate and acc_bytes(dtype) == dtype.itemsize
    step = Step(kernel, (lanes, rows, chunks), (1, 1, 1),
                ("staged" if staged else "x", "dy", "dw" if direct else "sums", np.int32(geo.batch),
                 np.int32(staged.row_length if staged else geo.length_in), np.int32(geo.length_out),
                 np.int32(0 if staged else geo.pad_left), np.int32(chunks), np.int32(pos_block)))
    plan = Plan((step,), params=replace(p, TILE_CO=tile_co, TILE_K=tile_m, WG_L=1, WG_CO=1),
                info={"chunks": chunks, "bias_sum": False})
    if not direct:
        plan = plan.then(_reduce(device, dtype, w_size, w_size, chunks, accumulate, False))
    return staged.plan.then(plan) if staged else plan


# Padding of at least 1 / PADDED_SHARE of the input row: most position vectors of the unstaged partial kernel
# would gather their input through the padding map lane by lane.
PADDED_SHARE = 4


def _mostly_padding(geo: ConvGeometry, p) -> bool:
    """Register-strategy rows padded by a large share of their length read the padded copy whatever their
    depth: (8, 145, 144) -> 580 K25 dilation 4 (pad 48 a side), 145 groups, took 5.5 ms unstaged and 0.4 staged."""
    return p.strategy == "register" and (geo.pad_left + geo.pad_right) * PADDED_SHARE >= geo.length_in


def _columns(device, geo: ConvGeometry, dtype, accumulate: bool, p) -> Plan | None:
    """conv1d_backward_weight_columns over pad_columns' panels: lanes along a weight row's entries, every
    position of the batch summed by the work-item that owns the weights, straight into dw (chunks of a
    few hundred positions would leave each a few products per weight, and a reduce after)."""
    vectors = min(p.COLS_RV, ceil_div(geo.in_per_group * geo.kernel_size, p.VEC))
    staged = staging.columns(device, geo, dtype, vectors * p.VEC, vectors * p.VEC)
    if staged is None:
        return None
    panels = staging.panels_of(geo, vectors * p.VEC)
    tile_co = min(p.COLS_CO, geo.out_per_group)
    steps = min(p.COLS_STEPS, ceil_div(geo.out_per_group, tile_co))
    defines = {**common_defines(geo, dtype, p), "SPAN": vectors * p.VEC, "PANELS": panels,
               "COLS_CO": tile_co, "COLS_STEPS": steps}
    kernel = device.kernel("conv1d_backward_weight.cl", "conv1d_backward_weight_columns", defines)
    step = Step(kernel, (ceil_div(geo.out_per_group, tile_co * steps), geo.groups * panels), (1, 1),
                ("staged", "dy", "dw", np.int32(geo.batch), np.int32(geo.length_out), np.int32(accumulate)))
    return staged.plan.then(Plan((step,), params=replace(p, TILE_CO=tile_co, WG_L=1, WG_CO=1),
                                 info={"chunks": 1, "bias_sum": False, "panels": panels}))


def _slide_phases(device, geo: ConvGeometry, dtype, accumulate: bool) -> Plan | None:
    """A strided layer of long kernels as the stride-1 layer of its stride phases: each input row split
    into its phases (pad_rows.cl), the phases taken as input channels of ceil(K / stride) taps, whose
    weight gradient the sliding taps give (conv1d_backward_weight_slide needs stride 1), then put back in
    the layer's tap order (unphase_weights). None past the device's buffer limit."""
    s = geo.stride
    staged = staging.phase_rows(device, geo, dtype, geo.length_out)
    if staged is None:
        return None
    phase_length = staged.row_length // s
    taps = ceil_div(geo.kernel_size, s)
    # Rows of the phases hold phase_length elements, of which the outputs reach L_out + taps - 1 (the rest of
    # the row, a negative right padding, is never read).
    phases = ConvGeometry(geo.batch, geo.in_channels * s, geo.out_channels, phase_length, geo.length_out, taps, 1, 1,
                          geo.groups, 0, geo.length_out + taps - 1 - phase_length)
    slide = _build(device, phases, dtype, False, False)
    if "conv1d_backward_weight_slide" not in [step.kernel.function_name for step in slide.steps]:
        return None
    kernel = device.kernel("flip_weights.cl", "unphase_weights", dtype_defines(dtype))
    count = geo.out_channels * geo.in_per_group * geo.kernel_size
    unphase = Plan((line_step(device, kernel, count, "dw_phases", "dw", np.int32(geo.in_per_group),
                              np.int32(geo.kernel_size), np.int32(s), np.int32(taps), np.int32(count),
                              np.int32(accumulate)),),
                   (("dw_phases", geo.out_channels * geo.in_per_group * s * taps * dtype.itemsize),))
    return (staged.plan.renamed(staged="phases").then(slide.renamed(x="phases", dw="dw_phases"))
            .then(replace(unphase, params=slide.params, info={**slide.info, "phases": s})))


def _local(device, geo: ConvGeometry, dtype, accumulate: bool, max_group: int | None) -> Plan | None:
    """conv1d_backward_weight_local: work-group tiles of output x input channels x every tap, split over
    chunks of (sample, block of positions) units to fill the device, then reduced in chunk order. None
    where even a block of four positions does not fit the device's local memory."""
    p = params.lookup(device, Pass.BACKWARD_WEIGHT, params_key(geo, dtype), geo.in_per_group * geo.kernel_size)
    if geo.in_per_group == 1 and geo.stride == 1:
        depthwise = _depthwise(device, geo, dtype, accumulate, p)
        if depthwise is not None:
            return depthwise
    limit = min(device.max_work_group_size, max_group or device.max_work_group_size)
    k_tiles = ceil_div(geo.kernel_size, max(1, p.TILE_K))
    k_tiles = min(k_tiles, limit)
    tile_k = ceil_div(geo.kernel_size, k_tiles)  # equal tiles: K = 5 in 3 + 2, never a tile of taps past K
    k_tiles = ceil_div(geo.kernel_size, tile_k)
    tile_ci = min(p.TILE_CI, params.pow2_ceil(geo.in_per_group))
    tile_co = params.balanced_tile(geo.out_per_group, p.TILE_CO)
    wg_ci = max(1, min(p.WG_L, params.pow2_floor(ceil_div(geo.in_per_group, tile_ci))))
    wg_co = max(1, min(p.WG_CO, params.pow2_floor(ceil_div(geo.out_per_group, tile_co))))
    while wg_ci * k_tiles * wg_co > limit:
        if wg_co > 1:
            wg_co //= 2
        else:
            wg_ci //= 2
    block = max(4, params.pow2_floor(max(1, p.LB)))  # staged four positions at a time

    def local_bytes(block):
        window = (block - 1) * geo.stride + (geo.kernel_size - 1) * geo.dilation + 1
        return acc_bytes(dtype) * (block * wg_co * tile_co + geo.stride * ceil_div(window, geo.stride) * wg_ci * tile_ci)

    while local_bytes(block) > device.local_mem_size:
        if block == 4:
            return None
        block //= 2
    defines = {**common_defines(geo, dtype, p), "PAD_MODE": PAD_MODE_CODE[geo.padding_mode], "TILE_CO": tile_co,
               "TILE_CI": tile_ci, "TILE_K": tile_k, "WG_A": wg_ci * k_tiles, "WG_CO": wg_co, "LB": block}
    kernel = device.kernel("conv1d_backward_weight.cl", "conv1d_backward_weight_local", defines)
    if wg_ci * k_tiles * wg_co > device.group_limit(kernel):
        return _local(device, geo, dtype, accumulate, device.group_limit(kernel))
    tiles = geo.groups * ceil_div(geo.out_per_group, wg_co * tile_co) * ceil_div(geo.in_per_group, wg_ci * tile_ci)
    units = geo.batch * ceil_div(geo.length_out, block)
    w_size = geo.out_channels * geo.in_per_group * geo.kernel_size
    # Split over the units until every compute unit has work-groups to switch between, in chunks of at least
    # RUN positions (a chunk's partial sums cost 2 x 4 bytes per weight, against its RUN reads per weight). A function of the shape and the device: the same bits every run.
    chunks = max(1, min(units, ceil_div(4 * device.compute_units, tiles), ceil_div(geo.batch * geo.length_out, p.RUN),
                        PARTIAL_BYTES_CAP // max(1, w_size * acc_bytes(dtype))))
    fitted = replace(p, TILE_CO=tile_co, TILE_CI=tile_ci, TILE_K=tile_k, WG_L=wg_ci, WG_CO=wg_co, LB=block)
    return _chunked(device, geo, dtype, accumulate, kernel, defines, (wg_ci * k_tiles, wg_co), tiles * wg_co,
                    chunks, fitted)


def _chunked(device, geo: ConvGeometry, dtype, accumulate: bool, kernel, defines: dict, group: tuple, rows: int,
             chunks: int, fitted) -> Plan:
    """A local-strategy partial kernel over `chunks` x `rows` work-groups of `group`, then the reduce in
    chunk order (none where one chunk writes the fresh gradient itself)."""
    w_size = geo.out_channels * geo.in_per_group * geo.kernel_size
    direct = chunks == 1 and not accumulate and acc_bytes(dtype) == dtype.itemsize
    sums = "dw" if direct else "sums"
    step = Step(kernel, (chunks * group[0], rows), group,
                ("x", "dy", sums, np.int32(geo.batch), np.int32(geo.length_in), np.int32(geo.length_out),
                 np.int32(geo.pad_left), np.int32(chunks)))
    plan = Plan((step,), params=fitted, info={"chunks": chunks, "bias_sum": False})
    if direct:
        return plan
    return plan.then(_reduce(device, dtype, w_size, w_size, chunks, accumulate, False))


def _reduce_kernel(device, dtype):
    """conv1d_backward_weight_reduce: one program per dtype, the sizes are its arguments."""
    return device.kernel("conv1d_backward_weight_reduce.cl", "conv1d_backward_weight_reduce", dtype_defines(dtype))


def _reduce(device, dtype, w_size: int, p_size: int, chunks: int, accumulate: bool, bias_sum: bool) -> Plan:
    """The sum of the chunks' partial sums ("sums", p_size per chunk: dw's w_size, then db's where
    bias_sum) into "dw" (and "db")."""
    return Plan((line_step(device, _reduce_kernel(device, dtype), p_size, "sums", "dw", "db" if bias_sum else "dw",
                           np.int32(w_size), np.int32(p_size), np.int32(chunks), np.int32(accumulate),
                           "bias_accumulate" if bias_sum else np.int32(0)),),
                (("sums", chunks * p_size * acc_bytes(dtype)),))


DW_ACCUMULATORS = 32      # vectors of four positions per work-item: output channels x taps
DW_RUN = 32               # vectors of positions per work-item and block
DW_LOCAL_BYTES = 24 << 10  # of __local memory per work-group, at most
DW_GROUP = 64             # work-items per work-group, at most
DW_WINDOW = 16            # vectors of input a work-item slides through registers, at most


def _depthwise(device, geo: ConvGeometry, dtype, accumulate: bool, p) -> Plan | None:
    """conv1d_backward_weight_depthwise (one input channel per group, stride 1): a work-group per block of
    channels and chunk, each channel's work-items along runs of positions x tap tiles, every tap of a tile
    summed in registers. None where a group's output channels alone overflow the accumulators, a tile's
    dilated window the registers, or where local memory is short."""
    mult, taps = geo.out_per_group, geo.kernel_size
    if mult * 4 > DW_ACCUMULATORS:
        return None
    tile_k, k_tiles = taps, 1
    if mult * taps > DW_ACCUMULATORS:
        # tiles of a multiple of four taps (times the dilation, a whole number of vectors), equal in size
        k_tiles = ceil_div(taps, 4 * (DW_ACCUMULATORS // (4 * mult)))
        tile_k = 4 * ceil_div(ceil_div(taps, k_tiles), 4)
    if ((tile_k - 1) * geo.dilation + 3) // 4 >= DW_WINDOW:
        return None  # a tile's window would not fit in registers
    group = min(DW_GROUP, device.max_work_group_size)
    # Long runs per work-item (their sums leave registers once per chunk), blocks of at most 1024 positions.
    wg_p = max(1, min(params.pow2_ceil(ceil_div(geo.length_out, 4 * DW_RUN)), 1024 // (4 * DW_RUN),
                      params.pow2_floor(max(1, group // k_tiles))))
    block = wg_p * DW_RUN * 4
    vectors = block // 4 + (k_tiles - 1) * tile_k * geo.dilation // 4 + ((tile_k - 1) * geo.dilation + 3) // 4
    channel_bytes = acc_bytes(dtype) * (4 * vectors + mult * tile_k * k_tiles * wg_p)
    budget = min(device.local_mem_size, DW_LOCAL_BYTES)
    if channel_bytes > budget or wg_p * k_tiles > group:
        return None
    channels = max(1, min(params.pow2_floor(group // (wg_p * k_tiles)), params.pow2_floor(budget // channel_bytes),
                          params.pow2_ceil(geo.groups)))
    defines = {**common_defines(geo, dtype, p), "PAD_MODE": PAD_MODE_CODE[geo.padding_mode], "DW_TK": tile_k,
               "DW_KT": k_tiles, "DW_WP": wg_p, "DW_RUN": DW_RUN, "DW_CH": channels, "LB": block}
    kernel = device.kernel("conv1d_backward_weight.cl", "conv1d_backward_weight_depthwise", defines)
    if wg_p * k_tiles * channels > device.group_limit(kernel):
        return None
    units = geo.batch * ceil_div(geo.length_out, block)
    tiles = ceil_div(geo.groups, channels)
    w_size = geo.out_channels * taps
    chunks = max(1, min(units, ceil_div(4 * device.compute_units, tiles), ceil_div(geo.batch * geo.length_out, p.RUN),
                        PARTIAL_BYTES_CAP // max(1, w_size * acc_bytes(dtype))))
    fitted = replace(p, TILE_CO=mult, TILE_CI=1, TILE_K=tile_k, WG_L=wg_p * k_tiles, WG_CO=channels, LB=block)
    return _chunked(device, geo, dtype, accumulate, kernel, defines, (wg_p * k_tiles, channels), tiles * channels,
                    chunks, fitted)


def _weight_tiles(taps: int, channels: int, max_channels: int, max_accumulators: int,
                  channel_lanes: int = 0, max_taps: int | None = None,
                  max_registers: int | None = None) -> tuple[int, int]:
    """(TILE_CO, TILE_K) of the register weight gradient within an accumulator budget.

    With lanes along positions a work-item streams TILE_CO dy rows and one input row per vector of
    positions; with lanes along channel_lanes input channels, one input line and TILE_CO / channel_lanes
    dy lines per position. The score is multiply-adds per streamed line, divided by the work that tiles
    sliding back over the last channels or taps repeat. Taps split into tiles of equal size (K = 31 in
    two tiles of 16), of at most max_taps where that is set. With channel lanes, a tile's accumulators
    and its TILE_K input vectors stay within max_registers where that is set.
    """
    best = (0.0, 1, 1)
    for tile_k in sorted({ceil_div(taps, tiles) for tiles in range(1, taps + 1)}):
        if tile_k > max_accumulators or (max_taps is not None and max_taps < tile_k):
            continue
        for tile_co in range(1, min(max_channels, channels, max_accumulators // tile_k) + 1):
            if channel_lanes and max_registers is not None and (tile_co + 1) * tile_k > max_registers:
                break
            repeated = (ceil_div(taps, tile_k) * tile_k / taps) * (ceil_div(channels, tile_co) * tile_co / channels)
            streamed = 1 + tile_co / channel_lanes if channel_lanes else tile_co + 1
            score = tile_co * tile_k / streamed / repeated
            if score > best[0]:
                best = (score, tile_co, tile_k)
    return best[1], best[2]
