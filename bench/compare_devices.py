#!/usr/bin/env python3
"""Time clconv's Conv1d on every OpenCL device against PyTorch's CPU convolution.

For each benchmark shape and each pass (forward, backward-data, backward-weight, and forward+backward: a
training step) the script times clconv on every OpenCL device it finds and, when torch is importable, torch
on the CPU ("torch-cpu").

    python bench/compare_devices.py                          # every shape, every device
    python bench/compare_devices.py --quick                  # smoke run on scaled-down shapes
    python bench/compare_devices.py --shapes dense,depthwise --devices pocl --rounds 20
    python bench/compare_devices.py --scale --shapes scale-mid,scale-n1,scale-n256  # scale shapes (off by default)

Method: every column first runs each pass untimed (kernel compilation, caches), then the timed rounds
visit the columns round-robin, in a rotating order, so that noise on a shared machine hits them alike
(the scale shapes share their rounds too, and the report gives their throughput against scale-mid).
Arrays stay resident (device arrays for OpenCL, tensors for torch): nothing is copied to or from the host
while the clock runs, and `queue.finish()` closes every timed OpenCL call. A sample repeats a call that
takes under MIN_SAMPLE_S until the sample lasts that long, and reports the mean per call; a sample of
calls under LEAD_IN_BELOW_S starts with one untimed call, because thread pools (torch's and PoCL's) that
parked while the other columns ran can take milliseconds to wake on a shared machine. The table gives
the median over the rounds, GFLOP/s counted as 2*N*C_out*L_out*(C_in/groups)*K per convolution (three for
forward+backward), the speedup against torch-cpu, and the largest difference from torch's result relative
to its largest value (the weight gradient's for forward+backward).

The backward passes call clconv.grad.conv1d_input / conv1d_weight and torch.nn.grad's functions of the
same names, and are skipped while clconv.grad is missing. Those functions know only zero padding, so for
a shape with another padding_mode both libraries differentiate the convolution of the explicitly padded
input (the padding itself, a copy, is left out of the timing). forward+backward is what a training step
asks of the layer, padding included: clconv's Conv1d forward then backward (input, weight and bias
gradients), against torch's module forward and autograd backward on an input that requires its gradient,
gradients reset before each step on both sides.

Each OpenCL device's peak is measured first: float32 multiply-adds from registers (bench/fma_peak.cl), and
each pass is reported as a share of it; torch-cpu is held against the CPU device's peak.

Writes results.json, results.md and, when matplotlib is installed, results.png into --out.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple
from pathlib import Path

import numpy as np
import pyopencl as cl

import clconv

PASSES = ("forward", "backward-data", "backward-weight", "forward+backward")
GRAD_FUNCTIONS = {"backward-data": "conv1d_input", "backward-weight": "conv1d_weight"}
# A training step (forward, then the input, weight and bias gradients) counts three convolutions.
PASS_CONVOLUTIONS = {"forward+backward": 3}
TORCH_LABEL = "torch-cpu"
DEFAULT_ROUNDS = 10
WARMUP_CALLS = 2
MIN_SAMPLE_S = 0.01
LEAD_IN_BELOW_S = 0.25
MAX_REPEATS = 100
DTYPE = np.dtype(np.float32)


@dataclass(frozen=True)
class Shape:
    """A Conv1d configuration with its input: (n, c_in, length) -> c_out."""

    name: str
    n: int
    c_in: int
    length: int
    c_out: int
    k: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    padding_mode: str = "zeros"

    @property
    def length_out(self) -> int:
        return (self.length + 2 * self.padding - self.dilation * (self.k - 1) - 1) // self.stride + 1

    @property
    def flops(self) -> float:
        return 2.0 * self.n * self.c_out * self.length_out * (self.c_in // self.groups) * self.k

    def pass_flops(self, pass_name: str) -> float:
        return self.flops * PASS_CONVOLUTIONS.get(pass_name, 1)

    def describe(self) -> str:
        text = f"({self.n},{self.c_in},{self.length})->{self.c_out} K{self.k}"
        for tag, value, default in (("s", self.stride, 1), ("p", self.padding, 0), ("d", self.dilation, 1),
                                    ("g", self.groups, 1)):
            if value != default:
                text += f" {tag}{value}"
        return text if self.padding_mode == "zeros" else f"{text} {self.padding_mode}"


SHAPES = (
    Shape("example", 20, 16, 50, 33, 3, stride=2),
    Shape("dense", 32, 512, 1000, 512, 3, padding=1),
    Shape("depthwise", 16, 256, 4000, 256, 31, padding=15, groups=256),
    Shape("wav2vec", 8, 1, 16000, 512, 10, stride=5),
    Shape("tcn", 16, 64, 8192, 64, 3, padding=8, dilation=8),
    Shape("grouped", 32, 128, 2048, 128, 5, padding=2, groups=4),
    Shape("dense-reflect", 32, 512, 1000, 512, 3, padding=1, padding_mode="reflect"),
)

# Scale: a 64-channel dense layer at a mid size, on one sequence of 10^6 samples, and on a batch of 256.
SCALE_SHAPES = (
    Shape("scale-mid", 16, 64, 16384, 64, 3, padding=1),
    Shape("scale-n1", 1, 64, 10**6, 64, 3, padding=1),
    Shape("scale-n256", 256, 64, 4096, 64, 3, padding=1),
)


def shrink(shape: Shape) -> Shape:
    """A tiny version of a shape for --quick: same kernel, stride, padding and dilation."""
    factor = max(1, max(shape.c_in, shape.c_out) // 16)
    c_in, c_out = max(1, shape.c_in // factor), max(1, shape.c_out // factor)
    return replace(shape, n=min(shape.n, 2), c_in=c_in, c_out=c_out, length=min(shape.length, 128),
                   groups=math.gcd(shape.groups, c_in, c_out))


# --- inputs ---------------------------------------------------------------------------------------

@dataclass
class Inputs:
    """Host arrays shared by every column; x_bw and padding_bw are what the backward passes see."""

    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    grad_output: np.ndarray
    x_bw: np.ndarray
    padding_bw: int


def make_inputs(shape: Shape, rng: np.random.Generator) -> Inputs:
    def normal(*dims):
        return rng.standard_normal(dims, dtype=DTYPE)

    x = normal(shape.n, shape.c_in, shape.length)
    bound = 1.0 / math.sqrt(shape.c_in // shape.groups * shape.k)
    weight = rng.uniform(-bound, bound, (shape.c_out, shape.c_in // shape.groups, shape.k)).astype(DTYPE)
    bias = rng.uniform(-bound, bound, shape.c_out).astype(DTYPE)
    grad_output = normal(shape.n, shape.c_out, shape.length_out)
    if shape.padding_mode == "zeros":
        return Inputs(x, weight, bias, grad_output, x, shape.padding)
    numpy_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[shape.padding_mode]
    x_padded = np.pad(x, ((0, 0), (0, 0), (shape.padding, shape.padding)), mode=numpy_mode)
    return Inputs(x, weight, bias, grad_output, x_padded, 0)


def buffer_bytes(shape: Shape) -> tuple[int, int]:
    """(largest array, all arrays resident at once) in bytes for one column of one shape."""
    x = shape.n * shape.c_in * (shape.length + 2 * shape.padding) * DTYPE.itemsize
    y = shape.n * shape.c_out * shape.length_out * DTYPE.itemsize
    weight = shape.c_out * (shape.c_in // shape.groups) * shape.k * DTYPE.itemsize
    return max(x, y), 3 * x + 2 * y + 2 * weight


def host_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo; None where there is none (no check is made then)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def device_room(device, shape: Shape) -> str | None:
    """Why `shape` cannot run on `device`, or None when its arrays fit."""
    largest, total = buffer_bytes(shape)
    if largest > device.max_alloc:
        return f"needs a {gib(largest)} array; {device.name} allocates at most {gib(device.max_alloc)}"
    if total > device.global_mem_size:
        return f"needs {gib(total)}; {device.name} has {gib(device.global_mem_size)}"
    return None


def host_room(shape: Shape) -> str | None:
    """Why the host arrays of `shape` (inputs, torch's arrays, fetched results) do not fit, or None."""
    _, total = buffer_bytes(shape)
    available = host_available_bytes()
    if available is not None and 2 * total > available:
        return f"needs about {gib(2 * total)} of host memory; {gib(available)} available"
    return None


# --- peak -----------------------------------------------------------------------------------------

PEAK_SOURCE = Path(__file__).with_name("fma_peak.cl")
PEAK_ACC = 12
PEAK_SECONDS = 0.1


def measure_peak(device) -> float:
    """GFLOP/s of fma_peak.cl on `device` (float32 multiply-adds from registers), median of 3 runs of
    at least PEAK_SECONDS each."""
    context = device.context
    program = cl.Program(context, PEAK_SOURCE.read_text()).build(options=[f"-DACC={PEAK_ACC}"])
    kernel = program.fma_peak
    cpu = device.type == "CPU"
    items = device.cl_device.max_compute_units * (4 if cpu else 2048)
    local = (1,) if cpu else None
    out = cl.Buffer(context, cl.mem_flags.WRITE_ONLY, 4 * items)
    queue = cl.CommandQueue(context)

    def run(iters: int) -> float:
        start = time.perf_counter()
        kernel(queue, (items,), local, out, np.int32(iters), np.float32(0.999999), np.float32(1e-6))
        queue.finish()
        return time.perf_counter() - start

    iters = 16
    run(iters)
    while (seconds := run(iters)) < PEAK_SECONDS and iters < 1 << 30:
        iters *= 2
    seconds = statistics.median([seconds, run(iters), run(iters)])
    return 2 * 16 * PEAK_ACC * iters * items / seconds / 1e9


# --- columns --------------------------------------------------------------------------------------

@dataclass
class Column:
    """One timed implementation: an OpenCL device through clconv, or torch on the CPU."""

    label: str
    device: object = None  # clconv.Device; None for torch
    peak_gflops: float | None = None  # fma_peak.cl on the device; torch: on the CPU's OpenCL device

    def finish(self) -> None:
        if self.device is not None:
            self.device.queue.finish()

    def fetch(self, result) -> np.ndarray:
        return result.get() if self.device is not None else result.numpy()

    def info(self) -> dict:
        if self.device is None:
            return {"label": self.label, "kind": "torch", "peak_gflops": self.peak_gflops}
        d = self.device
        return {"label": self.label, "kind": "opencl", "name": d.name, "platform": d.platform_name,
                "type": d.type, "driver": d.driver_version, "spec": d.spec,
                "compute_units": d.cl_device.max_compute_units, "peak_gflops": self.peak_gflops}


def device_label(device, taken: set) -> str:
    lowered = device.platform_name.lower()
    vendor = "pocl" if "portable computing language" in lowered else re.sub(r"[^a-z0-9]", "", lowered.split()[0])
    label = f"{vendor or 'cl'}-{device.type.lower()}"
    return label if label not in taken else f"{label}{device.index}"


def select_devices(filters: str | None) -> list:
    """clconv.devices() matching any comma-separated filter: an index, a "P:D" spec, or a substring
    of the column label, device name or platform name (case-insensitive)."""
    found = clconv.devices()
    if not filters:
        return found
    tokens = [t.strip().lower() for t in filters.split(",") if t.strip()]
    labels = column_labels(found)

    def wanted(device, label):
        hay = f"{label} {device.name} {device.platform_name}".lower()
        return any(t in (str(device.index), device.spec) or t in hay for t in tokens)

    return [d for d, label in zip(found, labels) if wanted(d, label)]


def column_labels(found: list) -> list[str]:
    labels = []
    for device in found:
        labels.append(device_label(device, set(labels)))
    return labels


def clconv_runners(device, grad, shape: Shape, inputs: Inputs) -> dict:
    """pass -> a call that enqueues the pass on `device` and returns its (device-array) result."""
    m = clconv.Conv1d(shape.c_in, shape.c_out, shape.k, stride=shape.stride, padding=shape.padding,
                      dilation=shape.dilation, groups=shape.groups, padding_mode=shape.padding_mode,
                      device=device)
    m.load_state_dict({"weight": inputs.weight, "bias": inputs.bias})
    x, grad_output = device.to_device(inputs.x), device.to_device(inputs.grad_output)

    def training_step():
        m.zero_grad()
        m(x)
        m.backward(grad_output)
        return m.weight.grad

    runners = {"forward": lambda: m(x), "forward+backward": training_step}
    if grad is None:
        return runners
    weight = m.weight.data
    x_bw = x if inputs.x_bw is inputs.x else device.to_device(inputs.x_bw)
    options = dict(stride=shape.stride, padding=inputs.padding_bw, dilation=shape.dilation, groups=shape.groups)
    if hasattr(grad, "conv1d_input"):
        runners["backward-data"] = lambda: grad.conv1d_input(x_bw.shape, weight, grad_output, **options)
    if hasattr(grad, "conv1d_weight"):
        runners["backward-weight"] = lambda: grad.conv1d_weight(x_bw, weight.shape, grad_output, **options)
    return runners


def torch_runners(torch, shape: Shape, inputs: Inputs) -> dict:
    """pass -> a call that runs the pass with torch on the CPU and returns its tensor."""
    conv = torch.nn.Conv1d(shape.c_in, shape.c_out, shape.k, stride=shape.stride, padding=shape.padding,
                           dilation=shape.dilation, groups=shape.groups, padding_mode=shape.padding_mode)
    weight, bias = torch.from_numpy(inputs.weight), torch.from_numpy(inputs.bias)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    x, x_bw = torch.from_numpy(inputs.x), torch.from_numpy(inputs.x_bw)
    grad_output = torch.from_numpy(inputs.grad_output)
    options = dict(stride=shape.stride, padding=inputs.padding_bw, dilation=shape.dilation, groups=shape.groups)

    x_train = x.clone().requires_grad_(True)

    def forward():
        with torch.no_grad():
            return conv(x)

    def training_step():
        conv.zero_grad(set_to_none=True)
        x_train.grad = None
        conv(x_train).backward(grad_output)
        return conv.weight.grad

    return {
        "forward": forward,
        "backward-data": lambda: torch.nn.grad.conv1d_input(x_bw.shape, weight, grad_output, **options),
        "backward-weight": lambda: torch.nn.grad.conv1d_weight(x_bw, weight.shape, grad_output, **options),
        "forward+backward": training_step,
    }


# --- measurement ----------------------------------------------------------------------------------

def timed_sample(run, column: Column, repeats: int, lead_in: bool) -> float:
    """Seconds per call, averaged over `repeats` calls that each end with the column's finish()."""
    if lead_in:
        run()
        column.finish()
    start = time.perf_counter()
    for _ in range(repeats):
        run()
        column.finish()
    return (time.perf_counter() - start) / repeats


def warm_up(run, column: Column, calls: int) -> tuple[np.ndarray, int, bool]:
    """Run untimed calls; return the first result on the host, the repeats a sample needs and whether
    samples need a lead-in call."""
    result = run()
    column.finish()
    first = column.fetch(result)
    del result
    seconds = min(timed_sample(run, column, 1, False) for _ in range(calls - 1)) if calls > 1 else MIN_SAMPLE_S
    return first, max(1, min(MAX_REPEATS, int(MIN_SAMPLE_S / max(seconds, 1e-9)))), seconds < LEAD_IN_BELOW_S


def relative_error(result: np.ndarray, reference: np.ndarray) -> float:
    """max|result - reference| / max|reference| (0 for empty arrays)."""
    if reference.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(reference))), 1e-30)
    return float(np.max(np.abs(result.astype(np.float64) - reference))) / scale


