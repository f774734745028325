"""torch.nn.functional's conv1d and conv_transpose1d on OpenCL: numpy in, numpy out; pyopencl array in,
pyopencl array out (nothing leaves the device and nothing waits on the queue)."""
from __future__ import annotations

from .api import launch, pieces
from .api.arrays import (batched, check_array, check_dtype_supported, check_weight, device_of, finish,
                         is_device_array, on_device)
from .api.checks import check_same_dtype, conv_arguments, conv_geometry, single, transpose_geometry


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv1d on an OpenCL device (the formula in clconv.Conv1d's docstring).

    Args:
        input: (N, C_in, L_in) or unbatched (C_in, L_in).
        weight: (C_out, C_in/groups, K).
        bias: optional (C_out,).
        stride (int or 1-tuple): Default 1.
        padding (int, 1-tuple, 'valid' or 'same'): zeros added at both ends; 'same' needs stride 1. Default 0.
        dilation (int or 1-tuple): Default 1.
        groups (int): Default 1.

    Arrays are numpy.ndarray or pyopencl.array.Array of one dtype: float32, float64 (devices with
    cl_khr_fp64) or float16 (float32 accumulation). The device is that of the first pyopencl array, else
    the default device (clconv.get_device()). pyopencl views are copied once on the device.

    Returns:
        (N, C_out, L_out) or (C_out, L_out), L_out = (L_in + 2 * padding - dilation * (K - 1) - 1) // stride + 1:
        numpy when the input is numpy (the call waits for it), else a pyopencl array on the device, enqueued
        only (nothing waits on the queue).

    Raises:
        TypeError: arguments that are not arrays (a torch tensor's message points to clconv.torch) or of an
            unsupported dtype. RuntimeError: shapes, groups, padding or dtypes that do not fit, with torch's
            messages; arrays on two OpenCL contexts; float64 on a device without fp64.
        MemoryError: the device ran out of memory.
    """
    check_weight(weight)
    return conv1d_forward(input, weight, bias, *conv_arguments(weight.shape[2], stride, padding, dilation, groups))[0]


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose1d on an OpenCL device: the gradient of conv1d with respect to its
    input, plus an optional bias (note torch's argument order: groups before dilation).

    Args:
        input: (N, C_in, L_in) or (C_in, L_in).
        weight: (C_in, C_out/groups, K).
        bias: optional (C_out,).
        stride, padding, output_padding, dilation (int or 1-tuple), groups (int): as torch's; padding
            removes positions from both ends of the output, output_padding adds them on the right.

    Returns:
        (N, C_out, L_out) or (C_out, L_out), L_out = (L_in - 1) * stride - 2 * padding + dilation * (K - 1)
        + output_padding + 1; numpy or pyopencl as for conv1d.

    Raises:
        As conv1d, with torch's conv_transpose1d messages.
    """
    check_weight(weight)
    return conv_transpose1d_forward(input, weight, bias, single(stride, "stride"), single(padding, "padding"),
                                    single(output_padding, "output_padding"), groups, single(dilation, "dilation"))[0]


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
    launch.forward(dev, geo, x_dev, w_dev, b_dev, y)
    return finish(y, x, x.ndim == 2), geo, x_dev


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
    launch.transposed(dev, geo, x_dev, w_dev, b_dev, y)
    return finish(y, input, input.ndim == 2), geo, x_dev
