"""Per-device kernel parameters, from one place with one lookup order:

    explicit override  ->  tuned cache  ->  built-in row for the device class  ->  safe default

The device class (runtime.DEVICE_CLASSES: "cpu-avx512", "gpu", ...) comes from the device's properties, or
from CLCONV_DEVICE_CLASS. The result is then fitted to the device's limits (work-group size, local memory)
and to the shape, so every configuration a kernel is launched with is one the device can run.
"""
from __future__ import annotations

import contextlib
import os
import threading

from .runtime import DEVICE_CLASS_ENV, DEVICE_CLASSES

STRATEGIES = ("register", "local")

# A safe default for any device: small register tiles, work-groups of 8.
# TILE_CO / WG_CO tile the channels a pass writes (output channels forward, input channels for the input
# gradient); CI_TILE is the channel chunk staged in __local memory; TILE_K, LB and RUN serve the weight
# gradient (taps per work-item, positions per __local block, positions per partial-sum chunk); ACC_MAX,
# when set, lets the register weight gradient pick its TILE_CO (at most the given) x TILE_K tile per shape
# within that many accumulators, of at most TAPS_MAX taps where that is set; CI_LANES_MIN, when set, runs weight gradients with C_in/groups of at least
# that many (in passes of STAGE_FLOPS or more) with their vector lanes along input channels, in tiles of
# CI_LANES_ACC accumulators; input gradients with at most DATA_ROWS_CI input and at least DATA_ROWS_CO (> 0)
# output channels per group accumulate runs of up to DATA_ROWS_SEG positions per phase in cache; forward
# outputs of NT_STORE_MIN bytes or more (> 0) are written with non-temporal stores, and those of reductions of
# at most ALIGNED_TAPS (C_in_g x K) with ALIGNED_CO or more output channels per group run along ALIGNED_RUN
# positions of ALIGNED_CO channels with their stores realigned to the flat output (conv1d_forward_aligned);
# depthwise stride-1 passes of an even batch with DW_ROWS > 1 run DW_ROWS samples x DW_TILE_L vectors of one
# channel per tile, DW_TILES tiles per work-item (conv1d_forward_depthwise);
# strided forwards over the staged phases with at least 16 products per output give a work-item PHASE_TILE_R
# channel tiles (TILE_R) over each input window;
# TILE_REGS (> 0) caps a forward or input-gradient register tile of several channels to that many vector
# registers: its accumulators, the input vectors its channels share and a broadcast weight;
# BLOCK_KB is the input a register-strategy pass keeps in a core's cache while its channel tiles pass over it;
# LOCAL_VEC is the positions per vector of the local-strategy forward's micro-tiles (TILE_L vectors of it);
# the local-strategy weight gradient gives a work-item TILE_CO output x TILE_CI input channels x TILE_K taps,
# WG_L lanes along input-channel tiles, and stages blocks of LB positions.
_SAFE_DEFAULT = {"strategy": "register", "TILE_CO": 4, "TILE_L": 2, "VEC": 4, "WG_L": 8, "WG_CO": 1, "CI_TILE": 4,
                 "TILE_K": 3, "LB": 64, "RUN": 2048, "BLOCK_KB": 256,
                 "TILE_R": 1, "TILE_P": 1, "CI_CHUNK": 32, "STAGE_MIN": 0,
                 "STAGE_FLOPS": 0, "UNROLL_K_MAX": 8,
                 "DATA_AS_FORWARD": 0, "WORK_MIN": 0, "ACC_MAX": 0,
                 "CI_LANES_MIN": 0, "CI_LANES_ACC": 16, "DATA_ROWS_CI": 0, "DATA_ROWS_CO": 0,
                 "DATA_ROWS_SEG": 1024, "NT_STORE_MIN": 0, "ALIGNED_TAPS": 0, "ALIGNED_CO": 8, "ALIGNED_RUN": 1024,
                 "DW_ROWS": 0, "DW_TILE_L": 4, "DW_TILES": 8, "LOCAL_VEC": 1, "TILE_CI": 1,
                 "PHASE_TILE_R": 1, "TILE_REGS": 0, "TAPS_MAX": 0}

