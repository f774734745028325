"""Fitting a pass's record to a shape and to the device: tiles never exceed the shape, work-groups never
exceed the device or the kernel, and a local tile that cannot fit shrinks, or gives way to the register
strategy."""
from __future__ import annotations

from dataclasses import replace

from .records import PassParams

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


def fit(device, params: PassParams, *, rows: int, length: int, local_bytes, max_group: int | None = None,
        local_vectors: bool = False) -> PassParams:
    """Fit a pass's record to a shape and to the device.

    rows: channels per group the tile rows cover; length: positions along dim 0;
    local_bytes(p): __local memory the local strategy needs with record p; max_group: the built kernel's
    own work-group limit, where a first build found it below the device's; local_vectors: the pass's
    local-strategy kernel takes vectors of LOCAL_VEC positions (the others take single positions).
    """
    tile_rows, group_rows, staged = params.ROWS, params.GROUP_ROWS, params.STAGED
    p = {"strategy": params.strategy, "TILE_L": params.TILE_L, "VEC": params.VEC, "WG_L": params.WG_L,
         tile_rows: getattr(params, tile_rows), group_rows: getattr(params, group_rows)}
    if staged:
        p[staged] = getattr(params, staged)
    accumulators = p[tile_rows] * p["TILE_L"]
    # As many tiles as the channels need, balanced: 33 channels in 3 tiles of 11, not 16 + 16 + 16 that
    # slide back over each other.
    p[tile_rows] = balanced_tile(rows, p[tile_rows])
    # Few rows (depthwise, C_in = 1): keep as many independent accumulators along the positions, or the
    # loop waits on one FMA chain per accumulator.
    p["TILE_L"] = max(p["TILE_L"], min(_MAX_TILE_L, accumulators // p[tile_rows]))
    # ... within the registers: the tile's channels share its TILE_L input vectors, which stay live beside the
    # accumulators and a broadcast weight (one channel reads each input vector once, from memory).
    if params.TILE_REGS is not None and p[tile_rows] > 1:
        p["TILE_L"] = max(1, min(p["TILE_L"], (params.TILE_REGS - 1) // (p[tile_rows] + 1)))
    if p["strategy"] == "local":
        p["VEC"] = params.LOCAL_VEC if local_vectors else 1
    group = p["WG_L"] * p[group_rows]
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
    if hasattr(params, "TILE_R"):  # the forward's register tiles per work-item
        if p["strategy"] == "register":
            # At most what the shape holds, powers of two along the positions.
            p["TILE_R"] = max(1, min(params.TILE_R, ceil_div(rows, p[tile_rows])))
            p["TILE_P"] = max(1, min(params.TILE_P, pow2_floor(max(1, ceil_div(length, p["TILE_L"] * p["VEC"] * p["WG_L"])))))
        else:
            p["TILE_R"] = p["TILE_P"] = 1
    max_wg = min(device.max_work_group_size, max_group or device.max_work_group_size)
    p[group_rows] = max(1, min(p[group_rows], pow2_floor(ceil_div(rows, p[tile_rows]))))
    if p["strategy"] == "local":
        # Few channel tiles: the work-group keeps its size along the positions instead, so that a staged
        # input window serves as many outputs as before.
        p["WG_L"] = max(p["WG_L"], min(group // p[group_rows], pow2_floor(ceil_div(length, p["TILE_L"] * p["VEC"]))))
    while p["WG_L"] * p[group_rows] > max_wg:
        if p[group_rows] > 1:
            p[group_rows] //= 2
        else:
            p["WG_L"] //= 2
    if p["strategy"] == "local":
        while local_bytes(replace(params, **p)) > device.local_mem_size:
            if staged and p[staged] > 1:
                p[staged] //= 2
            elif p["TILE_L"] > 1:
                p["TILE_L"] //= 2
            elif p["WG_L"] > 1:
                p["WG_L"] //= 2
            else:
                p["strategy"] = "register"
                break
    return replace(params, **p)