class Entry(NamedTuple):
    """One shape of a group timed together: its runners per column label and the columns that run it."""
    shape: Shape
    runners: dict
    columns: list


def measure_group(entries: list, pass_name: str, rounds: int, warmup: int) -> list[dict]:
    """One row of results per entry: per column its timings, or the error that stopped it. Every round
    samples each (entry, column) pair once, in a rotating order, so that noise on a shared machine hits
    them alike: columns against each other, and the shapes of a group (the scale shapes) too."""
    rows, pairs, plans, outputs = [], [], {}, {}
    for e, entry in enumerate(entries):
        shape = entry.shape
        row = {"shape": shape.name, "dims": asdict(shape), "describe": shape.describe(), "pass": pass_name,
               "gflop": shape.pass_flops(pass_name) / 1e9, "results": {}, "errors": {}}
        rows.append(row)
        for column in entry.columns:
            run = entry.runners.get(column.label, {}).get(pass_name)
            if run is None:
                continue
            try:
                outputs[e, column.label], *plans[e, column.label] = warm_up(run, column, warmup)
            except Exception as exc:  # one failing column must not lose the others' results
                row["errors"][column.label] = f"{type(exc).__name__}: {exc}"
                continue
            pairs.append((e, column))
    times = {(e, c.label): [] for e, c in pairs}
    for r in range(rounds):
        for i in range(len(pairs)):
            e, column = pairs[(r + i) % len(pairs)]
            times[e, column.label].append(timed_sample(entries[e].runners[column.label][pass_name], column,
                                                       *plans[e, column.label]))
    for e, column in pairs:
        row, samples = rows[e], times[e, column.label]
        median = statistics.median(samples)
        result = {"median_ms": median * 1e3, "min_ms": min(samples) * 1e3,
                  "gflops": entries[e].shape.pass_flops(pass_name) / median / 1e9, "repeats": plans[e, column.label][0],
                  "times_ms": [t * 1e3 for t in samples]}
        reference = outputs.get((e, TORCH_LABEL))
        if reference is not None and column.label != TORCH_LABEL:
            result["max_rel_err"] = relative_error(outputs[e, column.label], reference.astype(np.float64))
        row["results"][column.label] = result
    for row in rows:
        torch_result = row["results"].get(TORCH_LABEL)
        if torch_result is not None:
            for label, result in row["results"].items():
                if label != TORCH_LABEL:
                    result["speedup_vs_torch"] = torch_result["median_ms"] / result["median_ms"]
    return rows