# Built-in rows, one per device class (runtime.DEVICE_CLASSES): pass ("*" for all) -> parameters over the
# default; "<pass>_deep" adds parameters for reductions deep enough to read the staged input. Rows are shared
# between classes until a class is measured on its own; PROVENANCE says, per class, what was measured where.
# CPUs (PoCL) want register tiles without barriers: its work-item loop vectoriser gives up on barriers.
# GPUs want work-group tiles staged in __local memory.
_CPU = {
    # Work-groups of one row: PoCL runs multi-row groups of this kernel several times slower. Deep
    # reductions (C_in_g x K >= STAGE_MIN) read a staged copy of the input (pad_rows.cl): no edge tiles,
    # no cache-set conflicts; shallower ones would spend more on the copy than they save. Strided weight
    # gradients of STAGE_FLOPS or more read it split into stride phases: vector loads, not gathers
    # (wav2vec 18-25 -> 26-51 GF/s on a noisy 2-core Xeon; the forward, bound by its stores, gained nothing).
    # Stride-1 input gradients run as forward convolutions with flipped weights (DATA_AS_FORWARD,
    # flip_weights.cl): side by side, dense 121 -> 143, tcn 88 -> 124, depthwise 21 -> 39 GF/s.
    # Tiles of a few channels keep within 15 of the 16 vector registers: depthwise multiplier 2 (K=31) ran
    # 2 x 6 tiles spilling, 2 x 4 ran 1.4-1.6 times as fast, 2 x 5 1.2 times.
    "*": {"strategy": "register", "TILE_CO": 6, "TILE_L": 2, "VEC": 8, "WG_L": 1, "WG_CO": 1, "STAGE_MIN": 256,
          "DATA_AS_FORWARD": 1, "WORK_MIN": 1 << 20, "NT_STORE_MIN": 16 << 20, "TILE_REGS": 15},
    # 16 vector registers on AVX2: 3 x 3 accumulators, 3 dy vectors and the input stay unspilled
    # (4 x 3 spills: tcn 67 -> 128 GF/s with 3 x 3). Tiles picked per shape within 12 accumulators and 5 taps,
    # so that the taps split evenly (side by side against 3 x 3: strided4 K8 3 x 4 75 -> 103, stride-2 K5
    # 2 x 5 72 -> 83, multiplier K31 2 x 5 41 -> 47 GF/s; K3 layers keep 3 x 3, wav2vec and the K251
    # filterbank ran as fast).
    "backward_weight": {"TILE_CO": 3, "TILE_K": 3, "ACC_MAX": 12, "TAPS_MAX": 5, "RUN": 4096,
                        "STAGE_FLOPS": 1 << 24},
    # Strided forwards read the staged input split into phases (vector loads, not gathers: stride-2 grouped
    # 25 -> 39 GF/s side by side), and a work-item passes 4 channel tiles over each input window, which a
    # stride of s makes s times longer per output than a stride-1 window (strided4 49 -> 63 GF/s).
    "forward_strided": {"STAGE_FLOPS": 1 << 24, "PHASE_TILE_R": 4},
}
# PoCL compiling for a CPU with AVX-512 (32 vector registers of 16 floats): twice the vector width and
# 16-channel tiles (16 x 16 accumulators; dense forward 131 -> 172 GF/s over 12 channels).
_CPU_AVX512 = {
    # Forward outputs of 16 MiB or more bypass the cache (non-temporal stores where aligned), side by
    # side: depthwise 70 -> 84, dense 184 -> 207 GF/s. Rows of unaligned length, of at most 15 products
    # per output, go out realigned (ALIGNED_TAPS): wav2vec (L_out 3199) 53 -> 71 GF/s side by side.
    # Depthwise stride-1 passes of even batches: 4 samples of a channel share its weights, input vectors
    # load once for all their taps (side by side: depthwise K31 forward 100 -> 139, its input gradient
    # 80 -> 120, K3 15.6 -> 30.6 GF/s).
    # Tap loops unroll fully up to K = 32 (loads shared between taps; side by side: depthwise K=31
    # forward 80 -> 92, its input gradient 57 -> 67, wav2vec K=10 forward 52 -> 63 GF/s).
    "*": {"strategy": "register", "TILE_CO": 16, "TILE_L": 1, "VEC": 16, "WG_L": 1, "WG_CO": 1, "STAGE_MIN": 256,
          "DATA_AS_FORWARD": 1, "WORK_MIN": 1 << 20, "NT_STORE_MIN": 16 << 20, "UNROLL_K_MAX": 32,
          "ALIGNED_TAPS": 15, "DW_ROWS": 4},
    # Deep reductions (staged input) in 8 x 3 tiles: 11 loads per 24 multiply-adds instead of 17 per 16;
    # dense forward 132-143 -> 198 GF/s side by side (grouped and tcn, shallower, lost with it).
    "forward_deep": {"TILE_CO": 8, "TILE_L": 3},
    # Up to 6 channels and 32 accumulators of 16 lanes, tiles picked per shape (ACC_MAX): dense 6 x 3,
    # grouped K5 4 x 5, wav2vec K10 3 x 10, depthwise K31 1 x 31. Side by side against fixed 6 x 3:
    # grouped 91 -> 107, wav2vec 64 -> 92, depthwise 56 -> 78 GF/s. Runs of 4096 positions (against
    # 1024: depthwise 40 -> 53, tcn 94 -> 106, (1, 64, 10^6) 88 -> 126 GF/s, none slower).
    # C_in_g >= 16: lanes along input channels over a channel-blocked copy, 24 accumulators (dense 8 x 3):
    # the input streams one line per position and dy is broadcast (dense 105 -> 255 GF/s, prototype).
    "backward_weight": {"TILE_CO": 6, "TILE_K": 3, "ACC_MAX": 32, "RUN": 4096, "STAGE_FLOPS": 1 << 24,
                        "CI_LANES_MIN": 16, "CI_LANES_ACC": 24},
    # Input gradients with <= 4 input and >= 64 output channels per group accumulate whole runs of
    # positions in cache (conv1d_backward_data_rows): wav2vec 25 -> 56 GF/s side by side.
    "backward_data": {"DATA_ROWS_CI": 4, "DATA_ROWS_CO": 64},
}
# GPUs: work-group tiles staged in __local memory, register micro-tiles read with vector __local loads,
# stride-1 input gradients as forwards reading the flipped weights in place, weight gradients split over
# chunks of at least RUN positions. Sizes from the vendors' public optimisation guides, never timed on a
# GPU; bench/gpu_model.py gives their traffic and instruction counts on Oclgrind.
# NVIDIA: warps of 32, up to 255 registers per thread, 48 KiB of shared memory per block without opt-in:
# 256 work-items (8 warps) of 4 channels x 4 vectors of 4 positions (64 accumulators); weight gradients in
# 64 x 64 channel tiles, 4 x 4 channels x up to 5 taps per work-item (80 accumulators).
_NVIDIA_GPU = {
    "*": {"strategy": "local", "TILE_CO": 4, "TILE_L": 2, "WG_L": 32, "WG_CO": 4, "CI_TILE": 4, "RUN": 8192,
          "DATA_AS_FORWARD": 1},
    "forward": {"TILE_CO": 4, "TILE_L": 4, "LOCAL_VEC": 4, "WG_L": 16, "WG_CO": 16, "CI_TILE": 8},
    "backward_weight": {"TILE_CO": 4, "TILE_CI": 4, "TILE_K": 5, "WG_L": 16, "WG_CO": 16, "LB": 32, "RUN": 1024},
}
# AMD (GCN/CDNA wavefronts of 64, RDNA of 32): 256 work-items are four wave64 or eight wave32; 64 KiB of
# LDS per work-group holds twice the input channels per staged chunk, halving the barriers.
_AMD_GPU = {
    **_NVIDIA_GPU,
    "forward": {**_NVIDIA_GPU["forward"], "CI_TILE": 16},
    "backward_weight": {**_NVIDIA_GPU["backward_weight"], "LB": 64},
}
# Intel (Gen9-Xe): EUs run SIMD8-32 sub-groups from a 4 KiB register file per hardware thread, so a
# SIMD16 work-item has about 64 registers: 32 accumulators forward (4 channels x 2 vectors of 4), 48 in
# the weight gradient (4 x 4 channels x 3 taps), in work-groups of 128.
_INTEL_GPU = {
    **_NVIDIA_GPU,
    "forward": {**_NVIDIA_GPU["forward"], "TILE_L": 2, "WG_CO": 8},
    "backward_weight": {**_NVIDIA_GPU["backward_weight"], "TILE_K": 3, "WG_CO": 8},
}
_ACCELERATOR = {"*": {"strategy": "local", "TILE_CO": 2, "TILE_L": 2, "WG_L": 16, "WG_CO": 4, "CI_TILE": 4}}

