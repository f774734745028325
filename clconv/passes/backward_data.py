"""The input gradient, dx = the gather of dy back through the taps (conv1d_backward_data.cl), which is also
conv_transpose1d's forward. Stride-1 input gradients run as forward convolutions of dy with flipped
weights (AS_FORWARD, flip_weights.cl); input gradients with few input and many output channels
accumulate whole rows in cache (conv1d_backward_data_rows). Padding modes other than zeros write padded
rows that pad_fold.cl folds back. The plans read "dy", "w", "bias" and write "dx".
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .. import params
from ..params import ceil_div
from ..api.checks import ConvGeometry
from . import staging
from .forward import flipped, forward_plan, phase_forward
from ..params import BackwardDataParams
from .plan import (SHORT_ROWS, PAD_MODE_CODE, Pass, Plan, Step, acc_bytes, common_defines, compiled_class, dtype_defines,
                   exceeds_kernel, line_step, pass_params, pass_record, planned, position_block)


def input_gradient_plan(device, geo: ConvGeometry, dtype) -> Plan:
    """dx (N, C_in, L_in) from dy (N, C_out, L_out): padding modes folded back."""
    dtype = np.dtype(dtype)
    length, pad_left = _written_span(geo)
    if geo.padding_mode == "zeros":
        return backward_data_plan(device, geo, dtype, False, length, pad_left)

    def build():
        fold = device.kernel("pad_fold.cl", "pad_fold", {"PAD_MODE": PAD_MODE_CODE[geo.padding_mode], **dtype_defines(dtype)})
        unfolded = backward_data_plan(device, geo, dtype, False, length, pad_left).renamed(dx="dx_padded")
        fold_step = line_step(device, fold, geo.length_in, "dx_padded", "dx", np.int32(geo.length_in),
                              np.int32(geo.pad_left), np.int32(geo.pad_right), rows=geo.batch * geo.in_channels)
        padded_bytes = geo.batch * geo.in_channels * length * dtype.itemsize
        return unfolded.then(Plan((fold_step,), (("dx_padded", padded_bytes),)))

    return planned(device, ("input_gradient", geo, dtype.str), build)


def _written_span(geo: ConvGeometry) -> tuple[int, int]:
    """(length, pad_left) of the rows the input-gradient kernels write: the input's, or in padding modes
    other than zeros the padded rows, whose padding pad_fold.cl then folds back."""
    if geo.padding_mode == "zeros":
        return geo.length_in, geo.pad_left
    return geo.length_in + geo.pad_left + geo.pad_right, 0


def input_gradient_as_forward(device, geo: ConvGeometry, dtype) -> ConvGeometry | None:
    """The forward convolution a stride-1 input gradient runs as (AS_FORWARD), None where it runs a
    kernel of its own: its tile parameters are that forward's, looked up for this geometry."""
    return backward_data_plan(device, geo, dtype, False, *_written_span(geo)).info.get("as_forward")


def backward_data_plan(device, geo: ConvGeometry, dtype, has_bias: bool, length: int, pad_left: int) -> Plan:
    """dx (N, C_in, length) = the gather of dy (N, C_out, L_out) back through the taps, zero padding
    pad_left, plus the bias where has_bias (conv_transpose1d)."""
    dtype = np.dtype(dtype)
    return planned(device, (Pass.BACKWARD_DATA, geo, dtype.str, has_bias, length, pad_left),
                   lambda: _build(device, geo, dtype, has_bias, length, pad_left))


