"""The functional layer: argument checks with torch's wording, shape logic and kernel launches.

Arrays arrive as numpy arrays (uploaded, result downloaded) or as pyopencl arrays on the device
(nothing leaves the device and nothing waits on the queue).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pyopencl.array as cla

from . import params as _params
from . import pieces, tuning_cache
from .runtime import Device, get_device

SUPPORTED_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_PAD_MODE_CODE = {"zeros": 0, "reflect": 1, "replicate": 2, "circular": 3}
_TORCH_TYPE_NAMES = {"float16": "c10::Half", "float32": "float", "float64": "double"}


def torch_type_name(dtype) -> str:
    return _TORCH_TYPE_NAMES.get(np.dtype(dtype).name, np.dtype(dtype).name)


def single(value, name: str) -> int:
    """An int or a 1-tuple of an int, as torch's _single accepts for a 1-d convolution."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"expected {name} to be a single integer value or a list of 1 values to match the convolution dimensions, but got {name}={list(value)}")
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int or a 1-tuple of int, got {type(value).__name__}")
    return int(value)


def same_padding(kernel_size: int, dilation: int) -> tuple[int, int]:
    total = dilation * (kernel_size - 1)
    return total // 2, total - total // 2


def resolve_padding(padding, kernel_size: int, stride: int, dilation: int) -> tuple[int, int]:
    """(left, right) zero-padding amounts from an int, a 1-tuple, 'same' or 'valid'.

    The functional form raises RuntimeError as torch.nn.functional does; modules check earlier, with ValueError.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding == "same":
            if stride != 1:
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            return same_padding(kernel_size, dilation)
        raise RuntimeError(f"Invalid padding string '{padding}', should be one of {{'valid', 'same'}}")
    p = single(padding, "padding")
    return p, p


# --- array plumbing -------------------------------------------------------------------------------

def is_device_array(a) -> bool:
    return isinstance(a, cla.Array)


def check_array(a, name: str, fn: str = "conv1d"):
    if not isinstance(a, (np.ndarray, cla.Array)):
        raise TypeError(f"{fn}(): argument '{name}' must be a numpy.ndarray or pyopencl.array.Array, not {type(a).__name__}")
    if a.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{fn}(): argument '{name}' has dtype {a.dtype}; supported are float16, float32 and float64")


def device_of(*arrays, device=None) -> Device:
    """The device of the first pyopencl array among `arrays`, else `device` (default device when None)."""
    for a in arrays:
        if is_device_array(a):
            found = get_device(a.queue.device)
            for b in arrays:
                if is_device_array(b) and b.context != a.context:
                    raise RuntimeError("Expected all arrays to be on the same device, but found arrays on two OpenCL contexts")
            return found
    return get_device(device)


def on_device(device: Device, a, name: str) -> cla.Array:
    """`a` as a C-contiguous array on `device`; numpy arrays are copied up (the caller's array is untouched)."""
    if is_device_array(a):
        if a.context != device.context:
            raise RuntimeError(f"argument '{name}' lives on another OpenCL context than device {device.name}")
        if not a.flags.c_contiguous:
            raise ValueError(f"argument '{name}' must be a C-contiguous pyopencl array")
        return a
    return device.to_device(a)


def batched(a: cla.Array, batch: int, channels: int, length: int) -> cla.Array:
    """`a` as (batch, channels, length); a view only when it is unbatched (reshape costs tens of us)."""
    return a if a.ndim == 3 else a.reshape(batch, channels, length)


def check_dtype_supported(device: Device, dtype) -> None:
    if np.dtype(dtype) == np.float64 and not device.has_fp64:
        raise RuntimeError(
            f"float64 needs the cl_khr_fp64 extension, which device {device.name!r} does not have; "
            "use float32, or choose a device with fp64 (clconv.devices())"
        )


# --- convolution geometry -------------------------------------------------------------------------

@dataclass(frozen=True)
class ConvGeometry:
    batch: int
    in_channels: int
    out_channels: int
    length_in: int
    length_out: int
    kernel_size: int
    stride: int
    dilation: int
    groups: int
    pad_left: int
    pad_right: int
    padding_mode: str = "zeros"

    @property
    def in_per_group(self) -> int:
        return self.in_channels // self.groups

    @property
    def out_per_group(self) -> int:
        return self.out_channels // self.groups

    def flops(self) -> float:
        return 2.0 * self.batch * self.out_channels * self.length_out * self.in_per_group * self.kernel_size


def _check_arguments(fn: str, x_shape, w_shape, stride: int, padding: int, dilation: int, groups) -> None:
    if len(x_shape) not in (2, 3):
        raise RuntimeError(f"Expected 2D (unbatched) or 3D (batched) input to {fn}, but got input of size: {list(x_shape)}")
    if len(w_shape) != 3:
        raise RuntimeError(f"weight should have at least three dimensions, but got weight of size {list(w_shape)}")
    if stride <= 0:
        raise RuntimeError("non-positive stride is not supported")
    if padding < 0:
        raise RuntimeError("negative padding is not supported")
    if dilation <= 0:
        raise RuntimeError("dilation should be greater than zero")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups <= 0:
        raise RuntimeError("non-positive groups is not supported")


def conv_geometry(x_shape, w_shape, bias_shape, stride, pad_left, pad_right, dilation, groups, padding_mode="zeros", fn="conv1d") -> ConvGeometry:
    """Validate a convolution's arguments in torch's order, with torch's messages; return its geometry."""
    _check_arguments(fn, x_shape, w_shape, stride, min(pad_left, pad_right), dilation, groups)
    batch, channels, length = (1, *x_shape) if len(x_shape) == 2 else x_shape
    out_channels, in_per_group, kernel_size = w_shape
    if kernel_size <= 0:
        raise RuntimeError("kernel size should be greater than zero")
    if out_channels % groups != 0:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but got weight of size {list(w_shape)} instead")
    if channels != in_per_group * groups:
        shown = list(x_shape) if len(x_shape) == 3 else [1, *x_shape]
        raise RuntimeError(
            f"Given groups={groups}, weight of size {list(w_shape)}, expected input{shown} to have "
            f"{in_per_group * groups} channels, but got {channels} channels instead"
        )
    if bias_shape is not None and tuple(bias_shape) != (out_channels,):
        raise RuntimeError(f"Given weight of size {list(w_shape)}, expected bias to be 1-dimensional with {out_channels} elements, but got bias of size {list(bias_shape)} instead")
    if padding_mode in ("reflect", "replicate") and length == 0:
        raise RuntimeError("Expected 2D or 3D (batch mode) tensor with possibly 0 batch size and other non-zero "
                           f"dimensions for input, but got: {list(x_shape)}")
    if padding_mode == "reflect" and max(pad_left, pad_right) >= length:
        raise RuntimeError(
            f"Argument #4: Padding size should be less than the corresponding input dimension, but got: "
            f"padding ({pad_left}, {pad_right}) at dimension {len(x_shape) - 1} of input {list(x_shape)}"
        )
    if padding_mode == "circular" and max(pad_left, pad_right) > length:
        raise RuntimeError("Padding value causes wrapping around more than once.")
    padded = length + pad_left + pad_right
    dilated = dilation * (kernel_size - 1) + 1
    if padded < dilated:
        raise RuntimeError(
            f"Calculated padded input size per channel: ({padded}). Kernel size: ({dilated}). "
            "Kernel size can't be greater than actual input size"
        )
    _check_not_empty_rows(batch, channels, length)
    return ConvGeometry(batch, channels, out_channels, length, (padded - dilated) // stride + 1, kernel_size,
                        stride, dilation, groups, pad_left, pad_right, padding_mode)


def _check_not_empty_rows(batch: int, channels: int, length: int) -> None:
    """Rows of length 0 in a non-empty batch: torch refuses them (its message shows the 2-D view)."""
    if length == 0 and batch > 0 and channels > 0:
        raise RuntimeError(f"Only zero batch or zero channel inputs are supported, but got input shape: "
                           f"[{batch}, {channels}, 1, 0]")


def check_same_dtype(x, weight, bias) -> None:
    other, other_name = (bias, "bias") if bias is not None else (weight, "weight")
    if x.dtype != other.dtype or weight.dtype != other.dtype:
        raise RuntimeError(
            f"Input type ({torch_type_name(x.dtype)}) and {other_name} type ({torch_type_name(other.dtype)}) should be the same; "
            f"convert the input with .astype(np.{np.dtype(other.dtype).name}) or create the module with dtype=np.{np.dtype(x.dtype).name}"
        )


def dtype_defines(dtype) -> dict:
    name = np.dtype(dtype).name
    return {"DTYPE_HALF": 1} if name == "float16" else {"DTYPE_DOUBLE": 1} if name == "float64" else {}


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _line_group(device: Device, preferred: int) -> int:
    """Work-group size of the simple one-dimensional kernels, within the device's limit."""
    return _params.pow2_floor(min(preferred, device.max_work_group_size))


# --- launches -------------------------------------------------------------------------------------

def _acc_bytes(dtype) -> int:
    return 8 if np.dtype(dtype) == np.float64 else 4


def params_key(geo: ConvGeometry, dtype) -> tuple:
    """What a pass's tuned parameters depend on: everything compiled in, not the batch or the lengths."""
    return (geo.in_per_group, geo.out_per_group, geo.groups, geo.kernel_size, geo.stride, geo.dilation,
            geo.padding_mode, np.dtype(dtype).name)


def _pass_params(device: Device, pass_name: str, geo: ConvGeometry, dtype, rows: int, length: int, local_bytes) -> dict:
    """Parameters of one pass from the lookup chain, fitted to the shape and the device."""
    key = params_key(geo, dtype)
    if os.environ.get("CLCONV_AUTOTUNE") == "1" and not _params.is_overridden() and not _params.has_tuned(device, pass_name, key):
        from . import tune

        if not tune.tuning_active():
            tune.tune_pass(device, pass_name, geo, dtype)
    p = _params.lookup(device, pass_name, key, geo.in_per_group * geo.kernel_size)
    if np.dtype(dtype) == np.float64:
        p["VEC"] = max(1, p["VEC"] // 2)  # double vectors take twice the registers
    return _params.fit(device, p, rows=rows, length=length, local_bytes=local_bytes)


def _common_defines(geo: ConvGeometry, dtype, p: dict) -> dict:
    return {"C_IN_G": geo.in_per_group, "C_OUT_G": geo.out_per_group, "GROUPS": geo.groups,
            "K": geo.kernel_size, "STRIDE": geo.stride, "DILATION": geo.dilation,
            "STRATEGY": int(p["strategy"] == "local"), "VEC": p["VEC"], "UNROLL_K_MAX": p["UNROLL_K_MAX"],
            **dtype_defines(dtype)}


def _position_block(p: dict, window_bytes: int, sample_bytes: int) -> int:
    """POS_BLOCK (see tile_order in common.cl): work-groups along dim 0 per cache block, 0 for grid order.
    window_bytes: the input one dim-0 group reads; sample_bytes: what all of them read. Input that fits
    the budget (BLOCK_KB) keeps grid order; otherwise a block takes as many groups as fit, at least one."""
    budget = p["BLOCK_KB"] << 10
    if p["strategy"] != "register" or sample_bytes <= budget:
        return 0
    return max(1, budget // max(1, window_bytes))


class Launch(NamedTuple):
    kernel: object
    global_size: tuple
    local_size: tuple
    params: dict


def _planned(device: Device, key: tuple, build):
    """Launch plans are memoised per device: a repeated shape costs a dict lookup, not a parameter search.
    The key holds everything a plan depends on besides the shape: overrides, tuned entries, device limits."""
    key = (*key, _params.override_key(), tuning_cache.generation(), device.max_work_group_size, device.local_mem_size)
    plan = device.plans.get(key)
    if plan is None:
        plan = device.plans[key] = build()
    return plan


class Staging(NamedTuple):
    """The padded copy of the input that the forward and weight-gradient kernels read instead (pad_rows.cl)."""
    kernel: object
    global_size: tuple
    local_size: tuple
    phases: int
    phase_length: int  # LDP; a staged row is phases * phase_length elements


def _staging(device: Device, geo: ConvGeometry, dtype, p: dict, span_l: int) -> Staging | None:
    """The staged copy a register-strategy pass reads when its reduction is deep (C_in_g x K >= STAGE_MIN),
    or when it is strided and big enough (STAGE_FLOPS) to pay for the copy: no edge tiles, no cache-set
    conflicts, and strided rows split into their phases, so that vectors load instead of gathering
    (pad_rows.cl). span_l: positions per work-group."""
    if not (p["strategy"] == "register" and geo.length_in > 0
            and (0 < p["STAGE_MIN"] <= geo.in_per_group * geo.kernel_size
                 or (geo.stride > 1 and 0 < p["STAGE_FLOPS"] <= geo.flops()))):
        return None
    return _staged_rows(device, geo, dtype, _ceil_div(geo.length_out, span_l) * span_l)


def _staged_rows(device: Device, geo: ConvGeometry, dtype, positions: int) -> Staging | None:
    """The staged copy whose rows hold the input of output positions [0, positions), None past the
    device's buffer limit."""
    itemsize = np.dtype(dtype).itemsize
    reach = (positions - 1) * geo.stride + (geo.kernel_size - 1) * geo.dilation + 1
    per_line = max(1, 64 // itemsize)
    lines = _ceil_div(_ceil_div(reach, geo.stride), per_line)
    phase_length = (lines + (1 - lines % 2)) * per_line  # a whole and odd number of cache lines
    row_length = geo.stride * phase_length
    if geo.batch * geo.in_channels * row_length * itemsize > device.buffer_limit:
        return None
    group = _line_group(device, 64)
    kernel = device.kernel("pad_rows.cl", "pad_rows", {"PAD_MODE": _PAD_MODE_CODE[geo.padding_mode],
                                                       "PHASES": geo.stride, "LINE": per_line, "VEC": min(per_line, 16),
                                                       **dtype_defines(dtype)})
    return Staging(kernel, (_ceil_div(row_length // per_line, group) * group, geo.batch * geo.in_channels), (group, 1),
                   geo.stride, phase_length)


def _stage_input(device: Device, geo: ConvGeometry, x: cla.Array, staging: Staging | None) -> tuple:
    """(input buffer, row length, left padding) a pass reads: x itself, or its staged copy."""
    if staging is None:
        return x.data, geo.length_in, geo.pad_left
    row_length = staging.phases * staging.phase_length
    staged = device.buffer(geo.batch * geo.in_channels * row_length * x.dtype.itemsize)
    device.launch(staging.kernel, staging.global_size, staging.local_size, x.data, staged, np.int32(geo.length_in),
                  np.int32(geo.pad_left), np.int32(geo.pad_left + geo.length_in + geo.pad_right),
                  np.int32(staging.phase_length))
    return staged, row_length, 0


def _position_tiles(device: Device, geo: ConvGeometry, p: dict) -> int:
    """TILE_P for the forward: register tiles per work-item along the positions, enough that a work-item
    does WORK_MIN multiply-adds, while every compute unit keeps 8 work-groups or more. A work-group's start
    costs PoCL about as much as a short one's work, and a long run of positions per work-item keeps a
    reduction chunk's rows within a few pages (side by side: depthwise K=31 50 -> 67 GF/s, tcn 95 -> 137
    at 2^18 MACs; (1, 64, 10^6) 191 -> 243 at 2^20). Passes with fewer than 8 WORK_MIN per compute unit keep
    one tile (the example, 0.76 M MACs: 0.135 -> 0.101 ms)."""
    tile_work = p["TILE_R"] * p["TILE_CO"] * p["TILE_L"] * p["VEC"] * geo.in_per_group * geo.kernel_size
    tiles_along = _ceil_div(geo.length_out, p["WG_L"] * p["TILE_L"] * p["VEC"])
    other_groups = geo.batch * geo.groups * _ceil_div(geo.out_per_group, p["WG_CO"] * p["TILE_R"] * p["TILE_CO"])
    tiles = min(_params.pow2_ceil(_ceil_div(p["WORK_MIN"], tile_work)), _params.pow2_floor(max(1, tiles_along)))
    while tiles > 1 and other_groups * _ceil_div(tiles_along, tiles) < 8 * device.compute_units:
        tiles //= 2
    return max(p["TILE_P"], tiles)


def _forward_plan(device: Device, geo: ConvGeometry, dtype, has_bias: bool) -> tuple[Launch, Staging | None]:
    def build():
        def local_bytes(p):
            win = (p["WG_L"] * p["TILE_L"] - 1) * geo.stride + (geo.kernel_size - 1) * geo.dilation + 1
            return _acc_bytes(dtype) * p["CI_TILE"] * (win + geo.kernel_size * p["WG_CO"] * p["TILE_CO"])

        p = _pass_params(device, "forward", geo, dtype, geo.out_per_group, geo.length_out, local_bytes)
        nt_stores = 0 < p["NT_STORE_MIN"] <= geo.batch * geo.out_channels * geo.length_out * np.dtype(dtype).itemsize
        # (one sample per work-item shares no weights and ran no faster than the generic kernel: (1,256,4000) K31)
        # (its loop over input offsets unrolls fully, over the dilated kernel's reach)
        if (p["strategy"] == "register" and p["DW_ROWS"] > 1 and geo.in_per_group == geo.out_per_group == 1
                and geo.stride == 1 and (geo.kernel_size - 1) * geo.dilation + 1 <= p["UNROLL_K_MAX"]
                and geo.batch % 2 == 0):
            return _depthwise_plan(device, geo, dtype, has_bias, p, nt_stores), None
        # Outputs of under 16 multiply-adds each are bound by their stores, and longer runs per work-item
        # lost there (wav2vec 59 -> 38 GF/s).
        if (p["strategy"] == "register" and p["WORK_MIN"] > 0 and geo.in_per_group * geo.kernel_size >= 16
                and geo.flops() >= 16 * device.compute_units * p["WORK_MIN"]):
            p = {**p, "TILE_P": _position_tiles(device, geo, p)}
        itemsize = np.dtype(dtype).itemsize
        if (p["strategy"] == "register" and nt_stores and 0 < geo.in_per_group * geo.kernel_size <= p["ALIGNED_TAPS"]
                and geo.out_per_group >= p["ALIGNED_CO"] and np.dtype(dtype) != np.float16):
            aligned = _aligned_forward_plan(device, geo, dtype, has_bias, p)
            if aligned is not None:
                return aligned
        span_co = p["WG_CO"] * p["TILE_R"] * p["TILE_CO"]
        span_l = p["WG_L"] * p["TILE_P"] * p["TILE_L"] * p["VEC"]
        staging = _staging(device, geo, dtype, p, span_l)
        row_length = geo.length_in if staging is None else staging.phases * staging.phase_length
        defines = {**_common_defines(geo, dtype, p), "HAS_BIAS": has_bias,
                   "NT_STORES": nt_stores,
                   "PAD_MODE": 0 if staging else _PAD_MODE_CODE[geo.padding_mode],
                   "X_PHASES": staging.phases if staging else 1, "TILE_CO": p["TILE_CO"],
                   "TILE_L": p["TILE_L"], "WG_L": p["WG_L"], "WG_CO": p["WG_CO"],
                   "CI_TILE": min(p["CI_TILE"], geo.in_per_group),
                   "TILE_R": p["TILE_R"], "TILE_P": p["TILE_P"], "CI_CHUNK": p["CI_CHUNK"]}
        positions = _ceil_div(geo.length_out, span_l) * p["WG_L"]
        rows = geo.groups * _ceil_div(geo.out_per_group, span_co) * p["WG_CO"]
        span_in = (span_l - 1) * geo.stride + (geo.kernel_size - 1) * geo.dilation + 1
        defines["POS_BLOCK"] = _position_block(p, geo.in_channels * span_in * itemsize, geo.in_channels * row_length * itemsize)
        kernel = device.kernel("conv1d_forward.cl", "conv1d_forward", defines)
        return Launch(kernel, (positions, rows, geo.batch), (p["WG_L"], p["WG_CO"], 1), p), staging

    return _planned(device, ("forward", geo, np.dtype(dtype).str, has_bias), build)


def _depthwise_plan(device: Device, geo: ConvGeometry, dtype, has_bias: bool, p: dict, nt_stores: bool) -> Launch:
    """conv1d_forward_depthwise: DW_ROWS samples of one channel per work-item, sharing its weights."""
    rows = _params.pow2_floor(p["DW_ROWS"])
    while geo.batch % rows:  # sample blocks divide the batch: no partial block to guard
        rows //= 2
    tile_l = min(p["DW_TILE_L"], _params.pow2_ceil(_ceil_div(geo.length_out, p["VEC"])))
    span = tile_l * p["VEC"]
    along = _ceil_div(geo.length_out, span)
    others = geo.in_channels * (geo.batch // rows)
    tiles = min(_params.pow2_floor(p["DW_TILES"]), _params.pow2_ceil(along))
    while tiles > 1 and others * _ceil_div(along, tiles) < 8 * device.compute_units:
        tiles //= 2
    defines = {**_common_defines(geo, dtype, p), "HAS_BIAS": has_bias, "PAD_MODE": _PAD_MODE_CODE[geo.padding_mode],
               "NT_STORES": nt_stores, "DW_ROWS": rows, "DW_TILE_L": tile_l, "DW_TILES": tiles}
    kernel = device.kernel("conv1d_forward.cl", "conv1d_forward_depthwise", defines)
    return Launch(kernel, (_ceil_div(along, tiles), geo.in_channels, geo.batch // rows), (1, 1, 1), p)


def _aligned_forward_plan(device: Device, geo: ConvGeometry, dtype, has_bias: bool, p: dict):
    """conv1d_forward_aligned over the staged input: runs of positions whose stores are realigned to the
    flat output and bypass the cache."""
    staging = _staged_rows(device, geo, dtype, _ceil_div(geo.length_out, p["VEC"]) * p["VEC"] + p["VEC"])
    if staging is None:
        return None
    run = min(p["ALIGNED_RUN"], _ceil_div(geo.length_out, p["VEC"]) * p["VEC"])
    tile = _params.balanced_tile(geo.out_per_group, p["ALIGNED_CO"])
    defines = {**_common_defines(geo, dtype, p), "HAS_BIAS": has_bias, "NT_STORES": 1, "X_PHASES": geo.stride,
               "TILE_CO": tile, "RUN_L": run}
    kernel = device.kernel("conv1d_forward.cl", "conv1d_forward_aligned", defines)
    tiles = geo.groups * _ceil_div(geo.out_per_group, tile)
    return Launch(kernel, (_ceil_div(geo.length_out, run), tiles, geo.batch), (1, 1, 1), p), staging


def launch_forward(device: Device, geo: ConvGeometry, x: cla.Array, weight: cla.Array, bias, y: cla.Array) -> None:
    """y = conv1d(x) on the device; x (N, C_in, L_in), y (N, C_out, L_out), all C-contiguous."""
    if geo.batch == 0 or geo.length_out == 0 or geo.out_channels == 0:
        return
    plan, staging = _forward_plan(device, geo, x.dtype, bias is not None)
    source, length, pad_left = _stage_input(device, geo, x, staging)
    device.launch(plan.kernel, plan.global_size, plan.local_size, source, weight.data,
                  (bias if bias is not None else weight).data, y.data,
                  np.int32(length), np.int32(geo.length_out), np.int32(pad_left))


class ForwardForm(NamedTuple):
    """A stride-1 input gradient as the forward convolution of dy with flipped weights (flip_weights.cl)."""
    geo: ConvGeometry
    flip: Launch


def _forward_form(device: Device, geo: ConvGeometry, dtype, length: int, pad_left: int) -> ForwardForm | None:
    """The forward form of the input gradient into `length` positions, where its padding is not negative."""
    reach = (geo.kernel_size - 1) * geo.dilation
    pad_l = reach - pad_left
    pad_r = length - geo.length_out - pad_l + reach
    if geo.stride != 1 or pad_l < 0 or pad_r < 0:
        return None
    dual = ConvGeometry(geo.batch, geo.out_channels, geo.in_channels, geo.length_out, length, geo.kernel_size, 1,
                        geo.dilation, geo.groups, pad_l, pad_r)
    kernel = device.kernel("flip_weights.cl", "flip_weights", {"C_IN_G": geo.in_per_group, "C_OUT_G": geo.out_per_group,
                                                               "GROUPS": geo.groups, "K": geo.kernel_size, **dtype_defines(dtype)})
    size, group = geo.out_channels * geo.in_per_group * geo.kernel_size, _line_group(device, 64)
    return ForwardForm(dual, Launch(kernel, (_ceil_div(size, group) * group,), (group,), {}))


def _rows_plan(device: Device, geo: ConvGeometry, dtype, p: dict, has_bias: bool, length: int, pad_left: int) -> Launch:
    """conv1d_backward_data_rows: whole runs of positions per input row, accumulated in a core's cache."""
    step = 2 * p["VEC"]  # M_TILE = 2 vectors
    longest = max(step, min(p["DATA_ROWS_SEG"], (24 << 10) // (geo.stride * _acc_bytes(dtype))))  # sums in 24 KiB
    phase_positions = (length - 1 + pad_left) // geo.stride - pad_left // geo.stride + 1
    segment = _ceil_div(_ceil_div(phase_positions, _ceil_div(phase_positions, longest)), step) * step
    # CO_GROUP x K weights stay in registers beside the phases' sums: about 20 of the 32 (wav2vec: 2 x 10)
    defines = {**_common_defines(geo, dtype, p), "HAS_BIAS": has_bias, "SEG_M": segment,
               "CO_GROUP": max(1, min(geo.out_per_group, 20 // geo.kernel_size))}
    kernel = device.kernel("conv1d_backward_data.cl", "conv1d_backward_data_rows", defines)
    return Launch(kernel, (_ceil_div(phase_positions, segment), geo.in_channels, geo.batch), (1, 1, 1), p)


def _backward_data_plan(device: Device, geo: ConvGeometry, dtype, has_bias: bool, length: int,
                        pad_left: int) -> Launch | ForwardForm:
    def build():
        halo = _ceil_div((geo.kernel_size - 1) * geo.dilation, geo.stride)

        def local_bytes(p):
            win = p["WG_L"] * p["TILE_L"] + halo
            return _acc_bytes(dtype) * p["CI_TILE"] * (win + geo.kernel_size * p["WG_CO"] * p["TILE_CO"])

        per_phase = _ceil_div(length, geo.stride)
        p = _pass_params(device, "backward_data", geo, dtype, geo.in_per_group, per_phase, local_bytes)
        forward_form = _forward_form(device, geo, dtype, length, pad_left) if p["DATA_AS_FORWARD"] else None
        if forward_form is not None:
            return forward_form
        # (strides up to 16: the kernel unrolls its loops over the phases)
        if (p["strategy"] == "register" and geo.in_per_group <= p["DATA_ROWS_CI"]
                and geo.out_per_group >= p["DATA_ROWS_CO"] > 0 and geo.stride <= 16):
            return _rows_plan(device, geo, dtype, p, has_bias, length, pad_left)
        itemsize = np.dtype(dtype).itemsize
        span_dy = p["WG_L"] * p["TILE_L"] * p["VEC"] + halo
        defines = {**_common_defines(geo, dtype, p), "HAS_BIAS": has_bias, "TILE_CI": p["TILE_CO"],
                   "TILE_L": p["TILE_L"], "WG_L": p["WG_L"], "WG_CI": p["WG_CO"],
                   "CO_TILE": min(p["CI_TILE"], geo.out_per_group),
                   "POS_BLOCK": _position_block(p, geo.out_channels * span_dy * itemsize,
                                                geo.out_channels * geo.length_out * itemsize)}
        kernel = device.kernel("conv1d_backward_data.cl", "conv1d_backward_data", defines)
        positions = _ceil_div(per_phase, p["WG_L"] * p["TILE_L"] * p["VEC"]) * p["WG_L"]
        rows = geo.groups * _ceil_div(geo.in_per_group, p["WG_CO"] * p["TILE_CO"]) * p["WG_CO"]
        batch = geo.batch * (geo.stride if p["strategy"] == "local" else 1)
        return Launch(kernel, (positions, rows, batch), (p["WG_L"], p["WG_CO"], 1), p)

    return _planned(device, ("backward_data", geo, np.dtype(dtype).str, has_bias, length, pad_left), build)


def launch_backward_data(device: Device, geo: ConvGeometry, dy: cla.Array, weight: cla.Array, bias, dx: cla.Array,
                         length: int, pad_left: int) -> None:
    """dx (N, C_in, length) = the gather of dy (N, C_out, L_out) back through the taps (zero padding pad_left)."""
    if geo.batch == 0 or length == 0 or geo.in_channels == 0:
        return
    plan = _backward_data_plan(device, geo, dy.dtype, bias is not None, length, pad_left)
    if isinstance(plan, ForwardForm):
        flipped = device.empty((geo.in_channels, geo.out_per_group, geo.kernel_size), weight.dtype)
        device.launch(plan.flip.kernel, plan.flip.global_size, plan.flip.local_size, weight.data, flipped.data)
        launch_forward(device, plan.geo, dy, flipped, bias, dx)
        return
    device.launch(plan.kernel, plan.global_size, plan.local_size, dy.data, weight.data,
                  (bias if bias is not None else weight).data, dx.data,
                  np.int32(length), np.int32(geo.length_out), np.int32(pad_left))


def _input_gradient_span(geo: ConvGeometry) -> tuple[int, int]:
    """(length, pad_left) of the rows the input-gradient kernels write: the input's, or in padding modes
    other than zeros the padded rows, whose padding pad_fold.cl then folds back."""
    if geo.padding_mode == "zeros":
        return geo.length_in, geo.pad_left
    return geo.length_in + geo.pad_left + geo.pad_right, 0


def input_gradient_as_forward(device: Device, geo: ConvGeometry, dtype) -> ConvGeometry | None:
    """The forward convolution a stride-1 input gradient runs as (DATA_AS_FORWARD), None where it runs a
    kernel of its own: its tile parameters are that forward's, looked up for this geometry."""
    plan = _backward_data_plan(device, geo, dtype, False, *_input_gradient_span(geo))
    return plan.geo if isinstance(plan, ForwardForm) else None


def input_gradient(device: Device, geo: ConvGeometry, dy: cla.Array, weight: cla.Array) -> cla.Array:
    """The gradient of conv1d with respect to its input, (N, C_in, L_in); padding modes folded back."""
    dx = device.empty((geo.batch, geo.in_channels, geo.length_in), dy.dtype)
    if geo.out_channels == 0:  # nothing reaches the input
        return dx.fill(0) if dx.size else dx
    length, pad_left = _input_gradient_span(geo)
    if geo.padding_mode == "zeros":
        launch_backward_data(device, geo, dy, weight, None, dx, length, pad_left)
        return dx
    dx_padded = device.empty((geo.batch, geo.in_channels, length), dy.dtype)
    launch_backward_data(device, geo, dy, weight, None, dx_padded, length, pad_left)
    if dx.size:
        kernel = device.kernel("pad_fold.cl", "pad_fold", {"PAD_MODE": _PAD_MODE_CODE[geo.padding_mode], **dtype_defines(dy.dtype)})
        group = _line_group(device, 64)
        device.launch(kernel, (_ceil_div(geo.length_in, group) * group, geo.batch * geo.in_channels), (group, 1),
                      dx_padded.data, dx.data, np.int32(geo.length_in), np.int32(geo.pad_left), np.int32(geo.pad_right))
    return dx


_PARTIAL_BYTES_CAP = 128 << 20


def _weight_tiles(taps: int, channels: int, max_channels: int, max_accumulators: int,
                  channel_lanes: int = 0) -> tuple[int, int]:
    """(TILE_CO, TILE_K) of the register weight gradient within an accumulator budget.

    With lanes along positions a work-item streams TILE_CO dy rows and one input row per vector of
    positions; with lanes along channel_lanes input channels, one input line and TILE_CO / channel_lanes
    dy lines per position. The score is multiply-adds per streamed line, divided by the work that tiles
    sliding back over the last channels or taps repeat. Taps split into tiles of equal size (K = 31 in
    two tiles of 16).
    """
    best = (0.0, 1, 1)
    for tile_k in sorted({-(-taps // tiles) for tiles in range(1, taps + 1)}):
        if tile_k > max_accumulators:
            continue
        for tile_co in range(1, min(max_channels, channels, max_accumulators // tile_k) + 1):
            repeated = (-(-taps // tile_k) * tile_k / taps) * (-(-channels // tile_co) * tile_co / channels)
            streamed = 1 + tile_co / channel_lanes if channel_lanes else tile_co + 1
            score = tile_co * tile_k / streamed / repeated
            if score > best[0]:
                best = (score, tile_co, tile_k)
    return best[1], best[2]


class BlockedStaging(NamedTuple):
    """The channel-blocked padded copy of the input that conv1d_backward_weight_blocked reads (pad_rows.cl)."""
    kernel: object
    global_size: tuple
    local_size: tuple
    length: int  # LDB, padded positions per block row


def _blocked_staging(device: Device, geo: ConvGeometry, dtype, p: dict) -> BlockedStaging | None:
    """The copy for a weight gradient with lanes along input channels: used where the reduction is deep
    (C_in_g >= CI_LANES_MIN) and the pass big enough (STAGE_FLOPS) to pay for the copy."""
    if not (p["strategy"] == "register" and 0 < p["CI_LANES_MIN"] <= geo.in_per_group
            and p["STAGE_FLOPS"] <= geo.flops() and geo.length_in > 0):
        return None
    length = geo.pad_left + geo.length_in + geo.pad_right
    blocks = _ceil_div(geo.in_per_group, p["VEC"])
    if geo.batch * geo.groups * blocks * length * p["VEC"] * _acc_bytes(dtype) > device.buffer_limit:
        return None
    kernel = device.kernel("pad_rows.cl", "pad_rows_blocked", {"PAD_MODE": _PAD_MODE_CODE[geo.padding_mode],
                                                                "C_IN_G": geo.in_per_group, "VEC": p["VEC"],
                                                                **dtype_defines(dtype)})
    group = _line_group(device, 64)
    squares = _ceil_div(length, p["VEC"])  # a work-item copies VEC positions of VEC channels
    return BlockedStaging(kernel, (_ceil_div(squares, group) * group, geo.batch * geo.groups * blocks), (group, 1), length)


def _weight_gradient_plan(device: Device, geo: ConvGeometry, dtype,
                          bias: bool = False) -> tuple[Launch, Launch, Staging | BlockedStaging | None]:
    """(partial-sum launch, reduce launch, staging); the partial launch's params carry the chunk count and
    "bias_sum": whether the launches also give the bias gradient (asked for with bias)."""
    def build():
        def local_bytes(p):
            return _acc_bytes(dtype) * p["WG_CO"] * p["TILE_CO"] * p["LB"]

        p = _pass_params(device, "backward_weight", geo, dtype, geo.out_per_group, geo.length_out, local_bytes)
        blocked = _blocked_staging(device, geo, dtype, p)
        if blocked:
            p["WG_L"] = p["WG_CO"] = 1
            p["TILE_CO"], p["TILE_K"] = _weight_tiles(geo.kernel_size, geo.out_per_group, p["CI_LANES_ACC"],
                                                      p["CI_LANES_ACC"], channel_lanes=p["VEC"])
        elif p["strategy"] == "register" and p["ACC_MAX"]:
            p["TILE_CO"], p["TILE_K"] = _weight_tiles(geo.kernel_size, geo.out_per_group, p["TILE_CO"], p["ACC_MAX"])
        tile_k = max(1, min(p["TILE_K"], geo.kernel_size))
        lanes = (_ceil_div(geo.in_per_group, p["VEC"]) if blocked else geo.in_per_group) * _ceil_div(geo.kernel_size, tile_k)
        wg_a = max(1, min(p["WG_L"], _params.pow2_floor(lanes)))
        rows = geo.groups * _ceil_div(geo.out_per_group, p["WG_CO"] * p["TILE_CO"]) * p["WG_CO"]
        work_items = _ceil_div(lanes, wg_a) * wg_a * rows
        positions = geo.batch * geo.length_out
        vectors = positions if blocked else geo.batch * _ceil_div(geo.length_out, p["VEC"])
        w_size = geo.out_channels * geo.in_per_group * geo.kernel_size
        # Chunks: enough to fill the device and short enough (RUN positions) that a chunk's rows stay in cache
        # while consecutive work-items reuse them; capped in memory. A function of the shape and the device
        # parameters only, so the summation order (and the bits) never change between runs.
        # One work-item row per channel tile (a single input channel, every tap): its dy loads give the bias
        # gradient too (C_in = 1 and depthwise passes are bound by reading dy).
        bias_sum = bias and not blocked and p["strategy"] == "register" and lanes == 1
        sums_per_chunk = w_size + (geo.out_channels if bias_sum else 0)
        target = device.compute_units * (32 if device.type == "CPU" else 2048)
        chunks = max(_ceil_div(target, work_items), _ceil_div(positions, p["RUN"]))
        chunks = max(1, min(chunks, vectors // 4, _PARTIAL_BYTES_CAP // max(1, sums_per_chunk * _acc_bytes(dtype))))
        staging = blocked or _staging(device, geo, dtype, p, p["VEC"])
        # Cache blocks of input rows: each chunk's run of positions of one input row (or channel block), over
        # the strides.
        row_bytes = _ceil_div(positions, chunks) * geo.stride * np.dtype(dtype).itemsize
        if blocked:
            row_bytes *= p["VEC"] * _acc_bytes(dtype) // np.dtype(dtype).itemsize
        position_block = _position_block(p, row_bytes * wg_a, row_bytes * lanes * geo.groups)
        defines = {**_common_defines(geo, dtype, p), "PAD_MODE": 0 if staging else _PAD_MODE_CODE[geo.padding_mode],
                   "X_STAGED": isinstance(staging, Staging), "X_PHASES": staging.phases if isinstance(staging, Staging) else 1,
                   "TILE_CO": p["TILE_CO"], "TILE_K": tile_k, "WG_A": wg_a, "WG_CO": p["WG_CO"], "LB": p["LB"],
                   "POS_BLOCK": position_block, "BIAS_SUM": int(bias_sum)}
        name = "conv1d_backward_weight_blocked" if blocked else "conv1d_backward_weight_partial"
        partial = Launch(device.kernel("conv1d_backward_weight.cl", name, defines),
                         (_ceil_div(lanes, wg_a) * wg_a, rows, chunks), (wg_a, p["WG_CO"], 1),
                         {**p, "chunks": chunks, "bias_sum": bias_sum})
        group = _line_group(device, 64)
        reduce = Launch(device.kernel("conv1d_backward_weight.cl", "conv1d_backward_weight_reduce", defines),
                        (_ceil_div(sums_per_chunk, group) * group,), (group,), {**p, "sums_per_chunk": sums_per_chunk})
        return partial, reduce, staging

    return _planned(device, ("backward_weight", geo, np.dtype(dtype).str, bias), build)


def weight_gradient_into(device: Device, geo: ConvGeometry, x: cla.Array, dy: cla.Array, dw: cla.Array,
                         accumulate: bool, bias: tuple | None = None) -> None:
    """dw (C_out, C_in/groups, K) = sum over batch and positions of dy times the padded input, or dw += that.
    bias: (db, accumulate) for the bias gradient too, from the same read of dy where the plan allows."""
    if dw.size == 0:
        if bias is not None:
            bias_gradient_into(device, dy, *bias)
        return
    partial, reduce, staging = _weight_gradient_plan(device, geo, x.dtype, bias is not None)
    chunks, fused = partial.params["chunks"], partial.params["bias_sum"]
    # One chunk's partial sums, laid out as dw, are the fresh gradient itself where they share its type: a
    # small pass then takes one launch (each costs tens of microseconds on a CPU device).
    direct = chunks == 1 and not accumulate and not fused and _acc_bytes(x.dtype) == x.dtype.itemsize
    sums = dw.data if direct else device.buffer(chunks * reduce.params["sums_per_chunk"] * _acc_bytes(x.dtype))
    if isinstance(staging, BlockedStaging):
        blocks = device.buffer(staging.global_size[1] * staging.length * partial.params["VEC"] * _acc_bytes(x.dtype))
        device.launch(staging.kernel, staging.global_size, staging.local_size, x.data, blocks,
                      np.int32(geo.length_in), np.int32(geo.pad_left), np.int32(staging.length))
        device.launch(partial.kernel, partial.global_size, partial.local_size, blocks, dy.data, sums,
                      np.int32(geo.batch), np.int32(staging.length), np.int32(geo.length_out), np.int32(chunks))
    else:
        source, length, pad_left = _stage_input(device, geo, x, staging)
        device.launch(partial.kernel, partial.global_size, partial.local_size, source, dy.data, sums,
                      np.int32(geo.batch), np.int32(length), np.int32(geo.length_out), np.int32(pad_left),
                      np.int32(chunks))
    if not direct:
        bias_args = (bias[0].data, np.int32(bias[1])) if fused else ()
        device.launch(reduce.kernel, reduce.global_size, reduce.local_size, sums, dw.data, *bias_args,
                      np.int32(chunks), np.int32(accumulate))
    if bias is not None and not fused:
        bias_gradient_into(device, dy, *bias)


def bias_gradient_into(device: Device, dy: cla.Array, db: cla.Array, accumulate: bool) -> None:
    """db (C,) = dy (N, C, L) summed over batch and positions, or db += that."""
    batch, channels, length = dy.shape
    if channels == 0:
        return
    vec = 4 if dy.dtype == np.float64 else 8
    kernel = device.kernel("bias_grad.cl", "bias_grad", {"C": channels, "VEC": vec, **dtype_defines(dy.dtype)})
    group = _line_group(device, 8)
    device.launch(kernel, (_ceil_div(channels, group) * group,), (group,), dy.data, db.data, np.int32(batch), np.int32(length),
                  np.int32(accumulate))


def finish(result: cla.Array, like, unbatched: bool):
    if unbatched:
        result = result.reshape(result.shape[1:])
    return result if is_device_array(like) else result.get()


def conv1d_forward(x, weight, bias, stride, pad_left, pad_right, dilation, groups, padding_mode="zeros", device=None):
    """The forward pass behind `conv1d` and `Conv1d`, with left/right padding and a padding mode.

    Returns (output of the caller's kind, geometry, input on the device) so that a module can keep the last two;
    a host input too large for the device is computed in pieces, and then the input on the device is None.
    """
    check_array(x, "input")
    check_array(weight, "weight")
    if bias is not None:
        check_array(bias, "bias")
    geo = conv_geometry(x.shape, weight.shape, None if bias is None else bias.shape,
                        stride, pad_left, pad_right, dilation, groups, padding_mode)
    check_same_dtype(x, weight, bias)
    dev = device_of(x, weight, bias, device=device)
    check_dtype_supported(dev, x.dtype)
    w_dev = on_device(dev, weight, "weight")
    b_dev = None if bias is None else on_device(dev, bias, "bias")
    if not is_device_array(x) and pieces.needed(dev, geo, x.dtype.itemsize):
        y = pieces.forward(dev, geo, x.reshape(geo.batch, geo.in_channels, geo.length_in), w_dev, b_dev)
        return (y[0] if x.ndim == 2 else y), geo, None
    x_dev = batched(on_device(dev, x, "input"), geo.batch, geo.in_channels, geo.length_in)
    y = dev.empty((geo.batch, geo.out_channels, geo.length_out), x.dtype)
    launch_forward(dev, geo, x_dev, w_dev, b_dev, y)
    return finish(y, x, x.ndim == 2), geo, x_dev


def conv_arguments(kernel_size: int, stride, padding, dilation, groups) -> tuple[int, int, int, int, int]:
    """(stride, pad_left, pad_right, dilation, groups) from the functional forms' arguments."""
    stride, dilation = single(stride, "stride"), single(dilation, "dilation")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"groups must be an int, got {type(groups).__name__}")
    if stride > 0 and dilation > 0:
        pad_left, pad_right = resolve_padding(padding, kernel_size, stride, dilation)
    else:
        pad_left = pad_right = 0 if isinstance(padding, str) else single(padding, "padding")
    return stride, pad_left, pad_right, dilation, int(groups)


def check_weight(weight):
    check_array(weight, "weight")
    if weight.ndim != 3:
        raise RuntimeError(f"weight should have at least three dimensions, but got weight of size {list(weight.shape)}")


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv1d on OpenCL: numpy in, numpy out; pyopencl array in, pyopencl array out."""
    check_weight(weight)
    return conv1d_forward(input, weight, bias, *conv_arguments(weight.shape[2], stride, padding, dilation, groups))[0]


def conv_transpose1d_forward(input, weight, bias, stride, padding, output_padding, groups, dilation, device=None):
    """The forward pass behind `conv_transpose1d` and `ConvTranspose1d`; returns as conv1d_forward does."""
    check_array(input, "input", "conv_transpose1d")
    check_array(weight, "weight", "conv_transpose1d")
    if bias is not None:
        check_array(bias, "bias", "conv_transpose1d")
    geo = transpose_geometry(input.shape, weight.shape, None if bias is None else bias.shape, stride, padding,
                             output_padding, dilation, groups)
    check_same_dtype(input, weight, bias)
    dev = device_of(input, weight, bias, device=device)
    check_dtype_supported(dev, input.dtype)
    x_dev = batched(on_device(dev, input, "input"), geo.batch, geo.out_channels, geo.length_out)
    w_dev = on_device(dev, weight, "weight")
    b_dev = None if bias is None else on_device(dev, bias, "bias")
    y = dev.empty((geo.batch, geo.in_channels, geo.length_in), input.dtype)
    launch_backward_data(dev, geo, x_dev, w_dev, b_dev, y, geo.length_in, geo.pad_left)
    return finish(y, input, input.ndim == 2), geo, x_dev


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose1d: the input gradient of conv1d, with an optional bias."""
    check_weight(weight)
    return conv_transpose1d_forward(input, weight, bias, single(stride, "stride"), single(padding, "padding"),
                                    single(output_padding, "output_padding"), groups, single(dilation, "dilation"))[0]


def transpose_geometry(x_shape, w_shape, bias_shape, stride, padding, output_padding, dilation, groups) -> ConvGeometry:
    """The conv1d whose input gradient a conv_transpose1d computes: its input is the transpose's output."""
    _check_arguments("conv_transpose1d", x_shape, w_shape, stride, padding, dilation, groups)
    if output_padding < 0:
        raise RuntimeError("negative output_padding is not supported")
    if output_padding >= stride and output_padding >= dilation:
        raise RuntimeError(f"output padding must be smaller than either stride or dilation, but got output_padding: {output_padding}, stride: {stride}, dilation: {dilation}")
    batch, channels, length = (1, *x_shape) if len(x_shape) == 2 else x_shape
    in_channels, out_per_group, kernel_size = w_shape
    if channels != in_channels:
        shown = list(x_shape) if len(x_shape) == 3 else [1, *x_shape]
        raise RuntimeError(f"Given transposed=1, weight of size {list(w_shape)}, expected input{shown} to have {in_channels} channels, but got {channels} channels instead")
    if in_channels % groups != 0:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but got weight of size {list(w_shape)} instead")
    out_channels = out_per_group * groups
    if bias_shape is not None and tuple(bias_shape) != (out_channels,):
        raise RuntimeError(f"Given transposed=1, weight of size {list(w_shape)}, expected bias to be 1-dimensional with {out_channels} elements, but got bias of size {list(bias_shape)} instead")
    _check_not_empty_rows(batch, channels, length)
    length_out = (length - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1
    if length_out < 0 or (length_out == 0 and batch > 0):  # a zero batch may have empty rows, as in torch
        raise RuntimeError(f"Given input size per channel: (1 x {length}). Calculated output size per channel: "
                           f"(1 x {length_out}). Output size is too small")
    # The underlying conv1d: input (batch, out_channels, length_out) -> output (batch, in_channels, length).
    return ConvGeometry(batch, out_channels, in_channels, length_out, length, kernel_size, stride, dilation,
                        groups, padding, padding)
