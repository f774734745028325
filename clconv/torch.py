"""clconv inside PyTorch models: Conv1d layers whose forward and backward run on an OpenCL device.

    import torch
    import clconv.torch

    model = torch.nn.Sequential(clconv.torch.Conv1d(1, 8, 5, padding=2), torch.nn.ReLU())
    model = clconv.torch.convert(other_model)  # every torch.nn.Conv1d of an existing model

The layers are `torch.nn.Conv1d` modules: their parameters are ordinary torch Parameters, so optimisers,
state dicts, hooks, `train()` / `eval()` and `torch.no_grad()` work unchanged. Only the convolution itself
(forward, input gradient, weight and bias gradients) runs on the OpenCL device, through a
`torch.autograd.Function`; everything else stays in torch.

Tensors: CPU tensors of dtype float16, float32 or float64 (float64 where the OpenCL device has
`cl_khr_fp64`). A tensor that is not contiguous is made contiguous first. Tensors on another torch device
(`cuda`, `xpu`, `mps`, `meta`) raise a RuntimeError: OpenCL buffers do not share memory with them, and a
silent round trip through the host would hide its cost; move them with `.cpu()` or keep that layer in torch.

The tensors' memory is read through numpy views (no copy on the torch side) and results come back as
tensors over the downloaded numpy arrays: one upload and one download per call, as clconv's numpy path
does. The input stays on the OpenCL device from forward to backward, so the backward uploads only the
output gradient (and the weight, for the input gradient).

Double backward (differentiating a gradient of these layers again) raises a RuntimeError.
"""
from __future__ import annotations

import numpy as np
import pyopencl as cl
import torch
from torch import nn

from .api import launch, pieces
from .api.arrays import check_dtype_supported
from .api.checks import conv_arguments, conv_geometry, resolve_padding, torch_type_name
from .runtime import Device, get_device

__all__ = ["Conv1d", "conv1d", "convert"]

_DTYPES = (torch.float16, torch.float32, torch.float64)