def _build(device, geo: ConvGeometry, dtype, has_bias: bool, length: int, pad_left: int,
           max_group: int | None = None) -> Plan:
    halo = ceil_div((geo.kernel_size - 1) * geo.dilation, geo.stride)

    def local_bytes(p):
        win = p.WG_L * p.TILE_L + halo
        return acc_bytes(dtype) * p.CO_TILE * (win + geo.kernel_size * p.WG_CI * p.TILE_CI)

    # Compiled choices come from the shape's class (rep), launch sizes and arguments from the shape itself.
    rep = compiled_class(geo)
    per_phase = ceil_div(length, geo.stride)
    rep_per_phase = per_phase if per_phase < SHORT_ROWS else params.pow2_floor(per_phase)
    whole = pass_record(device, Pass.BACKWARD_DATA, geo, dtype)  # vectors along the weights, not the row
    if staging.takes_columns(geo, whole):
        return _short_rows(device, geo, dtype, whole, has_bias, length, pad_left)
    p = pass_params(device, Pass.BACKWARD_DATA, geo, dtype, geo.in_per_group, rep_per_phase, local_bytes, max_group)
    if p.AS_FORWARD:
        as_forward = _forward_form(device, geo, dtype, has_bias, length, pad_left)
        if as_forward is not None:
            return as_forward
    # (strides up to 16 and taps up to UNROLL_K_MAX: the rows kernel unrolls its loops over phases and taps,
    # and unrolled over many taps it takes long to build)
    rows = (p.strategy == "register" and p.ROWS_CI is not None and geo.in_per_group <= p.ROWS_CI
            and geo.out_per_group >= p.ROWS_CO and geo.stride <= 16 and geo.kernel_size <= p.UNROLL_K_MAX)
    # Few input channels accumulate in rows rather than per phase: a phase's forward then has one or two
    # output channels to vectorise, and wav2vec's input gradient ran several times slower per phase.
    if (p.strategy == "local" or (_register_phases(rep, p) and not rows)) and 1 < geo.stride <= PHASES_MAX:
        phases = _phases(device, geo, dtype, has_bias, length, pad_left, p.strategy == "register")
        if phases is not None:
            return phases
    if (p.strategy == "register" and p.COLS_STRIDE_MIN is not None and geo.stride >= p.COLS_STRIDE_MIN
            and geo.out_per_group >= COLS_DEPTH_MIN):
        return _columns(device, geo, dtype, p, has_bias, length, pad_left)
    if rows:
        return _rows(device, geo, dtype, p, has_bias, length, pad_left)
    span_dy = p.WG_L * p.TILE_L * p.VEC + halo
    defines = {**common_defines(geo, dtype, p), "TILE_CI": p.TILE_CI,
               "TILE_L": p.TILE_L, "WG_L": p.WG_L, "WG_CI": p.WG_CI,
               "CO_TILE": min(p.CO_TILE, geo.out_per_group)}
    kernel = device.kernel("conv1d_backward_data.cl", "conv1d_backward_data", defines)
    limit = exceeds_kernel(device, kernel, p.WG_L * p.WG_CI)
    if limit:
        return _build(device, geo, dtype, has_bias, length, pad_left, limit)
    positions = ceil_div(per_phase, p.WG_L * p.TILE_L * p.VEC) * p.WG_L
    rows = geo.groups * ceil_div(geo.in_per_group, p.WG_CI * p.TILE_CI) * p.WG_CI
    batch = geo.batch * (geo.stride if p.strategy == "local" else 1)
    pos_block = position_block(p, geo.out_channels * span_dy * dtype.itemsize,
                               geo.out_channels * rep.length_out * dtype.itemsize)
    return Plan((Step(kernel, (positions, rows, batch), (p.WG_L, p.WG_CI, 1),
                      (*_arguments(geo, has_bias, length, pad_left), np.int32(pos_block))),), params=p)


def _arguments(geo: ConvGeometry, has_bias: bool, length: int, pad_left: int) -> tuple:
    return ("dy", "w", "bias" if has_bias else "w", "dx", np.int32(length), np.int32(geo.length_out), np.int32(pad_left),
            np.int32(has_bias))


def _forward_form(device, geo: ConvGeometry, dtype, has_bias: bool, length: int, pad_left: int) -> Plan | None:
    """The stride-1 input gradient into `length` positions as the forward convolution of dy with flipped
    weights, where that forward's padding is not negative."""
    reach = (geo.kernel_size - 1) * geo.dilation
    pad_l = reach - pad_left
    pad_r = length - geo.length_out - pad_l + reach
    if geo.stride != 1 or pad_l < 0 or pad_r < 0:
        return None
    dual = replace(geo.dual(), length_out=length, pad_left=pad_l, pad_right=pad_r)
    forward = forward_plan(device, dual, dtype, has_bias, w_flipped=True).renamed(x="dy", y="dx")
    return replace(forward, info={**forward.info, "as_forward": dual})


PHASES_MAX = 8  # launches per input gradient in stride phases


