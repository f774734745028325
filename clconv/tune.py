"""Kernel tuner: `python -m clconv.tune` times candidate parameters per device, shape and pass.

Every candidate is fitted to the device's limits, must reproduce the reference result (the safe default
configuration) before it is timed, and the fastest is written to the tuned cache that `params.lookup` reads.
A round in which the device rejects every candidate stores nothing and warns (TuningWarning).
`CLCONV_AUTOTUNE=1` runs the same search for a new shape at first use; there a failed search never fails
the user's call: the shape runs the built-in parameters, with one warning per device, pass and shape.
"""
from __future__ import annotations

import argparse
import itertools
import threading
import time
import warnings
from dataclasses import asdict

import numpy as np

from . import params, tuning_cache
from .api.checks import ConvGeometry, conv_geometry
from .passes.backward_data import input_gradient_as_forward, input_gradient_plan
from .passes.backward_weight import weight_gradient_plan
from .passes.forward import forward_plan
from .passes.plan import params_key
from .runtime import Device, get_device

PASSES = ("forward", "backward_data", "backward_weight")

# Candidates are overrides on top of the device's built-in record (params.builtin), so what a candidate
# leaves out (staging thresholds, cache blocks) stays as the library would run it. Each list is built for
# the record that reads it: the forward's channel tiles are TILE_CO / WG_CO / CI_TILE, the input gradient's
# TILE_CI / WG_CI / CO_TILE.


def _register_tiles(tile: str, group: str, **fixed) -> list[dict]:
    """Register tiles: channels x position vectors x vector width, in work-groups of one (PoCL runs multi-row
    groups of these kernels slower) and of four along the positions."""
    return [{"strategy": "register", tile: co, "TILE_L": tl, "VEC": vec, "WG_L": wl, group: 1, **fixed}
            for (co, tl, vec), wl in itertools.product(
                [(16, 1, 16), (12, 1, 16), (8, 2, 16), (6, 2, 8), (4, 2, 8), (8, 1, 8), (2, 4, 8), (1, 8, 8), (4, 4, 4)],
                [1, 4])]


def _local_tiles(tile: str, group: str, staged: str) -> list[dict]:
    """Local (GPU) tiles: micro-tiles of channels x vectors of positions (LOCAL_VEC wide), work-groups of
    64-256, channels per staged chunk."""
    return [{"strategy": "local", tile: co, "TILE_L": tl, "LOCAL_VEC": vec, "WG_L": wl, group: wc, staged: ct}
            for (co, tl, vec), (wl, wc), ct in itertools.product(
                [(4, 4, 4), (4, 2, 4), (8, 2, 4), (2, 4, 4), (4, 4, 2), (4, 2, 1)], [(16, 16), (32, 8), (16, 8), (8, 8)],
                [8, 16])]


_GENERIC = {"DW_ROWS": None, "ALIGNED_TAPS": None}  # the general kernel, not the depthwise or realigned forward
_REGISTER = _register_tiles("TILE_CO", "WG_CO", **_GENERIC)
_REGISTER_DATA = _register_tiles("TILE_CI", "WG_CI")
# The forward's reduction in cache chunks over several register tiles per work-item.
_REGISTER_FORWARD = [{"strategy": "register", "TILE_CO": 16, "TILE_L": 1, "VEC": 16, "WG_L": 1, "WG_CO": 1,
                      "TILE_P": tp, "CI_CHUNK": chunk, **_GENERIC} for tp, chunk in [(4, 8), (2, 16), (4, 32)]]
# Depthwise stride-1 forwards over blocks of samples (conv1d_forward_depthwise).
_DEPTHWISE = [{"strategy": "register", "DW_ROWS": rows, "DW_TILE_L": tl, "DW_TILES": 8}
              for rows, tl in [(4, 4), (4, 2), (2, 4), (8, 2)]]
# Shallow forwards (offered up to 16 products per output) in runs realigned to the flat output
# (conv1d_forward_aligned), bypassing the cache.
_ALIGNED = [{"strategy": "register", "ALIGNED_TAPS": 16, "ALIGNED_CO": co, "ALIGNED_RUN": run, "NT_STORE_MIN": 1,
             "DW_ROWS": None} for co, run in [(8, 1024), (4, 1024), (8, 4096)]]
# Weight tiles with lanes along positions: fixed (ACC_MAX None), or picked per shape within an accumulator
# budget; then lanes along channel blocks (CI_LANES_MIN; deep shapes only) within CI_LANES_ACC accumulators.
_REGISTER_WEIGHT = [{"strategy": "register", "TILE_CO": co, "TILE_K": tk, "ACC_MAX": acc, "VEC": vec, "RUN": run,
                     "WG_L": 1, "WG_CO": 1, "CI_LANES_MIN": None}
                    for (co, tk, acc, vec), run in itertools.product(
                        [(6, 3, None, 16), (6, 3, None, 8), (4, 3, None, 16), (3, 3, None, 8), (4, 2, None, 8),
                         (2, 4, None, 16), (1, 8, None, 16), (4, 3, None, 4), (6, 3, 32, 16), (4, 3, 16, 16),
                         (3, 3, 12, 8)],
                        [1024, 4096])]