_BUILTIN = {
    "cpu-avx512": _CPU_AVX512,
    "cpu-avx2": _CPU,
    "cpu": _CPU,
    "nvidia-gpu": _NVIDIA_GPU,
    "amd-gpu": _AMD_GPU,
    "intel-gpu": _INTEL_GPU,
    "gpu": _NVIDIA_GPU,
    "accelerator": _ACCELERATOR,
    "other": {},
}

# One line per class: where its row comes from.
PROVENANCE = {
    "cpu-avx512": "measured with PoCL 3.0 (LLVM target icelake-client) on a 2-core AVX-512 Xeon, side by side: "
                  "dense forward 131 -> 172 GF/s (16-channel tiles), deep 132-143 -> 198; weight gradient with "
                  "channel lanes 105 -> 255; wav2vec input gradient 25 -> 56 GF/s",
    "cpu-avx2": "measured with PoCL on the same 2-core AVX-512 Xeon (the generic CPU row, timed before the AVX-512 row "
                "was split off): wav2vec weight gradient 18-25 -> 26-51, tcn 67 -> 128 GF/s (3 x 3 tiles); input "
                "gradients as forwards dense 121 -> 143, tcn 88 -> 124, depthwise 21 -> 39 GF/s; its strided, "
                "few-channel and weight-gradient tiles with PoCL 3.0 (LLVM target znver3) on a 2-core AMD EPYC, side "
                "by side: strided4 forward 96 -> 117, weight gradient 82 -> 105, stride-2 grouped forward 38 -> 60 GF/s",
    "cpu": "same as cpu-avx2, untuned: no CPU with vectors narrower than 8 floats has run it",
    "nvidia-gpu": "from NVIDIA's CUDA C++ best practices guide (warps of 32, 255 registers per thread, 48 KiB shared "
                  "memory per block), never timed on an NVIDIA GPU; Oclgrind instruction counts only",
    "amd-gpu": "from AMD's GCN/RDNA optimisation guides (wavefronts of 64 or 32, 64 KiB LDS per work-group), never "
               "timed on an AMD GPU; Oclgrind instruction counts only",
    "intel-gpu": "from Intel's oneAPI GPU optimisation guide (SIMD8-32 sub-groups, 4 KiB registers per EU thread, "
                 "64 KiB SLM), never timed on an Intel GPU; Oclgrind instruction counts only",
    "gpu": "same as nvidia-gpu (warps of 32 suit every vendor's SIMD width); checked on Oclgrind only",
    "accelerator": "untuned: local-strategy tiles never timed on an accelerator; checked for correctness only",
    "other": "no row (the safe default): a device of no type clconv knows (CL_DEVICE_TYPE_CUSTOM)",
}


