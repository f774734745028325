"""What every pass's planner returns: a `Plan`, an ordered list of kernel launches with the scratch buffers
they need, run against named buffers. Plans are memoised per device, a bounded number of them.

A step's arguments are names, bound when the plan runs (the caller's buffers, the plan's scratch buffers,
runtime flags such as "accumulate"), or numpy scalars fixed at planning time (lengths, counts).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from .. import params, tuning_cache
from ..params import Pass, PassParams, ceil_div


PAD_MODE_CODE = {"zeros": 0, "reflect": 1, "replicate": 2, "circular": 3}


@dataclass(frozen=True)
class Step:
    kernel: object
    global_size: tuple
    local_size: tuple
    args: tuple  # buffer or flag names (str), bound at run time, and numpy scalars


@dataclass(frozen=True)
class Plan:
    steps: tuple = ()
    scratch: tuple = ()  # (name, bytes) of the buffers the steps use beyond the caller's
    params: Optional[PassParams] = None  # the pass's fitted record (for the tuner and tests)
    info: dict = field(default_factory=dict)  # choices made beyond the record: "chunks", "bias_sum", "phases", ...

    def run(self, device, **bound) -> None:
        """Launch every step in order; `bound` names the caller's buffers and flags."""
        for name, nbytes in self.scratch:
            bound[name] = device.buffer(nbytes)
        for step in self.steps:
            device.launch(step.kernel, step.global_size, step.local_size,
                          *[bound[a] if type(a) is str else a for a in step.args])

    def renamed(self, **names) -> "Plan":
        """The same plan reading and writing other buffers: renamed(x="dy") binds its "x" to the caller's "dy"."""
        steps = tuple(replace(s, args=tuple(names.get(a, a) if isinstance(a, str) else a for a in s.args))
                      for s in self.steps)
        return replace(self, steps=steps, scratch=tuple((names.get(n, n), b) for n, b in self.scratch))

    def then(self, other: "Plan") -> "Plan":
        """This plan's steps followed by `other`'s, with `other`'s record where it has one, and both plans'
        choices (`other`'s win)."""
        return Plan(self.steps + other.steps, self.scratch + other.scratch,
                    other.params if other.params is not None else self.params, {**self.info, **other.info})


def acc_bytes(dtype) -> int:
    """Bytes of the accumulation type: float for float16 and float32 storage, double for float64."""
    return 8 if np.dtype(dtype) == np.float64 else 4


def dtype_defines(dtype) -> dict:
    name = np.dtype(dtype).name
    return {"DTYPE_HALF": 1} if name == "float16" else {"DTYPE_DOUBLE": 1} if name == "float64" else {}


def line_step(device, kernel, items: int, *args, rows: int | None = None, preferred: int = 64) -> Step:
    """A launch of `items` work-items (rounded up to whole work-groups) along dim 0, times `rows` along
    dim 1 where given; work-groups within the kernel's own limit."""
    group = params.pow2_floor(min(preferred, device.group_limit(kernel)))
    if rows is None:
        return Step(kernel, (ceil_div(items, group) * group,), (group,), args)
    return Step(kernel, (ceil_div(items, group) * group, rows), (group, 1), args)


PLAN_MEMO_SIZE = 512
_memo_lock = threading.Lock()


def planned(device, key: tuple, build):
    """Plans memoised per device (device.plans), at most PLAN_MEMO_SIZE of them, the oldest out first: a
    repeated shape costs a dict lookup, and a service fed endless new lengths keeps a bounded memo (an
    evicted plan is rebuilt from cached kernels). The key holds everything a plan depends on besides the
    shape: overrides, tuned entries, device limits."""
    key = (*key, params.override_key(), tuning_cache.generation(), device.max_work_group_size, device.local_mem_size)
    memo = device.plans
    plan = memo.get(key)
    if plan is None:
        plan = build()
        with _memo_lock:
            memo[key] = plan
            while len(memo) > PLAN_MEMO_SIZE:
                del memo[next(iter(memo))]
    return plan