_CHANNEL_LANES_WEIGHT = [{"strategy": "register", "CI_LANES_MIN": vec, "CI_LANES_ACC": acc, "VEC": vec, "RUN": run,
                          "WG_L": 1, "WG_CO": 1}
                         for (acc, vec), run in itertools.product([(24, 16), (16, 16), (12, 8), (8, 8)], [1024, 4096])]
# The stride-1 input gradient runs as a forward and shares the forward's local tiles.
_LOCAL = _local_tiles("TILE_CO", "WG_CO", "CI_TILE")
_LOCAL_DATA = _local_tiles("TILE_CI", "WG_CI", "CO_TILE")
# Local weight gradients: output x input channels x taps per work-item, lanes along input-channel tiles (WG_L)
# x rows along output-channel tiles, positions per staged block, positions per chunk.
_LOCAL_WEIGHT = [{"strategy": "local", "TILE_CO": co, "TILE_CI": ci, "TILE_K": tk, "WG_L": wl, "WG_CO": wc, "LB": lb,
                  "RUN": run}
                 for (co, ci, tk), (wl, wc), lb, run in itertools.product(
                     [(4, 4, 5), (4, 4, 3), (4, 4, 2), (8, 4, 2), (4, 2, 4)], [(16, 16), (8, 16), (8, 8)], [32, 64],
                     [1024, 4096])]


def candidates(pass_name: str, geo: ConvGeometry, device_type: str = "GPU") -> list[dict]:
    """The parameter sets tried for one pass and shape. CPUs try two local (GPU) tiles only: their
    work-item loops lose the barriers' race by far, and each candidate is a build."""
    few = device_type == "CPU"
    if pass_name == "backward_weight":
        return _REGISTER_WEIGHT + _CHANNEL_LANES_WEIGHT + (_LOCAL_WEIGHT[:2] if few else _LOCAL_WEIGHT)
    if pass_name == "backward_data":
        return _REGISTER_DATA + (_LOCAL_DATA[:2] if few else _LOCAL_DATA)
    local = _LOCAL[:2] if few else _LOCAL
    special = _REGISTER_FORWARD + (_ALIGNED if geo.in_per_group * geo.kernel_size <= 16 else [])
    if geo.in_per_group == geo.out_per_group == 1 and geo.stride == 1 and geo.batch % 2 == 0:
        special += _DEPTHWISE
    return _REGISTER + special + local


def _runner(device: Device, pass_name: str, geo: ConvGeometry, dtype):
    """A function running one pass on random device data and returning its output array."""
    rng = np.random.default_rng(0)
    x = device.to_device(rng.standard_normal((geo.batch, geo.in_channels, geo.length_in)).astype(dtype))
    w = device.to_device(rng.standard_normal((geo.out_channels, geo.in_per_group, geo.kernel_size)).astype(dtype))
    dy = device.to_device(rng.standard_normal((geo.batch, geo.out_channels, geo.length_out)).astype(dtype))
    if pass_name == "forward":
        out = device.empty(dy.shape, dtype)
        return lambda: (forward_plan(device, geo, dtype, False).run(device, x=x.data, w=w.data, y=out.data), out)[1]
    if pass_name == "backward_data":
        out = device.empty(x.shape, dtype)
        return lambda: (input_gradient_plan(device, geo, dtype).run(device, dy=dy.data, w=w.data, dx=out.data), out)[1]
    out = device.empty(w.shape, dtype)
    return lambda: (weight_gradient_plan(device, geo, dtype).run(device, x=x.data, dy=dy.data, dw=out.data), out)[1]


