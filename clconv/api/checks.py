"""Argument checks with torch's order and wording, and the geometry of a convolution they yield.

Everything here is pure Python on shapes and numbers: no device, no arrays.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUPPORTED_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
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


def padding_string_error(padding: str, stride: int) -> str | None:
    """torch's complaint about a padding string with this stride, None where it has none. The functional
    form raises it as a RuntimeError, as torch.nn.functional does; modules raise it at construction, as a
    ValueError."""
    if padding not in ("valid", "same"):
        return f"Invalid padding string '{padding}', should be one of {{'valid', 'same'}}"
    if padding == "same" and stride != 1:
        return "padding='same' is not supported for strided convolutions"
    return None


def resolve_padding(padding, kernel_size: int, stride: int, dilation: int) -> tuple[int, int]:
    """(left, right) zero-padding amounts from an int, a 1-tuple, 'same' or 'valid'."""
    if isinstance(padding, str):
        error = padding_string_error(padding, stride)
        if error:
            raise RuntimeError(error)
        return (0, 0) if padding == "valid" else same_padding(kernel_size, dilation)
    p = single(padding, "padding")
    return p, p


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

    def dual(self) -> "ConvGeometry":
        """The convolution that maps this one's output shape back to its input shape (a transposed
        convolution's own conv1d, and back), with zero padding."""
        return ConvGeometry(self.batch, self.out_channels, self.in_channels, self.length_out, self.length_in,
                            self.kernel_size, self.stride, self.dilation, self.groups, self.pad_left, self.pad_right)


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
    return ConvGeometry(batch, in_channels, out_channels, length, length_out, kernel_size, stride, dilation,
                        groups, padding, padding).dual()