def params_key(geo, dtype) -> tuple:
    """What a pass's tuned parameters depend on: everything compiled in, not the batch or the lengths."""
    return (geo.in_per_group, geo.out_per_group, geo.groups, geo.kernel_size, geo.stride, geo.dilation,
            geo.padding_mode, np.dtype(dtype).name)


def pass_record(device, pass_name: Pass, geo, dtype) -> PassParams:
    """The pass's record from the lookup chain, its vectors within the device's registers, before it is
    fitted to a length."""
    p = params.lookup(device, pass_name, params_key(geo, dtype), geo.in_per_group * geo.kernel_size, geo.stride)
    if device.type == "CPU" and p.VEC > max(8, device.vector_floats):
        # Vectors twice as wide as the compiled registers crash LLVM's x86 back end (PoCL compiling AVX2 code
        # on an AVX-512 host: "Cannot emit physreg copy instruction"), however the record was forced.
        p = replace(p, VEC=max(8, device.vector_floats))
    if np.dtype(dtype) == np.float64:
        p = replace(p, VEC=max(1, p.VEC // 2))  # double vectors take twice the registers
    return p


def pass_params(device, pass_name: Pass, geo, dtype, rows: int, length: int, local_bytes, max_group=None,
                local_vectors: bool = False) -> PassParams:
    """Parameters of one pass from the lookup chain, fitted to the shape, the device and (max_group) the
    work-group limit of a kernel built before."""
    return params.fit(device, pass_record(device, pass_name, geo, dtype), rows=rows, length=length,
                      local_bytes=local_bytes, max_group=max_group, local_vectors=local_vectors)


def exceeds_kernel(device, kernel, group: int) -> int | None:
    """The kernel's own work-group limit where the planned work-group (`group` work-items) exceeds it, else
    None: the planner then fits its parameters again within it, as a kernel's registers and local memory
    allow."""
    limit = device.group_limit(kernel)
    return limit if group > limit else None


def common_defines(geo, dtype, p: PassParams) -> dict:
    """The defines every convolution kernel reads: the layer, the strategy, the vector width, the dtype."""
    return {"C_IN_G": geo.in_per_group, "C_OUT_G": geo.out_per_group, "GROUPS": geo.groups,
            "K": geo.kernel_size, "STRIDE": geo.stride, "DILATION": geo.dilation,
            "STRATEGY": int(p.strategy == "local"), "VEC": p.VEC, "UNROLL_K_MAX": p.UNROLL_K_MAX,
            **dtype_defines(dtype)}


def position_block(p: PassParams, window_bytes: int, sample_bytes: int) -> int:
    """pos_block (see tile_order in common.cl): work-groups along dim 0 per cache block, 0 for grid order.
    window_bytes: the input one dim-0 group reads; sample_bytes: what all of them read. Input that fits
    the budget (BLOCK_KB) keeps grid order; otherwise a block takes as many groups as fit, at least one."""
    budget = p.BLOCK_KB << 10
    if p.strategy != "register" or sample_bytes <= budget:
        return 0
    return max(1, budget // max(1, window_bytes))


SHORT_ROWS = 512  # output lengths below this keep their own: tile fits to short rows differ by the length


def compiled_class(geo):
    """The geometry that stands for `geo` in every choice compiled into a kernel (tiles, tiles per
    work-item, staging, store kind, cache blocks). Rows of SHORT_ROWS outputs or more: the batch and output
    length rounded down to powers of two, the input length to match; shapes of one class share their
    programs and differ only in runtime arguments and grid sizes, and long rows saturate every choice, so a
    module fed ever new lengths builds a bounded number of programs per pass. Shorter rows keep their shape:
    their tiles are fitted to the length (a 20-position row in 4-lane vectors, not 16), and the few fits
    there are bound the programs. Rounding down keeps every tile within the real shape."""
    if geo.batch <= 0 or geo.length_out < SHORT_ROWS:
        return geo
    length_out = params.pow2_floor(geo.length_out)
    reach = (geo.kernel_size - 1) * geo.dilation + 1
    length_in = max(1, (length_out - 1) * geo.stride + reach - geo.pad_left - geo.pad_right)
    return replace(geo, batch=params.pow2_floor(geo.batch), length_in=length_in, length_out=length_out)
