"""Conv1d as a module: torch's constructor, attributes, initialisation, repr and state dicts."""
from __future__ import annotations

import math

import numpy as np
import pyopencl.array as cla

from . import functional as F
from .api import launch, pieces
from .api.arrays import batched, check_dtype_supported, finish, is_device_array, on_device
from .api.checks import PADDING_MODES, SUPPORTED_DTYPES, padding_string_error, resolve_padding, single
from .grad import check_grad_output
from .runtime import Device, get_device

_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the generator that initialises parameters."""
    global _rng
    _rng = np.random.default_rng(seed)


class Parameter:
    """A device array with a gradient slot, like torch.nn.Parameter."""

    def __init__(self, data: cla.Array, requires_grad: bool = True):
        self.data = data
        self.grad: cla.Array | None = None
        self.requires_grad = requires_grad

    shape = property(lambda self: tuple(self.data.shape))
    dtype = property(lambda self: self.data.dtype)

    def numpy(self) -> np.ndarray:
        return self.data.get()

    def __array__(self, dtype=None, copy=None):
        out = self.numpy()
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self):
        return f"Parameter containing:\n{self.numpy()!r}"


class _ConvNd:
    """Shared state of Conv1d and ConvTranspose1d: checks, parameters, state dicts."""

    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, device, dtype, output_padding=0):
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        kernel_size, stride, dilation = (single(v, n) for v, n in ((kernel_size, "kernel_size"), (stride, "stride"), (dilation, "dilation")))
        if isinstance(padding, str):
            error = padding_string_error(padding, stride)
            if error:
                raise ValueError(error)
        else:
            padding = (single(padding, "padding"),)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {list(PADDING_MODES)}, but got padding_mode='{padding_mode}'")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.dilation = (kernel_size,), (stride,), (dilation,)
        self.padding = padding
        self.output_padding = (single(output_padding, "output_padding"),)
        self.groups = int(groups)
        self.padding_mode = padding_mode
        self.device: Device = get_device(device)
        self.dtype = np.dtype(np.float32 if dtype is None else dtype)
        if self.dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"dtype must be float16, float32 or float64, got {self.dtype}")
        check_dtype_supported(self.device, self.dtype)
        shape = (in_channels, out_channels // groups, kernel_size) if self._transposed else (out_channels, in_channels // groups, kernel_size)
        self._saved = None  # (geometry, input on the device, caller's input) of the latest forward
        self.weight = Parameter(self.device.empty(shape, self.dtype))
        self.bias = Parameter(self.device.empty((out_channels,), self.dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-sqrt(k), sqrt(k)) with k = groups / (C_in * K) for weight and bias, as torch draws them."""
        fan_in = self.weight.shape[1] * self.kernel_size[0]
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        for param in self.parameters():
            values = _rng.uniform(-bound, bound, param.shape).astype(self.dtype)
            if values.size:  # zero-sized parameters (torch allows them) have nothing to upload
                param.data.set(values)

    def parameters(self) -> list[Parameter]:
        return [p for p in (self.weight, self.bias) if p is not None]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,):
            s += f", padding={self.padding}"
        if self.dilation != (1,):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def state_dict(self) -> dict:
        return {name: p.numpy() for name, p in (("weight", self.weight), ("bias", self.bias)) if p is not None}

    def load_state_dict(self, state_dict, strict: bool = True):
        own = {name: p for name, p in (("weight", self.weight), ("bias", self.bias)) if p is not None}
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict and unexpected:
            errors.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ". ")
        if strict and missing:
            errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ")
        arrays = {}
        for name, param in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            array = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
            if array.shape != param.shape:
                errors.append(f"size mismatch for {name}: copying a param with shape {list(array.shape)} from checkpoint, "
                              f"the shape in current model is {list(param.shape)}.")
            arrays[name] = array
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        for name, array in arrays.items():
            if array.size:
                own[name].data.set(np.ascontiguousarray(array, dtype=self.dtype))
        return missing, unexpected

    def __call__(self, input):
        return self.forward(input)

    def _grad_target(self, param: Parameter | None) -> tuple | None:
        """(param.grad, accumulate) for a parameter that wants its gradient, None otherwise. Gradients sum
        into param.grad until zero_grad(), as torch's do; a fresh one is allocated, not zeroed."""
        if param is None or not param.requires_grad:
            return None
        fresh = param.grad is None
        if fresh:
            param.grad = self.device.empty(param.shape, self.dtype)
        return param.grad, not fresh

    def _saved_for_backward(self):
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before any forward pass: run the module on an input first")
        return self._saved

    def _device_grad_output(self, grad_output, geo, unbatched: bool):
        check_grad_output(grad_output, geo, self.dtype, unbatched)
        return batched(on_device(self.device, grad_output, "grad_output"), geo.batch, geo.out_channels, geo.length_out)