def _register_phases(rep: ConvGeometry, p: BackwardDataParams) -> bool:
    """A register-strategy input gradient runs in stride phases where each phase's reduction (C_out_g x
    its taps) is deep enough, and the pass big enough, to pay for the weights' flipped copy and a launch
    per phase."""
    return (p.strategy == "register" and p.PHASE_DEPTH_MIN is not None and rep.flops() >= p.PHASE_FLOPS_MIN
            and rep.out_per_group * ceil_div(rep.kernel_size, rep.stride) >= p.PHASE_DEPTH_MIN)


def _phases(device, geo: ConvGeometry, dtype, has_bias: bool, length: int, pad_left: int,
            register: bool) -> Plan | None:
    """A strided input gradient as one stride-1 forward per stride phase (the local strategy's kernels, or
    where `register` the register strategy's).
    Positions i of dx with i + pad_left = q * stride + r take, from dy, exactly the taps k with
    k * dilation = r (mod stride); those taps lie stride / gcd apart, and position q reads dy at q - m_k
    with m_k = (k * dilation - r) / stride, dilation / gcd apart: a stride-1 convolution of dy with the
    phase's flipped taps, written every stride-th position. None where a phase has no tap (then those
    positions take no gradient at all, which the phases would leave unwritten)."""
    s, d, taps = geo.stride, geo.dilation, geo.kernel_size
    common = math.gcd(s, d)
    tap_step, dy_step = s // common, d // common
    steps = []
    for r in range(s):
        first = next((k for k in range(min(taps, tap_step)) if (k * d - r) % s == 0), None)
        if first is None:
            return None
        phase_taps = (taps - 1 - first) // tap_step + 1
        q_first = max(0, ceil_div(pad_left - r, s))
        outputs = (length - 1 + pad_left - r) // s - q_first + 1
        if outputs <= 0:
            continue
        reach = (phase_taps - 1) * dy_step
        pad_fwd = (first * d - r) // s + reach - q_first
        sub = replace(geo.dual(), kernel_size=phase_taps, stride=1, dilation=dy_step, length_out=outputs,
                      pad_left=pad_fwd, pad_right=outputs - 1 + reach + 1 - geo.length_out - pad_fwd)
        plan = phase_forward(device, sub, dtype, has_bias, w_row_taps=taps, w_tap_step=tap_step, y_step=s,
                             y_row=length, y_offset=q_first * s + r - pad_left,
                             w_tap_last=first + (phase_taps - 1) * tap_step, register=register)
        if plan is None:
            return None
        steps += plan.steps
    phases = Plan(tuple(steps), params=plan.params, info={"phases": s}).renamed(x="dy", y="dx")
    return flipped(device, geo.dual(), dtype, phases) if register else phases