_override_state = threading.local()


@contextlib.contextmanager
def override(**params):
    """Force kernel parameters inside a `with` block (this thread only), e.g. override(strategy="local").
    The names are those of the safe default (safe_default()); any other is a ValueError."""
    unknown = sorted(set(params) - set(_SAFE_DEFAULT))
    if unknown:
        raise ValueError(f"unknown kernel parameter(s) {', '.join(unknown)}; valid names: {', '.join(_SAFE_DEFAULT)}")
    if "strategy" in params and params["strategy"] not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {params['strategy']!r}")
    previous = getattr(_override_state, "params", {})
    _override_state.params = {**previous, **params}
    try:
        yield
    finally:
        _override_state.params = previous


def safe_default() -> dict:
    return dict(_SAFE_DEFAULT)


def override_key() -> tuple:
    """What, besides the device and the tuned cache, the parameters lookup returns depends on: this thread's
    overrides and a class forced by CLCONV_DEVICE_CLASS (memoised launch plans are keyed by it)."""
    key = tuple(sorted(getattr(_override_state, "params", {}).items()))
    forced = os.environ.get(DEVICE_CLASS_ENV)
    return (*key, (DEVICE_CLASS_ENV, forced)) if forced else key


def is_overridden() -> bool:
    return bool(getattr(_override_state, "params", {}))