class Conv1d(_ConvNd):
    """torch.nn.Conv1d on OpenCL. Input (N, C_in, L) or (C_in, L); output (N, C_out, L_out)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)

    def _pads(self) -> tuple[int, int]:
        return resolve_padding(self.padding if isinstance(self.padding, str) else self.padding[0],
                                 self.kernel_size[0], self.stride[0], self.dilation[0])

    def forward(self, input):
        pad_left, pad_right = self._pads()
        y, geo, x = F.conv1d_forward(input, self.weight.data, None if self.bias is None else self.bias.data,
                                     self.stride[0], pad_left, pad_right, self.dilation[0], self.groups,
                                     self.padding_mode, self.device)
        self._saved = (geo, x, input)
        return y

    def backward(self, grad_output, input_grad: bool = True):
        """Gradients for the latest forward: accumulates weight.grad and bias.grad, returns the input's gradient
        (same kind and shape as that input) or None when input_grad=False."""
        geo, x, input = self._saved_for_backward()
        if x is None:  # the forward ran in pieces: so does the backward
            return self._backward_in_pieces(geo, input, grad_output, input_grad)
        dy = self._device_grad_output(grad_output, geo, input.ndim == 2)
        weight_target, bias_target = self._grad_target(self.weight), self._grad_target(self.bias)
        if weight_target:
            launch.weight_gradient(self.device, geo, x, dy, *weight_target, bias=bias_target)
        elif bias_target:
            launch.bias_gradient(self.device, dy, *bias_target)
        if not input_grad:
            return None
        return finish(launch.input_gradient(self.device, geo, dy, self.weight.data), input, input.ndim == 2)


    def _backward_in_pieces(self, geo, input, grad_output, input_grad: bool):
        check_grad_output(grad_output, geo, self.dtype, input.ndim == 2)
        dy = grad_output.get() if is_device_array(grad_output) else grad_output
        grads = {}
        for name, param in (("weight", self.weight), ("bias", self.bias)):
            if param is not None and param.requires_grad:
                accumulate = param.grad is not None
                if not accumulate:
                    param.grad = self.device.empty(param.shape, self.dtype)
                grads[name] = (param.grad, accumulate)
        dx = pieces.backward(self.device, geo, input.reshape(geo.batch, geo.in_channels, geo.length_in),
                             dy.reshape(geo.batch, geo.out_channels, geo.length_out), self.weight.data, input_grad,
                             *grads.get("weight", (None, False)), *grads.get("bias", (None, False)))
        return None if dx is None else dx.reshape(input.shape)


class ConvTranspose1d(_ConvNd):
    """torch.nn.ConvTranspose1d on OpenCL: the input gradient of a Conv1d, with its own bias."""

    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        if isinstance(padding, str):
            raise ValueError(f"padding must be an int or a 1-tuple for {type(self).__name__}, got {padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype, output_padding)

    def forward(self, input):
        y, geo, x = F.conv_transpose1d_forward(input, self.weight.data, None if self.bias is None else self.bias.data,
                                               self.stride[0], self.padding[0], self.output_padding[0], self.groups,
                                               self.dilation[0], self.device)
        self._saved = (geo, x, input)
        return y

    def backward(self, grad_output, input_grad: bool = True):
        """As Conv1d.backward. The underlying conv1d maps this module's output back to its input, so the roles
        of its input and output gradient swap: the weight gradient reads grad_output as the conv's input."""
        geo, x, input = self._saved_for_backward()
        unbatched = input.ndim == 2
        # grad_output has this module's output shape: the underlying conv's input shape.
        dy = self._device_grad_output(grad_output, geo.dual(), unbatched)
        # dy plays the underlying conv's input here, so its bias gradient (a sum of dy) is a launch of its own.
        weight_target, bias_target = self._grad_target(self.weight), self._grad_target(self.bias)
        if weight_target:
            launch.weight_gradient(self.device, geo, dy, x, *weight_target)
        if bias_target:
            launch.bias_gradient(self.device, dy, *bias_target)
        if not input_grad:
            return None
        dx = self.device.empty((geo.batch, geo.out_channels, geo.length_out), self.dtype)
        launch.forward(self.device, geo, dy, self.weight.data, None, dx)
        return finish(dx, input, unbatched)