class Progress:
    """A tqdm bar when tqdm is installed, plain prints otherwise; one line per finished step."""

    def __init__(self, total: int):
        try:
            from tqdm import tqdm
        except ImportError:
            self.bar = None
        else:
            self.bar = tqdm(total=total, unit="pass", file=sys.stdout)
        self.total, self.done = total, 0

    def step(self, message: str) -> None:
        self.done += 1
        line = f"[{self.done}/{self.total}] {message}"
        if self.bar is None:
            print(line, flush=True)
        else:
            self.bar.write(line)
            self.bar.update(1)

    def note(self, message: str) -> None:
        (print if self.bar is None else self.bar.write)(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def summary(row: dict) -> str:
    parts = [f"{label} {r['median_ms']:.3f} ms" for label, r in row["results"].items()]
    parts += [f"{label} FAILED" for label in row["errors"]]
    parts += [f"{label} skipped" for label in row.get("skipped", {})]
    return f"{row['shape']} {row['pass']}: " + ", ".join(parts)


def shape_groups(shapes: list) -> list[list]:
    """Shapes timed together: the scale shapes share their rounds, so that drift of the machine over the run
    hits them alike and their ratios to scale-mid hold; every other shape is timed on its own."""
    scale = [s for s in shapes if s.name.startswith("scale-")]
    return [[s] for s in shapes if s not in scale] + ([scale] if scale else [])


def run_benchmark(shapes: list, columns: list, grad, torch, rounds: int, warmup: int) -> list[dict]:
    passes = [p for p in PASSES if p not in GRAD_FUNCTIONS or (grad is not None and hasattr(grad, GRAD_FUNCTIONS[p]))]
    progress = Progress(len(shapes) * len(passes))
    rows = []
    rng = np.random.default_rng(0)
    for group in shape_groups(shapes):
        entries, skips, setup_errors = [], [], []
        for shape in group:
            skipped = {c.label: device_room(c.device, shape) for c in columns if c.device is not None}
            host_reason = host_room(shape)
            if host_reason:
                skipped = {c.label: host_reason for c in columns}
            skipped = {label: why for label, why in skipped.items() if why}
            runnable = [c for c in columns if c.label not in skipped]
            inputs = make_inputs(shape, rng) if runnable else None
            for label, why in skipped.items():
                progress.note(f"{shape.name}: {label} skipped: {why}")
            runners, errors = {}, {}
            for column in runnable:
                try:
                    runners[column.label] = (torch_runners(torch, shape, inputs) if column.device is None
                                             else clconv_runners(column.device, grad, shape, inputs))
                except Exception as exc:
                    errors[column.label] = f"{type(exc).__name__}: {exc}"
            entries.append(Entry(shape, runners, runnable))
            skips.append(skipped)
            setup_errors.append(errors)
            del inputs
        group_rows = []
        for pass_name in passes:
            for row, skipped, errors in zip(measure_group(entries, pass_name, rounds, warmup), skips, setup_errors):
                row["errors"].update(errors)
                row["skipped"] = skipped
                group_rows.append(row)
                progress.step(summary(row))
                for label, message in row["errors"].items():
                    progress.note(f"    {label} failed: {message}")
        order = [shape.name for shape in group]
        rows += sorted(group_rows, key=lambda row: (order.index(row["shape"]), PASSES.index(row["pass"])))
        del entries
        for column in columns:
            if column.device is not None:
                column.device.allocator.free_held()
    progress.close()
    return rows


# --- reports --------------------------------------------------------------------------------------

def machine_info(torch) -> dict:
    info = {"platform": platform.platform(), "machine": platform.machine(), "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), "load_average_start": load_average(), "python": platform.python_version(),
            "numpy": np.__version__,
            "pyopencl": cl.VERSION_TEXT, "clconv": clconv.__version__}
    if torch is not None:
        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    return info


def load_average() -> list | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return ""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}" if value >= 1 else f"{value:.3g}"


