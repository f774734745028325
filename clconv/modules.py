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
    """A module's weight or bias: a device array with a gradient slot, like torch.nn.Parameter.

    Attributes:
        data (pyopencl.array.Array): the values, on the module's device; update them in place
            (`param.data -= lr * param.grad`) or assign a new array of the same shape, dtype and device.
        grad (pyopencl.array.Array or None): the gradient that `backward` accumulates, None until the first
            backward and after `zero_grad()`.
        requires_grad (bool): False makes `backward` skip this parameter's gradient.
        shape, dtype: those of `data`.

    `numpy()` (and `np.asarray(param)`) copies the values to the host.
    """

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


def _is_dtype(value) -> bool:
    try:
        np.dtype(value)
    except TypeError:
        return False
    return True


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
        """The weight, then the bias when there is one."""
        return [p for p in (self.weight, self.bias) if p is not None]

    def zero_grad(self) -> None:
        """Drop the accumulated gradients (grad = None, as torch's set_to_none)."""
        for p in self.parameters():
            p.grad = None

    def to(self, device=None, dtype=None):
        """Move and/or cast the parameters and their gradients, in place, as torch.nn.Module.to; returns self.

        Args:
            device: the new OpenCL device, in any form clconv.get_device accepts; None keeps the device. A
                numpy dtype given here (`m.to(np.float64)`) is taken as `dtype`, as torch's `m.to(torch.float64)`.
            dtype: float16, float32 or float64; None keeps the dtype.

        Raises:
            TypeError: another dtype. RuntimeError: float64 on a device without cl_khr_fp64.

        The latest forward's saved input is dropped with the old arrays: run a forward before the next
        backward.
        """
        if dtype is None and device is not None and not isinstance(device, (str, int, Device)) and _is_dtype(device):
            device, dtype = None, device
        new_device = self.device if device is None else get_device(device)
        new_dtype = self.dtype if dtype is None else np.dtype(dtype)
        if new_dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"dtype must be float16, float32 or float64, got {new_dtype}")
        check_dtype_supported(new_device, new_dtype)
        if new_device is self.device and new_dtype == self.dtype:
            return self
        for param in self.parameters():
            # Through the host: parameters are small, and a device-side cast of float16 would need cl_khr_fp16.
            param.data = new_device.to_device(param.data.get().astype(new_dtype))
            if param.grad is not None:
                param.grad = new_device.to_device(param.grad.get().astype(new_dtype))
        self.device, self.dtype = new_device, new_dtype
        self._saved = None
        return self

    def float(self):
        """Cast the parameters and gradients to float32 (`to(dtype=np.float32)`); returns self."""
        return self.to(dtype=np.float32)

    def double(self):
        """Cast the parameters and gradients to float64 (`to(dtype=np.float64)`); returns self."""
        return self.to(dtype=np.float64)

    def half(self):
        """Cast the parameters and gradients to float16 (`to(dtype=np.float16)`); returns self."""
        return self.to(dtype=np.float16)

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
        """{"weight": ..., "bias": ...} as numpy arrays (host copies), torch's keys."""
        return {name: p.numpy() for name, p in (("weight", self.weight), ("bias", self.bias)) if p is not None}

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy "weight" and "bias" from numpy arrays or torch tensors (e.g. torch's own state dict) into the
        parameters, cast to the module's dtype. Returns (missing keys, unexpected keys); strict=True makes
        either, or a shape mismatch, a RuntimeError worded as torch's."""
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
    r"""torch.nn.Conv1d on an OpenCL device: a 1-D convolution over an input of several channels,

        out[n, o, t] = bias[o] + sum over c < C_in/groups, k < K of
                       weight[o, c, k] * input_padded[n, g * C_in/groups + c, t * stride + k * dilation]

    where g = o // (C_out/groups) is the group of output channel o (a cross-correlation, as in torch).

    Args:
        in_channels (int): C_in, channels of the input.
        out_channels (int): C_out, channels of the output.
        kernel_size (int or 1-tuple): K.
        stride (int or 1-tuple): step between output positions. Default 1.
        padding (int, 1-tuple, 'valid' or 'same'): positions added at both ends; 'same' keeps the length
            (stride 1 only; an odd total puts the extra position on the right, as torch). Default 0.
        dilation (int or 1-tuple): spacing between kernel taps. Default 1.
        groups (int): C_in and C_out are split into this many groups, each convolved separately; both must
            be divisible by it. Default 1.
        bias (bool): whether to add a learnable bias. Default True.
        padding_mode ('zeros', 'reflect', 'replicate' or 'circular'): what the padding reads. Default 'zeros'.
        device: the OpenCL device, in any form clconv.get_device accepts. Default None: CLCONV_DEVICE, else
            the first GPU, then accelerator, then CPU.
        dtype: numpy dtype of the parameters and of the inputs the module takes: float32 (default), float64
            (devices with cl_khr_fp64) or float16 (stored as float16, accumulated in float32).

    Shapes:
        input (N, C_in, L_in) or (C_in, L_in); output (N, C_out, L_out) or (C_out, L_out), with
        L_out = (L_in + padding_left + padding_right - dilation * (K - 1) - 1) // stride + 1.

    Attributes:
        weight (Parameter): (C_out, C_in/groups, K), drawn from U(-sqrt(k), sqrt(k)), k = groups / (C_in * K).
        bias (Parameter or None): (C_out,), drawn from the same distribution.
        device (clconv.Device), dtype (numpy.dtype), and the constructor's arguments as torch stores them
        (kernel_size, stride, padding and dilation as 1-tuples; padding stays a string when given as one).

    Raises:
        ValueError: bad groups, channels, padding string or padding_mode (torch's messages).
        TypeError: a dtype other than float16/32/64. RuntimeError: float64 on a device without cl_khr_fp64.

    Example::

        >>> m = clconv.Conv1d(16, 33, 3, stride=2)
        >>> m(np.random.randn(20, 16, 50).astype(np.float32)).shape
        (20, 33, 24)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)

    def _pads(self) -> tuple[int, int]:
        return resolve_padding(self.padding if isinstance(self.padding, str) else self.padding[0],
                                 self.kernel_size[0], self.stride[0], self.dilation[0])

    def forward(self, input):
        """The convolution of `input` with the module's weight and bias.

        Args:
            input: numpy.ndarray or pyopencl.array.Array, (N, C_in, L_in) or (C_in, L_in), of the module's
                dtype. pyopencl arrays must live on the module's device; views (slices at an offset, strided
                slices) are copied once on the device.

        Returns:
            The output (N, C_out, L_out) or (C_out, L_out): a numpy array for a numpy input (the call waits
            for it); a pyopencl array for a pyopencl input (enqueued only: nothing waits on the queue).

        Raises:
            TypeError: an input that is neither (a torch tensor gets a pointer to clconv.torch), or of an
                unsupported dtype. RuntimeError: a shape or dtype that does not fit the module (torch's
                messages). MemoryError: the device ran out of memory.

        The input (on the device) is kept for the next `backward`.
        """
        pad_left, pad_right = self._pads()
        y, geo, x = F.conv1d_forward(input, self.weight.data, None if self.bias is None else self.bias.data,
                                     self.stride[0], pad_left, pad_right, self.dilation[0], self.groups,
                                     self.padding_mode, self.device)
        self._saved = (geo, x, input)
        return y

    def backward(self, grad_output, input_grad: bool = True):
        """The gradients of the latest forward, given the gradient of the loss with respect to its output.

        Args:
            grad_output: numpy.ndarray or pyopencl.array.Array of the latest output's shape and dtype.
            input_grad (bool): whether to compute and return the input's gradient. Default True.

        Returns:
            The input's gradient, of the latest input's shape and kind (numpy or pyopencl, as `forward`
            returns), or None when input_grad is False.

        Side effects:
            weight.grad and bias.grad (pyopencl arrays) accumulate the parameters' gradients, as torch's do,
            until `zero_grad()`; a parameter with requires_grad = False is skipped. Results are bitwise
            deterministic.

        Raises:
            RuntimeError: no forward yet, or grad_output of the wrong shape or dtype.
        """
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
    """torch.nn.ConvTranspose1d on an OpenCL device: the gradient of a Conv1d with respect to its input (a
    "deconvolution"), plus a bias.

    Args:
        in_channels (int): C_in, channels of this module's input.
        out_channels (int): C_out, channels of its output.
        kernel_size (int or 1-tuple): K.
        stride (int or 1-tuple): Default 1.
        padding (int or 1-tuple): dilation * (K - 1) - padding zeros are added at both ends of the input.
            Default 0.
        output_padding (int or 1-tuple): extra positions on the output's right end, smaller than stride or
            dilation. Default 0.
        groups (int): Default 1. bias (bool): Default True. dilation (int or 1-tuple): Default 1.
        padding_mode: only 'zeros', as in torch.
        device, dtype: as for Conv1d.

    Shapes:
        input (N, C_in, L_in) or (C_in, L_in); output (N, C_out, L_out) or (C_out, L_out), with
        L_out = (L_in - 1) * stride - 2 * padding + dilation * (K - 1) + output_padding + 1.

    Attributes:
        weight (Parameter): (C_in, C_out/groups, K), torch's layout and initialisation.
        bias (Parameter or None): (C_out,).

    `forward(input)` and `backward(grad_output, input_grad=True)` take and return arrays as Conv1d's do.

    Raises:
        ValueError: a padding_mode other than 'zeros', a padding string, bad groups or channels.
    """

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
        """The transposed convolution of `input` (N, C_in, L_in) or (C_in, L_in); numpy in, numpy out;
        pyopencl in, pyopencl out (enqueued only). Errors as Conv1d.forward."""
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
