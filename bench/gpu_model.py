"""A GPU cost model without a GPU: each pass of each GPU device class, run once on Oclgrind with its
instruction counter (OCLGRIND_INST_COUNTS=1), reduced to four figures per pass:

  global B/FMA     bytes loaded from __global memory per multiply-add the convolution needs
                   (Oclgrind has no cache: every load counts, as if none hit in a GPU's L1/L2)
  local loads/FMA  __local loads per needed multiply-add, in 16-byte units (a float4 load is one
                   128-bit load instruction on NVIDIA, AMD and Intel GPUs; a scalar load is one too)
  instr/FMA        instructions executed per needed multiply-add, a vector instruction counted once per lane
                   where its name gives the width (a GPU work-item runs vectors lane by lane); SSA
                   bookkeeping that compiles to no machine instruction (phi, freeze, bitcast) is left out
  executed/needed  multiply-adds executed (fmuladd, fma and fmul, per lane) over those the pass needs

A pass's figures sum every kernel of its plan (weight flips, staging, reductions). The bias gradient is
reported on its own (it needs no multiply-adds: its figures are per element of dy). Each run is a child
process, so that a run's counts are its own.

    python bench/gpu_model.py                     # every GPU class, both default shapes
    python bench/gpu_model.py --classes nvidia-gpu --shapes dense --passes forward

Needs Oclgrind's OpenCL ICD (Debian package `oclgrind`); the script points OCL_ICD_VENDORS at it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

GPU_CLASSES = ("nvidia-gpu", "amd-gpu", "intel-gpu")
PASSES = ("forward", "input-gradient", "weight-gradient", "bias-gradient")
# (N, C_in, L, C_out, K, stride, padding, dilation, groups): scaled-down benchmark layers.
SHAPES = {
    "dense": (1, 64, 256, 64, 3, 1, 1, 1, 1),
    "grouped": (1, 64, 256, 64, 5, 1, 2, 1, 4),
    "strided": (1, 64, 512, 64, 3, 2, 1, 1, 1),
    "depthwise": (1, 64, 256, 64, 15, 1, 7, 1, 64),
    "multiplier": (1, 32, 256, 64, 15, 1, 7, 1, 32),
    "frontend": (1, 1, 2560, 64, 10, 5, 0, 1, 1),
}
DEFAULT_SHAPES = ("dense", "grouped")
TARGETS = {"global B/FMA": 0.08, "local loads/FMA": 0.35, "instr/FMA": 2.0, "executed/needed": 1.3}
ICD_CANDIDATES = ("/usr/lib/oclgrind/liboclgrind-rt-icd.so", "/usr/lib/x86_64-linux-gnu/liboclgrind-rt-icd.so")

_LINE = re.compile(r"^\s*(\d+) - (.+?)(?: \((\d+) bytes\))?$")
_LANES = re.compile(r"\.v(\d+)[fi]\d+")
_MULTIPLY_ADDS = ("llvm.fmuladd", "llvm.fma", "fmul")
_NOT_EXECUTED = ("phi", "freeze", "bitcast")


def needed_fmas(shape) -> int:
    n, c_in, length, c_out, k, stride, pad, dilation, groups = shape
    l_out = (length + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    return n * c_out * l_out * (c_in // groups) * k


def parse_counts(text: str) -> dict:
    """Sums of the instruction counter's blocks: instructions (vector calls per lane), multiply-adds (per
    lane), global bytes loaded, local loads in 16-byte units."""
    totals = {"instructions": 0, "fmas": 0, "global_bytes": 0, "local_loads": 0, "kernels": []}
    for line in text.splitlines():
        if line.startswith("Instructions executed for kernel"):
            totals["kernels"].append(line.split("'")[1])
            continue
        match = _LINE.match(line)
        if not match:
            continue
        count, name, nbytes = int(match[1]), match[2], int(match[3] or 0)
        lanes = int(_LANES.search(name)[1]) if _LANES.search(name) else 1
        if name not in _NOT_EXECUTED:
            totals["instructions"] += count * lanes
        if any(name.startswith(op) or name.startswith("call " + op) for op in _MULTIPLY_ADDS):
            totals["fmas"] += count * lanes
        if name.startswith("load global"):
            totals["global_bytes"] += nbytes
        elif name.startswith("load local"):
            totals["local_loads"] += max(count, -(-nbytes // 16))
    return totals


def figures(totals: dict, shape, pass_name: str) -> dict:
    if pass_name == "bias-gradient":
        n, _, length, c_out, k, stride, pad, dilation, _ = shape
        elements = n * c_out * ((length + 2 * pad - dilation * (k - 1) - 1) // stride + 1)
        return {"global B/element": totals["global_bytes"] / elements,
                "instr/element": totals["instructions"] / elements}
    need = needed_fmas(shape)
    return {"global B/FMA": totals["global_bytes"] / need, "local loads/FMA": totals["local_loads"] / need,
            "instr/FMA": totals["instructions"] / need, "executed/needed": totals["fmas"] / need}


def run_child(pass_name: str, shape) -> None:
    """Runs one pass once on the Oclgrind device, which prints its counts on stdout; nothing else runs a kernel."""
    import numpy as np

    import clconv
    from clconv.api import launch

    n, c_in, length, c_out, k, stride, pad, dilation, groups = shape
    device = clconv.get_device("oclgrind")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c_in, length)).astype(np.float32)
    w = rng.standard_normal((c_out, c_in // groups, k)).astype(np.float32)
    l_out = (length + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    y = rng.standard_normal((n, c_out, l_out)).astype(np.float32)
    conv = dict(stride=stride, padding=pad, dilation=dilation, groups=groups)
    if pass_name == "forward":
        clconv.conv1d(x, w, rng.standard_normal(c_out).astype(np.float32), **conv)
    elif pass_name == "input-gradient":
        clconv.grad.conv1d_input(x.shape, w, y, **conv)
    elif pass_name == "weight-gradient":
        clconv.grad.conv1d_weight(x, w.shape, y, **conv)
    else:
        dy = device.to_device(y)
        db = device.empty((c_out,), np.float32)
        launch.bias_gradient(device, dy, db, accumulate=False)
        db.get()
    device.queue.finish()


def measure(cls: str, pass_name: str, shape, icd_dir: str) -> dict:
    env = {**os.environ, "OCL_ICD_VENDORS": icd_dir, "OCLGRIND_INST_COUNTS": "1", "CLCONV_DEVICE_CLASS": cls,
           "CLCONV_BINARY_CACHE": "0", "CLCONV_DEVICE": "oclgrind"}
    for check in ("OCLGRIND_DATA_RACES", "OCLGRIND_UNINITIALIZED", "OCLGRIND_CHECK_API"):
        env.pop(check, None)
    result = subprocess.run([sys.executable, __file__, "--child", pass_name, ",".join(map(str, shape))],
                            env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode:
        raise RuntimeError(f"{cls} {pass_name} {shape}: child failed:\n{result.stderr[-3000:]}")
    totals = parse_counts(result.stdout)
    return {**figures(totals, shape, pass_name), "kernels": totals["kernels"]}


def icd_folder() -> str:
    lib = next((p for p in ICD_CANDIDATES if Path(p).exists()), None)
    if lib is None:
        sys.exit("Oclgrind's ICD library not found (install the Debian package oclgrind)")
    folder = tempfile.mkdtemp(prefix="clconv-oclgrind-icd-")
    Path(folder, "oclgrind.icd").write_text(lib + "\n")
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", default=",".join(GPU_CLASSES))
    parser.add_argument("--shapes", default=",".join(DEFAULT_SHAPES), help=f"of {', '.join(SHAPES)}")
    parser.add_argument("--passes", default=",".join(PASSES))
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child[0], tuple(int(v) for v in args.child[1].split(",")))
        return 0
    icd = icd_folder()
    rows = []
    print("| class | shape | pass | global B/FMA | local loads/FMA | instr/FMA | executed/needed | kernels |")
    print("|---|---|---|---|---|---|---|---|")
    missed = 0
    for cls in args.classes.split(","):
        for shape_name in args.shapes.split(","):
            for pass_name in args.passes.split(","):
                row = measure(cls, pass_name, SHAPES[shape_name], icd)
                rows.append({"class": cls, "shape": shape_name, "pass": pass_name, **row})
                if pass_name == "bias-gradient":
                    cells = [f"{row['global B/element']:.2f} B/elem", "", f"{row['instr/element']:.2f}/elem", ""]
                else:
                    cells = []
                    for name, target in TARGETS.items():
                        over = row[name] > target
                        missed += over
                        cells.append(f"{row[name]:.3f}{' (over ' + str(target) + ')' if over else ''}")
                print(f"| {cls} | {shape_name} | {pass_name} | " + " | ".join(cells) + f" | {', '.join(row['kernels'])} |",
                      flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(f"\n{missed} figure(s) over their targets ({', '.join(f'{k} <= {v}' for k, v in TARGETS.items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
