"""torch.nn.functional's conv1d and conv_transpose1d on OpenCL: numpy in, numpy out; pyopencl array in,
pyopencl array out (nothing leaves the device and nothing waits on the queue)."""
from __future__ import annotations

from .api import launch, pieces
from .api.arrays import (batched, check_array, check_dtype_supported, check_weight, device_of, finish,
                         is_device_array, on_device)
from .api.checks import check_same_dtype, conv_arguments, conv_geometry, single, transpose_geometry


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv1d: input (N, C_in, L) or (C_in, L), weight (C_out, C_in/groups, K)."""
    check_weight(weight)
    return conv1d_forward(input, weight, bias, *conv_arguments(weight.shape[2], stride, padding, dilation, groups))[0]


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose1d: the input gradient of conv1d, with an optional bias."""
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
