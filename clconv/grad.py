"""Gradients of conv1d as functions, mirroring torch.nn.grad: conv1d_input and conv1d_weight. The bias
gradient is grad_output summed over batch and positions."""
from __future__ import annotations

import numpy as np

from .api import launch, pieces
from .api.arrays import batched, check_array, check_dtype_supported, check_weight, device_of, finish, is_device_array, on_device
from .api.checks import ConvGeometry, conv_arguments, conv_geometry, torch_type_name


def check_grad_output(grad_output, geo: ConvGeometry, dtype, unbatched: bool) -> None:
    """grad_output must be an array of the convolution's output shape and of `dtype`."""
    check_array(grad_output, "grad_output", "backward")
    expected = (geo.out_channels, geo.length_out) if unbatched else (geo.batch, geo.out_channels, geo.length_out)
    if tuple(grad_output.shape) != expected:
        raise RuntimeError(f"grad_output has size {list(grad_output.shape)}, but the convolution's output has size {list(expected)}")
    if grad_output.dtype != dtype:
        raise RuntimeError(f"grad_output type ({torch_type_name(grad_output.dtype)}) and input type "
                           f"({torch_type_name(dtype)}) should be the same")


def _size(size, name: str) -> tuple:
    try:
        values = tuple(size)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints, got {type(size).__name__}") from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{name} must be a sequence of ints, got {list(values)}")
    return tuple(int(v) for v in values)


def conv1d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """The gradient of conv1d with respect to its input, as torch.nn.grad.conv1d_input.

    Args:
        input_size (sequence of ints): the input's shape, (N, C_in, L_in) or (C_in, L_in).
        weight: (C_out, C_in/groups, K).
        grad_output: the gradient of the loss with respect to conv1d's output, (N, C_out, L_out) or
            (C_out, L_out), of the weight's dtype.
        stride, padding, dilation, groups: conv1d's (zero padding; modules handle the other modes).

    Returns:
        The input's gradient, of shape input_size: numpy when grad_output is numpy, else a pyopencl array
        on grad_output's device, enqueued only.

    Raises:
        TypeError: input_size not a sequence of ints, arrays of the wrong kind or dtype.
        RuntimeError: shapes that do not fit (torch's messages), grad_output of the wrong shape or dtype.
    """
    check_weight(weight)
    input_size = _size(input_size, "input_size")
    stride, pad_left, pad_right, dilation, groups = conv_arguments(weight.shape[2], stride, padding, dilation, groups)
    geo = conv_geometry(input_size, weight.shape, None, stride, pad_left, pad_right, dilation, groups)
    check_grad_output(grad_output, geo, weight.dtype, len(input_size) == 2)
    dev = device_of(grad_output, weight)
    check_dtype_supported(dev, weight.dtype)
    w = on_device(dev, weight, "weight")
    if not is_device_array(grad_output) and pieces.needed(dev, geo, weight.dtype.itemsize):
        dx = pieces.backward(dev, geo, None, grad_output.reshape(geo.batch, geo.out_channels, geo.length_out), w, True)
        return dx.reshape(input_size)
    dy = batched(on_device(dev, grad_output, "grad_output"), geo.batch, geo.out_channels, geo.length_out)
    dx = launch.input_gradient(dev, geo, dy, w)
    return finish(dx, grad_output, len(input_size) == 2)


def conv1d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """The gradient of conv1d with respect to its weight, as torch.nn.grad.conv1d_weight.

    Args:
        input: conv1d's input, (N, C_in, L_in) or (C_in, L_in).
        weight_size (sequence of 3 ints): (C_out, C_in/groups, K).
        grad_output: (N, C_out, L_out) or (C_out, L_out), of the input's dtype.
        stride, padding, dilation, groups: conv1d's (zero padding).

    Returns:
        The weight's gradient, of shape weight_size: a pyopencl array (enqueued only) when input or
        grad_output is one, else numpy. Deterministic: bitwise equal from run to run.

    Raises:
        As conv1d_input; RuntimeError for a weight_size that is not 3-dimensional.
    """
    check_array(input, "input", "conv1d_weight")
    weight_size = _size(weight_size, "weight_size")
    if len(weight_size) != 3:
        raise RuntimeError(f"weight should have at least three dimensions, but got weight of size {list(weight_size)}")
    stride, pad_left, pad_right, dilation, groups = conv_arguments(weight_size[2], stride, padding, dilation, groups)
    geo = conv_geometry(input.shape, weight_size, None, stride, pad_left, pad_right, dilation, groups)
    check_grad_output(grad_output, geo, input.dtype, input.ndim == 2)
    dev = device_of(input, grad_output)
    check_dtype_supported(dev, input.dtype)
    dw = dev.empty(weight_size, input.dtype)
    if not is_device_array(input) and not is_device_array(grad_output) and pieces.needed(dev, geo, input.dtype.itemsize):
        pieces.backward(dev, geo, input.reshape(geo.batch, geo.in_channels, geo.length_in),
                        grad_output.reshape(geo.batch, geo.out_channels, geo.length_out), None, False, dw)
        return dw.get()
    x = batched(on_device(dev, input, "input"), geo.batch, geo.in_channels, geo.length_in)
    dy = batched(on_device(dev, grad_output, "grad_output"), geo.batch, geo.out_channels, geo.length_out)
    launch.weight_gradient(dev, geo, x, dy, dw, accumulate=False)
    return dw if is_device_array(input) or is_device_array(grad_output) else dw.get()