def scale_lines(report: dict) -> list[str]:
    """Throughput of the scale shapes against scale-mid's, per column and pass (they share their rounds)."""
    by_key = {(row["shape"], row["pass"]): row["results"] for row in report["rows"]}
    others = [name for name in ("scale-n1", "scale-n256") if any(shape == name for shape, _ in by_key)]
    if not others or not any(shape == "scale-mid" for shape, _ in by_key):
        return []
    lines = ["| column | pass | " + " | ".join(others) + " |", "|---|---|" + "---|" * len(others)]
    for column in report["columns"]:
        label = column["label"]
        for pass_name in PASSES:
            mid = by_key.get(("scale-mid", pass_name), {}).get(label)
            if mid is None:
                continue
            cells = []
            for name in others:
                r = by_key.get((name, pass_name), {}).get(label)
                cells.append(f"{r['gflops'] / mid['gflops'] - 1:+.0%} ({fmt(r['gflops'])} vs {fmt(mid['gflops'])})"
                             if r else "")
            lines.append(f"| {label} | {pass_name} | " + " | ".join(cells) + " |")
    return ["", "Scale: GFLOP/s against scale-mid's, timed in the same rounds:", "", *lines]


def markdown(report: dict) -> str:
    labels = [c["label"] for c in report["columns"]]
    torch_present = TORCH_LABEL in labels
    peaks = {c["label"]: c.get("peak_gflops") for c in report["columns"]}
    header = ["shape", "pass", "GFLOP"]
    for label in labels:
        header += [f"{label} ms", f"{label} GFLOP/s"] + ([f"{label} % peak"] if peaks[label] else [])
        if torch_present and label != TORCH_LABEL:
            header.append(f"{label} vs torch")
    if torch_present and len(labels) > 1:
        header.append("max rel err")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in report["rows"]:
        cells = [f"{row['shape']} {row['describe']}", row["pass"], fmt(row["gflop"], 2)]
        for label in labels:
            r = row["results"].get(label)
            missing = "skipped" if label in row["skipped"] else "failed" if label in row["errors"] else "n/a"
            cells += [fmt(r["median_ms"], 2), fmt(r["gflops"])] if r else [missing, ""]
            if peaks[label]:
                cells.append(f"{100 * r['gflops'] / peaks[label]:.0f}%" if r else "")
            if torch_present and label != TORCH_LABEL:
                cells.append(f"{r['speedup_vs_torch']:.2f}x" if r and "speedup_vs_torch" in r else "")
        if torch_present and len(labels) > 1:
            errors = [r["max_rel_err"] for r in row["results"].values() if "max_rel_err" in r]
            cells.append(f"{max(errors):.1e}" if errors else "")
        lines.append("| " + " | ".join(cells) + " |")

    machine, settings = report["machine"], report["settings"]
    out = ["# clconv Conv1d vs PyTorch", "",
           f"{machine['cpu']}, {machine['cpu_count']} cores; {machine['platform']}; python {machine['python']}, "
           f"pyopencl {machine['pyopencl']}, clconv {machine['clconv']}"
           + (f", torch {machine['torch']} ({machine['torch_threads']} threads)" if "torch" in machine else "") + ".",
           *([f"Load average (1, 5, 15 min): {machine['load_average_start']} before, "
              f"{machine['load_average_end']} after the run."] if machine["load_average_start"] else []),
           "", "Columns:"]
    for c in report["columns"]:
        peak = c.get("peak_gflops")
        out.append(f"- `{c['label']}`: " + (f"{c['name']} on {c['platform']} ({c['type']}, driver {c['driver']})"
                                           if c["kind"] == "opencl" else "PyTorch CPU")
                   + (f"; peak {fmt(peak)} GFLOP/s" if peak else ""))
    out.append("- peak: float32 multiply-adds from registers (bench/fma_peak.cl) on each OpenCL device; "
               "torch-cpu is given the CPU device's")
    out += ["", f"Median over {settings['rounds']} round(s) after {settings['warmup']} warm-up call(s), float32"
            + (", quick mode (scaled-down shapes)" if settings["quick"] else "") + ". "
            "GFLOP/s = 2*N*C_out*L_out*(C_in/groups)*K per convolution / time (forward+backward: three). "
            "max rel err: largest |clconv - torch| over the largest |torch| among the OpenCL columns.", "",
            *lines, *scale_lines(report)]
    problems = {f"- {row['shape']} {label}: skipped, {why}" for row in report["rows"] for label, why in row["skipped"].items()}
    problems = sorted(problems) + [f"- {row['shape']} {row['pass']} {label}: {message}"
                                   for row in report["rows"] for label, message in row["errors"].items()]
    if problems:
        out += ["", "Skipped or failed:", *problems]
    return "\n".join(out) + "\n"


