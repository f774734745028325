"""Host and device arrays: what the public functions accept, where their data lives, what they return.

Arrays arrive as numpy arrays (uploaded, result downloaded) or as pyopencl arrays on the device (nothing
leaves the device and nothing waits on the queue). Device arrays that are views (at an offset into their
buffer, or strided) get one contiguous copy on the device, as the kernels read whole buffers.
"""
from __future__ import annotations

import sys

import numpy as np
import pyopencl as cl
import pyopencl.array as cla
from pyopencl.elementwise import ElementwiseKernel

from ..runtime import Device, build_log, get_device
from .checks import SUPPORTED_DTYPES


def is_device_array(a) -> bool:
    return isinstance(a, cla.Array)


def check_array(a, name: str, fn: str = "conv1d"):
    if not isinstance(a, (np.ndarray, cla.Array)):
        hint = ""
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(a, torch.Tensor):
            hint = ("; pass tensor.numpy() (a view, for a CPU tensor), or use clconv.torch (Conv1d, conv1d, "
                    "convert), whose layers take tensors and work with autograd")
        raise TypeError(f"{fn}(): argument '{name}' must be a numpy.ndarray or pyopencl.array.Array, "
                        f"not {type(a).__name__}{hint}")
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
    """`a` as a C-contiguous array at the start of its buffer on `device`: numpy arrays are copied up, device
    views copied on the device (the caller's array is untouched)."""
    if is_device_array(a):
        if a.context != device.context:
            raise RuntimeError(f"argument '{name}' lives on another OpenCL context than device {device.name}")
        if a.offset or not a.flags.c_contiguous:
            return contiguous_copy(device, a)
        return a
    return device.to_device(a)


# The strided copy moves bits: unsigned integers of the element's size, so float16 needs no cl_khr_fp16.
_BITS = {2: np.uint16, 4: np.uint32, 8: np.uint64}
_strided_copies: dict[tuple, ElementwiseKernel] = {}


def contiguous_copy(device: Device, a: cla.Array) -> cla.Array:
    """A C-contiguous copy of a device view (a slice at an offset, a strided slice) on `device`'s queue."""
    out = device.empty(a.shape, a.dtype)
    if not a.size:
        return out
    if a.flags.c_contiguous:
        cl.enqueue_copy(device.queue, out.data, a.base_data, src_offset=a.offset, byte_count=a.nbytes,
                        wait_for=a.events)
        return out
    itemsize = a.dtype.itemsize
    bits = _BITS[itemsize]
    if any(s % itemsize for s in a.strides) or a.offset % itemsize:
        raise ValueError("a pyopencl view whose strides or offset are not whole elements cannot be read")
    # (N, C, L) indices from the flat output index; unbatched views get a leading dimension of 1.
    shape = (1,) * (3 - a.ndim) + tuple(a.shape)
    strides = (0,) * (3 - a.ndim) + tuple(s // itemsize for s in a.strides)
    key = (device.context, bits)
    if key not in _strided_copies:
        _strided_copies[key] = ElementwiseKernel(
            device.context, f"{cl.tools.dtype_to_ctype(bits)} *out, const {cl.tools.dtype_to_ctype(bits)} *src, "
            "long offset, long s0, long s1, long s2, long n1, long n2",
            "out[i] = src[offset + (i / (n1 * n2)) * s0 + ((i / n2) % n1) * s1 + (i % n2) * s2]",
            "clconv_strided_copy")
    source = cla.Array(device.queue, (a.base_data.size // itemsize,), bits, data=a.base_data)
    # The lock: kernel objects carry their arguments. The first call builds the program.
    with device.lock, build_log("clconv_strided_copy"):
        _strided_copies[key](out.view(bits), source, a.offset // itemsize, *strides, shape[1], shape[2],
                             queue=device.queue, wait_for=a.events)
    return out


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
