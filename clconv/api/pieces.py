"""Convolutions whose host arrays exceed the device's buffer limit, computed in pieces.

A piece is a block of samples or, when one sample is too large, one sample's block of output positions
together with the input window it reads (its halo). Such windows are gathered on the host through the
padding mode's index map, so every piece runs the ordinary kernels with zero padding, and gradients go back
through the same map. Whole-sample pieces keep the fused padding of the kernels.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from . import launch
from .checks import ConvGeometry


def needed(device, geo: ConvGeometry, itemsize: int) -> bool:
    return len(plan(device, geo, itemsize)) > 1


def _span(geo: ConvGeometry, positions: int) -> int:
    """Input positions read by `positions` consecutive outputs."""
    return (positions - 1) * geo.stride + (geo.kernel_size - 1) * geo.dilation + 1


def plan(device, geo: ConvGeometry, itemsize: int) -> list[tuple[int, int, int, int]]:
    """Pieces (n0, n1, l0, l1): samples [n0, n1), output positions [l0, l1)."""
    limit = device.buffer_limit
    # The input gradient of a padding mode other than zeros passes through a padded row.
    padded_in = geo.length_in + (geo.pad_left + geo.pad_right if geo.padding_mode != "zeros" else 0)
    per_sample = max(geo.in_channels * padded_in, geo.out_channels * geo.length_out) * itemsize
    if per_sample <= limit:
        block = max(1, limit // per_sample)
        return [(n0, min(n0 + block, geo.batch), 0, geo.length_out) for n0 in range(0, geo.batch, block)]
    by_output = limit // (geo.out_channels * itemsize)
    by_input = (limit // (geo.in_channels * itemsize) - (geo.kernel_size - 1) * geo.dilation - 1) // geo.stride + 1
    block = min(by_output, by_input)
    if block < 1:
        raise MemoryError(
            f"one output position of this convolution needs {geo.in_channels * _span(geo, 1) * itemsize} bytes of "
            f"input, more than the buffer limit of {limit} bytes on {device.name}"
        )
    return [(n, n + 1, l0, min(l0 + block, geo.length_out))
            for n in range(geo.batch) for l0 in range(0, geo.length_out, block)]


def input_window(geo: ConvGeometry, l0: int, l1: int) -> tuple[np.ndarray, np.ndarray]:
    """Source index of every input position outputs [l0, l1) read, and whether it reads anything (zeros)."""
    q = l0 * geo.stride - geo.pad_left + np.arange(_span(geo, l1 - l0))
    length = geo.length_in
    if geo.padding_mode == "reflect":
        q = np.where(q < 0, -q, np.where(q >= length, 2 * (length - 1) - q, q))
    elif geo.padding_mode == "replicate":
        q = np.clip(q, 0, length - 1)
    elif geo.padding_mode == "circular":
        q = np.where(q < 0, q + length, np.where(q >= length, q - length, q))
    valid = (q >= 0) & (q < length)
    return np.where(valid, q, 0), valid


def _pieces(device, geo: ConvGeometry, x: np.ndarray | None, dtype):
    """(n0, n1, l0, l1, geometry of the piece, its input on the device or None without x, window or None)."""
    for n0, n1, l0, l1 in plan(device, geo, np.dtype(dtype).itemsize):
        if (l0, l1) == (0, geo.length_out):
            piece_geo = dataclasses.replace(geo, batch=n1 - n0)
            yield n0, n1, l0, l1, piece_geo, None if x is None else device.to_device(x[n0:n1]), None
            continue
        index, valid = input_window(geo, l0, l1)
        piece_geo = dataclasses.replace(geo, batch=n1 - n0, length_in=index.size, length_out=l1 - l0,
                                        pad_left=0, pad_right=0, padding_mode="zeros")
        x_piece = None if x is None else device.to_device(np.where(valid, x[n0:n1][:, :, index], 0).astype(x.dtype))
        yield n0, n1, l0, l1, piece_geo, x_piece, (index, valid)


def forward(device, geo: ConvGeometry, x: np.ndarray, weight, bias) -> np.ndarray:
    y = np.empty((geo.batch, geo.out_channels, geo.length_out), x.dtype)
    for n0, n1, l0, l1, piece_geo, x_piece, _ in _pieces(device, geo, x, x.dtype):
        y_piece = device.empty((n1 - n0, geo.out_channels, l1 - l0), x.dtype)
        launch.forward(device, piece_geo, x_piece, weight, bias, y_piece)
        y[n0:n1, :, l0:l1] = y_piece.get()
    return y


def backward(device, geo: ConvGeometry, x: np.ndarray | None, dy: np.ndarray, weight, input_grad: bool,
             weight_grad=None, weight_accumulate=False, bias_grad=None, bias_accumulate=False):
    """Gradients piece by piece: weight and bias gradients accumulate on the device across pieces (they need
    x); the input gradient gathers on the host (halos overlap) and is returned when input_grad is set."""
    dx = np.zeros((geo.batch, geo.in_channels, geo.length_in), np.float64) if input_grad else None
    for n0, n1, l0, l1, piece_geo, x_piece, window in _pieces(device, geo, x, dy.dtype):
        dy_piece = device.to_device(np.ascontiguousarray(dy[n0:n1, :, l0:l1]))
        if weight_grad is not None:
            launch.weight_gradient(device, piece_geo, x_piece, dy_piece, weight_grad, weight_accumulate)
            weight_accumulate = True
        if bias_grad is not None:
            launch.bias_gradient(device, dy_piece, bias_grad, bias_accumulate)
            bias_accumulate = True
        if dx is not None:
            dx_piece = launch.input_gradient(device, piece_geo, dy_piece, weight).get()
            if window is None:
                dx[n0:n1] = dx_piece
            else:
                index, valid = window
                np.add.at(dx[n0], (slice(None), index[valid]), dx_piece[0][:, valid])
    return None if dx is None else dx.astype(dy.dtype)