def _median_time(device: Device, run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        device.queue.finish()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


class TuningWarning(RuntimeWarning):
    """A tuning round that stored nothing: no candidate ran, or (CLCONV_AUTOTUNE=1) the search failed."""


# (device key, pass, shape key) whose tuning at first use failed in this process: not tried again.
_failed: set[tuple] = set()
_failed_lock = threading.Lock()


def tune_pass(device: Device, pass_name: str, geo: ConvGeometry, dtype, repeats: int = 3, verbose: bool = False,
              *, strict: bool = True) -> dict | None:
    """Time every valid candidate for one pass and store the fastest in the tuned cache; returns it (the
    built-in entry with the candidate's overrides: the whole parameter set the library then reads), or None
    where nothing was stored.

    strict: a failure (a candidate that disagrees with the reference, a device error) raises. Not strict
    (CLCONV_AUTOTUNE=1's tuning at first use, which must not fail the user's call): a failure warns once per
    device, pass and shape, stores nothing, and the shape keeps the built-in parameters for the rest of the
    process."""
    dtype = np.dtype(dtype)
    if strict:
        return _tune_pass(device, pass_name, geo, dtype, repeats, verbose, strict)
    key = (tuning_cache.device_key(device), pass_name, params_key(geo, dtype))
    if key in _failed:
        return None
    try:
        best = _tune_pass(device, pass_name, geo, dtype, repeats, verbose, strict)
    except Exception as exc:  # whatever went wrong, the user's call goes on with the built-ins
        reason = (str(exc).splitlines() or [""])[0]
        _give_up(key, f"clconv: autotuning {pass_name} {key[2]} on {device.name} failed "
                      f"({type(exc).__name__}: {reason}); it runs the built-in parameters")
        return None
    if best is None:
        _give_up(key, None)  # _tune_pass has warned
    return best


def _give_up(key: tuple, message: str | None) -> None:
    with _failed_lock:
        first = key not in _failed
        _failed.add(key)
    if first and message:
        warnings.warn(message, TuningWarning, stacklevel=3)


def _tune_pass(device: Device, pass_name: str, geo: ConvGeometry, dtype: np.dtype, repeats: int, verbose: bool,
               strict: bool) -> dict | None:
    if pass_name == "backward_data":
        forward_geo = input_gradient_as_forward(device, geo, dtype)
        if forward_geo is not None:
            # A stride-1 input gradient runs as a forward (AS_FORWARD) whose tiles are looked up for its
            # own geometry: tune and store that forward, and an input-gradient entry that keeps the forward
            # form (so that the shape counts as tuned).
            if tune_pass(device, "forward", forward_geo, dtype, repeats, verbose, strict=strict) is None:
                return None
            entry = {**asdict(params.builtin(device, pass_name)), "AS_FORWARD": True}
            tuning_cache.store(device, pass_name, params_key(geo, dtype), entry)
            return entry
    tolerance = {"float16": 1e-2, "float32": 1e-4, "float64": 1e-10}[dtype.name]
    run = _runner(device, pass_name, geo, dtype)
    with params.override(**asdict(params.safe_default(pass_name))):
        reference = run().get().astype(np.float64)
    scale = 1.0 + np.abs(reference).max(initial=0.0)
    best, best_time, rejected = None, float("inf"), []
    builtin = asdict(params.builtin(device, pass_name))
    for overrides in candidates(pass_name, geo, device.type):
        candidate = {**builtin, **overrides}
        with params.override(**candidate):
            try:
                result = run().get().astype(np.float64)
            except RuntimeError as exc:  # a build the device rejects is not a candidate
                reason = (str(exc).splitlines() or [""])[0]
                rejected.append(reason)
                if verbose:
                    print(f"  {candidate}: rejected ({reason})")
                continue
            if not np.abs(result - reference).max(initial=0.0) <= tolerance * scale:
                raise RuntimeError(f"candidate {candidate} for {pass_name} disagrees with the reference on {device.name}")
            elapsed = _median_time(device, run, repeats)
        if verbose:
            print(f"  {candidate}: {elapsed * 1e3:.3f} ms")
        if elapsed < best_time:
            best, best_time = candidate, elapsed
    if best is None:
        why = f"; the first: {rejected[0]}" if rejected else ""
        warnings.warn(f"clconv: no candidate ran for {pass_name} {params_key(geo, dtype)} on {device.name} "
                      f"({len(rejected)} rejected{why}); nothing stored, the built-in parameters stay",
                      TuningWarning, stacklevel=3)
        return None
    tuning_cache.store(device, pass_name, params_key(geo, dtype), best)
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Tune clconv kernels for one device and a set of shapes.")
    parser.add_argument("--device", default=None, help="device spec (index, P:D or name substring); default device")
    parser.add_argument("--shape", action="append", default=None, metavar="N,C_IN,L,C_OUT,K[,stride,pad,dil,groups]",
                        help="shape to tune (repeatable); default: the benchmark's mid-size shapes")
    parser.add_argument("--passes", default=",".join(PASSES))
    parser.add_argument("--dtype", default="float32", choices=["float16", "float32", "float64"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    device = get_device(args.device)
    shapes = args.shape or ["20,16,50,33,3,2,0,1,1", "32,512,1000,512,3,1,1,1,1", "16,256,4000,256,31,1,15,1,256",
                            "8,1,16000,512,10,5,0,1,1", "16,64,8192,64,3,1,8,8,1", "32,128,2048,128,5,1,2,1,4"]
    print(f"tuning on {device.name} ({device.platform_name}); cache {tuning_cache.cache_path()}")
    for text in shapes:
        values = [int(v) for v in text.split(",")]
        n, c_in, length, c_out, k = values[:5]
        stride, pad, dilation, groups = (values[5:] + [1, 0, 1, 1][len(values) - 5:])[:4]
        geo = conv_geometry((n, c_in, length), (c_out, c_in // groups, k), None, stride, pad, pad, dilation, groups)
        for pass_name in args.passes.split(","):
            print(f"{text} {pass_name}:")
            best = tune_pass(device, pass_name, geo, args.dtype, args.repeats, verbose=True, strict=True)
            print(f"  -> {best if best is not None else 'nothing stored: no candidate ran'}")


if __name__ == "__main__":
    main()