def _tuned(device, pass_name: str, shape_key: tuple) -> dict:
    from . import tuning_cache

    return tuning_cache.lookup(device, pass_name, shape_key)


def has_tuned(device, pass_name: str, shape_key: tuple) -> bool:
    return bool(_tuned(device, pass_name, shape_key))


def provenance(cls: str) -> str:
    """Where a device class's built-in row comes from (one line), e.g. provenance(device.device_class)."""
    if cls not in PROVENANCE:
        raise ValueError(f"unknown device class {cls!r}; valid classes: {', '.join(DEVICE_CLASSES)}")
    return PROVENANCE[cls]


def builtin(device, pass_name: str, deep: bool = False, strided: bool = False) -> dict:
    """The built-in entry of a pass for the device's class; deep: a reduction deep enough to read the staged
    input (C_in_g x K >= STAGE_MIN), which adds the entry's "<pass>_deep" parameters; strided: a stride
    above 1, which adds its "<pass>_strided" parameters (after the deep ones)."""
    entry = _BUILTIN.get(device.device_class, {})
    return {**entry.get("*", {}), **entry.get(pass_name, {}), **(entry.get(pass_name + "_deep", {}) if deep else {}),
            **(entry.get(pass_name + "_strided", {}) if strided else {})}


def lookup(device, pass_name: str, shape_key: tuple, depth: int = 0, stride: int = 1) -> dict:
    """Parameters for one pass on one device before fitting: the first layer that has an entry wins.
    depth: C_in_g x K of the shape, which picks the built-in entry's deep parameters where they apply;
    stride: the shape's, which picks its strided parameters above 1."""
    params = dict(_SAFE_DEFAULT)
    tuned = _tuned(device, pass_name, shape_key)
    params.update(tuned if tuned else builtin(device, pass_name))
    params.update(getattr(_override_state, "params", {}))
    if not tuned:
        deep = 0 < params["STAGE_MIN"] <= depth
        if deep or stride > 1:
            params.update(builtin(device, pass_name, deep=deep, strided=stride > 1))
            params.update(getattr(_override_state, "params", {}))
    return params


_MAX_TILE_L = 8


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def pow2_ceil(v: int) -> int:
    p = 1
    while p < v:
        p *= 2
    return p


def pow2_floor(v: int) -> int:
    p = 1
    while p * 2 <= v:
        p *= 2
    return p


def balanced_tile(rows: int, most: int) -> int:
    """Rows per tile: as many tiles of at most `most` rows as `rows` needs, of equal size (33 in 3 x 11)."""
    return ceil_div(rows, ceil_div(rows, max(1, min(most, rows)))) if rows > 0 else 1