def _host_array(tensor, name: str):
    """A numpy view of a CPU tensor's data (made contiguous first), with torch-style errors."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"conv1d(): argument '{name}' must be Tensor, not {type(tensor).__name__}")
    if tensor.device.type != "cpu":
        raise RuntimeError(
            f"clconv.torch takes CPU tensors, but argument '{name}' is on {tensor.device}: OpenCL buffers do not "
            f"share memory with {tensor.device.type} tensors. Move it with .cpu(), or run this layer in torch"
        )
    if tensor.dtype not in _DTYPES:
        raise TypeError(f"conv1d(): argument '{name}' has dtype {tensor.dtype}; clconv supports torch.float16, "
                        "torch.float32 and torch.float64")
    return tensor.detach().contiguous().numpy()


def _check_same_dtype(input, weight, bias) -> None:
    for other, name in ((weight, "weight"), (bias, "bias")):
        if isinstance(other, torch.Tensor) and isinstance(input, torch.Tensor) and other.dtype != input.dtype:
            raise RuntimeError(f"Input type ({_type_name(input)}) and {name} type ({_type_name(other)}) should be the same")


def _type_name(tensor) -> str:
    return torch_type_name(str(tensor.dtype).removeprefix("torch.")) if tensor.dtype in _DTYPES else str(tensor.dtype)


class _Conv1dFunction(torch.autograd.Function):
    """conv1d on the OpenCL device, differentiable once in input, weight and bias."""

    @staticmethod
    def forward(ctx, input, weight, bias, stride, pad_left, pad_right, dilation, groups, padding_mode, device):
        _check_same_dtype(input, weight, bias)
        x, w = _host_array(input, "input"), _host_array(weight, "weight")
        b = None if bias is None else _host_array(bias, "bias")
        geo = conv_geometry(x.shape, w.shape, None if b is None else b.shape, stride, pad_left, pad_right,
                            dilation, groups, padding_mode)
        check_dtype_supported(device, x.dtype)
        ctx.geo, ctx.device, ctx.w_dev = geo, device, _upload(device, w)
        b_dev = None if b is None else _upload(device, b)
        # An input too large for the device runs in pieces, and so does its backward.
        ctx.in_pieces = pieces.needed(device, geo, x.dtype.itemsize)
        ctx.x_dev = None
        if ctx.in_pieces:
            y = torch.from_numpy(pieces.forward(device, geo, x.reshape(geo.batch, geo.in_channels, geo.length_in),
                                                ctx.w_dev, b_dev))
        else:
            x_dev = _upload(device, x.reshape(geo.batch, geo.in_channels, geo.length_in))
            y_dev = device.empty((geo.batch, geo.out_channels, geo.length_out), x.dtype)
            launch.forward(device, geo, x_dev, ctx.w_dev, b_dev, y_dev)
            y, = _download(device, y_dev)
            if ctx.needs_input_grad[1]:  # the weight gradient reads the input
                ctx.x_dev = x_dev
        ctx.save_for_backward(input, weight)
        return y[0] if input.dim() == 2 else y

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: record a node that refuses to be differentiated
            grads = _Conv1dBackward.apply(grad_output, input, weight, ctx)
        else:
            grads = _gradients(ctx, grad_output, input)
        return (*grads, None, None, None, None, None, None, None)


class _Conv1dBackward(torch.autograd.Function):
    """The gradients of _Conv1dFunction as a node of their own, so that differentiating them raises."""

    @staticmethod
    def forward(ctx, grad_output, input, weight, forward_ctx):
        return _gradients(forward_ctx, grad_output, input)

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError(
            "clconv.torch.conv1d is differentiable once: double backward (differentiating its gradients "
            "again, e.g. after torch.autograd.grad(..., create_graph=True)) is not supported"
        )


def _gradients(ctx, grad_output, input) -> tuple:
    """(input gradient, weight gradient, bias gradient) as tensors, None where not needed."""
    geo, device = ctx.geo, ctx.device
    need_input, need_weight, need_bias = ctx.needs_input_grad[:3]
    dy = _host_array(grad_output, "grad_output").reshape(geo.batch, geo.out_channels, geo.length_out)
    dw = device.empty(ctx.w_dev.shape, dy.dtype) if need_weight else None
    db = device.empty((geo.out_channels,), dy.dtype) if need_bias else None
    if ctx.in_pieces:
        x = _host_array(input, "input").reshape(geo.batch, geo.in_channels, geo.length_in)
        dx = pieces.backward(device, geo, x, dy, ctx.w_dev, need_input, dw, False, db, False)
        dw, db = _download(device, dw, db)
        return None if dx is None else torch.from_numpy(dx.reshape(input.shape)), dw, db
    dy_dev = _upload(device, dy)
    if need_weight:
        launch.weight_gradient(device, geo, ctx.x_dev, dy_dev, dw, False, bias=None if db is None else (db, False))
    elif need_bias:
        launch.bias_gradient(device, dy_dev, db, False)
    dx = launch.input_gradient(device, geo, dy_dev, ctx.w_dev) if need_input else None
    dx, dw, db = _download(device, dx, dw, db)
    return None if dx is None else dx.reshape(input.shape), dw, db


# Every synchronisation with the queue costs tens of microseconds on a CPU device, as much as a small
# layer's kernels: inputs on a device that shares host memory are read in place, uploads elsewhere do not
# wait, and downloads share one wait.
def _upload(device: Device, array: np.ndarray):
    """A C-contiguous host array on the device: the array's own memory where the device shares host memory
    (the array is a view of a tensor that autograd keeps, unchanged, until the backward), else a copy that
    is enqueued, not waited for (pyopencl keeps the host array alive until it completes)."""
    if device.host_unified_memory:
        return device.host_array(array)
    out = device.empty(array.shape, array.dtype)
    if array.size:
        cl.enqueue_copy(device.queue, out.data, array, is_blocking=False)
    return out


def _download(device: Device, *arrays) -> list:
    """Device arrays (or None) as new CPU tensors, their reads enqueued together and waited for once."""
    tensors, last = [], None
    for array in arrays:
        if array is None:
            tensors.append(None)
            continue
        tensor = torch.from_numpy(np.empty(array.shape, array.dtype))
        if array.size:
            last = cl.enqueue_copy(device.queue, tensor.numpy(), array.data, is_blocking=False)
        tensors.append(tensor)
    if last is not None:
        last.wait()  # the queue is in order: the last read completes after the others
    return tensors


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, cl_device=None):
    """torch.nn.functional.conv1d on an OpenCL device, differentiable in input, weight and bias.

    Args:
        input: CPU tensor (N, C_in, L) or unbatched (C_in, L).
        weight: CPU tensor (C_out, C_in / groups, K).
        bias: optional CPU tensor (C_out,).
        stride, padding, dilation, groups: as in torch.nn.functional.conv1d; padding may be an int, a
            1-tuple, 'valid' or 'same'.
        cl_device: the OpenCL device, in any form clconv.get_device accepts (None: the default device).

    Returns:
        A CPU tensor (N, C_out, L_out) (or (C_out, L_out)) of the input's dtype; it requires grad when any
        argument does.

    Raises:
        TypeError: an argument that is not a tensor, or of a dtype other than float16/32/64.
        RuntimeError: tensors not on the CPU, mismatched dtypes or shapes (torch's messages), float64 on a
            device without fp64, double backward.
    """
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"conv1d(): argument 'weight' must be Tensor, not {type(weight).__name__}")
    if weight.dim() != 3:
        raise RuntimeError(f"weight should have at least three dimensions, but got weight of size {list(weight.shape)}")
    stride, pad_left, pad_right, dilation, groups = conv_arguments(weight.shape[2], stride, padding, dilation, groups)
    return _Conv1dFunction.apply(input, weight, bias, stride, pad_left, pad_right, dilation, groups, "zeros",
                                 get_device(cl_device))


class Conv1d(nn.Conv1d):
    """torch.nn.Conv1d whose convolution runs on an OpenCL device.

    Takes torch.nn.Conv1d's arguments (in_channels, out_channels, kernel_size, stride, padding, dilation,
    groups, bias, padding_mode, device, dtype), with the same checks, initialisation and state dict, plus
    cl_device: the OpenCL device, in any form clconv.get_device accepts (None: CLCONV_DEVICE, else the
    first GPU, then accelerator, then CPU). `device=` remains torch's device of the parameters, which must
    be "cpu" when the layer runs.

    Every padding mode (zeros, reflect, replicate, circular) and 'same' / 'valid' padding runs on the
    OpenCL device, without a padded copy of the input.

    Shapes: input (N, C_in, L) or (C_in, L); output (N, C_out, L_out) or (C_out, L_out) with
    L_out = (L + padding_left + padding_right - dilation * (K - 1) - 1) // stride + 1.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None, cl_device=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        self.cl_device: Device = get_device(cl_device)

    def forward(self, input):
        """The convolution of `input` with this layer's weight and bias, on `cl_device`; autograd records
        it, and its backward runs there too."""
        return self._conv_forward(input, self.weight, self.bias)

    def _conv_forward(self, input, weight, bias):
        padding = self.padding if isinstance(self.padding, str) else self.padding[0]
        pad_left, pad_right = resolve_padding(padding, self.kernel_size[0], self.stride[0], self.dilation[0])
        return _Conv1dFunction.apply(input, weight, bias, self.stride[0], pad_left, pad_right, self.dilation[0],
                                     self.groups, self.padding_mode, self.cl_device)

    def extra_repr(self):
        return f"{super().extra_repr()}, cl_device={self.cl_device.name!r}"

    # The OpenCL device holds driver handles: pickles and deep copies carry its "P:D" spec instead.
    def __getstate__(self):
        state = self.__dict__.copy()
        state["cl_device"] = self.cl_device.spec
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self.cl_device = get_device(self.cl_device)


def convert(model: nn.Module, cl_device=None) -> nn.Module:
    """Run every torch.nn.Conv1d of `model` (the model itself included) on an OpenCL device, in place.

    The modules stay the same objects, with the same parameters, buffers and hooks (an optimiser built
    before the conversion keeps working); they become clconv.torch.Conv1d with `cl_device` (any form
    clconv.get_device accepts). Layers already converted move to `cl_device`. Subclasses of nn.Conv1d
    (parametrized convolutions among them) are left alone, since their forward may differ. Returns `model`.
    """
    device = get_device(cl_device)
    for module in model.modules():
        if type(module) in (nn.Conv1d, Conv1d):
            # Conv1d adds no state but its device, so the class swap (as torch.nn.utils.parametrize does
            # it) keeps everything the module holds.
            module.__class__ = Conv1d
            module.cl_device = device
    return model
