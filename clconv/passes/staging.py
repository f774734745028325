"""Staged copies of the input that the forward and weight-gradient kernels read instead of the input
itself (pad_rows.cl): padding written out, rows split into their stride phases or channels blocked into
vector lanes. Each is a one-step plan writing the scratch buffer "staged".
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..api.checks import ConvGeometry
from ..params import BackwardWeightParams, ForwardParams, ceil_div
from .plan import PAD_MODE_CODE, Plan, acc_bytes, dtype_defines, line_step


class Staged(NamedTuple):
    """A staging plan and how its rows are laid out for the pass that reads them."""
    plan: Plan
    row_length: int    # elements per staged row (a row: one input channel, or one channel block)
    phases: int        # stride phases per row (pad_rows), 1 for the channel-blocked copy
    channel_blocked: bool


def stages_input(geo: ConvGeometry, p: ForwardParams | BackwardWeightParams) -> bool:
    """A register-strategy pass reads a staged copy when its reduction is deep (C_in_g x K >= STAGE_MIN), or
    when it is strided and big enough (STAGE_FLOPS) to pay for the copy: no edge tiles, no cache-set
    conflicts, and strided rows split into their phases, so that vectors load instead of gathering."""
    return (p.strategy == "register" and geo.length_in > 0
            and ((p.STAGE_MIN is not None and p.STAGE_MIN <= geo.in_per_group * geo.kernel_size)
                 or (geo.stride > 1 and p.STAGE_FLOPS is not None and p.STAGE_FLOPS <= geo.flops())))


def phase_rows(device, geo: ConvGeometry, dtype, positions: int) -> Staged | None:
    """The phase-split copy whose rows hold the input of output positions [0, positions), None past the
    device's buffer limit."""
    itemsize = np.dtype(dtype).itemsize
    reach = (positions - 1) * geo.stride + (geo.kernel_size - 1) * geo.dilation + 1
    per_line = max(1, 64 // itemsize)
    lines = ceil_div(ceil_div(reach, geo.stride), per_line)
    phase_length = (lines + (1 - lines % 2)) * per_line  # a whole and odd number of cache lines
    row_length = geo.stride * phase_length
    nbytes = geo.batch * geo.in_channels * row_length * itemsize
    if nbytes > device.buffer_limit:
        return None
    kernel = device.kernel("pad_rows.cl", "pad_rows", {"PAD_MODE": PAD_MODE_CODE[geo.padding_mode],
                                                       "PHASES": geo.stride, "LINE": per_line, "VEC": min(per_line, 16),
                                                       **dtype_defines(dtype)})
    rows = geo.batch * geo.in_channels
    step = line_step(device, kernel, rows * (row_length // per_line), "x", "staged", np.int32(geo.length_in),
                     np.int32(geo.pad_left), np.int32(geo.pad_left + geo.length_in + geo.pad_right),
                     np.int32(phase_length), np.int32(rows))
    return Staged(Plan((step,), (("staged", nbytes),)), row_length, geo.stride, False)


def blocks_channels(geo: ConvGeometry, p: BackwardWeightParams) -> bool:
    """A weight gradient runs with lanes along input channels over a channel-blocked copy where the
    reduction is deep (C_in_g >= CI_LANES_MIN) and the pass big enough (STAGE_FLOPS, where set) to pay for
    the copy."""
    return (p.strategy == "register" and p.CI_LANES_MIN is not None and p.CI_LANES_MIN <= geo.in_per_group
            and (p.STAGE_FLOPS is None or p.STAGE_FLOPS <= geo.flops()) and geo.length_in > 0)


def channel_blocks(device, geo: ConvGeometry, dtype, p: BackwardWeightParams) -> Staged | None:
    """The channel-blocked copy (VEC input channels per position, in the accumulation type), None past
    the device's buffer limit."""
    length = geo.pad_left + geo.length_in + geo.pad_right
    rows = geo.batch * geo.groups * ceil_div(geo.in_per_group, p.VEC)
    nbytes = rows * length * p.VEC * acc_bytes(dtype)
    if nbytes > device.buffer_limit:
        return None
    kernel = device.kernel("pad_rows.cl", "pad_rows_blocked", {"PAD_MODE": PAD_MODE_CODE[geo.padding_mode],
                                                                "C_IN_G": geo.in_per_group, "VEC": p.VEC,
                                                                **dtype_defines(dtype)})
    squares = ceil_div(length, p.VEC)  # a work-item copies VEC positions of VEC channels
    step = line_step(device, kernel, rows * squares, "x", "staged", np.int32(geo.length_in), np.int32(geo.pad_left),
                     np.int32(length), np.int32(rows))
    return Staged(Plan((step,), (("staged", nbytes),)), length, 1, True)


def takes_columns(geo: ConvGeometry, p) -> bool:
    """A register-strategy pass of short rows (COLS_L_MAX) over a batch of few positions
    (COLS_POSITIONS_MAX), with COLS_CHANNELS_MIN output channels per group or more and weight rows of two
    vectors or more, runs over columns, its lanes along a weight row's entries (input channel, tap):
    vectors of positions fit such rows badly, and the copies the columns need (of the input, once per
    position) cost less than those of the weights the other short-row kernels read. Each pass's record
    holds its own bounds."""
    return (p.strategy == "register" and p.COLS_L_MAX is not None and geo.length_out < p.COLS_L_MAX
            and geo.batch * geo.length_out <= p.COLS_POSITIONS_MAX and geo.out_per_group >= p.COLS_CHANNELS_MIN
            and geo.in_per_group * geo.kernel_size >= 2 * p.VEC)


def panels_of(geo: ConvGeometry, span: int) -> int:
    """Panels of `span` entries per column of C_in_g x K entries (pad_columns)."""
    return ceil_div(geo.in_per_group * geo.kernel_size, span)


def columns(device, geo: ConvGeometry, dtype, span: int, line: int) -> Staged | None:
    """pad_columns' copy: one column of C_in_g x K entries per output position of the batch, per group,
    in panels_of(geo, span) panels of `span` entries (the last one padded with zeros), in the accumulation
    type, written `line` entries per work-item; None past the device's buffer limit. Its rows are a panel's
    columns, `span` long."""
    panels = panels_of(geo, span)
    positions = geo.batch * geo.length_out
    nbytes = geo.groups * panels * positions * span * acc_bytes(dtype)
    if nbytes > device.buffer_limit:
        return None
    kernel = device.kernel("pad_rows.cl", "pad_columns", {
        "PAD_MODE": PAD_MODE_CODE[geo.padding_mode], "C_IN_G": geo.in_per_group, "GROUPS": geo.groups,
        "K": geo.kernel_size, "STRIDE": geo.stride, "DILATION": geo.dilation, "SPAN": span, "PANELS": panels,
        "LINE": line, **dtype_defines(dtype)})
    step = line_step(device, kernel, geo.groups * panels * positions * (span // line), "x", "staged",
                     np.int32(geo.length_in), np.int32(geo.pad_left), np.int32(geo.length_out), np.int32(positions))
    return Staged(Plan((step,), (("staged", nbytes),)), span, 1, False)