def write_chart(path: Path, report: dict) -> bool:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib not installed: chart skipped")
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, labels = report["rows"], [c["label"] for c in report["columns"]]
    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(max(8, 0.5 * len(rows) * len(labels)), 5))
    for i, label in enumerate(labels):
        values = [row["results"][label]["gflops"] if label in row["results"] else float("nan") for row in rows]
        ax.bar([j + (i - (len(labels) - 1) / 2) * width for j in range(len(rows))], values, width, label=label)
    ax.set_xticks(range(len(rows)), [f"{row['shape']}\n{row['pass']}" for row in rows], rotation=60,
                  ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("GFLOP/s (higher is better)")
    ax.set_title("clconv Conv1d per OpenCL device vs torch-cpu")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# --- command line ---------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny versions of the shapes, 1 round")
    parser.add_argument("--rounds", type=int, help=f"timed rounds (default {DEFAULT_ROUNDS}; 1 with --quick)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for results.* (default: .)")
    parser.add_argument("--shapes", help="comma-separated shape names (default: all); names: "
                        + ", ".join(s.name for s in SHAPES + SCALE_SHAPES))
    parser.add_argument("--devices", help="comma-separated filters: index, 'P:D', or a substring of the "
                        "label, device or platform name (default: all OpenCL devices)")
    parser.add_argument("--scale", action="store_true", help="add the scale shapes " +
                        ", ".join(s.name for s in SCALE_SHAPES))
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def pick_shapes(args) -> list[Shape]:
    pool = SHAPES + (SCALE_SHAPES if args.scale else ())
    if args.shapes:
        names = [n.strip() for n in args.shapes.split(",") if n.strip()]
        unknown = [n for n in names if n not in {s.name for s in pool}]
        if unknown:
            hint = " (the scale shapes need --scale)" if any(s.name in unknown for s in SCALE_SHAPES) else ""
            sys.exit(f"unknown shape(s) {', '.join(unknown)}{hint}; choose from {', '.join(s.name for s in pool)}")
        pool = tuple(s for s in pool if s.name in names)
    return [shrink(s) for s in pool] if args.quick else list(pool)


def import_optional(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def main(argv=None) -> int:
    args = parse_args(argv)
    shapes = pick_shapes(args)
    found = select_devices(args.devices)
    if not found:
        sys.exit("no OpenCL device found" + (f" matching --devices {args.devices!r}" if args.devices else "")
                 + f"; available: {clconv.devices() or 'none (install pocl-binary-distribution for a CPU device)'}")
    columns = [Column(label, device) for label, device in zip(column_labels(found), found)]
    torch = import_optional("torch")
    if torch is None:
        print("torch not importable: no torch-cpu column")
    else:
        torch.set_num_threads(os.cpu_count() or 1)
        columns.append(Column(TORCH_LABEL))
    for column in columns:
        if column.device is not None:
            try:
                column.peak_gflops = measure_peak(column.device)
            except cl.Error as exc:
                print(f"{column.label}: peak not measured: {exc}")
    cpu_peaks = [c.peak_gflops for c in columns if c.device is not None and c.device.type == "CPU" and c.peak_gflops]
    if torch is not None and cpu_peaks:
        columns[-1].peak_gflops = max(cpu_peaks)
    grad = import_optional("clconv.grad")
    if grad is None:
        print("clconv.grad not available: forward pass only")
    rounds = args.rounds or (1 if args.quick else DEFAULT_ROUNDS)
    warmup = 1 if args.quick else WARMUP_CALLS
    print(f"{len(shapes)} shape(s), columns: {', '.join(c.label for c in columns)}; {rounds} round(s)", flush=True)

    machine = machine_info(torch)
    started = time.time()
    rows = run_benchmark(shapes, columns, grad, torch, rounds, warmup)
    machine["load_average_end"] = load_average()
    report = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "machine": machine,
        "settings": {"rounds": rounds, "warmup": warmup, "quick": args.quick, "dtype": DTYPE.name,
                     "min_sample_s": MIN_SAMPLE_S, "seconds": round(time.time() - started, 1)},
        "columns": [c.info() for c in columns],
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    table = markdown(report)
    (args.out / "results.md").write_text(table)
    print("\n" + table)
    written = ["results.json", "results.md"] + (["results.png"] if write_chart(args.out / "results.png", report) else [])
    print(f"wrote {', '.join(str(args.out / name) for name in written)}")
    return 1 if any(row["errors"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
