"""Host and device arrays: what the public functions accept, where their data lives, what they return.

Arrays arrive as numpy arrays (uploaded, result downloaded) or as pyopencl arrays on the device (nothing
leaves the device and nothing waits on the queue).
"""
from __future__ import annotations

import numpy as np
import pyopencl.array as cla

from ..runtime import Device, get_device
from .checks import SUPPORTED_DTYPES


def is_device_array(a) -> bool:
    return isinstance(a, cla.Array)


def check_array(a, name: str, fn: str = "conv1d"):
    if not isinstance(a, (np.ndarray, cla.Array)):
        raise TypeError(f"{fn}(): argument '{name}' must be a numpy.ndarray or pyopencl.array.Array, not {type(a).__name__}")
    if a.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{fn}(): argument '{name}' has dtype {a.dtype}; supported are float16, float32 and float64")


def check_weight(weight):
    check_array(weight, "weight")
    if weight.ndim != 3:
        raise RuntimeError(f"weight should have at least three dimensions, but got weight of size {list(weight.shape)}")


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


def finish(result: cla.Array, like, unbatched: bool):
    """The result as the caller's kind of array (numpy for numpy input), unbatched like the input."""
    if unbatched:
        result = result.reshape(result.shape[1:])
    return result if is_device_array(like) else result.get()
