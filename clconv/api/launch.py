"""From the public functions to the passes: the autotune hook, then the pass's plan, run on the caller's
arrays. Every array here is a C-contiguous pyopencl array on `device`, batched (N, C, L).
"""
from __future__ import annotations

import os

import numpy as np
import pyopencl.array as cla

from .. import params
from ..passes.backward_data import backward_data_plan, input_gradient_plan
from ..passes.backward_weight import bias_gradient_plan, weight_gradient_plan
from ..passes.forward import forward_plan
from ..passes.plan import Pass, params_key
from .checks import ConvGeometry


def _autotune(device, pass_name: Pass, geo: ConvGeometry, dtype) -> None:
    """CLCONV_AUTOTUNE=1: tune a shape's pass at its first use, before it is planned."""
    if (os.environ.get("CLCONV_AUTOTUNE") == "1" and not params.is_overridden()
            and not params.has_tuned(device, pass_name, params_key(geo, dtype))):
        from .. import tune  # loaded only when asked for: `python -m clconv.tune` runs it as a script

        tune.tune_pass(device, pass_name, geo, dtype, strict=False)


def forward(device, geo: ConvGeometry, x: cla.Array, weight: cla.Array, bias, y: cla.Array) -> None:
    """y (N, C_out, L_out) = conv1d(x (N, C_in, L_in)) on the device."""
    if geo.batch == 0 or geo.length_out == 0 or geo.out_channels == 0:
        return
    _autotune(device, Pass.FORWARD, geo, x.dtype)
    forward_plan(device, geo, x.dtype, bias is not None).run(
        device, x=x.data, w=weight.data, bias=None if bias is None else bias.data, y=y.data)


def transposed(device, geo: ConvGeometry, x: cla.Array, weight: cla.Array, bias, y: cla.Array) -> None:
    """conv_transpose1d: y (N, C_in, L_in) of geo's conv1d = its input gradient from x (N, C_out, L_out),
    plus the bias."""
    if geo.batch == 0 or geo.length_in == 0 or geo.in_channels == 0:
        return
    _autotune(device, Pass.BACKWARD_DATA, geo, x.dtype)
    backward_data_plan(device, geo, x.dtype, bias is not None, geo.length_in, geo.pad_left).run(
        device, dy=x.data, w=weight.data, bias=None if bias is None else bias.data, dx=y.data)


def input_gradient(device, geo: ConvGeometry, dy: cla.Array, weight: cla.Array) -> cla.Array:
    """The gradient of conv1d with respect to its input, (N, C_in, L_in); padding modes folded back."""
    dx = device.empty((geo.batch, geo.in_channels, geo.length_in), dy.dtype)
    if geo.out_channels == 0:  # nothing reaches the input
        return dx.fill(0) if dx.size else dx
    if dx.size == 0:
        return dx
    _autotune(device, Pass.BACKWARD_DATA, geo, dy.dtype)
    input_gradient_plan(device, geo, dy.dtype).run(device, dy=dy.data, w=weight.data, dx=dx.data)
    return dx


def weight_gradient(device, geo: ConvGeometry, x: cla.Array, dy: cla.Array, dw: cla.Array, accumulate: bool,
                    bias: tuple | None = None) -> None:
    """dw (C_out, C_in/groups, K) = sum over batch and positions of dy times the padded input, or dw += that.
    bias: (db, accumulate) for the bias gradient too, from the same read of dy where the plan allows."""
    if dw.size:
        _autotune(device, Pass.BACKWARD_WEIGHT, geo, x.dtype)
    plan = weight_gradient_plan(device, geo, x.dtype, bias is not None, bool(accumulate))
    db, bias_accumulate = bias if bias is not None else (None, False)
    plan.run(device, x=x.data, dy=dy.data, dw=dw.data, db=None if db is None else db.data,
             bias_accumulate=np.int32(bias_accumulate))


def bias_gradient(device, dy: cla.Array, db: cla.Array, accumulate: bool) -> None:
    """db (C,) = dy (N, C, L) summed over batch and positions, or db += that."""
    bias_gradient_plan(device, dy.shape, dy.dtype).run(device, dy=dy.data, db=db.data,
                                                       bias_accumulate=np.int32(accumulate))
