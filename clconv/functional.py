"""The functional layer: argument checks with torch's wording, shape logic and kernel launches.

Arrays arrive as numpy arrays (uploaded, result downloaded) or as pyopencl arrays on the device
(nothing leaves the device and nothing waits on the queue).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyopencl.array as cla

from . import params as _params
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
    """(left, right) zero-padding amounts from an int, a 1-tuple, 'same' or 'valid'."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding == "same":
            if stride != 1:
                raise ValueError("padding='same' is not supported for strided convolutions")
            return same_padding(kernel_size, dilation)
        raise ValueError(f"Invalid padding string '{padding}', should be one of {{'valid', 'same'}}")
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


def conv_geometry(x_shape, w_shape, bias_shape, stride, pad_left, pad_right, dilation, groups, padding_mode="zeros", fn="conv1d") -> ConvGeometry:
    """Validate a convolution's arguments in torch's order, with torch's messages; return its geometry."""
    if len(x_shape) not in (2, 3):
        raise RuntimeError(f"Expected 2D (unbatched) or 3D (batched) input to {fn}, but got input of size: {list(x_shape)}")
    if len(w_shape) != 3:
        raise RuntimeError(f"weight should have at least three dimensions, but got weight of size {list(w_shape)}")
    if stride <= 0:
        raise RuntimeError("non-positive stride is not supported")
    if pad_left < 0 or pad_right < 0:
        raise RuntimeError("negative padding is not supported")
    if dilation <= 0:
        raise RuntimeError("dilation should be greater than zero")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
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
    if padding_mode != "zeros" and length > 0:
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
    return ConvGeometry(batch, channels, out_channels, length, (padded - dilated) // stride + 1, kernel_size,
                        stride, dilation, groups, pad_left, pad_right, padding_mode)


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


# --- launches -------------------------------------------------------------------------------------

def _forward_params(device: Device, geo: ConvGeometry, dtype) -> dict:
    acc_bytes = 8 if np.dtype(dtype) == np.float64 else 4
    key = (geo.in_per_group, geo.out_per_group, geo.groups, geo.kernel_size, geo.stride, geo.dilation, np.dtype(dtype).name)

    def local_bytes(p):
        span_l = p["WG_L"] * p["TILE_L"]
        win = (span_l - 1) * geo.stride + (geo.kernel_size - 1) * geo.dilation + 1
        return acc_bytes * p["CI_TILE"] * (win + geo.kernel_size * p["WG_CO"] * p["TILE_CO"])

    p = _params.fit(device, _params.lookup(device, "forward", key), rows=geo.out_per_group,
                    length=geo.length_out, local_bytes=local_bytes)
    if p["strategy"] == "local":
        p["CI_TILE"] = max(1, min(p["CI_TILE"], geo.in_per_group))
    return p


def launch_forward(device: Device, geo: ConvGeometry, x: cla.Array, weight: cla.Array, bias, y: cla.Array) -> None:
    """y = conv1d(x) on the device; x (N, C_in, L_in), y (N, C_out, L_out), all C-contiguous."""
    if geo.batch == 0 or geo.length_out == 0 or geo.out_channels == 0:
        return
    p = _forward_params(device, geo, x.dtype)
    defines = {
        "C_IN_G": geo.in_per_group, "C_OUT_G": geo.out_per_group, "GROUPS": geo.groups, "K": geo.kernel_size,
        "STRIDE": geo.stride, "DILATION": geo.dilation, "HAS_BIAS": bias is not None,
        "PAD_MODE": _PAD_MODE_CODE[geo.padding_mode], "STRATEGY": int(p["strategy"] == "local"),
        "TILE_CO": p["TILE_CO"], "TILE_L": p["TILE_L"], "VEC": p["VEC"], "WG_L": p["WG_L"], "WG_CO": p["WG_CO"],
        **({"CI_TILE": p["CI_TILE"]} if p["strategy"] == "local" else {}), **dtype_defines(x.dtype),
    }
    kernel = device.kernel("conv1d_forward.cl", "conv1d_forward", defines)
    span_co = p["WG_CO"] * p["TILE_CO"]
    global_size = (_ceil_div(geo.length_out, p["WG_L"] * p["TILE_L"] * p["VEC"]) * p["WG_L"],
                   geo.groups * _ceil_div(geo.out_per_group, span_co) * p["WG_CO"], geo.batch)
    device.launch(kernel, global_size, (p["WG_L"], p["WG_CO"], 1), x.data, weight.data,
                  (bias if bias is not None else weight).data, y.data,
                  np.int32(geo.length_in), np.int32(geo.length_out), np.int32(geo.pad_left))


def _finish(result: cla.Array, like, unbatched: bool):
    if unbatched:
        result = result.reshape(result.shape[1:])
    return result if is_device_array(like) else result.get()


def conv1d_forward(x, weight, bias, stride, pad_left, pad_right, dilation, groups, padding_mode="zeros", device=None):
    """The forward pass behind `conv1d` and `Conv1d`, with separate left/right padding and a padding mode."""
    check_array(x, "input")
    check_array(weight, "weight")
    if bias is not None:
        check_array(bias, "bias")
    geo = conv_geometry(x.shape, weight.shape, None if bias is None else bias.shape,
                        stride, pad_left, pad_right, dilation, groups, padding_mode)
    check_same_dtype(x, weight, bias)
    dev = device_of(x, weight, bias, device=device)
    check_dtype_supported(dev, x.dtype)
    x_dev = on_device(dev, x, "input")
    w_dev = on_device(dev, weight, "weight")
    b_dev = None if bias is None else on_device(dev, bias, "bias")
    y = dev.empty((geo.batch, geo.out_channels, geo.length_out), x.dtype)
    launch_forward(dev, geo, x_dev, w_dev, b_dev, y)
    return _finish(y, x, x.ndim == 2)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv1d on OpenCL: numpy in, numpy out; pyopencl array in, pyopencl array out."""
    check_array(weight, "weight")
    if weight.ndim != 3:
        raise RuntimeError(f"weight should have at least three dimensions, but got weight of size {list(weight.shape)}")
    stride, dilation = single(stride, "stride"), single(dilation, "dilation")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"groups must be an int, got {type(groups).__name__}")
    if stride > 0 and dilation > 0:
        pad_left, pad_right = resolve_padding(padding, weight.shape[2], stride, dilation)
    else:
        pad_left = pad_right = 0 if isinstance(padding, str) else single(padding, "padding")
    return conv1d_forward(input, weight, bias, stride, pad_left, pad_right, dilation, int(groups))