def fit(device, params: dict, *, rows: int, length: int, local_bytes, max_group: int | None = None,
        local_vectors: bool = False) -> dict:
    """Fit parameters to a shape and to the device.

    rows: channels per group the tile rows cover; length: positions along dim 0;
    local_bytes(p): __local memory the local strategy needs with parameters p; max_group: the built
    kernel's own work-group limit, where a first build found it below the device's; local_vectors: the
    pass's local-strategy kernel takes vectors of LOCAL_VEC positions (the others take single positions).
    Tiles never exceed the shape; work-groups never exceed the device or the kernel; a local tile that cannot fit
    shrinks, and falls back to the register strategy when even the smallest does not fit.
    """
    p = dict(params)
    accumulators = p["TILE_CO"] * p["TILE_L"]
    # As many tiles as the channels need, balanced: 33 channels in 3 tiles of 11, not 16 + 16 + 16 that
    # slide back over each other.
    p["TILE_CO"] = balanced_tile(rows, p["TILE_CO"])
    # Few rows (depthwise, C_in = 1): keep as many independent accumulators along the positions, or the
    # loop waits on one FMA chain per accumulator.
    p["TILE_L"] = max(p["TILE_L"], min(_MAX_TILE_L, accumulators // p["TILE_CO"]))
    # ... within the registers: the tile's channels share its TILE_L input vectors, which stay live beside the
    # accumulators and a broadcast weight (one channel reads each input vector once, from memory).
    if p["TILE_REGS"] > 0 and p["TILE_CO"] > 1:
        p["TILE_L"] = max(1, min(p["TILE_L"], (p["TILE_REGS"] - 1) // (p["TILE_CO"] + 1)))
    if p["strategy"] == "local":
        p["VEC"] = p["LOCAL_VEC"] if local_vectors else 1
    group = p["WG_L"] * p["WG_CO"]
    lanes_needed = ceil_div(length, p["TILE_L"] * p["VEC"])
    p["WG_L"] = max(1, min(p["WG_L"], pow2_floor(max(1, lanes_needed))))
    if p["TILE_L"] * p["VEC"] * p["WG_L"] > length:
        # Powers of two only: every distinct tile is a kernel build, and lengths should not cost builds.
        p["TILE_L"] = min(p["TILE_L"], pow2_ceil(ceil_div(length, p["WG_L"] * p["VEC"])))
    # Short rows: halve the tile while its last one would mostly overhang the row (wasted lanes also take
    # the guarded path).
    while p["TILE_L"] > 1 and ceil_div(length, p["TILE_L"] * p["VEC"]) * p["TILE_L"] * p["VEC"] - length > length // 8:
        p["TILE_L"] //= 2
    # ... and then the vectors, down to 4 lanes (example weight gradient, L_out 24: 16 lanes 0.41 ms, 8 lanes 0.18 ms)
    while p["VEC"] > 4 and ceil_div(length, p["TILE_L"] * p["VEC"]) * p["TILE_L"] * p["VEC"] - length > length // 8:
        p["VEC"] //= 2
    p["WG_L"] = max(1, min(p["WG_L"], pow2_floor(ceil_div(length, p["TILE_L"] * p["VEC"]))))
    if p["strategy"] == "register":
        # Register tiles per work-item: at most what the shape holds, powers of two along the positions.
        p["TILE_R"] = max(1, min(p["TILE_R"], ceil_div(rows, p["TILE_CO"])))
        p["TILE_P"] = max(1, min(p["TILE_P"], pow2_floor(max(1, ceil_div(length, p["TILE_L"] * p["VEC"] * p["WG_L"])))))
    else:
        p["TILE_R"] = p["TILE_P"] = 1
    max_wg = min(device.max_work_group_size, max_group or device.max_work_group_size)
    p["WG_CO"] = max(1, min(p["WG_CO"], pow2_floor(ceil_div(rows, p["TILE_CO"]))))
    if p["strategy"] == "local":
        # Few channel tiles: the work-group keeps its size along the positions instead, so that a staged
        # input window serves as many outputs as before.
        p["WG_L"] = max(p["WG_L"], min(group // p["WG_CO"], pow2_floor(ceil_div(length, p["TILE_L"] * p["VEC"]))))
    while p["WG_L"] * p["WG_CO"] > max_wg:
        if p["WG_CO"] > 1:
            p["WG_CO"] //= 2
        else:
            p["WG_L"] //= 2
    if p["strategy"] == "local":
        while local_bytes(p) > device.local_mem_size:
            if p["CI_TILE"] > 1:
                p["CI_TILE"] //= 2
            elif p["TILE_L"] > 1:
                p["TILE_L"] //= 2
            elif p["WG_L"] > 1:
                p["WG_L"] //= 2
            else:
                p["strategy"] = "register"
                break
    return p