def _rows(device, geo: ConvGeometry, dtype, p: BackwardDataParams, has_bias: bool, length: int, pad_left: int) -> Plan:
    """conv1d_backward_data_rows: whole runs of positions per input row, accumulated in a core's cache."""
    step = 2 * p.VEC  # M_TILE = 2 vectors
    longest = max(step, min(p.ROWS_SEG, (24 << 10) // (geo.stride * acc_bytes(dtype))))  # sums in 24 KiB
    phase_positions = (length - 1 + pad_left) // geo.stride - pad_left // geo.stride + 1
    # Segments balanced over the positions' class (a power of two at or below them): lengths share programs.
    rep_positions = phase_positions if phase_positions < SHORT_ROWS else params.pow2_floor(phase_positions)
    segment = ceil_div(ceil_div(rep_positions, ceil_div(rep_positions, longest)), step) * step
    # CO_GROUP x K weights stay in registers beside the phases' sums: about 20 of the 32 (wav2vec: 2 x 10)
    defines = {**common_defines(geo, dtype, p), "SEG_M": segment,
               "CO_GROUP": max(1, min(geo.out_per_group, 20 // geo.kernel_size))}
    kernel = device.kernel("conv1d_backward_data.cl", "conv1d_backward_data_rows", defines)
    return Plan((Step(kernel, (ceil_div(phase_positions, segment), geo.in_channels, geo.batch), (1, 1, 1),
                      _arguments(geo, has_bias, length, pad_left)),), params=p)


# Output channels per group the columns' pointwise product sums at least: a depthwise layer's is a bare
# outer product, and the overlap-add pass then costs more than the gather it replaces (patchify K = stride =
# 64, 64 channels: 34 against 20 ms on a 2-core EPYC).
COLS_DEPTH_MIN = 8


def _columns(device, geo: ConvGeometry, dtype, p: BackwardDataParams, has_bias: bool, length: int,
             pad_left: int) -> Plan:
    """A large-stride input gradient in two dense steps: the pointwise forward of dy into columns, one per
    input channel and tap (cols = w^T dy, per group), then conv1d_backward_data_cols adding them back where
    windows overlap. A stride-s phase holds only K/s taps, which leaves the gather kernel's tiles nearly
    empty; the columns hold K/s times the input's size."""
    columns = geo.groups * geo.in_per_group * geo.kernel_size
    pointwise = ConvGeometry(geo.batch, geo.out_channels, columns, geo.length_out, geo.length_out, 1, 1, 1,
                             geo.groups, 0, 0)
    rows_per_group = geo.in_per_group * geo.kernel_size
    lane_weights = device.kernel("flip_weights.cl", "lane_weights", {"LANES_STORED": 1, **dtype_defines(dtype)})
    transpose = Plan((line_step(device, lane_weights, ceil_div(rows_per_group, 8), "w", "cols_w",
                                np.int32(rows_per_group), np.int32(geo.out_per_group), np.int32(geo.groups),
                                np.int32(1), np.int32(geo.out_per_group), rows=geo.groups * ceil_div(geo.out_per_group, 8),
                                preferred=16),),
                     (("cols_w", columns * geo.out_per_group * dtype.itemsize),))
    product = forward_plan(device, pointwise, dtype, False).renamed(x="dy", w="cols_w", y="cols")
    cols_bytes = geo.batch * columns * geo.length_out * dtype.itemsize
    return transpose.then(Plan(scratch=(("cols", cols_bytes),))).then(product).then(
        Plan((_overlap_add(device, geo, dtype, p, has_bias, length, pad_left),), params=p, info={"columns": columns}))


def _overlap_add(device, geo: ConvGeometry, dtype, p, has_bias: bool, length: int, pad_left: int) -> Step:
    """conv1d_backward_data_cols: the columns ("cols", N x C_in x K x L_out) added back into dx where their
    windows overlap, in runs of at most 1024 positions of a row (sized by the length's power of two: lengths
    share programs)."""
    run = min(1024, params.pow2_ceil(length))
    kernel = device.kernel("conv1d_backward_data.cl", "conv1d_backward_data_cols",
                           {**common_defines(geo, dtype, p), "COLS_RUN": run})
    return Step(kernel, (ceil_div(length, run), geo.in_channels, geo.batch), (1, 1, 1),
                ("cols", "bias" if has_bias else "w", "dx", np.int32(length), np.int32(geo.length_out),
                 np.int32(pad_left), np.int32(has_bias)))


def _short_rows(device, geo: ConvGeometry, dtype, p: BackwardDataParams, has_bias: bool, length: int,
                pad_left: int) -> Plan:
    """conv1d_backward_data_columns, lanes along the weights' rows, then the overlap-add: the forward form
    would copy the weights twice (flipped, then with output channels innermost), and the gather's position
    vectors overhang such rows."""
    entries = geo.in_per_group * geo.kernel_size
    vectors = min(p.COLS_RV, entries // p.VEC)
    kernel = device.kernel("conv1d_backward_data.cl", "conv1d_backward_data_columns",
                           {**common_defines(geo, dtype, p), "COLS_POS": p.COLS_POS, "COLS_RV": vectors})
    positions = geo.batch * geo.length_out
    product = Step(kernel, (ceil_div(positions, p.COLS_POS), geo.groups * ceil_div(entries, vectors * p.VEC)), (1, 1),
                   ("dy", "w", "cols", np.int32(geo.length_out), np.int32(positions)))
    cols_bytes = positions * geo.in_channels * geo.kernel_size * dtype.itemsize
    return Plan((product, _overlap_add(device, geo, dtype, p, has_bias, length, pad_left)),
                (("cols", cols_bytes),), params=p, info={"columns": geo.in_channels * geo.kernel_size})
